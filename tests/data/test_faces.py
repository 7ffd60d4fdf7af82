"""Face detection on a real face, and the training crop around a face box."""
import sys

import cv2
import numpy as np
import pytest

from facenet_mtl.data import images
from facenet_mtl.data.faces import Face, FaceDetector, crop_face
from tests.data.conftest import SHARED_DATA
from tests.photos import missing_data

UTKFACE = SHARED_DATA / "utkface" / "UTKFace"
GENKI = SHARED_DATA / "genki4k" / "files"
PASTED = (220, 140, 420, 340)  # where the 200x200 UTKFace crop goes in the 480x640 photo


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()  # MTCNN loads on the first detect, once for this module


@pytest.fixture(scope="module")
def photo():
    """A real aligned UTKFace face pasted into a plain 480x640 'photo'."""
    files = sorted(UTKFACE.glob("*.jpg"))
    if not files:
        pytest.skip(missing_data(UTKFACE, "the real faces"))
    canvas = np.full((480, 640, 3), (70, 90, 110), np.uint8)
    x1, y1, x2, y2 = PASTED
    canvas[y1:y2, x1:x2] = images.load_rgb(files[0])
    return canvas


def test_finds_the_pasted_face_with_its_landmarks(detector, photo):
    faces = detector.detect(photo)
    assert len(faces) == 1
    face = faces[0]
    assert iou(face.box, PASTED) > 0.5 and face.score >= 0.9
    assert all(isinstance(v, int) for v in face.box)
    assert set(face.landmarks) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    (lx, ly), (rx, ry) = face.landmarks["left_eye"], face.landmarks["right_eye"]
    assert lx < rx and ly < face.landmarks["mouth_left"][1]  # image-left eye, eyes above the mouth


def test_grey_input_works_and_a_blank_image_has_no_face(detector, photo):
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    assert iou(detector.detect(grey)[0].box, PASTED) > 0.5
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_faces_come_largest_first(detector, photo):
    small = cv2.resize(photo[PASTED[1]:PASTED[3], PASTED[0]:PASTED[2]], (100, 100), interpolation=cv2.INTER_AREA)
    two = photo.copy()
    two[20:120, 520:620] = small
    faces = detector.detect(two)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and iou(faces[0].box, PASTED) > 0.5


def mtcnn_alone(detector, rgb):
    """What `detect` did before batching: `MTCNN.detect_faces` on the one (padded) image."""
    from facenet_mtl.data.faces import _padded

    padded, pad = _padded(images.load_rgb(rgb))
    found = detector._detector().detect_faces(padded, box_format="xyxy", min_face_size=detector.min_size)
    return detector._faces(found, rgb.shape, pad, 1.0)


def assert_same_faces(found, expected, tolerance_px=1):
    assert len(found) == len(expected)
    for face, reference in zip(found, expected):
        assert np.abs(np.subtract(face.box, reference.box)).max() <= tolerance_px, (face, reference)
        assert set(face.landmarks) == set(reference.landmarks)
        for name, point in face.landmarks.items():
            assert np.abs(np.subtract(point, reference.landmarks[name])).max() <= tolerance_px, (name, face, reference)
        assert face.score == pytest.approx(reference.score, abs=1e-3)


def test_batched_detection_finds_the_same_faces_as_one_by_one_on_real_photos(detector, photo):
    """`detect_many` (images of one size detected together: GENKI-4K's photos come in a few sizes)
    gives each photo the faces `detect` gives it alone, and those `MTCNN.detect_faces` gave it
    before batching, within a pixel, in input order."""
    files = sorted(GENKI.glob("*.jpg"))[:40]
    if not files:
        pytest.skip(f"needs the GENKI-4K photos in {GENKI}")
    shifted = np.roll(photo, (-60, 150), axis=(0, 1))  # the same face elsewhere in a 640x480 photo
    rgbs = [images.load_rgb(f) for f in files[:20]] + [photo, shifted] + [images.load_rgb(f) for f in files[20:]]
    assert len({rgb.shape for rgb in rgbs}) > 2  # several groups, interleaved
    batched = detector.detect_many(rgbs, batch_size=8)
    assert sum(map(len, batched)) >= len(rgbs) - 2
    assert iou(batched[20][0].box, PASTED) > 0.5 and iou(batched[21][0].box, PASTED) < 0.2  # order kept
    for rgb, faces in zip(rgbs, batched):
        assert_same_faces(faces, detector.detect(rgb))
        assert_same_faces(faces, mtcnn_alone(detector, rgb))


def test_batched_detection_of_a_blank_or_tiny_image_costs_only_that_image(detector, photo):
    blank, tiny = np.full(photo.shape, 128, np.uint8), np.full((8, 8, 3), 200, np.uint8)
    found = detector.detect_many([photo, blank, tiny, photo])
    assert [len(faces) for faces in found] == [1, 0, 0, 1]


def test_crop_face_frames_the_box_like_training_crops(photo):
    box = (270, 190, 370, 290)  # 100x100 inside the pasted face
    crop = crop_face(photo, box, size=180, margin=0.4)  # side 100 * 1.8 = 180: no resampling
    assert crop.shape == (180, 180, 3)
    np.testing.assert_array_equal(crop[40:140, 40:140], photo[190:290, 270:370])
    np.testing.assert_array_equal(crop_face(photo, Face(box, 0.99), 64), crop_face(photo, box, 64))


def test_missing_mtcnn_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # makes `import mtcnn` fail
    with pytest.raises(RuntimeError, match="pip install 'mtcnn"):
        FaceDetector().detect(np.zeros((64, 64, 3), np.uint8))


def test_the_proposal_network_skips_only_the_border_on_real_photos(detector, photo):
    """`_proposals` runs P-Net over the windows that touch the image inside its black border, and
    proposes exactly what mtcnn's own P-Net stage proposes over the whole padded image."""
    import tensorflow as tf

    from facenet_mtl.data.faces import _padded, _proposals

    files = sorted(GENKI.glob("*.jpg"))[:6]
    if not files:
        pytest.skip(f"needs the GENKI-4K photos in {GENKI}")
    pnet = detector._detector().stages[0]
    for rgb in [photo, np.roll(photo, (-60, 150), axis=(0, 1))] + [images.load_rgb(f) for f in files]:
        padded, pad = _padded(rgb)
        assert pad > 0
        reference = pnet(images_normalized=tf.constant((padded[None] - 127.5) / 128),
                         images_oshapes=np.array([padded.shape]), min_face_size=20)
        content = (pad, pad, padded.shape[0] - pad, padded.shape[1] - pad)
        proposed = _proposals(pnet._model, tf.constant((padded[None].astype(np.float32) - 127.5) / 128), 20, content)
        assert len(reference) > 0 and proposed.shape == reference.shape
        np.testing.assert_allclose(proposed, reference, atol=1e-6)


def test_a_larger_minimum_face_finds_the_face(photo):
    """MTCNN's pyramid for a minimum face above 20 px has levels under its 12-px window (mtcnn's
    own stage failed on them, and the photo had no face); they are skipped."""
    faces = FaceDetector(min_size=40).detect(photo)
    assert len(faces) == 1 and iou(faces[0].box, PASTED) > 0.5


def test_a_larger_minimum_face_finds_the_same_faces_batched_as_alone():
    """At `min_size` 40 (`predict --min-face 40`: the pyramid starts a level later) photos detected
    together still get the faces each gets alone."""
    files = sorted(GENKI.glob("*.jpg"))[:12]
    if not files:
        pytest.skip(f"needs the GENKI-4K photos in {GENKI}")
    detector = FaceDetector(min_size=40)
    rgbs = [images.load_rgb(f) for f in files]
    batched = detector.detect_many(rgbs, batch_size=4)
    assert sum(map(len, batched)) >= len(rgbs) - 2
    for rgb, faces in zip(rgbs, batched):
        assert_same_faces(faces, detector.detect(rgb))

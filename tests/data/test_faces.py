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

"""FacePredictor: loading saved models, detection on a real face, well-formed results, errors."""
import glob
from pathlib import Path

import cv2
import numpy as np
import pytest

from facenet_mtl.data.errors import DataError
from facenet_mtl.data.faces import FaceDetector
from facenet_mtl.inference.predictor import FacePredictor, annotate, load_keras_model
from facenet_mtl.models import build_model

UTKFACE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "utkface" / "UTKFace"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = build_model("compact", ("age", "gender", "emotion", "smile"), 32,
                        backbone_args={"widths": (8, 16), "stem_width": 8})
    path = tmp_path_factory.mktemp("model") / "model.h5"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real UTKFace face pasted into a 480x640 photo, and where it was pasted."""
    files = sorted(glob.glob(str(UTKFACE / "*.jpg")))
    if not files:
        pytest.skip("needs ../shared/data/utkface")
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[100:300, 300:500] = cv2.imread(files[100])
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    cv2.imwrite(str(path), canvas)
    return path, (300, 100, 500, 300)


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_predict_faces_is_well_formed_and_batch_independent(model_path):
    predictor = FacePredictor.from_path(model_path, batch_size=3)
    crops = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    results = predictor.predict_faces(crops)
    assert len(results) == 5
    for r in results:
        assert set(r) == {"age", "gender", "emotion", "smile"}
        assert 0 <= r["age"] <= 100
        assert sum(r["emotion"]["probabilities"].values()) == pytest.approx(1, abs=1e-3)
        assert r["emotion"]["label"] == max(r["emotion"]["probabilities"], key=r["emotion"]["probabilities"].get)
        assert 0.5 <= r["gender"]["probability"] <= 1 and r["gender"]["label"] in ("female", "male")
    one_by_one = [predictor.predict_faces(crops[i:i + 1])[0] for i in range(5)]
    assert [r["age"] for r in one_by_one] == pytest.approx([r["age"] for r in results], abs=0.11)


def test_detector_finds_a_real_face_and_not_a_blank(photo):
    path, pasted = photo
    detector = FaceDetector()
    faces = detector.detect(cv2.imread(str(path))[:, :, ::-1])
    assert faces and iou(faces[0].box, pasted) > 0.5
    assert detector.detect(np.full((300, 300, 3), 128, np.uint8)) == []


def test_predict_on_photos_boxes_faces_and_warns_on_none(model_path, photo, tmp_path):
    path, pasted = photo
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    predictor = FacePredictor.from_path(model_path)
    with pytest.warns(UserWarning, match="blank.jpg: no face"):
        results = predictor.predict([path, blank])
    assert len(results[0]) == 1 and results[1] == []
    assert iou(results[0][0]["box"], pasted) > 0.5
    written = predictor.write_annotated([path], results[:1], tmp_path / "out")
    assert written[0].is_file()
    assert annotate(np.zeros((480, 640, 3), np.uint8), results[0]).sum() > 0


def test_bad_model_paths_and_images_raise_clear_errors(tmp_path, model_path):
    with pytest.raises(DataError, match="model not found"):
        load_keras_model(tmp_path / "missing.h5")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match="not a Keras model file"):
        load_keras_model(text)
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="cannot be read as a Keras model"):
        load_keras_model(fake)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(DataError, match="broken.jpg"):
        FacePredictor.from_path(model_path).predict([broken])

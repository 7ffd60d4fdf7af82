"""FacePredictor: loading saved models, detection on a real face, well-formed results, errors."""
import glob
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import keras

from facenet_mtl.data.errors import DataError
from facenet_mtl.data.schema import EMOTIONS
from facenet_mtl.inference.predictor import FacePredictor, NoFaceWarning, annotate, face_label, load_keras_model
from facenet_mtl.models import build_model
from facenet_mtl.training.export import save_saved_model

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


def tiny_model(heads, size=24):
    """A dummy face model from built-in layers with our input and output names."""
    image = keras.Input((size, size, 3), name="image")
    x = keras.layers.Dense(8, activation="relu")(keras.layers.GlobalAveragePooling2D()(image))
    layers = {"age_probs": keras.layers.Dense(101, activation="softmax", name="age_probs"),
              "gender": keras.layers.Dense(1, activation="sigmoid", name="gender"),
              "emotion": keras.layers.Dense(7, activation="softmax", name="emotion"),
              "smile": keras.layers.Dense(1, activation="sigmoid", name="smile")}
    return keras.Model(image, {name: layers[name](x) for name in heads})


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


def test_predict_on_photos_boxes_faces_and_warns_on_none(model_path, photo, tmp_path):
    path, pasted = photo
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    predictor = FacePredictor.from_path(model_path)
    with pytest.warns(NoFaceWarning, match="blank.jpg: no face"):
        results = predictor.predict([path, blank])
    assert len(results[0]) == 1 and results[1] == []
    assert iou(results[0][0]["box"], pasted) > 0.5
    written = predictor.write_annotated([path], results[:1], tmp_path / "out")
    assert written[0].is_file()
    blank_photo = np.zeros((480, 640, 3), np.uint8)
    drawn = annotate(blank_photo, results[0])
    assert drawn.sum() > 0 and blank_photo.sum() == 0  # draws on a copy


def test_bad_model_paths_and_images_raise_clear_errors(tmp_path, model_path):
    with pytest.raises(DataError, match="model not found"):
        load_keras_model(tmp_path / "missing.h5")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match="not a Keras model file"):
        load_keras_model(text)
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="is not an HDF5 file"):
        load_keras_model(fake)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(DataError, match="broken.jpg"):
        FacePredictor.from_path(model_path).predict([broken])


def test_only_the_models_heads_and_every_saved_format_agree(tmp_path):
    model = tiny_model(("emotion", "smile"))
    model.save(tmp_path / "m.h5")
    model.save(tmp_path / "m.keras")
    save_saved_model(model, tmp_path / "saved_model")  # with the marker the loader checks
    crops = np.random.default_rng(1).uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    expected = model.predict(crops, verbose=0)
    for name in ("m.h5", "m.keras", "saved_model"):
        predictor = FacePredictor.from_path(tmp_path / name)
        assert predictor.input_size == 24
        results = predictor.predict_faces(crops)
        assert [set(r) for r in results] == [{"emotion", "smile"}] * 4, name
        for r, probs, smile in zip(results, expected["emotion"], expected["smile"][:, 0]):
            assert list(r["emotion"]["probabilities"]) == list(EMOTIONS)
            assert list(r["emotion"]["probabilities"].values()) == pytest.approx(probs, abs=1e-3)
            assert r["smile"]["label"] == ("smile" if smile >= 0.5 else "no_smile")
            assert r["smile"]["probability"] == pytest.approx(max(smile, 1 - smile), abs=1e-3)


def test_age_from_bins_and_whole_images_without_detection():
    predictor = FacePredictor(tiny_model(("age_probs", "gender")))
    grey_face = np.random.default_rng(2).integers(0, 255, (50, 40), dtype=np.uint8)
    results = predictor.predict([grey_face, np.zeros((30, 30, 3), np.uint8)], detect=False)
    assert [len(r) for r in results] == [1, 1]
    face = results[0][0]
    assert face["box"] == [0, 0, 40, 50] and 0 <= face["age"] <= 100
    assert set(face) == {"box", "age", "gender"}
    assert re.fullmatch(r"\d+y [MF] [01]\.\d\d", face_label(face))


def test_face_label_reads_like_the_cli():
    face = {"box": [0, 0, 10, 10], "age": 33.6, "gender": {"label": "male", "probability": 0.97},
            "emotion": {"label": "happy", "probabilities": {}}, "smile": {"label": "smile", "probability": 0.9}}
    assert face_label(face) == "34y M 0.97 | happy | smile"


def test_a_directory_that_is_not_a_saved_model_says_what_it_holds(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"")
    with pytest.raises(DataError, match=r"without saved_model.pb \(it holds: model.h5\)"):
        FacePredictor.from_path(tmp_path)

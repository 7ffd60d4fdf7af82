"""FacePredictor: loading saved models, detection on a real face, well-formed results, errors."""
import re

import cv2
import numpy as np
import pytest

import keras

from facenet_mtl.errors import DataError
from facenet_mtl.data.schema import EMOTIONS
from facenet_mtl.inference.predictor import FacePredictor, NoFaceWarning, annotate, face_label, load_keras_model
from facenet_mtl.models import build_model
from tests.photos import face_photo, iou
from facenet_mtl.artifact.saving import save_saved_model



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
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    return path, face_photo(path)


def tiny_model(heads, size=24):
    """A dummy face model from built-in layers with our input and output names."""
    image = keras.Input((size, size, 3), name="image")
    x = keras.layers.Dense(8, activation="relu")(keras.layers.GlobalAveragePooling2D()(image))
    layers = {"age_probs": keras.layers.Dense(101, activation="softmax", name="age_probs"),
              "gender": keras.layers.Dense(1, activation="sigmoid", name="gender"),
              "emotion": keras.layers.Dense(7, activation="softmax", name="emotion"),
              "smile": keras.layers.Dense(1, activation="sigmoid", name="smile")}
    return keras.Model(image, {name: layers[name](x) for name in heads})


def test_predict_faces_is_well_formed_and_batch_independent(model_path):
    predictor = FacePredictor.from_path(model_path, batch_size=3)
    crops = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    results = predictor.predict_faces(crops)
    assert len(results) == 5
    for r in results:
        assert set(r) == {"age", "age_range", "gender", "emotion", "smile"}
        assert 0 <= r["age"] <= 100
        assert sum(r["emotion"]["probabilities"].values()) == pytest.approx(1, abs=1e-3)
        probs = r["emotion"]["probabilities"]  # rounded to 4 places: a near-uniform net may tie
        assert probs[r["emotion"]["label"]] == max(probs.values())
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
    assert 0.9 <= results[0][0]["confidence"] <= 1
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
    assert set(face) == {"box", "confidence", "age", "age_range", "gender"} and face["confidence"] is None
    assert re.fullmatch(r"\d+y [MF] [01]\.\d\d", face_label(face))


def test_face_label_reads_like_the_cli():
    face = {"box": [0, 0, 10, 10], "age": 33.6, "gender": {"label": "male", "probability": 0.97},
            "emotion": {"label": "happy", "probabilities": {}}, "smile": {"label": "smile", "probability": 0.9}}
    assert face_label(face) == "34y M 0.97 | happy | smile"


def test_a_directory_that_is_not_a_saved_model_says_what_it_holds(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"")
    with pytest.raises(DataError, match=r"without saved_model.pb \(it holds: model.h5\)"):
        FacePredictor.from_path(tmp_path)


# --- one image or many, detection once, batching, the shipped model --------------------------------

class CountingDetector:
    """Two faces in every image (boxes from its size), and a count of the images and batches."""

    def __init__(self):
        self.calls, self.batches = 0, []

    def detect(self, rgb):
        from facenet_mtl.data.faces import Face

        self.calls += 1
        h, w = rgb.shape[:2]
        return [Face((0, 0, w // 2, h // 2), 0.99), Face((w // 2, h // 2, w, h), 0.91)]

    def detect_many(self, rgbs):
        self.batches.append(len(rgbs))
        return [self.detect(rgb) for rgb in rgbs]


def test_a_single_path_or_array_means_one_image(tmp_path):
    predictor = FacePredictor(tiny_model(("gender",)))
    path = tmp_path / "x.jpg"
    cv2.imwrite(str(path), np.full((30, 20, 3), 100, np.uint8))
    for one in (str(path), path, np.full((30, 20, 3), 100, np.uint8)):
        faces = predictor.predict(one, detect=False)
        assert len(faces) == 1 and faces[0]["box"] == [0, 0, 20, 30], type(one)
    many = predictor.predict([str(path), path], detect=False)
    assert [len(faces) for faces in many] == [1, 1] and many[0] == many[1]


def test_detection_runs_once_per_image_and_all_crops_go_through_the_model_together():
    detector = CountingDetector()
    predictor = FacePredictor(tiny_model(("emotion", "smile")), detector=detector)
    forward, passes = predictor._forward, []
    predictor._forward = lambda x: passes.append(len(x)) or forward(x)
    rgbs = [np.random.default_rng(i).integers(0, 255, (40 + i, 60, 3), dtype=np.uint8) for i in range(3)]
    results = predictor.predict_arrays(rgbs)
    assert detector.calls == 3 and detector.batches == [3] and passes == [6]  # one detection batch, one pass
    assert [[f["confidence"] for f in faces] for faces in results] == [[0.99, 0.91]] * 3
    assert results[2][1]["box"] == [30, 21, 60, 42]


def test_labels_are_at_least_12_px_tall_on_a_small_photo_and_stay_inside_it():
    grey = np.full((192, 178, 3), 128, np.uint8)  # a GENKI-4K-sized photo, a 90-px face
    one_line = annotate(grey, [{"box": [50, 60, 140, 150], "age": 31.0}])
    text = (one_line < 60).all(axis=2)  # the black text; the box is green, the photo grey
    columns = np.where(text.any(axis=0))[0]
    digits = text[:, columns.min():columns.min() + (columns.max() - columns.min()) * 3 // 5]  # "31" of "31y"
    rows = np.where(digits.any(axis=1))[0]
    assert rows.max() - rows.min() + 1 >= 12
    face = {"box": [100, 20, 170, 90], "age": 31.0, "gender": {"label": "female", "probability": 0.93},
            "emotion": {"label": "surprise", "probabilities": {"surprise": 0.61}},
            "smile": {"label": "no_smile", "probability": 0.72}}
    drawn = annotate(grey, [face])
    text = (drawn < 60).all(axis=2)
    columns = np.where(text.any(axis=0))[0]
    assert columns.max() < 178 - 1 and columns.min() > 0  # shifted left, not cut at the edge
    rows = np.where(text.any(axis=1))[0]
    assert rows.max() - rows.min() + 1 >= 3 * 12  # three lines: age+gender, emotion, smile
    big = np.full((1600, 2000, 3), 128, np.uint8)
    big_rows = np.where((annotate(big, [{"box": [500, 400, 1300, 1200], "age": 31.0}]) < 60).all(axis=2).any(axis=1))[0]
    assert big_rows.max() - big_rows.min() > 2.5 * (rows.max() - rows.min()) / 3  # scales with the face


def test_annotated_output_refuses_a_file_and_keeps_same_stem_inputs_apart(tmp_path):
    for folder, suffix in (("a", ".jpg"), ("b", ".png")):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / f"face{suffix}"), np.full((20, 20, 3), 50 * len(folder), np.uint8))
    paths = [tmp_path / "a" / "face.jpg", tmp_path / "b" / "face.png"]
    faces = [[{"box": [2, 2, 18, 18], "age": 20.0}]] * 2
    written = FacePredictor(tiny_model(("gender",))).write_annotated(paths, faces, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == ["a/face_annotated.jpg",
                                                                             "b/face_annotated.jpg"]
    assert all(p.is_file() for p in written)
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(DataError, match="taken: exists and is a file"):
        FacePredictor(tiny_model(("gender",))).write_annotated(paths, faces, tmp_path / "taken")


def test_load_without_a_path_is_the_shipped_model_and_says_what_it_is():
    import facenet_mtl
    from facenet_mtl import weights

    predictor = facenet_mtl.load()
    info = weights.release_info()
    assert predictor.model_id == weights.model_id(info) and predictor.input_size == info["input_size"]
    assert (predictor.warning is None) == (info["trained_on"] == "real")
    card = predictor.describe()
    assert card["tasks"] == list(info["tasks"]) and card["version"] == info["version"]
    faces = predictor.predict(np.full((80, 80, 3), 120, np.uint8), detect=False)
    assert len(faces) == 1 and set(faces[0]) == {"box", "confidence", "age_range", *info["tasks"]}  # values: not asserted
    assert predictor.detector.min_size == 20 and facenet_mtl.load(min_face=48).detector.min_size == 48


def test_a_users_model_is_named_by_file_and_digest_and_demo_runs_are_flagged(tmp_path):
    import json as json_module

    from facenet_mtl import weights

    run = tmp_path / "demo-mtl"
    run.mkdir()
    tiny_model(("smile",)).save(run / "model.keras")
    predictor = FacePredictor.from_path(run / "model.keras")
    assert predictor.model_id == "model.keras-" + weights.sha256_of(run / "model.keras")[:8]
    assert predictor.warning is None
    (run / "config.json").write_text(json_module.dumps({"name": "demo-mtl", "data": {"root": "demo_data/records"}}))
    flagged = FacePredictor.from_path(run / "model.keras")
    assert flagged.model_id.startswith("demo-mtl/model.keras-") and "generated demo faces" in flagged.warning


def test_a_view_averaging_model_runs_its_views_as_one_batch_and_answers_as_the_model(tmp_path):
    """The predictor runs a test-time-views model's views as one batch through its network,
    traced once whatever the batch size: the model's own numbers, output by output; the network's
    own calls are untouched (a training call still uses batch statistics), and the file saved
    after still loads and answers the same way."""
    from facenet_mtl.models.flip_average import with_test_time_views

    network = build_model("compact", ("age", "gender", "emotion", "smile"), 32,
                          backbone_args={"widths": (8, 16), "stem_width": 8})
    model = with_test_time_views(network, flip=True, crops=5, crop_scale=0.9)
    crops = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    expected = {k: np.asarray(v) for k, v in model(crops, training=False).items()}
    predictor = FacePredictor(model)
    got = predictor._forward(crops)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(got[name]), value, atol=1e-5)
    predictor._forward(crops[:3])
    assert predictor._forward.experimental_get_tracing_count() == 1
    assert not hasattr(network.call, "traced_for_inference")
    trained = np.asarray(network(crops, training=True)["emotion"])
    assert np.abs(trained - np.asarray(network(crops, training=False)["emotion"])).max() > 1e-4
    expected = {k: np.asarray(v) for k, v in model(crops, training=False).items()}  # its BatchNorm moved
    model.save(tmp_path / "m.h5")
    again = FacePredictor.from_path(tmp_path / "m.h5")
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(again._forward(crops)[name]), value, atol=1e-5)


def test_predict_files_detects_ahead_and_gives_each_image_what_predict_gives_it(model_path, photo, tmp_path):
    """`predict_files` finds the next batch's faces on its thread while the model reads this
    batch's: over several batches, with an unreadable file among them, every image gets in order
    what `predict` gives it alone, and the bad file only its own error."""
    from facenet_mtl.inference.batch import predict_files

    path, _ = photo
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    paths = []
    for index, shift in enumerate([0, 90, -120, 40, 150]):
        paths.append(tmp_path / f"photo{index}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(np.roll(rgb, shift, axis=1), cv2.COLOR_RGB2BGR))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths.insert(2, broken)  # first of the second batch: the images after it keep their own faces
    predictor = FacePredictor.from_path(model_path)
    records = list(predict_files(predictor, paths, batch_size=2, progress=False))
    assert [record["path"] for record in records] == [str(p) for p in paths]
    assert "error" in records[2] and str(broken) in records[2]["error"]
    boxes = set()
    for p, record in zip(paths, records):
        if p == broken:
            continue
        alone = predictor.predict(p)
        assert len(record["faces"]) == len(alone) == 1
        assert record["faces"][0]["box"] == alone[0]["box"]
        assert record["faces"][0]["age"] == pytest.approx(alone[0]["age"], abs=0.11)
        boxes.add(tuple(record["faces"][0]["box"]))
    assert len(boxes) == 5  # each image's own face, not a neighbour's

"""The model file owns its contract: every file we write states its `ModelSpec`, and a file written
before the spec existed (the shipped release.h5) gets one derived from its outputs, and predicts
exactly what it predicted before."""
import hashlib
import json
import zipfile

import h5py
import numpy as np
import tensorflow as tf
import pytest

from facenet_mtl import tasks
from facenet_mtl.artifact import exporting
from facenet_mtl.artifact.saving import save_h5, save_keras, save_keras2_h5, save_saved_model
from facenet_mtl.artifact.spec import ModelSpec, TaskSpec, read_spec, spec_of_file, spec_of_model
from facenet_mtl.inference.predictor import FacePredictor
from facenet_mtl.models import build_model

# Recorded from main's code (df9d973, before the spec) on this file's fixed batch: the sha256 of
# each output's float32 bytes, so any difference at all (max abs diff > 0) fails.
RELEASE_OUTPUT_SHA256 = {
    "age": "ca0c498c2719e703ad2ab529a8e83ae2c9dc26db2d1680e7796d083de9975e05",
    "age_probs": "07a4b776bff377c9fa0c0636bfbad5a482f6fae6e7d9f5fb640d972858245582",
    "emotion": "88ec7aed0116fe1549359ffffe03c381a84a617e37504c29a43e4469f279348d",
    "gender": "f437d7df1750586f5a3b91fd8b137e1fb63c086fb8948bb585d9a1e73d0032d9",
    "smile": "47bd9ce8dd8258d9e8927710ee4385a24094899b90b42864e90408c0de7de9eb",
}
RELEASE_AGES = ["0x1.dd252e0000000p+5", "0x1.8a26020000000p+5", "0x1.a739800000000p+5", "0x1.ec163e0000000p+5"]
RELEASE_FIRST_FACE = {"age": 59.6, "gender": {"label": "male", "probability": 0.7205},
                      "emotion": {"label": "neutral", "probabilities": {
                          "angry": 0.0792, "disgust": 0.0003, "fear": 0.0337, "happy": 0.1486, "sad": 0.2078,
                          "surprise": 0.0642, "neutral": 0.4662}},
                      "smile": {"label": "no_smile", "probability": 0.8853}}


def test_the_shipped_model_derives_its_spec_and_predicts_the_same_numbers_as_before():
    predictor = FacePredictor.from_path(None)
    assert predictor.spec.derived and predictor.spec.task_names == ("age", "gender", "emotion", "smile")
    assert predictor.spec.input_size == 64 and predictor.spec.margin == 0.4
    assert predictor.spec.labels()["emotion"] == list(tasks.EMOTIONS)
    batch = np.random.default_rng(20).integers(0, 256, (4, 64, 64, 3)).astype(np.float32)
    whole = tf.function(lambda x: predictor.model(x, training=False), autograph=False,
                        input_signature=[tf.TensorSpec([None, 64, 64, 3], tf.float32)])  # as main traced it then
    out = {k: np.asarray(v, np.float32) for k, v in dict(whole(batch)).items()}
    assert {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in out.items()} == RELEASE_OUTPUT_SHA256
    assert [float(a).hex() for a in out["age"].reshape(-1)] == RELEASE_AGES
    # The predictor traces the network once and runs the ten views around it eagerly: other
    # kernels' rounding, the same numbers within float32's
    for name, value in dict(predictor._forward(batch)).items():
        np.testing.assert_allclose(np.asarray(value, np.float32), out[name], rtol=1e-5, atol=1e-5)
    faces = predictor.predict_faces(batch)
    assert {k: v for k, v in faces[0].items() if k != "age_range"} == RELEASE_FIRST_FACE
    assert faces[0]["age_range"][0] <= 59.6 <= faces[0]["age_range"][1]


@pytest.fixture(scope="module")
def model():
    return build_model("compact", ("age", "gender", "emotion"), 24, backbone_args={"widths": (4,), "stem_width": 4})


@pytest.fixture(scope="module")
def stated(model):
    spec = spec_of_model(model, training_data="utkface,fer2013", trained_on="demo",
                         calibration={"emotion": 1.3})
    return spec


@pytest.mark.parametrize("suffix, save", [(".h5", save_h5), (".keras", save_keras), (".keras2.h5", save_keras2_h5)])
def test_every_keras_file_states_its_spec(model, stated, tmp_path, suffix, save):
    path = save(model, tmp_path / f"m{suffix}", stated)
    spec = read_spec(path)
    assert spec == stated and not spec.derived
    assert spec.calibration == {"emotion": 1.3} and spec.training_data == "utkface,fer2013"
    assert spec.tasks[0] == TaskSpec("age", "age", (), ("age", "age_probs"), "person")
    assert spec.tasks[2].labels == tasks.EMOTIONS


def test_where_each_format_keeps_it(model, stated, tmp_path):
    with h5py.File(save_h5(model, tmp_path / "m.h5", stated), "r") as handle:
        assert json.loads(handle.attrs["facenet_mtl"])["spec"]["input_size"] == 24
    with zipfile.ZipFile(save_keras(model, tmp_path / "m.keras", stated)) as archive:
        assert json.loads(archive.read("facenet_mtl.json"))["spec"]["margin"] == 0.4
    saved = save_saved_model(model, tmp_path / "sm", stated)
    assert read_spec(saved) == stated
    assert read_spec(tmp_path) is None  # a folder without the marker states nothing


def test_onnx_and_litert_files_state_the_spec(model, stated, tmp_path):
    pytest.importorskip("tf2onnx")
    source = save_h5(model, tmp_path / "m.h5", stated)
    onnx = exporting.export_model_file(source, "onnx", tmp_path / "m.onnx")
    assert read_spec(onnx.path) == stated
    litert = exporting.export_model_file(source, "litert", tmp_path / "m.tflite")
    assert read_spec(litert.path) == stated


def test_a_file_without_a_spec_gets_one_from_its_outputs_and_its_run(model, tmp_path):
    model.save(tmp_path / "plain.h5")  # what Keras alone writes: no spec
    (tmp_path / "config.json").write_text(json.dumps({"name": "demo-x", "data": {"root": "demo_data/records",
                                                                                 "datasets": ["utkface"]}}))
    import keras

    loaded = keras.models.load_model(tmp_path / "plain.h5", compile=False)
    spec = spec_of_file(tmp_path / "plain.h5", loaded)
    assert spec.derived and spec.task_names == ("age", "gender", "emotion")
    assert (spec.trained_on, spec.training_data) == ("demo", "utkface")


def test_the_predictor_reads_the_spec_not_the_registry(model, tmp_path):
    """A file stating other label names and margin: the predictor says the file's words."""
    spec = spec_of_model(model)
    renamed = ModelSpec(tasks=(spec.tasks[0], TaskSpec("gender", "binary", ("woman", "man"), ("gender",), "person"),
                               spec.tasks[2]), input_size=24, margin=0.25)
    path = save_h5(model, tmp_path / "m.h5", renamed)
    predictor = FacePredictor.from_path(path)
    assert predictor.margin == 0.25
    face, = predictor.predict_faces(np.zeros((1, 24, 24, 3), np.float32))
    assert face["gender"]["label"] in ("woman", "man")
    assert predictor.describe()["labels"]["gender"] == ["woman", "man"]


def test_spec_round_trips_through_a_dict():
    spec = ModelSpec(tasks=(TaskSpec("smile", "binary", ("no_smile", "smile"), ("smile",)),), input_size=48,
                     calibration={"smile": 0.9}, training_data="genki4k")
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.as_dict()))) == spec

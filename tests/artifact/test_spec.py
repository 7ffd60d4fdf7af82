"""The model file owns its contract: every file we write states its `ModelSpec`, and a file written
before the spec existed gets one derived from its outputs, and predicts exactly what it did."""
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

# Recorded from the shipped release.h5 (release-mtl-soup) at the commit that published it, on
# this file's fixed batch, the whole model traced: the sha256 of each output's float32 bytes, so
# any change in what the file computes (max abs diff > 0) fails.
RELEASE_OUTPUT_SHA256 = {
    "age": "c94de46ffdbb5d5fd6b0770b78a634bba6eeff8a406dd73f3fd8f33881d1ac83",
    "age_probs": "3c6c568e93b95af2d5028a83744911e67d6ace4003dba514c6b3b0337c75a17b",
    "gender": "49700f751c51fac37271a25a758772b501eb8c5dafb68da3e2621075f75aa80a",
    "emotion": "4e34f77601381ad7c3b7463df88b0e93b7d148f65802ea3d0aedecc2ea89f34c",
    "smile": "f2822b9112d42c3cd81e7840db973e490b47c76b066963031b70d4e309c0699a",
}
RELEASE_AGES = ["0x1.5cafe60000000p+5", "0x1.2acc5c0000000p+5", "0x1.3b8c3e0000000p+5", "0x1.81b42e0000000p+5"]


def test_the_shipped_model_states_its_spec_and_predicts_the_recorded_numbers():
    predictor = FacePredictor.from_path(None)
    assert not predictor.spec.derived and predictor.spec.task_names == ("age", "gender", "emotion", "smile")
    assert predictor.spec.input_size == 64 and predictor.spec.margin == 0.4
    assert predictor.spec.labels()["emotion"] == list(tasks.EMOTIONS)
    assert set(predictor.spec.calibration) == {"age", "gender", "emotion", "smile"}
    out = whole_model_outputs(predictor.model)
    assert {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in out.items()} == RELEASE_OUTPUT_SHA256
    assert [float(a).hex() for a in out["age"].reshape(-1)] == RELEASE_AGES
    # The predictor runs the ten views as one batch through the network traced once
    # (`artifact.forward`): a batch ten times larger may take other kernels, so within float32's
    # rounding
    for name, value in dict(predictor._forward(BATCH)).items():
        np.testing.assert_allclose(np.asarray(value, np.float32), out[name], rtol=1e-5, atol=1e-5)


def test_a_file_written_before_the_spec_derives_it_and_predicts_the_same(tmp_path):
    """The shipped file without its stated spec (as every file written before the spec was) gets
    one derived from its outputs: the same heads, labels, input size and margin, no
    calibration record, and exactly the same numbers."""
    from facenet_mtl.weights import release_model_path

    old = tmp_path / "before-the-spec.h5"
    old.write_bytes(release_model_path().read_bytes())
    with h5py.File(old, "r+") as handle:
        del handle.attrs["facenet_mtl"]
    stated, derived = FacePredictor.from_path(None), FacePredictor.from_path(old)
    assert derived.spec.derived and derived.spec.task_names == stated.spec.task_names
    assert derived.spec.labels() == stated.spec.labels()
    assert (derived.spec.input_size, derived.spec.margin) == (stated.spec.input_size, stated.spec.margin)
    assert not derived.spec.calibration and stated.spec.calibration
    before, after = whole_model_outputs(derived.model), whole_model_outputs(stated.model)
    assert all(np.array_equal(before[k], after[k]) for k in after)
    assert derived.predict_faces(BATCH) == stated.predict_faces(BATCH)


BATCH = np.random.default_rng(20).integers(0, 256, (4, 64, 64, 3)).astype(np.float32)


def whole_model_outputs(model):
    whole = tf.function(lambda x: model(x, training=False), autograph=False,
                        input_signature=[tf.TensorSpec([None, 64, 64, 3], tf.float32)])
    return {k: np.asarray(v, np.float32) for k, v in dict(whole(BATCH)).items()}


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

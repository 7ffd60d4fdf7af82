"""`facenet-mtl export`: each format runs in its own runtime within 1e-4 of Keras on the shipped
model and on a small model built here, carries the labels and input contract, and a mismatch or a
missing optional package fails clearly."""
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from facenet_mtl.cli import main
from facenet_mtl.errors import DataError
from facenet_mtl.artifact import exporting
from facenet_mtl.models import build_model
from facenet_mtl.models.flip_average import with_flip_average
from facenet_mtl.artifact.saving import save_h5
from facenet_mtl.weights import release_model_path

LABELS = {"gender": ["female", "male"], "emotion": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
          "smile": ["no_smile", "smile"]}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    demo = with_flip_average(build_model("compact", ("age", "gender", "emotion", "smile"), 32,
                                         backbone_args={"widths": (8, 16), "stem_width": 8}))
    return {"demo": save_h5(demo, folder / "demo.h5"), "release": release_model_path()}


def checked(result):
    assert set(result.differences) == {"age", "age_probs", "gender", "emotion", "smile"}
    assert result.max_difference <= exporting.TOLERANCE, result.differences
    return result


@pytest.mark.parametrize("which", ["demo", "release"])
def test_onnx_runs_in_onnxruntime_like_keras_and_carries_the_labels(models, which, tmp_path):
    onnx = pytest.importorskip("onnx")
    result = checked(exporting.export_model_file(models[which], "onnx", tmp_path / "face.onnx"))
    assert result.runtime == "onnxruntime"
    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert json.loads(props["labels"]) == LABELS
    assert json.loads(props["input"])["values"].startswith("RGB 0-255")


@pytest.mark.parametrize("which", ["demo", "release"])
def test_litert_runs_in_the_interpreter_like_keras_and_carries_the_labels(models, which, tmp_path):
    result = checked(exporting.export_model_file(models[which], "litert", tmp_path / "face.tflite"))
    metadata = exporting.litert_metadata(result.path)
    size = 32 if which == "demo" else 64
    assert metadata["labels"] == LABELS and metadata["input"]["shape"] == [None, size, size, 3]


def test_saved_model_goes_in_a_numbered_version_folder_with_labels(models, tmp_path):
    first = checked(exporting.export_model_file(models["demo"], "saved_model", tmp_path / "serving"))
    assert first.path == tmp_path / "serving" / "1" and (first.path / "saved_model.pb").is_file()
    assert json.loads((first.path / "labels.json").read_text())["labels"] == LABELS
    from facenet_mtl.artifact.loading import load_keras_model

    assert load_keras_model(first.path).input_shape[1:] == (32, 32, 3)  # ours: loads without trust


def test_keras2_h5_is_checked_in_tf_keras(models, tmp_path):
    pytest.importorskip("tf_keras")
    result = checked(exporting.export_model_file(models["demo"], "keras2-h5", tmp_path / "m.keras2.h5"))
    assert result.runtime.startswith("tf-keras") and result.max_difference <= 1e-6  # same weights; thread order may move the last bit


def test_the_cli_exports_the_shipped_model_by_default_and_fails_with_exit_1_on_a_mismatch(tmp_path, monkeypatch):
    runner = CliRunner()
    done = runner.invoke(main, ["export", "--format", "h5", "--out", str(tmp_path / "release.h5")])
    assert done.exit_code == 0, done.output
    assert "h5: " in done.output and "emotion    max abs difference 0.00e+00" in done.output
    writer, runner_fn = exporting.WRITERS["h5"]

    def off_by_a_little(path, samples):
        outputs = runner_fn(path, samples)
        return {name: value + (2e-4 if name == "emotion" else 0) for name, value in outputs.items()}

    monkeypatch.setitem(exporting.WRITERS, "h5", (writer, off_by_a_little))
    failed = runner.invoke(main, ["export", "--format", "h5", "--out", str(tmp_path / "bad.h5")])
    assert failed.exit_code == 1, failed.output
    assert "max abs difference 2.00e-04 > 1e-04" in failed.output and "emotion 2.0e-04" in failed.output
    assert not (tmp_path / "bad.h5").exists() and "Traceback" not in failed.output


def test_a_missing_optional_package_names_the_extra(models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx -> ImportError
    with pytest.raises(DataError, match=r'needs the package .tf2onnx.*\n.*pip install -e "\.\[export\]" in the facenet-mtl source'):
        exporting.export_model_file(models["demo"], "onnx", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_a_failed_export_leaves_an_existing_out_file_untouched(models, tmp_path, monkeypatch):
    import importlib.util

    precious = tmp_path / "precious.h5"
    precious.write_bytes(b"the user's own file")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf_keras" else find_spec(name, *a))
    done = CliRunner().invoke(main, ["export", str(models["demo"]), "--format", "keras2-h5", "--out", str(precious)])
    assert done.exit_code == 2 and "needs tf-keras" in done.output and "Traceback" not in done.output
    monkeypatch.undo()
    writer, runner_fn = exporting.WRITERS["h5"]
    monkeypatch.setitem(exporting.WRITERS, "h5", (writer, lambda path, samples: {
        name: value + 1 for name, value in runner_fn(path, samples).items()}))
    done = CliRunner().invoke(main, ["export", str(models["demo"]), "--format", "h5", "--out", str(precious)])
    assert done.exit_code == 1 and "nothing was written" in done.output
    assert precious.read_bytes() == b"the user's own file" and sorted(tmp_path.iterdir()) == [precious]

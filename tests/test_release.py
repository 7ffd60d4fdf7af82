"""publish-release, the last step of `make release`: a finished run becomes the package's model
(release.h5 whose sha256 release.json holds), measured on the test splits, with a model card that
names every stage that trained it, through a warm restart of the shipped model too.

The package's weights folder is replaced by a temporary one: the shipped model is never touched."""
import json

import keras
import numpy as np
import pytest

import facenet_mtl.release as release
import facenet_mtl.weights as weights
from facenet_mtl.training import trainer
from facenet_mtl.training.config import parse_config
from tests.training.conftest import tiny_config, tiny_records  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow

FOUR = {"tasks": ["age", "gender", "emotion", "smile"]}
DATA = {"datasets": ["utkface", "fer2013", "genki4k"], "epoch_size": 64}
TRAIN = {"epochs": 1, "precision": "float32", "seed": 3}


@pytest.fixture
def package_weights(tmp_path, monkeypatch):
    """A temporary facenet_mtl/weights/ holding a copy of the shipped release.json."""
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "release.json").write_text(weights.RELEASE_INFO.read_text())
    for module in (weights, release):
        monkeypatch.setattr(module, "WEIGHTS_DIR", folder)
        monkeypatch.setattr(module, "RELEASE_MODEL", folder / "release.h5")
        monkeypatch.setattr(module, "RELEASE_INFO", folder / "release.json")
    monkeypatch.setattr(release, "CARD", folder / "MODEL_CARD.md")
    weights.release_info.cache_clear()
    yield folder
    weights.release_info.cache_clear()


def run(tiny_records, runs, name, **sections):
    return trainer.train(parse_config(tiny_config(tiny_records, name, **sections)), runs, verbose=0)


def test_publish_measures_the_model_and_names_every_stage_even_through_a_warm_restart(
        tiny_records, tmp_path, package_weights):
    runs = tmp_path / "runs"
    run(tiny_records, runs, "stage-a", train=TRAIN, data={"epoch_size": 64})
    four = run(tiny_records, runs, "stage-b", stage="finetune", init="stage-a", train={**TRAIN, "calibrate": True},
               data=DATA, model={**FOUR, "test_time_crops": 5, "test_time_crop_scale": 0.9})

    info = release.publish_release(four, tiny_records, command="make release")
    shipped = package_weights / "release.h5"
    assert info["sha256"] == weights.sha256_of(shipped) == json.loads((package_weights / "release.json").read_text())["sha256"]
    assert weights.release_model_path() == shipped  # the sha256 check at load passes
    assert [(s["run"], s["epochs"]) for s in info["training"]["stages"]] == [("stage-a", 1), ("stage-b", 1)]
    assert info["training"]["total_train_seconds"] == pytest.approx(
        sum(s["train_seconds"] for s in info["training"]["stages"]))
    # the package's copy computes what the run's model computes: the 10-view test-time average
    faces = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    run_model = keras.models.load_model(four / "model.h5", compile=False)
    ours = keras.models.load_model(shipped, compile=False)
    for name, value in run_model.predict(faces, verbose=0).items():
        np.testing.assert_allclose(ours.predict(faces, verbose=0)[name], value, atol=1e-5)
    figures = info["figures"]
    assert 0 <= figures["emotion_acc_fer2013_publictest"] <= 1 and figures["age_mae_utkface"] > 0
    card = (package_weights / "MODEL_CARD.md").read_text()
    assert "stage-a (1 epoch), stage-b (1 epoch)" in card and info["sha256"][:16] in card
    assert f"{figures['emotion_acc_fer2013_publictest']:.2%}".rstrip("%") in card
    # calibration: the run's temperatures and validation ECE, the shipped model's test ECE and coverage
    calib = info["calibration"]
    assert set(calib["temperatures"]) >= {"gender", "emotion", "smile"}
    assert {"gender", "emotion", "smile", "age"} <= set(calib["test"]["overall"])
    for head in ("gender", "emotion", "smile"):
        ece = calib["test"]["overall"][head]["ece"]
        assert 0 <= ece <= 1 and f"| {head} | {calib['temperatures'][head]:.3f} |" in card and f"{ece:.3f}" in card
    assert 0 <= calib["test"]["overall"]["age"]["coverage"] <= 1 and calib["test"]["age_by_band"]
    assert "coverage of the 80 % interval" in card

    # a warm restart of the (now) shipped model: its stages go on from the package's release.json
    warm = run(tiny_records, runs, "stage-c", stage="finetune", init=str(shipped), train=TRAIN, data=DATA,
               model=FOUR)
    assert [s["run"] for s in release.training_stages(warm)] == ["stage-a", "stage-b", "stage-c"]
    # published, then published again: its init path (the package's release.h5) now holds stage-c
    again = release.publish_release(warm, tiny_records)
    assert [s["run"] for s in again["training"]["stages"]] == ["stage-a", "stage-b", "stage-c"]
    assert [s["run"] for s in release.publish_release(warm, tiny_records)["training"]["stages"]] == [
        "stage-a", "stage-b", "stage-c"]
    # a model file from elsewhere ends the chain with its path
    other = tmp_path / "other.h5"
    other.write_bytes(shipped.read_bytes() + b"\0")
    config = json.loads((warm / "config.json").read_text())
    (warm / "config.json").write_text(json.dumps({**config, "init": str(other)}))
    assert [s["run"] for s in release.training_stages(warm)] == [str(other), "stage-c"]

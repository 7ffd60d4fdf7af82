"""Calibrated heads: temperatures fitted on validation, folded into the heads' Dense layers,
and the ECE / interval coverage they give."""
import json

import keras
import numpy as np
import pytest

from facenet_mtl.models import build_model
from facenet_mtl.tasks import AGE_BINS
from facenet_mtl.training import calibration as cal
from tests.training.conftest import IMAGE_SIZE, tiny_config, tiny_records  # noqa: F401  (a fixture)


def _overconfident(n=4000, seed=0):
    """Binary predictions right 75 % of the time but stating 0.97."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    right = rng.random(n) < 0.75
    guess = np.where(right, truth, 1 - truth)
    return np.where(guess == 1, 0.97, 0.03).reshape(-1, 1), truth


def test_an_overconfident_head_gets_a_temperature_above_one_and_its_ece_falls():
    probs, truth = _overconfident()
    before = cal.expected_calibration_error(probs, truth, "binary")
    t = cal.fit_temperature(probs, truth, "binary")
    after = cal.expected_calibration_error(cal.tempered(probs, t, "binary"), truth, "binary")
    assert before == pytest.approx(0.22, abs=0.02)
    assert t > 2 and after < 0.02


def test_tempering_keeps_the_predicted_class():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(7), 50)
    for t in (0.5, 2.0, 5.0):
        assert (cal.tempered(probs, t, "categorical").argmax(-1) == probs.argmax(-1)).all()


def test_the_age_interval_holds_the_central_eighty_percent():
    probs = np.zeros((1, AGE_BINS))
    probs[0, 20:30] = 0.1  # uniform over 20..29
    low, high = cal.age_interval(probs)
    assert (low[0], high[0]) == (20.0, 28.0)
    assert cal.age_coverage(probs, np.array([25.0])) == 1.0 and cal.age_coverage(probs, np.array([29.0])) == 0.0


def test_an_age_temperature_brings_coverage_to_eighty_percent():
    rng = np.random.default_rng(2)
    ages = rng.integers(10, 80, 2000).astype(float)
    guesses = ages + rng.normal(0, 8, ages.size)  # the truth is about 8 years off
    bins = np.arange(AGE_BINS)
    probs = np.exp(-((bins[None, :] - guesses[:, None]) ** 2) / (2 * 2.0**2))  # but it says +-2
    probs /= probs.sum(1, keepdims=True)
    assert cal.age_coverage(probs, ages) < 0.4
    t = cal.fit_age_temperature(probs, ages)
    assert 0.75 <= cal.age_coverage(cal.tempered(probs, t, "age"), ages) <= 0.85


def test_folding_divides_the_logits_so_the_model_says_the_tempered_probabilities():
    model = build_model("compact", tasks=("age", "gender", "emotion"), input_size=IMAGE_SIZE,
                        backbone_args={"widths": (8,), "stem_width": 8})
    for name in ("gender", "emotion"):  # confident heads, so the temperature shows
        layer = model.get_layer(name)
        layer.set_weights([w * 20 for w in layer.get_weights()])
    images = np.random.default_rng(3).uniform(0, 255, (8, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    before = {k: np.asarray(v) for k, v in model(images).items()}
    cal.fold_temperatures(model, {"gender": 3.0, "emotion": 2.0, "age": 1.5})
    after = {k: np.asarray(v) for k, v in model(images).items()}
    np.testing.assert_allclose(after["gender"], cal.tempered(before["gender"], 3.0, "binary"), atol=1e-5)
    np.testing.assert_allclose(after["emotion"], cal.tempered(before["emotion"], 2.0, "categorical"), atol=1e-5)
    np.testing.assert_allclose(after["age_probs"], cal.tempered(before["age_probs"], 1.5, "age"), atol=1e-5)
    assert [type(l).__name__ for l in model.layers] == [type(l).__name__ for l in keras.models.clone_model(model).layers]


@pytest.mark.slow
def test_a_run_with_calibrate_exports_calibrated_heads_and_records_the_figures(tiny_records, tmp_path):  # noqa: F811
    from facenet_mtl.training import trainer
    from facenet_mtl.training.config import parse_config

    cfg = parse_config(tiny_config(tiny_records, "calibrated", model={"tasks": ["age", "gender"], "test_time_flip": True},
                                   train={"epochs": 1, "precision": "float32", "seed": 3, "calibrate": True}))
    run = trainer.train(cfg, runs_dir=tmp_path / "runs", verbose=0)
    metrics = json.loads((run / "metrics.json").read_text())["calibration"]
    assert set(metrics["temperatures"]) >= {"gender"}
    for split in ("valid", "test"):
        assert {"before", "after"} <= set(metrics[split])
        assert 0 <= metrics[split]["after"]["gender"]["ece"] <= 1
    assert metrics["valid"]["after"]["gender"]["ece"] <= metrics["valid"]["before"]["gender"]["ece"] + 0.02
    reloaded = keras.models.load_model(run / "model.h5", compile=False)
    t = metrics["temperatures"]["gender"]
    assert t != 1.0
    assert np.isfinite(np.asarray(reloaded(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), "float32"))["gender"])).all()

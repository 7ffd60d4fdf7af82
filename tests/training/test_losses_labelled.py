"""A head's logged loss is the mean of its loss over the samples labelled for it, in training and
validation alike, and `loss` / `val_loss` sum the heads under the configured loss weights.

Keras' own per-head loss is a mean of per-batch means weighted by the batch size: a batch with no
label for a head adds a 0 to it (how `val_age_loss` once read 1.54 beside a `val_age_mae` of 7.68).
"""
import keras
import numpy as np
import pytest

from facenet_mtl.models import heads
from facenet_mtl.training.losses import LabelledLosses, head_losses, head_metrics, output_loss_weights, relabel

BATCH = 8


def tiny_model():
    """Heads on a plain input, no BatchNorm nor dropout: training and inference compute alike."""
    features = keras.Input((6,), name="image")
    outputs = {}
    for task in ("age", "gender"):
        outputs.update(heads.task_head(features, task))
    model = keras.Model(features, outputs)
    heads.set_age_expectation_kernel(model)
    return model


def batches_with_some_labels():
    """24 samples in 3 batches: gender labelled in all of the 1st, none of the 2nd, half the 3rd;
    age in every other sample."""
    rng = np.random.default_rng(0)
    n = 3 * BATCH
    x = rng.normal(size=(n, 6)).astype(np.float32)
    ages = rng.uniform(5, 80, n).astype(np.float32)
    y = {"age": ages[:, None], "age_probs": np.stack([ages, np.zeros(n), -np.ones(n), -np.ones(n)], -1).astype(np.float32),
         "gender": rng.integers(0, 2, (n, 1)).astype(np.float32)}
    gender_known = np.r_[np.ones(BATCH), np.zeros(BATCH), np.arange(BATCH) % 2].astype(np.float32)
    age_known = (np.arange(n) % 2).astype(np.float32)
    w = {"age": age_known, "age_probs": age_known, "gender": gender_known}
    return x, y, w


def labelled_means(model, x, y, w):
    """Each output's per-sample loss averaged over its labelled samples, in numpy."""
    pred = model.predict(x, verbose=0)
    per_sample = {k: np.asarray(fn.call(y[k], pred[k])) for k, fn in head_losses(list(y)).items()}
    return {k: float((per_sample[k] * w[k]).sum() / w[k].sum()) for k in y}


def test_each_heads_loss_is_its_mean_over_labelled_samples_in_training_and_validation():
    model = tiny_model()
    weights = output_loss_weights(model.output_names, {"age": 1.0, "gender": 0.5}, {"age": {"l1": 0.1}})
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=head_losses(model.output_names),
                  loss_weights=weights, weighted_metrics=head_metrics(model.output_names))
    x, y, w = batches_with_some_labels()
    expected = labelled_means(model, x, y, w)

    logs = model.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                     validation_data=(x, y, w), callbacks=[LabelledLosses(weights)]).history
    for output, mean in expected.items():
        assert logs[f"{output}_loss"][0] == pytest.approx(mean, rel=1e-5), output
        assert logs[f"val_{output}_loss"][0] == pytest.approx(mean, rel=1e-5), output
    total = sum(weights[o] * expected[o] for o in expected)
    assert logs["loss"][0] == pytest.approx(total, rel=1e-5)
    assert logs["val_loss"][0] == pytest.approx(total, rel=1e-5)
    assert not [k for k in logs if "labelled_loss" in k]

    evaluated = relabel(model.evaluate(x, y, sample_weight=w, batch_size=BATCH, verbose=0, return_dict=True), weights)
    assert evaluated["gender_loss"] == pytest.approx(logs["val_gender_loss"][0], rel=1e-6)
    assert evaluated["loss"] == pytest.approx(logs["val_loss"][0], rel=1e-6)

    # What Keras logs by itself: the batch without a gender label counts as a loss of 0.
    raw = model.evaluate(x, y, sample_weight=w, batch_size=BATCH, verbose=0, return_dict=True)
    assert raw["gender_loss"] < 0.9 * expected["gender"]

"""Precise BN: the moving statistics become the average of clean-batch statistics under the final
weights; nothing else changes; a run with train.bn_recalibration_batches records and exports it."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl.training import trainer
from facenet_mtl.training.bn_recalibration import batch_norm_layers, recalibrate_batch_norm
from facenet_mtl.training.config import ConfigError


def small_model():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.99, name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


def test_moving_statistics_become_the_mean_of_batch_statistics():
    keras.utils.set_random_seed(0)
    model = small_model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0 * i, 1.0 + i, (8, 6, 6, 3)).astype("float32") for i in range(3)]
    dataset = tf.data.Dataset.from_tensor_slices(np.stack(batches)).map(lambda x: (x, {"out": 0}))
    conv = model.get_layer("conv")
    features = [keras.ops.convert_to_numpy(conv(b)) for b in batches]
    expected_mean = np.mean([f.mean(axis=(0, 1, 2)) for f in features], axis=0)
    expected_var = np.mean([f.var(axis=(0, 1, 2)) for f in features], axis=0)
    trained = [w.copy() for w in model.get_weights()]

    assert recalibrate_batch_norm(model, dataset, batches=5) == 3  # the dataset has 3
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), expected_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), expected_var, rtol=1e-3, atol=1e-4)
    assert bn.momentum == 0.99
    changed = [not np.array_equal(a, b) for a, b in zip(trained, model.get_weights())]
    moving = [w.path.endswith(("moving_mean", "moving_variance")) for w in model.weights]
    assert changed == moving  # only the moving statistics changed


def test_nothing_to_do_without_batch_norm_or_batches():
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert batch_norm_layers(dense) == []
    assert recalibrate_batch_norm(dense, tf.data.Dataset.from_tensors(np.ones((2, 3), "float32")), 4) == 0
    model = small_model()
    before = [w.copy() for w in model.get_weights()]
    assert recalibrate_batch_norm(model, tf.data.Dataset.from_tensors(np.ones((2, 6, 6, 3), "float32")), 0) == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_run_recalibrates_before_export_and_says_so(make_config, tmp_path):
    # One training, finished twice from the same checkpoint (the batches are a finish option), so
    # the two exports differ only by the recalibration: two trainings of the same seed differ by
    # multi-threaded float sums, and after an epoch of Adam by more than any fixed tolerance.
    exported = {}
    for batches in (0, 3):
        cfg = make_config(name="recal", train={"epochs": 1, "bn_recalibration_batches": batches})
        run_dir = trainer.train(cfg, tmp_path / "runs", verbose=0, refinish=batches > 0)
        assert json.loads((run_dir / "metrics.json").read_text())["bn_recalibration_batches"] == batches
        exported[batches] = keras.models.load_model(run_dir / "model.h5")
    plain, recalibrated = ({w.path: keras.ops.convert_to_numpy(w) for w in exported[k].weights} for k in (0, 3))
    assert plain.keys() == recalibrated.keys()
    moving = {p for p in plain if p.endswith(("moving_mean", "moving_variance"))}
    assert moving and all(not np.allclose(plain[p], recalibrated[p]) for p in moving)
    assert all(np.array_equal(plain[p], recalibrated[p]) for p in plain.keys() - moving)
    with pytest.raises(ConfigError, match="bn_recalibration_batches.*whole number"):
        make_config(train={"bn_recalibration_batches": -1})

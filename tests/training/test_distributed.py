"""The custom train step of multi-worker training: it learns, masked labels cost nothing, the
loss is the one-device loss however the batch is split, a run checkpoints and resumes like the
trainer's, and a real two-worker MultiWorkerMirroredStrategy run on localhost trains.

The data are tiny synthetic batches in the input pipeline's format (`to_model_inputs`), no
TFRecords: each image is a flat colour plus noise and every label is a function of the colour.
This file is also the two-worker test's worker: `python test_distributed.py RUN_DIR`.
"""
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import csv  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from facenet_mtl.data.pipeline import to_model_inputs  # noqa: E402
from facenet_mtl.data.schema import LABEL_FIELDS, MISSING  # noqa: E402
from facenet_mtl.models import build_model, output_names_for  # noqa: E402
from facenet_mtl.training.config import parse_config  # noqa: E402
from facenet_mtl.training.distributed import (  # noqa: E402
    distribute_dataset,
    fit_multi_worker,
    make_train_step,
    replica_losses,
    summed,
)
from facenet_mtl.training.plan import loss_setup  # noqa: E402
from facenet_mtl.training.rundir import RunDir  # noqa: E402

TASKS = ("age", "gender", "emotion", "smile")
OUTPUTS = output_names_for(TASKS)
SIZE, BATCH, EXAMPLES = 32, 8, 32
WORKER_TIMEOUT_S = 150


def tiny_config(epochs=2, freeze_backbone_epochs=0, lr=0.03):
    return parse_config({
        "name": "tiny",
        "model": {"backbone": "compact", "tasks": list(TASKS), "input_size": SIZE,
                  "backbone_args": {"widths": [8], "stem_width": 8}},
        "data": {"batch_size": BATCH},
        "loss": {"weights": {"gender": 0.5}, "age_sigma": 2.0, "age_l1": 0.1},
        "optimizer": {"name": "adam", "lr": lr, "schedule": "constant"},
        "train": {"epochs": epochs, "freeze_backbone_epochs": freeze_backbone_epochs, "seed": 3},
    })


def tiny_model(cfg):
    return build_model(backbone=cfg.model.backbone, tasks=cfg.model.tasks, input_size=cfg.model.input_size,
                       backbone_args=dict(cfg.model.backbone_args))


def synthetic_examples(n=EXAMPLES, seed=0, masked=0.25):
    """(images, labels, sample_weights) as numpy, made by the pipeline's `to_model_inputs`;
    about `masked` of each task's labels are MISSING (weight 0)."""
    rng = np.random.default_rng(seed)
    colour = rng.uniform(0, 255, (n, 3))
    images = np.clip(colour[:, None, None, :] + rng.normal(0, 10, (n, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    labels = {
        "age": colour[:, 0] / 255 * 80,
        "age_std": np.zeros(n),
        "gender": (colour[:, 1] > 127).astype(int),
        "emotion": (colour[:, 2] // 37).astype(int) % 7,
        "smile": (colour[:, 0] > colour[:, 2]).astype(int),
    }
    for task in TASKS:
        labels[task] = np.where(rng.uniform(size=n) < masked, MISSING, labels[task])
    examples = {"image": images, **{k: v.astype(LABEL_FIELDS[k]) for k, v in labels.items()}}
    ds = tf.data.Dataset.from_tensor_slices(examples).map(lambda e: to_model_inputs(e, OUTPUTS, {"age": {"sigma": 2.0}}))
    return tf.nest.map_structure(lambda t: t.numpy(), next(iter(ds.batch(n))))


def batches(data, batch=BATCH):
    return tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True).repeat()


def train_steps(data, strategy, steps, optimizer=None):
    """Fresh tiny model (same initial weights every call), `steps` steps; (losses, model)."""
    cfg = tiny_config()
    keras.utils.set_random_seed(cfg.train.seed)
    with strategy.scope():
        model = tiny_model(cfg)
        optimizer = optimizer or keras.optimizers.Adam(cfg.optimizer.lr)
        optimizer.build(model.trainable_variables)
    losses, loss_weights = loss_setup(cfg, OUTPUTS)
    step = make_train_step(model, optimizer, losses, loss_weights, strategy)
    iterator = iter(distribute_dataset(batches(data), strategy))
    return [{k: float(v) for k, v in step(iterator).items()} for _ in range(steps)], model


# --- the step ------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["default", "one-device mirrored"])
def test_step_lowers_the_loss(strategy):
    strategy = tf.distribute.get_strategy() if strategy == "default" else tf.distribute.MirroredStrategy(["/cpu:0"])
    losses, _ = train_steps(synthetic_examples(), strategy, steps=12)  # 3 passes over 4 batches
    first, last = np.mean([s["loss"] for s in losses[:4]]), np.mean([s["loss"] for s in losses[-4:]])
    assert np.isfinite(first) and last < 0.9 * first, (first, last)
    assert set(losses[0]) == {"loss", *(f"{name}_loss" for name in OUTPUTS)}


def test_masked_samples_cost_nothing():
    """Changing the labels of samples with weight 0 changes neither the loss nor the update."""
    data = synthetic_examples()
    images, labels, weights = data
    rng = np.random.default_rng(1)
    changed = {}
    for name, y in labels.items():
        garbage = {"age": rng.uniform(0, 100, y.shape), "age_probs": rng.uniform(0, 100, y.shape),
                   "emotion": np.eye(7)[rng.integers(0, 7, len(y))]}.get(name, rng.integers(0, 2, y.shape))
        changed[name] = np.where(weights[name].reshape(-1, *[1] * (y.ndim - 1)) == 0, garbage, y).astype(y.dtype)
    assert any(not np.array_equal(changed[n], labels[n]) for n in labels)
    strategy = tf.distribute.get_strategy()
    before, model_a = train_steps(data, strategy, steps=2)
    after, model_b = train_steps((images, changed, weights), strategy, steps=2)
    assert before == after
    for a, b in zip(model_a.get_weights(), model_b.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_replica_shares_add_up_to_the_one_device_loss():
    """Split a batch over two "replicas" (one gets every label of a head masked): the shares
    add up to the compiled mean_with_sample_weight loss on the whole batch."""
    cfg = tiny_config()
    losses, loss_weights = loss_setup(cfg, OUTPUTS)
    summed_losses = {name: summed(loss) for name, loss in losses.items()}
    _, labels, weights = synthetic_examples(n=8)
    weights = dict(weights, smile=np.r_[np.zeros(4), np.ones(4)].astype(np.float32))
    pred = tiny_model(cfg)(synthetic_examples(n=8, seed=5)[0])
    halves = [tf.nest.map_structure(lambda t: t[i:i + 4], (labels, pred, weights)) for i in (0, 4)]
    global_weight = {n: tf.reduce_sum(weights[n]) for n in OUTPUTS}
    order = list(summed_losses)
    shares = [replica_losses(y, p, w, summed_losses, loss_weights,
                             lambda local: tf.stack([global_weight[n] for n in order])) for y, p, w in halves]
    for name in OUTPUTS:
        expected = float(losses[name](labels[name], pred[name], sample_weight=weights[name]))
        assert float(shares[0][f"{name}_loss"] + shares[1][f"{name}_loss"]) == pytest.approx(expected, rel=1e-5)
    total = sum(loss_weights[n] * float(losses[n](labels[n], pred[n], sample_weight=weights[n])) for n in OUTPUTS)
    assert float(shares[0]["loss"] + shares[1]["loss"]) == pytest.approx(total, rel=1e-5)


def test_loss_scaling_skips_a_non_finite_step():
    """With a LossScaleOptimizer whose scale overflows, the step changes no weight and halves the scale."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01), initial_scale=1e38)
    losses, model = train_steps(synthetic_examples(), strategy, steps=1, optimizer=optimizer)
    keras.utils.set_random_seed(tiny_config().train.seed)
    untouched = tiny_model(tiny_config())
    for a, b in zip(model.trainable_weights, untouched.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(optimizer.dynamic_scale.numpy()) == pytest.approx(0.5e38)
    assert np.isfinite(losses[0]["loss"])


# --- a run: checkpoints, state.json, history.csv, resume -----------------------------------------


def test_run_checkpoints_and_resumes_across_the_phase_change(tmp_path):
    cfg = tiny_config(epochs=2, freeze_backbone_epochs=1)
    data = batches(synthetic_examples())
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(cfg.train.seed)
    first = tiny_model(cfg)
    one_epoch = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1))
    run = RunDir(tmp_path)
    fit_multi_worker(one_epoch, first, strategy, data, 3, run, state={})
    state = run.state()
    assert (state["epoch"], state["phase"]) == (1, "heads")
    assert run.last_checkpoint.is_file()

    resumed = tiny_model(cfg)  # a fresh process's model: weights and optimizer come from the checkpoint
    fit_multi_worker(cfg, resumed, strategy, data, 3, run, state=state)
    state = run.state()
    assert (state["epoch"], state["phase"], len(state["epoch_seconds"])) == (2, "full", 2)
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"loss", "lr", *(f"{n}_loss" for n in OUTPUTS)} <= set(rows[0])
    assert int(resumed.optimizer.iterations) == 3  # the full phase's own optimizer, 3 steps


@pytest.fixture
def mixed_float16():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy(previous)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, mixed_float16):
    """Weights, Adam's moments and the loss scale all come back from the checkpoint: 2 epochs in
    one go, or 1 epoch, a fresh model, and a resume, give the same weights (each epoch is one
    pass over the same 4 batches)."""
    cfg = tiny_config(epochs=2)
    one_epoch = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1))
    strategy = tf.distribute.get_strategy()
    final = {}
    for name, plan in (("straight", [cfg]), ("resumed", [one_epoch, cfg])):
        keras.utils.set_random_seed(cfg.train.seed)
        for run_cfg in plan:
            model = tiny_model(cfg)
            run = RunDir(tmp_path / name)
            fit_multi_worker(run_cfg, model, strategy, batches(synthetic_examples()), 4, run, run.state())
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        final[name] = model.get_weights() + [np.asarray(v) for v in model.optimizer.variables]
    assert len(final["straight"]) == len(final["resumed"])
    for a, b in zip(final["straight"], final["resumed"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --- two real workers ------------------------------------------------------------------------------


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def two_worker_config():
    return tiny_config(epochs=3, freeze_backbone_epochs=1)


def two_worker_run(run_dir, strategy):
    """What each worker runs (and, on one device, the reference): heads-first, then full."""
    cfg = two_worker_config()
    keras.utils.set_random_seed(cfg.train.seed)
    with strategy.scope():
        model = tiny_model(cfg)
    run = RunDir(run_dir)
    fit_multi_worker(cfg, model, strategy, batches(synthetic_examples()), 4, run, run.state())
    return model


def history_losses(run_dir):
    return [float(row["loss"]) for row in csv.DictReader(open(Path(run_dir) / "history.csv"))]


def test_two_workers_train_on_localhost(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)  # this process is the one-device reference
    run_dir = tmp_path / "run"
    workers = [f"localhost:{port}" for port in free_ports(2)]
    procs = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(scratch),
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        log = open(tmp_path / f"worker{index}.log", "w")
        procs.append(subprocess.Popen([sys.executable, __file__, str(run_dir)], env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
    started = time.time()
    try:
        # Meanwhile, the same run on one device: its heads-only first epoch (no BatchNorm batch
        # statistics) must give the two workers' loss, batches split over them or not.
        two_worker_run(tmp_path / "one-device", tf.distribute.get_strategy())
        for proc in procs:
            proc.wait(timeout=max(1, WORKER_TIMEOUT_S - (time.time() - started)))
    except subprocess.TimeoutExpired:
        pass  # a hung collective: killed below, reported by the return codes
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(log[-3000:] for log in logs)

    state = RunDir(run_dir).state()
    assert (state["epoch"], state["phase"]) == (3, "full")
    assert RunDir(run_dir).last_checkpoint.is_file()
    assert not list((tmp_path / "tmp1").iterdir()), "the non-chief worker wrote a file"
    assert "epoch 3/3" in logs[0] and "epoch 1/3" not in logs[1]  # only the chief reports
    losses = history_losses(run_dir)
    print("two-worker loss per epoch:", losses)
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert losses[0] == pytest.approx(history_losses(tmp_path / "one-device")[0], rel=1e-4)


def _worker(run_dir):
    """One worker of `test_two_workers_train_on_localhost` (the test sets TF_CONFIG)."""
    from facenet_mtl.quiet import setup_logging
    from facenet_mtl.training.precision import choose_strategy

    setup_logging()  # the library logs its progress; a program (here, the worker) shows it
    tf.config.threading.set_intra_op_parallelism_threads(1)
    strategy, kind = choose_strategy(two_worker_config().train.distribute)
    assert kind == "multi_worker" and strategy.num_replicas_in_sync == 2, (kind, strategy)
    two_worker_run(run_dir, strategy)


if __name__ == "__main__":
    _worker(sys.argv[1])

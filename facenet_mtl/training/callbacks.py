"""Callbacks of a run: learning-rate schedule, history.csv, TensorBoard, per-epoch checkpoint
(weights + optimizer state + state.json, written atomically), best-epoch weights, early stop."""
import json
import os
import threading
import time
from pathlib import Path

import keras
import numpy as np

LAST = "checkpoints/last.weights.h5"  # multi-worker runs (Keras weights file)
LAST_ARRAYS = "checkpoints/last.npz"  # fit runs: weights + optimizer state, written in the background
BEST = "checkpoints/best_weights.npz"


class LearningRateLogger(keras.callbacks.Callback):
    """Sets the epoch's learning rate from the schedule and records it in the logs."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(float(self.schedule(epoch)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: last weights with optimizer state, the best weights by `monitor`, and
    state.json (epochs done, phase, best value, training seconds)."""

    def __init__(self, run_dir, phase, monitor=""):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.phase = phase
        self.monitor = monitor
        self.mode = "min" if monitor.endswith(("loss", "mae")) else "max"
        (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        # Copy the variables now (fast), write them in the background while the next epoch
        # trains; state.json is written only after the arrays are on disk.
        logs = logs or {}
        self.wait()
        fit_seconds = time.time() - self.started
        state = read_state(self.run_dir)
        arrays = snapshot(self.model)
        value = logs.get(self.monitor) if self.monitor else None
        best = state.get("best")
        improved = self.monitor and value is not None and (
            best is None or (value < best if self.mode == "min" else value > best))
        if improved:
            state.update(best=float(value), best_epoch=epoch + 1)
        seconds = time.time() - self.started
        state.update(epoch=epoch + 1, phase=self.phase, monitor=self.monitor,
                     train_seconds=state.get("train_seconds", 0.0) + seconds,
                     epoch_seconds=state.get("epoch_seconds", []) + [round(seconds, 3)],
                     checkpoint_seconds=state.get("checkpoint_seconds", []) + [round(seconds - fit_seconds, 3)])
        self._writer = threading.Thread(target=self._write, args=(arrays, improved, state))
        self._writer.start()

    def _write(self, arrays, improved, state):
        write_arrays(arrays, self.run_dir / LAST_ARRAYS)
        if improved:
            model_arrays = {k: v for k, v in arrays.items() if k.startswith("w")}
            write_arrays(model_arrays, self.run_dir / BEST)
        write_state(self.run_dir, state)

    def wait(self):
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.join()
            self._writer = None

    def on_train_end(self, logs=None):
        self.wait()


def snapshot(model):
    """Model weights (w0..) and optimizer variables (o0..) as numpy arrays."""
    arrays = {f"w{i}": v for i, v in enumerate(model.get_weights())}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        arrays.update({f"o{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)})
    return arrays


def numbered(data, prefix):
    """The arrays `<prefix>0`, `<prefix>1`, ... of a loaded `.npz` (see `snapshot`), in order."""
    return [data[f"{prefix}{i}"] for i in range(sum(k.startswith(prefix) for k in data.files))]


def write_arrays(arrays, path):
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def run_callbacks(cfg, run_dir, phase, lr_at, resumed):
    run_dir = Path(run_dir)
    callbacks = [
        LearningRateLogger(lambda epoch: lr_at(cfg.optimizer, epoch, cfg.train.epochs)),
        EpochCheckpoint(run_dir, phase, cfg.train.monitor),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resumed or (run_dir / "history.csv").exists()),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, profile_batch=0),
    ]
    if cfg.train.monitor and cfg.train.patience:
        mode = "min" if cfg.train.monitor.endswith(("loss", "mae")) else "max"
        callbacks.append(keras.callbacks.EarlyStopping(monitor=cfg.train.monitor, patience=cfg.train.patience,
                                                       mode=mode, restore_best_weights=False))
    return callbacks


def restore_checkpoint(model, run_dir):
    """Load the last epoch's weights and optimizer state into a compiled model."""
    arrays_path, keras_path = Path(run_dir) / LAST_ARRAYS, Path(run_dir) / LAST
    if not arrays_path.is_file() and not keras_path.is_file():
        return False
    # Built first: a multi-worker run's Keras weights file restores the optimizer's variables too.
    model.optimizer.build(model.trainable_variables)
    restore_last_weights(model, run_dir)
    if not arrays_path.is_file():
        return True
    with np.load(arrays_path) as data:
        optimizer = numbered(data, "o")
    variables = model.optimizer.variables
    if len(variables) != len(optimizer):
        raise ValueError(f"{arrays_path}: checkpoint has {len(optimizer)} optimizer variables, the "
                         f"optimizer {len(variables)}; the run's config changed: use --restart")
    for variable, value in zip(variables, optimizer):
        variable.assign(value)
    return True


def restore_best(model, run_dir):
    path = Path(run_dir) / BEST
    if path.is_file():
        with np.load(path) as data:
            model.set_weights(numbered(data, "w"))
        return True
    return False


def restore_last_weights(model, run_dir):
    """Load the last epoch's model weights (no optimizer state); False if there is no checkpoint."""
    arrays_path, keras_path = Path(run_dir) / LAST_ARRAYS, Path(run_dir) / LAST
    if arrays_path.is_file():
        with np.load(arrays_path) as data:
            model.set_weights(numbered(data, "w"))
        return True
    if keras_path.is_file():
        model.load_weights(keras_path)
        return True
    return False


def save_weights_only(model, path):
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    os.replace(tmp, path)


def read_state(run_dir):
    path = Path(run_dir) / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(run_dir, state):
    tmp = Path(run_dir) / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, Path(run_dir) / "state.json")

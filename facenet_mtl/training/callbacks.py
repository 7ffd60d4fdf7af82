"""Callbacks of a run under `fit`: learning-rate schedule, history.csv, TensorBoard, the
per-epoch checkpoint (into the `RunDir`, written in the background), early stop."""
import threading
import time

import keras

from facenet_mtl.training.plan import learning_rate_at
from facenet_mtl.training.rundir import snapshot


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


def monitor_mode(monitor):
    """"min" for a loss or an error (`*loss`, `*mae`), else "max"."""
    return "min" if monitor.endswith(("loss", "mae")) else "max"


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, into `run` (a `RunDir`): the last weights with optimizer state, the
    best weights by `monitor`, then the epoch in state.json."""

    def __init__(self, run, phase, monitor=""):
        super().__init__()
        self.run = run
        self.phase = phase
        self.monitor = monitor
        self.mode = monitor_mode(monitor)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        # Copy the variables now (fast), write them in the background while the next epoch
        # trains; state.json is written only after the arrays are on disk.
        logs = logs or {}
        self.wait()
        fit_seconds = time.time() - self.started
        arrays = snapshot(self.model)
        value = logs.get(self.monitor) if self.monitor else None
        best = self.run.state().get("best")
        improved = bool(self.monitor) and value is not None and (
            best is None or (value < best if self.mode == "min" else value > best))
        seconds = time.time() - self.started
        self._writer = threading.Thread(target=self._write, args=(
            arrays, epoch, float(value) if improved else None, seconds, seconds - fit_seconds))
        self._writer.start()

    def _write(self, arrays, epoch, best, seconds, checkpoint_seconds):
        try:
            self.run.record_epoch(epoch, self.phase, seconds, monitor=self.monitor, best=best,
                                  checkpoint_seconds=checkpoint_seconds, arrays=arrays)
        except Exception as exc:  # a full or read-only disk: training stops at the next batch
            self._failed = checkpoint_error(self.run.path, epoch, exc)

    def on_train_batch_end(self, batch, logs=None):
        if getattr(self, "_failed", None) is not None:
            self.wait()

    def wait(self):
        """Until the last checkpoint is written; the DataError that says why, when it was not."""
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.join()
            self._writer = None
        failed, self._failed = getattr(self, "_failed", None), None
        if failed is not None:
            raise failed

    def on_train_end(self, logs=None):
        self.wait()


def checkpoint_error(run_path, epoch, exc):
    """The DataError that stops training when epoch `epoch`'s checkpoint could not be written."""
    import errno

    from facenet_mtl.errors import DataError

    number = getattr(exc, "errno", None)
    full = number in (errno.ENOSPC, errno.EDQUOT) or "space" in str(exc).lower()
    fix = ("free some disk space" if full else "make the run folder writable (or choose another --runs-dir)")
    return DataError(run_path, f"the checkpoint of epoch {epoch + 1} could not be written ({type(exc).__name__}: "
                     f"{str(exc)[:200]}); training stopped, and the run keeps every epoch checkpointed before it",
                     f"{fix}, then rerun the same command to resume")


def run_callbacks(cfg, run, phase, resumed):
    """The callbacks of one phase's `fit` into `run` (a `RunDir`); `resumed`: history.csv goes on."""
    callbacks = [
        LearningRateLogger(lambda epoch: learning_rate_at(cfg.optimizer, epoch, cfg.train.epochs)),
        EpochCheckpoint(run, phase, cfg.train.monitor),
        keras.callbacks.CSVLogger(str(run.history_file), append=resumed or run.history_file.exists()),
        keras.callbacks.TensorBoard(str(run.tensorboard_dir), write_graph=False, profile_batch=0),
    ]
    if cfg.train.monitor and cfg.train.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=cfg.train.monitor, patience=cfg.train.patience,
                                                       mode=monitor_mode(cfg.train.monitor),
                                                       restore_best_weights=False))
    return callbacks

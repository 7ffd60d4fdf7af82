"""A run directory, `runs/<name>/`, and its one owner: `RunDir` knows its paths, reads and
writes its `state.json` (nothing else does), saves and restores its checkpoints, refuses a
config it does not hold a run of, and holds its lock.

It holds `config.json` (the resolved config), `state.json` (epochs done, phase, best value,
seconds, the checkpoint files that go with them; `finished` once exported and evaluated),
`checkpoints/last-<epoch>.npz` (the last epoch's weights `w0..` and optimizer variables `o0..`),
`checkpoints/best-<epoch>.npz` (the weights of the best epoch by `train.monitor`), `history.csv`,
`tensorboard/`, the model files (`MODEL_FILES`, `saved_model/`), `metrics.json` and PNG plots.
Every file is written beside, then renamed; an epoch's checkpoint gets a new name and counts only
once `state.json` names it (the one commit), and the files it replaces are removed after: a run
killed at any moment keeps a checkpoint and a state of the same epoch, loses at most the epoch in
progress, and the same command resumes it.

>>> import tempfile
>>> run = RunDir(tempfile.mkdtemp())
>>> run.record_epoch(0, "heads", seconds=2.5)["epoch"]
1
>>> run.state()["phase"], run.state().get("finished", False)
('heads', False)
>>> run.record_epoch(1, "full", seconds=2.5, arrays={"w0": np.zeros(2)})["checkpoint"]
'last-0002.npz'
>>> run.last_checkpoint.name, run.best_checkpoint
('last-0002.npz', None)
"""
import contextlib
import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np

from facenet_mtl.locks import LOCK_NAME, exclusive
from facenet_mtl.training.config import ConfigError

# The finish options: config keys that only the finish (export, BatchNorm recalibration,
# evaluation) reads, so a finished run can take new values with --refinish, without training.
FINISH_KEYS = ("model.test_time_flip", "model.test_time_crops", "model.test_time_crop_scale",
               "train.bn_recalibration_batches", "train.calibrate")
# What an unfinished run's config may change and still resume: those, and the number of epochs.
RESUMABLE_KEYS = ("train.epochs", *FINISH_KEYS)

MODEL_FILES = {"h5": "model.h5", "keras": "model.keras", "keras2_h5": "model.keras2.h5"}
SAVED_MODEL = "saved_model"


class RunDir:
    """The run directory at `path` (created when first written)."""

    def __init__(self, path):
        self.path = Path(path)
        self.config_file = self.path / "config.json"
        self.state_file = self.path / "state.json"
        self.checkpoint_dir = self.path / "checkpoints"
        self.history_file = self.path / "history.csv"
        self.tensorboard_dir = self.path / "tensorboard"
        self.metrics_file = self.path / "metrics.json"

    @classmethod
    def of(cls, cfg, runs_dir):
        """The run directory of experiment `cfg` under `runs_dir`: `<runs_dir>/<cfg.name>`."""
        return cls(Path(runs_dir) / cfg.name)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def model_file(self, kind="keras"):
        """An exported model: `kind` is a key of `MODEL_FILES`, or "saved_model" (a folder)."""
        return self.path / (SAVED_MODEL if kind == "saved_model" else MODEL_FILES[kind])

    # --- state.json ----------------------------------------------------------------------------

    def state(self):
        """state.json's contents; {} before the first epoch is recorded."""
        return json.loads(self.state_file.read_text()) if self.state_file.is_file() else {}

    def record_epoch(self, epoch, phase, seconds, monitor="", best=None, checkpoint_seconds=None, arrays=None):
        """Count epoch `epoch` (from 0) of `phase` as done: it took `seconds`, of which
        `checkpoint_seconds` to copy the checkpoint; `best` is its `monitor` value when it is the
        best epoch so far. `arrays` (`snapshot(model)`) is its checkpoint, written first under the
        epoch's own name, then named in state.json, then the files it replaces removed. Returns
        the new state."""
        state = self.state()
        if arrays is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            state["checkpoint"] = f"last-{epoch + 1:04d}.npz"
            _write_arrays(arrays, self.checkpoint_dir / state["checkpoint"])
            if best is not None:
                state["best_checkpoint"] = f"best-{epoch + 1:04d}.npz"
                _write_arrays({k: v for k, v in arrays.items() if k.startswith("w")},
                              self.checkpoint_dir / state["best_checkpoint"])
        if best is not None:
            state.update(best=float(best), best_epoch=epoch + 1)
        state.update(epoch=epoch + 1, phase=phase, monitor=monitor,
                     train_seconds=state.get("train_seconds", 0.0) + seconds,
                     epoch_seconds=state.get("epoch_seconds", []) + [round(seconds, 3)])
        if checkpoint_seconds is not None:
            state["checkpoint_seconds"] = state.get("checkpoint_seconds", []) + [round(checkpoint_seconds, 3)]
        self._write_state(state)
        if arrays is not None:
            keep = {state.get("checkpoint"), state.get("best_checkpoint")}
            for old in self.checkpoint_dir.glob("*.npz"):
                if old.name not in keep:
                    old.unlink()
        return state

    def mark_finished(self, finished=True):
        """Set `finished`: after the finish, or (False) before a finished run is finished again."""
        return self._write_state({**self.state(), "finished": finished})

    def _write_state(self, state):
        """The one writer of state.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.state_file, state)
        return state

    # --- checkpoints ---------------------------------------------------------------------------

    @property
    def last_checkpoint(self):
        """The last epoch's checkpoint that state.json counts, or None."""
        return self._counted("checkpoint", "last.npz")

    @property
    def best_checkpoint(self):
        """The best epoch's weights that state.json counts, or None."""
        return self._counted("best_checkpoint", "best_weights.npz")

    def _counted(self, key, legacy):
        """The checkpoint file state.json names under `key`; for a run written before checkpoints
        were named by epoch, its one file `legacy` if it is there."""
        name = self.state().get(key)
        if name:
            return self.checkpoint_dir / name
        path = self.checkpoint_dir / legacy
        return path if path.is_file() else None

    def restore_checkpoint(self, model):
        """Load the last epoch's weights and optimizer state into compiled `model` (building its
        optimizer if needed); False if there is no checkpoint."""
        checkpoint = self.last_checkpoint
        if checkpoint is None:
            return False
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        weights, optimizer = _load_arrays(checkpoint, "w", "o")
        model.set_weights(weights)
        variables = model.optimizer.variables
        if len(variables) != len(optimizer):
            raise ValueError(f"{checkpoint}: checkpoint has {len(optimizer)} optimizer variables, the "
                             f"optimizer {len(variables)}; the run's config changed: use --restart")
        for variable, value in zip(variables, optimizer):
            variable.assign(value)
        return True

    def restore_weights(self, model):
        """Load the weights a run exports: the best epoch's by `train.monitor`, else the last
        epoch's; False if there is neither."""
        for path in (self.best_checkpoint, self.last_checkpoint):
            if path is not None:
                model.set_weights(_load_arrays(path, "w")[0])
                return True
        return False

    # --- config.json: the run's config, and the check that it is this config -------------------

    def write_config(self, cfg):
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.config_file, cfg.to_dict())

    def check_config(self, cfg, state, refinish=False):
        """Raise a ConfigError if this folder holds a run of another config than `cfg` (given its
        `state`): a finished run that is skipped (no `refinish`) may change nothing, and tells
        that a change of `RESUMABLE_KEYS` alone takes --refinish; an unfinished run, or one
        finished again, may change only `RESUMABLE_KEYS`."""
        finished = bool(state.get("finished"))
        skipped = finished and not refinish
        if not (state.get("epoch") or finished) or not self.config_file.is_file():
            return
        changes = _config_changes(json.loads(self.config_file.read_text()),
                                  json.loads(json.dumps(cfg.to_dict(), default=str)), _defaults())
        if not skipped:
            changes = {k: v for k, v in changes.items() if k not in RESUMABLE_KEYS}
        if not changes:
            return
        shown = "; ".join(f"{key}: {before!r} -> {now!r}" for key, (before, now) in list(changes.items())[:4])
        if skipped and set(changes) <= set(RESUMABLE_KEYS):
            raise ConfigError(cfg.source or cfg.name, ", ".join(changes),
                              f"{self.path} is a finished run, and its config changed ({shown}); its metrics are "
                              "of the old config. Use --refinish to finish it again under the new values "
                              "(train.epochs: training the extra epochs first), or --restart to train it over")
        raise ConfigError(cfg.source or cfg.name, ", ".join(changes),
                          f"{self.path} holds {'a finished' if finished else 'an unfinished'} run of a different "
                          f"config ({shown}); use --restart to start it over, or give the experiment another name")

    # --- history.csv and metrics.json ----------------------------------------------------------

    def append_history(self, epoch, logs):
        """One row of history.csv, columns as keras.callbacks.CSVLogger writes them (epoch from 0)."""
        columns = None
        self.path.mkdir(parents=True, exist_ok=True)
        if self.history_file.is_file():
            with open(self.history_file, newline="") as f:
                columns = next(csv.reader(f), None)
        with open(self.history_file, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns or ["epoch", *sorted(logs)], extrasaction="ignore")
            if columns is None:
                writer.writeheader()
            writer.writerow({"epoch": epoch, **logs})

    def trim_history(self, epochs_done):
        """Keep history.csv's rows of the epochs the checkpoint holds: a run killed after an
        epoch's row but before its checkpoint (or in the middle of a row) would otherwise repeat
        or tear a row when it resumes."""
        if not self.history_file.is_file():
            return
        lines = self.history_file.read_text().splitlines(keepends=True)

        def epoch_of(line):
            first = line.split(",", 1)[0].strip()
            return int(first) if first.isdigit() else None

        kept = lines[:1] + [line for line in lines[1:] if line.endswith("\n") and epoch_of(line) is not None
                            and epoch_of(line) < epochs_done]
        if kept != lines:
            tmp = self.history_file.with_name(self.history_file.name + ".tmp")
            tmp.write_text("".join(kept))
            os.replace(tmp, self.history_file)

    def write_metrics(self, metrics):
        _write_json(self.metrics_file, metrics)

    # --- the lock, and --restart ---------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self):
        """Hold the folder's lock (`facenet_mtl.locks.exclusive`) for the `with` block: another
        process gets a `FolderInUseError` naming this one's pid. When the block fails having
        written nothing, the folders the lock created are removed again."""
        created = _first_missing(self.path)
        with exclusive(self.path, "run directory"):
            try:
                yield self
            except BaseException:
                if created is not None and {p.name for p in self.path.iterdir()} <= {LOCK_NAME}:
                    shutil.rmtree(created, ignore_errors=True)
                raise

    def clear(self):
        """--restart: remove everything but the lock this process holds."""
        if not self.path.is_dir():
            return
        for path in self.path.iterdir():
            if path.name == LOCK_NAME:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def snapshot(model):
    """Model weights (w0..) and optimizer variables (o0..) as numpy arrays: a checkpoint for
    `RunDir.record_epoch`. Under a multi-worker strategy every worker takes it (reading a
    variable may be a collective op), though only the chief saves it."""
    import keras  # here: the CLI imports this module for FINISH_KEYS, and starts without Keras

    arrays = {f"w{i}": v for i, v in enumerate(model.get_weights())}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        arrays.update({f"o{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)})
    return arrays


def _load_arrays(path, *prefixes):
    """For each prefix, the arrays `<prefix>0`, `<prefix>1`, ... of the `.npz` at `path`, in order."""
    with np.load(path) as data:
        return [[data[f"{prefix}{i}"] for i in range(sum(k.startswith(prefix) for k in data.files))]
                for prefix in prefixes]


def _write_arrays(arrays, path):
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _write_json(path, data):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _config_changes(before, now, defaults=None, prefix=""):
    """{dotted key: (before, now)} for every value that differs, `source` aside. A key the stored
    config lacks (a run written before the field existed) counts as its default in `defaults`."""
    changes, defaults = {}, defaults or {}
    for key in sorted(set(before) | set(now)):
        if not prefix and key == "source":
            continue
        old, new = before.get(key), now.get(key)
        if key not in before and key in defaults and not isinstance(new, dict):
            old = defaults[key]
        if isinstance(old, dict) and isinstance(new, dict) and not prefix:
            changes.update(_config_changes(old, new, defaults.get(key, {}), f"{key}."))
        elif old != new:
            changes[prefix + key] = (old, new)
    return changes


def _defaults():
    """Every config field's default, as config.json holds values."""
    from facenet_mtl.training.config import ExperimentConfig

    return json.loads(json.dumps(ExperimentConfig(name="").to_dict(), default=str))


def _first_missing(path):
    """The outermost of `path` and its parents that does not exist yet (None if `path` does)."""
    path = Path(path).absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path

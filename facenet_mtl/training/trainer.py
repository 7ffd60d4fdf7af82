"""The staged trainer: one function runs a pretrain or finetune experiment into `runs/<name>/`.

    run_dir = train(load_config("experiments/demo/pretrain.toml"))

A run directory holds `config.json` (the resolved config), `state.json` (epochs done),
`checkpoints/` (last epoch with optimizer state, best epoch), `history.csv`, `tensorboard/`,
`model.h5`, `model.keras`, `saved_model/`, `metrics.json` and PNG plots. Each finished epoch is
checkpointed, so an interrupted run loses at most the epoch in progress and a rerun resumes.
"""
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import keras

from facenet_mtl.data.errors import DataError
from facenet_mtl.data.pipeline import InputSpec, make_dataset
from facenet_mtl.data.records import read_manifest
from facenet_mtl import tasks
from facenet_mtl.locks import LOCK_NAME, exclusive
from facenet_mtl.models import (output_names_for, set_backbone_trainable, transfer_weights,
                                with_flip_average)
from facenet_mtl.training import callbacks as cb
from facenet_mtl.training.balancing import UncertaintyWeighting, network_of
from facenet_mtl.training.bn_recalibration import recalibrate_batch_norm
from facenet_mtl.training.config import ConfigError
from facenet_mtl.training.evaluate import evaluate_model
from facenet_mtl.training.export import export_model, inference_copy, network_from
from facenet_mtl.training.losses import LabelledLosses, head_losses, head_metrics, output_loss_weights
from facenet_mtl.training.plots import plot_confusions, plot_learning_curves
from facenet_mtl.training.precision import choose_strategy, is_chief, set_precision

log = logging.getLogger(__name__)


def run_dir_for(cfg, runs_dir):
    return Path(runs_dir) / cfg.name


def is_finished(cfg, runs_dir):
    return _read_state(run_dir_for(cfg, runs_dir)).get("finished", False)


def resolve_init(cfg, runs_dir):
    """The model file a finetune starts from: a path, or the named experiment's run."""
    if not cfg.init:
        return None
    candidates = [Path(cfg.init), Path(runs_dir) / cfg.init / "model.keras"]
    for path in candidates:
        if path.is_file() or (path.is_dir() and (path / "saved_model.pb").is_file()):
            return path
    raise ConfigError(cfg.source or cfg.name, "init",
                      f"no model at '{cfg.init}' nor at {candidates[1]}: run the experiment '{cfg.init}' first "
                      f"(facenet-mtl run <its config>) or give a model path")


def input_spec(cfg, datasets=None):
    return InputSpec(
        root=cfg.data.root, datasets=tuple(datasets or cfg.data.datasets), image_size=cfg.model.input_size,
        batch_size=cfg.data.batch_size, mixing=cfg.data.mixing,
        sampling_weights=tuple(sorted(cfg.data.sampling_weights.items())), epoch_size=cfg.data.epoch_size,
        augment=cfg.data.augment, cache=cfg.data.cache, shuffle_buffer=cfg.data.shuffle_buffer,
        age_sigma=cfg.loss.age_sigma, limit=cfg.data.limit, seed=cfg.train.seed,
        partition_seed=cfg.data.partition_seed)


def train(cfg, runs_dir="runs", restart=False, verbose=1, refinish=False):
    """Run (or resume) one experiment; returns its run directory. A finished run is skipped
    (and refused if its config changed), or with `refinish` finished again from its
    checkpoints (exports, metrics) without training. One process at a time writes a run
    directory: another one gets a `FolderInUseError` naming the holder's pid."""
    run_dir = run_dir_for(cfg, runs_dir)
    if not is_chief():  # a multi-worker cluster's other workers never write the run directory
        return _train(cfg, runs_dir, run_dir, restart, verbose, refinish, chief=False)
    created = _first_missing(run_dir)  # what the lock creates, removed again if nothing is written
    with exclusive(run_dir, "run directory"):
        try:
            return _train(cfg, runs_dir, run_dir, restart, verbose, refinish, chief=True)
        except BaseException:
            if created is not None and {p.name for p in run_dir.iterdir()} <= {LOCK_NAME}:
                shutil.rmtree(created, ignore_errors=True)
            raise


def _first_missing(path):
    """The outermost of `path` and its parents that does not exist yet (None if `path` does)."""
    path = Path(path).absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _train(cfg, runs_dir, run_dir, restart, verbose, refinish, chief):
    if restart and chief:
        _clear_run_dir(run_dir)
    state = {} if restart else _read_state(run_dir)
    if state.get("finished") and not refinish:
        _check_same_config(cfg, run_dir, state, finished=True)
        print(f"[{cfg.name}] {run_dir} is finished; skipping it (--refinish finishes it again, --restart "
              "trains it over)")
        return run_dir
    _check_same_config(cfg, run_dir, state)
    init_path = resolve_init(cfg, runs_dir) if cfg.stage == "finetune" else None
    _check_data(cfg)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        if state.get("finished"):  # --refinish: unfinished on disk too until its finish completes
            state["finished"] = False
            _write_json(run_dir / "state.json", state)
        _write_json(run_dir / "config.json", cfg.to_dict())

    keras.utils.set_random_seed(cfg.train.seed)
    policy = set_precision(cfg.train.precision)
    strategy, strategy_kind = choose_strategy(cfg.train.distribute)
    if strategy_kind == "multi_worker" and cfg.loss.balancing != "static":
        raise ConfigError(cfg.source or cfg.name, "loss.balancing",
                          f"'{cfg.loss.balancing}' is not supported by multi-worker training (its custom step "
                          "has static loss weights only); use 'static', or train.distribute = 'mirrored' or 'none'")
    outputs = output_names_for(cfg.model.tasks)
    spec = input_spec(cfg)
    train_ds, steps = make_dataset(spec, cfg.data.train_split, outputs, training=True)
    steps = cfg.train.steps_per_epoch or steps
    valid_sets = _datasets_with_split(cfg, cfg.data.valid_split)
    valid_ds = make_dataset(input_spec(cfg, valid_sets), cfg.data.valid_split, outputs, training=False)[0] \
        if valid_sets else None
    print(f"[{cfg.name}] precision {policy}, strategy {strategy_kind}, {steps} steps/epoch of "
          f"{cfg.data.batch_size}, validation on {', '.join(valid_sets) or 'nothing'}")

    with strategy.scope():
        model = build_network(cfg)
        if init_path is not None and not state.get("epoch"):
            copied = _load_init(model, init_path)
            print(f"[{cfg.name}] initialised {len(copied)} layers from {init_path}")
        model = trained_model(cfg, model)
    if strategy_kind == "multi_worker":
        from facenet_mtl.training.distributed import fit_multi_worker

        fit_multi_worker(cfg, model, strategy, train_ds, steps, run_dir, state)
        if not chief:
            return run_dir  # the chief exports and evaluates
    else:
        _fit_phases(cfg, model, strategy, train_ds, valid_ds, steps, run_dir, state, verbose)
    return finish_run(cfg, model, run_dir)


def build_network(cfg):
    """The functional network `cfg.model` describes (before any training wrapper)."""
    return network_from(cfg.model)


def phases(cfg):
    """[(phase, first_epoch, end_epoch)]: heads-first with the backbone frozen, then all."""
    frozen = min(cfg.train.freeze_backbone_epochs, cfg.train.epochs)
    plan = [("heads", 0, frozen)] if frozen else []
    if frozen < cfg.train.epochs:
        plan.append(("full", frozen, cfg.train.epochs))
    return plan


def trained_model(cfg, network):
    """What `fit` trains: the functional network itself, or with `loss.balancing` "uncertainty"
    an `UncertaintyWeighting` around it that also learns the task weights (build it once per run,
    under the strategy's scope: its log-variances carry over from phase to phase)."""
    if cfg.loss.balancing == "uncertainty":
        task_weights = {t: cfg.loss_weight(t) for t in cfg.model.tasks}
        return UncertaintyWeighting(network, task_weights, cfg.loss.age_l1, cfg.loss.label_smoothing)
    return network


def compile_for_phase(cfg, model, phase):
    """Freeze what the phase and the loss weights say, then compile (trainable takes effect only
    at compile). A task with weight 0 has its head frozen, so nothing changes its weights.
    `model` is what `trained_model` returns; an UncertaintyWeighting computes its own loss."""
    network = network_of(model)
    set_backbone_trainable(network, phase != "heads")
    outputs = [name for name in network.output_names]
    task_weights = {t: cfg.loss_weight(t) for t in cfg.model.tasks}
    for layer in network.layers:
        task = _head_task(layer.name)
        if task:
            layer.trainable = task_weights.get(task, 1.0) > 0 and layer.name != "age"
    static_loss = {} if isinstance(model, UncertaintyWeighting) else dict(
        loss=head_losses(outputs, cfg.loss.label_smoothing),
        loss_weights=output_loss_weights(outputs, task_weights, cfg.loss.age_l1))
    model.compile(optimizer=make_optimizer(cfg.optimizer),
                  weighted_metrics=head_metrics(outputs, cfg.loss.label_smoothing), **static_loss)


def _head_task(layer_name):
    return tasks.task_of_layer(layer_name)


def make_optimizer(opt_cfg):
    kwargs = {"learning_rate": opt_cfg.lr}
    if opt_cfg.clipnorm:
        kwargs["clipnorm"] = opt_cfg.clipnorm
    if opt_cfg.weight_decay:
        kwargs["weight_decay"] = opt_cfg.weight_decay
    if opt_cfg.name == "sgd":
        return keras.optimizers.SGD(momentum=opt_cfg.momentum, **kwargs)
    if opt_cfg.name == "adamw":
        kwargs.setdefault("weight_decay", 1e-4)
        return keras.optimizers.AdamW(**kwargs)
    return keras.optimizers.Adam(**kwargs)


def learning_rate_at(opt_cfg, epoch, epochs):
    """Epoch-level schedule (so a resumed run continues the same curve): warm-up, then decay."""
    if opt_cfg.warmup_epochs and epoch < opt_cfg.warmup_epochs:
        return opt_cfg.lr * (epoch + 1) / (opt_cfg.warmup_epochs + 1)
    if opt_cfg.schedule == "step":
        return opt_cfg.lr * opt_cfg.step_gamma ** (epoch // max(1, opt_cfg.step_every))
    if opt_cfg.schedule == "cosine":
        span = max(1, epochs - opt_cfg.warmup_epochs)
        progress = (epoch - opt_cfg.warmup_epochs) / span
        return opt_cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return opt_cfg.lr


def prepare_phase(cfg, model, phase, run_dir, resume_state=None):
    """Compile `model` for `phase`; when resuming, first restore the checkpoint's weights and
    optimizer state under the phase they were saved in (the optimizer's variables differ)."""
    if resume_state is None:
        compile_for_phase(cfg, model, phase)
        return
    saved_phase = resume_state.get("phase", phase)
    compile_for_phase(cfg, model, saved_phase)
    cb.restore_checkpoint(model, run_dir)
    if saved_phase != phase:
        compile_for_phase(cfg, model, phase)


def _fit_phases(cfg, model, strategy, train_ds, valid_ds, steps, run_dir, state, verbose):
    done = int(state.get("epoch", 0))
    resuming = done > 0
    trim_history(run_dir, done)
    for phase, first, end in phases(cfg):
        if end <= done:
            continue
        with strategy.scope():
            prepare_phase(cfg, model, phase, run_dir, state if resuming else None)
        callbacks = [labelled_losses(cfg, model)] + cb.run_callbacks(cfg, run_dir, phase, learning_rate_at,
                                                                     resumed=done > 0)
        try:
            model.fit(train_ds, epochs=end, initial_epoch=max(first, done), steps_per_epoch=steps,
                      validation_data=valid_ds, callbacks=callbacks, verbose=verbose)
        except KeyboardInterrupt:
            print(f"\ninterrupted: {run_dir} keeps every finished epoch; rerun the same command to resume")
            raise
        resuming = False
        done = int(_read_state(run_dir).get("epoch", end))
        if any(isinstance(c, keras.callbacks.EarlyStopping) and c.stopped_epoch for c in callbacks):
            break


def labelled_losses(cfg, model):
    """The callback that logs each head's loss over its labelled samples and `loss`/`val_loss` as
    their sum under the configured loss weights (`losses.LabelledLosses`)."""
    outputs = network_of(model).output_names
    return LabelledLosses(output_loss_weights(outputs, {t: cfg.loss_weight(t) for t in cfg.model.tasks},
                                              cfg.loss.age_l1))


def trim_history(run_dir, epochs_done):
    """Keep history.csv's rows of the epochs the checkpoint holds: a run killed after an epoch's
    row but before its checkpoint (or in the middle of a row) would otherwise repeat or tear a
    row when it resumes."""
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)

    def epoch_of(line):
        first = line.split(",", 1)[0].strip()
        return int(first) if first.isdigit() else None

    kept = lines[:1] + [line for line in lines[1:] if line.endswith("\n") and epoch_of(line) is not None
                        and epoch_of(line) < epochs_done]
    if kept != lines:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)


def finish_run(cfg, model, run_dir):
    """Best weights → exports, evaluation on valid and test, metrics.json, plots; marks finished.
    `model` is what was trained (`trained_model`); the product is its functional network."""
    # Best epoch by `monitor`, else the last: also when a finished run is finished again (nothing
    # trained in this process, so the model holds fresh weights until restored).
    if not cb.restore_best(model, run_dir):
        cb.restore_last_weights(model, run_dir)
    product = inference_copy(network_of(model), cfg.model)
    started = time.time()
    recalibrated = 0
    if cfg.train.bn_recalibration_batches > 0:
        clean = dataclasses.replace(input_spec(cfg), augment=False)
        batches, _ = make_dataset(clean, cfg.data.train_split, output_names_for(cfg.model.tasks), training=True)
        recalibrated = recalibrate_batch_norm(product, batches, cfg.train.bn_recalibration_batches)
        print(f"[{cfg.name}] BatchNorm statistics recomputed over {recalibrated} clean training batches "
              f"({time.time() - started:.0f}s)")
    if cfg.model.test_time_flip:
        product = with_flip_average(product)
    export_model(product, run_dir)
    started = time.time()
    metrics = {"name": cfg.name, "splits": {}, "epochs": int(_read_state(run_dir).get("epoch", 0)),
               "train_seconds": float(_read_state(run_dir).get("train_seconds", 0.0)),
               "bn_recalibration_batches": recalibrated}
    for split in (cfg.data.valid_split, cfg.data.test_split):
        sets = _datasets_with_split(cfg, split)
        if sets:
            metrics["splits"][split] = evaluate_model(product, cfg.data.root, sets, split,
                                                      limit=cfg.data.limit, partition_seed=cfg.data.partition_seed)
    metrics["eval_seconds"] = round(time.time() - started, 1)
    _write_json(run_dir / "metrics.json", metrics)
    if (run_dir / "history.csv").is_file():
        plot_learning_curves(run_dir / "history.csv", run_dir)
    test = metrics["splits"].get(cfg.data.test_split, {}).get("overall", {})
    plot_confusions(test, run_dir)
    state = _read_state(run_dir)
    state["finished"] = True
    _write_json(run_dir / "state.json", state)
    return run_dir


def _load_init(model, init_path):
    try:
        source = keras.models.load_model(init_path, compile=False)
    except Exception as exc:
        raise DataError(init_path, f"cannot be loaded as a Keras model ({exc})",
                        "give a model.keras / model.h5 written by facenet-mtl") from None
    return transfer_weights(source, model)


def _datasets_with_split(cfg, split):
    return [n for n in cfg.data.datasets if read_manifest(cfg.data.root, n)["splits"].get(split, {}).get("count")]


def _check_data(cfg):
    for name in cfg.data.datasets:
        read_manifest(cfg.data.root, name)  # raises a DataError naming the build command


# Keys a run's config may change without retraining what it holds: more (or fewer) epochs, and
# the finish options, which only `finish_run` reads (a finished run takes them with --refinish).
FINISH_KEYS = ("model.test_time_flip", "train.bn_recalibration_batches")
RESUMABLE_KEYS = ("train.epochs", *FINISH_KEYS)


def _check_same_config(cfg, run_dir, state, finished=False):
    """Refuse a run directory that holds a run of another config: an unfinished one may change
    only `RESUMABLE_KEYS`; a finished one (skipped unless --refinish) may change nothing."""
    saved = run_dir / "config.json"
    if not (state.get("epoch") or finished) or not saved.is_file():
        return
    changes = _config_changes(json.loads(saved.read_text()), json.loads(json.dumps(cfg.to_dict(), default=str)))
    if not finished:
        changes = {k: v for k, v in changes.items() if k not in RESUMABLE_KEYS}
    if not changes:
        return
    shown = "; ".join(f"{key}: {before!r} -> {now!r}" for key, (before, now) in list(changes.items())[:4])
    if finished and set(changes) <= set(RESUMABLE_KEYS):
        raise ConfigError(cfg.source or cfg.name, ", ".join(changes),
                          f"{run_dir} is a finished run, and its config changed ({shown}); its metrics are of the "
                          "old config. Use --refinish to finish it again under the new values (train.epochs: "
                          "training the extra epochs first), or --restart to train it over")
    raise ConfigError(cfg.source or cfg.name, ", ".join(changes),
                      f"{run_dir} holds {'a finished' if finished else 'an unfinished'} run of a different config "
                      f"({shown}); use --restart to start it over, or give the experiment another name")


def _config_changes(before, now, prefix=""):
    """{dotted key: (before, now)} for every value that differs, `source` aside."""
    changes = {}
    for key in sorted(set(before) | set(now)):
        if not prefix and key == "source":
            continue
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict) and not prefix:
            changes.update(_config_changes(old, new, f"{key}."))
        elif old != new:
            changes[prefix + key] = (old, new)
    return changes


def _clear_run_dir(run_dir):
    """--restart: remove everything but the lock this process holds."""
    if not run_dir.is_dir():
        return
    for path in run_dir.iterdir():
        if path.name == LOCK_NAME:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _read_state(run_dir):
    path = Path(run_dir) / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path, data):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)

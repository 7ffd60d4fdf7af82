"""The staged trainer: one function runs a pretrain or finetune experiment into `runs/<name>/`.

    run_dir = train(load_config("experiments/demo/demo-pretrain.toml"))

The run directory and what it holds are `rundir.RunDir`'s; what is trained, phase by phase, is
`plan`'s. Each finished epoch is checkpointed, so an interrupted run loses at most the epoch in
progress and a rerun resumes.
"""
import dataclasses
import logging
import time
from pathlib import Path

import keras
import numpy as np

from facenet_mtl.artifact.loading import load_keras_model
from facenet_mtl.errors import DataError
from facenet_mtl.data.pipeline import InputSpec, make_dataset
from facenet_mtl.training.calibration import calibrate
from facenet_mtl.data.built_dataset import BuiltDataset
from facenet_mtl.models import output_names_for, transfer_weights, with_test_time_views
from facenet_mtl.training import callbacks as cb
from facenet_mtl.training.balancing import network_of
from facenet_mtl.training.bn_recalibration import recalibrate_batch_norm
from facenet_mtl.training.config import ConfigError
from facenet_mtl.training.evaluate import evaluate_model, pooled_predictions
from facenet_mtl.training.export import export_model, inference_copy, run_spec
from facenet_mtl.training.losses import LabelledLosses
from facenet_mtl.training.plan import (build_network, phases_to_train, static_loss_weights, task_options,
                                       trained_model)
from facenet_mtl.training.plots import plot_confusions, plot_learning_curves
from facenet_mtl.training.precision import choose_strategy, is_chief, set_precision
from facenet_mtl.training.rundir import RunDir

log = logging.getLogger(__name__)


def resolve_init(cfg, runs_dir):
    """The model files a finetune starts from, each a path or the named experiment's run: its
    `init`, or the models of its `average`; [] for a pretrain."""
    return [_model_of(cfg, runs_dir, "average" if cfg.average else "init", name) for name in cfg.parents()]


def _model_of(cfg, runs_dir, field_name, name):
    candidates = [Path(name), RunDir(Path(runs_dir) / name).model_file("keras")]
    for path in candidates:
        if path.is_file() or (path.is_dir() and (path / "saved_model.pb").is_file()):
            return path
    raise ConfigError(cfg.source or cfg.name, field_name,
                      f"no model at '{name}' nor at {candidates[1]}: run the experiment '{name}' first "
                      f"(facenet-mtl run <its config>) or give a model path")


def input_spec(cfg, datasets=None):
    return InputSpec(
        root=cfg.data.root, datasets=tuple(datasets or cfg.data.datasets), image_size=cfg.model.input_size,
        batch_size=cfg.data.batch_size, mixing=cfg.data.mixing,
        sampling_weights=tuple(sorted(cfg.data.sampling_weights.items())), epoch_size=cfg.data.epoch_size,
        augment=cfg.data.augment, erasing=cfg.data.erasing, cache=cfg.data.cache, shuffle_buffer=cfg.data.shuffle_buffer,
        task_options=task_options(cfg), limit=cfg.data.limit, seed=cfg.train.seed,
        partition_seed=cfg.data.partition_seed, balance_by=tuple(cfg.data.balance_by),
        balance_power=cfg.data.balance_power, balance_max_repeat=cfg.data.balance_max_repeat,
        teacher=cfg.data.teacher, teacher_weight=cfg.data.teacher_weight)


def train(cfg, runs_dir="runs", restart=False, verbose=1, refinish=False):
    """Run (or resume) one experiment; returns its run directory. A finished run is skipped
    (and refused if its config changed), or with `refinish` finished again from its
    checkpoints (exports, metrics) without training. One process at a time writes a run
    directory: another one gets a `FolderInUseError` naming the holder's pid."""
    run = RunDir.of(cfg, runs_dir)
    if not is_chief():  # a multi-worker cluster's other workers never write the run directory
        return _train(cfg, runs_dir, run, restart, verbose, refinish, chief=False)
    with run.lock():
        return _train(cfg, runs_dir, run, restart, verbose, refinish, chief=True)


def _train(cfg, runs_dir, run, restart, verbose, refinish, chief):
    if restart and chief:
        run.clear()
    state = {} if restart else run.state()
    run.check_config(cfg, state, refinish)
    if state.get("finished") and not refinish:
        log.info(f"[{cfg.name}] {run.path} is finished; skipping it (--refinish finishes it again, --restart "
                 "trains it over)")
        return run.path
    init_paths = resolve_init(cfg, runs_dir)
    built = _open_datasets(cfg)  # a DataError naming the build command for a dataset not built
    check_image_size(cfg, built)
    if chief:
        if state.get("finished"):  # --refinish: unfinished on disk too until its finish completes
            state = run.mark_finished(False)
        run.write_config(cfg)

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
    valid_sets = _datasets_with_split(built, cfg.data.valid_split)
    valid_ds = make_dataset(input_spec(cfg, valid_sets), cfg.data.valid_split, outputs, training=False)[0] \
        if valid_sets else None
    log.info(f"[{cfg.name}] precision {policy}, strategy {strategy_kind}, {steps} steps/epoch of "
             f"{cfg.data.batch_size}, validation on {', '.join(valid_sets) or 'nothing'}")

    with strategy.scope():
        model = build_network(cfg.model)
        if init_paths and not state.get("epoch"):
            copied = _load_init(model, init_paths)
            log.info(f"[{cfg.name}] initialised {len(copied)} layers from "
                     + (f"the average of {', '.join(map(str, init_paths))}" if len(init_paths) > 1 else str(init_paths[0])))
        model = trained_model(cfg, model)
    if strategy_kind == "multi_worker":
        from facenet_mtl.training.distributed import fit_multi_worker

        fit_multi_worker(cfg, model, strategy, train_ds, steps, run, state)
        if not chief:
            return run.path  # the chief exports and evaluates
    else:
        _fit_phases(cfg, model, strategy, train_ds, valid_ds, steps, run, state, verbose)
    return finish_run(cfg, model, run)


def _fit_phases(cfg, model, strategy, train_ds, valid_ds, steps, run, state, verbose):
    run.trim_history(int(state.get("epoch", 0)))
    for phase, first, end in phases_to_train(cfg, model, strategy, run, state):
        callbacks = [labelled_losses(cfg, model)] + cb.run_callbacks(cfg, run, phase, resumed=first > 0)
        try:
            model.fit(train_ds, epochs=end, initial_epoch=first, steps_per_epoch=steps,
                      validation_data=valid_ds, callbacks=callbacks, verbose=verbose)
        except KeyboardInterrupt:
            for callback in callbacks:  # fit ends no callback on an exception: the last epoch's write
                if isinstance(callback, cb.EpochCheckpoint):  # finishes before the run is resumed
                    callback.wait()
            log.warning(f"interrupted: {run.path} keeps every finished epoch; rerun the same command to resume")
            raise
        if any(isinstance(c, keras.callbacks.EarlyStopping) and c.stopped_epoch for c in callbacks):
            break


def labelled_losses(cfg, model):
    """The callback that logs each head's loss over its labelled samples and `loss`/`val_loss` as
    their sum under the configured loss weights (`losses.LabelledLosses`)."""
    return LabelledLosses(static_loss_weights(cfg, network_of(model).output_names))


def finish_run(cfg, model, run):
    """Best weights → exports, evaluation on valid and test, metrics.json, plots; marks finished.
    `model` is what was trained (`trained_model`); the product is its functional network."""
    # Best epoch by `monitor`, else the last: also when a finished run is finished again (nothing
    # trained in this process, so the model holds fresh weights until restored).
    run.restore_weights(model)
    product = inference_copy(network_of(model), cfg.model)
    started = time.time()
    recalibrated = 0
    if cfg.train.bn_recalibration_batches > 0:
        clean = dataclasses.replace(input_spec(cfg), augment=False)
        batches, _ = make_dataset(clean, cfg.data.train_split, output_names_for(cfg.model.tasks), training=True)
        recalibrated = recalibrate_batch_norm(product, batches, cfg.train.bn_recalibration_batches)
        log.info(f"[{cfg.name}] BatchNorm statistics recomputed over {recalibrated} clean training batches "
                 f"({time.time() - started:.0f}s)")
    network = product
    product = with_test_time_views(product, flip=cfg.model.test_time_flip, crops=cfg.model.test_time_crops,
                                   crop_scale=cfg.model.test_time_crop_scale)
    built = _open_datasets(cfg)
    calibration = None
    if cfg.train.calibrate:  # before the export: the files hold the calibrated heads
        before = {split: pooled_predictions(product, built, split, cfg.data.limit, cfg.data.partition_seed)
                  for split in (cfg.data.valid_split, cfg.data.test_split)}
        calibration = calibrate(network, before, cfg.data.valid_split, log=lambda line: log.info(f"[{cfg.name}] {line}"))
    temperatures = (calibration or {}).get("temperatures") or None
    export_model(product, run.path, spec=run_spec(product, cfg, calibration=temperatures))
    started = time.time()
    state = run.state()
    metrics = {"name": cfg.name, "splits": {}, "epochs": int(state.get("epoch", 0)),
               "train_seconds": float(state.get("train_seconds", 0.0)),
               "bn_recalibration_batches": recalibrated}
    if calibration is not None:
        metrics["calibration"] = calibration
    for split in (cfg.data.valid_split, cfg.data.test_split):
        sets = _datasets_with_split(built, split)
        if sets:
            metrics["splits"][split] = evaluate_model(product, cfg.data.root, sets, split, limit=cfg.data.limit,
                                                      partition_seed=cfg.data.partition_seed, built=built)
    for split, figures in (calibration or {}).items():
        if split in metrics["splits"]:  # the folded model's figures: the evaluation's own
            figures["after"] = metrics["splits"][split]["calibration"]["overall"]
    metrics["eval_seconds"] = round(time.time() - started, 1)
    run.write_metrics(metrics)
    if run.history_file.is_file():
        plot_learning_curves(run.history_file, run.path)
    test = metrics["splits"].get(cfg.data.test_split, {}).get("overall", {})
    plot_confusions(test, run.path)
    run.mark_finished()
    return run.path


def _load_init(model, init_paths):
    """Copy the shared layers of the model at each path into `model` (`transfer_weights`); of
    several, their average, weight by weight (every BatchNorm statistic too: a finish with
    `train.bn_recalibration_batches` recomputes those). Returns the names of the layers copied."""
    total, copied = None, None
    for path in init_paths:
        source = load_keras_model(path)  # checked and bounded as every model file; DataError naming the cause
        if not isinstance(source, keras.Model):  # a SavedModel serves, it has no layers to copy
            raise DataError(path, "is a SavedModel, which has no Keras layers to start a finetune from",
                            "give the run's model.keras or model.h5")
        layers = transfer_weights(source, model)
        if copied is not None and layers != copied:
            raise DataError(path, f"shares other layers with the model than {init_paths[0]} does, so the two "
                            "cannot be averaged", "average models of one architecture and the same heads")
        copied = layers
        if len(init_paths) > 1:
            weights = [np.asarray(w, np.float64) for w in model.get_weights()]
            total = weights if total is None else [a + b for a, b in zip(total, weights)]
    if total is not None:
        model.set_weights([(w / len(init_paths)).astype(v.dtype) for w, v in zip(total, model.get_weights())])
    return copied


def check_image_size(cfg, built):
    """A ConfigError when a dataset's records (their manifest's `image_size`) are not the model's
    input size: resizing every record at each read would train on blurred or shrunk faces."""
    for name, dataset in built.items():
        size = dataset.manifest.get("image_size")
        if size is not None and int(size) != cfg.model.input_size:
            raise ConfigError(cfg.source or cfg.name, "model.input_size",
                              f"the model's input is {cfg.model.input_size} px but the '{name}' records under "
                              f"{cfg.data.root} are {size} px; build them again with --image-size "
                              f"{cfg.model.input_size}, or set model.input_size = {size}")


def _open_datasets(cfg):
    """{name: BuiltDataset} of the config's datasets, each manifest read once."""
    return {name: BuiltDataset.open(cfg.data.root, name) for name in cfg.data.datasets}


def _datasets_with_split(built, split):
    return [name for name, dataset in built.items() if dataset.size(split)]

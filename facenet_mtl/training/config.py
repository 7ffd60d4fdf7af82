"""Experiment configs: plain TOML validated once, here, into typed dataclasses.

A config file may name a `base` config (a path relative to itself) whose values it overrides,
so a family of experiments shares one pretrain/finetune description. Any field can be
overridden from the CLI with `--set section.key=value` (value parsed as TOML, else a string),
and `--loss-weights age=1,gender=0.1` sets `loss.weights`. Every value, wherever it came from,
is checked here once, before any work starts (`NUMBER_RULES` and `_validate`); an error names
the file, the override that set the value, and the field.

>>> cfg = parse_config({"name": "x", "model": {"backbone": "compact", "tasks": ["age"]}})
>>> cfg.model.tasks
('age',)
"""
import copy
import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from facenet_mtl import tasks as task_registry
from facenet_mtl.data.balance import GROUPINGS as BALANCE_GROUPINGS
from facenet_mtl.data.schema import DEFAULT_IMAGE_SIZE
from facenet_mtl.training.references import check_reference  # the one schema of published rows

STAGES = ("pretrain", "finetune")
MIXING = ("oversample_to_largest", "weights", "natural")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
BALANCING = ("static", "uncertainty")


# The --help examples name configs under experiments/, which come with the source, not the install.
CONFIG_NOT_FOUND_FIX = ("check the path; the configs in experiments/ come with the facenet-mtl source, not with the "
                        "installed package: run from the source folder (a clone), or give a config of your own")


class ConfigError(ValueError):
    """A config that cannot run: names the file and the field, and says what is allowed."""

    def __init__(self, source, field_name, problem):
        self.source, self.field_name, self.problem = str(source), field_name, problem
        super().__init__(f"{source}: field '{field_name}': {problem}")


@dataclass
class ModelConfig:
    backbone: str = "resnet18"
    input_size: int = DEFAULT_IMAGE_SIZE
    backbone_args: dict = field(default_factory=dict)
    tasks: tuple = ("age", "gender")
    dropout: float = 0.0
    head_units: int = 0
    # The exported model averages its outputs over the image and its mirror (models/flip_average.py).
    # Only the finish uses it: a finished run can be re-exported with it on or off.
    test_time_flip: bool = False
    # With 5, also over its four corner crops of side test_time_crop_scale x the input (multi-crop).
    test_time_crops: int = 1
    test_time_crop_scale: float = 0.9


@dataclass
class DataConfig:
    root: str = "data_out"  # where build-tfrecords wrote OUT/<dataset>/
    datasets: tuple = ()
    mixing: str = "oversample_to_largest"
    sampling_weights: dict = field(default_factory=dict)  # dataset -> weight, for mixing="weights"
    epoch_size: int = 0  # examples per epoch; 0: as the mixing implies
    batch_size: int = 64
    augment: bool = True
    erasing: float = 0.0  # with augment: the share of images given a box of noise (random erasing)
    cache: bool = True
    shuffle_buffer: int = 4096
    train_split: str = "train"
    valid_split: str = "valid"
    test_split: str = "test"
    limit: int = 0  # cap examples per dataset and split (smoke runs); 0: no cap
    # Which train/valid partition: 0 the datasets' own split; N > 0 pools train + valid and
    # re-draws a valid split of the same size with seed N (the study's second AlexNet partition).
    partition_seed: int = 0
    # Group-balanced sampling (facenet_mtl/data/balance.py): the training faces of every dataset
    # that labels all of these groupings ("race", "age_band") are drawn so that each grouping's
    # shares move from natural to natural ** balance_power (0: equal), no cell of faces drawn more
    # than balance_max_repeat times as often as unbalanced; () leaves the mixing as it is.
    balance_by: tuple = ()
    balance_power: float = 0.0
    balance_max_repeat: float = 3.0
    # Self-distillation (facenet_mtl/data/teacher.py): a teacher file (`facenet-mtl teach`, a path
    # relative to the working directory) whose outputs are mixed into every training face's targets
    # at teacher_weight (a labelled face learns (1 - w) label + w teacher, an unlabelled one the
    # teacher at weight w); "" trains on the labels alone.
    teacher: str = ""
    teacher_weight: float = 0.5


@dataclass
class LossConfig:
    weights: dict = field(default_factory=dict)  # task -> loss weight; missing tasks weigh 1
    age_sigma: float = 0.0  # Gaussian label width over age bins; 0 one-hot; <0 use age_std
    age_l1: float = 0.0  # weight of an L1 loss on the expected age
    label_smoothing: float = 0.0
    balancing: str = "static"  # "uncertainty": Kendall et al. 2018 learned task weights


@dataclass
class OptimizerConfig:
    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "step"
    warmup_epochs: int = 0
    step_every: int = 10  # epochs between lr drops, schedule="step"
    step_gamma: float = 0.1
    clipnorm: float = 0.0


@dataclass
class TrainConfig:
    epochs: int = 10
    steps_per_epoch: int = 0  # 0: epoch_size // batch_size
    freeze_backbone_epochs: int = 0  # heads-first: train heads only for this many epochs
    monitor: str = ""  # early stopping / best model metric, e.g. "val_emotion_accuracy"
    patience: int = 0  # 0: no early stopping
    seed: int = 1
    precision: str = "auto"
    distribute: str = "auto"  # auto | none | mirrored | multi_worker
    bn_recalibration_batches: int = 0  # >0: recompute BatchNorm statistics over this many clean
    #                                    training batches before export (training/bn_recalibration.py)
    # Before export, fit a temperature per head on the validation split and fold it into the head's
    # Dense layer (training/calibration.py); metrics.json records ECE / coverage before and after.
    calibrate: bool = False


@dataclass
class ExperimentConfig:
    name: str
    stage: str = "pretrain"
    init: str = ""  # finetune: an experiment name (runs/<init>/) or a model path
    # A finetune from the average of these models' weights instead (a "model soup": experiments
    # or model paths of one architecture, e.g. warm restarts of one model); with train.epochs = 0
    # the average is finished untrained (BatchNorm recomputed, calibrated, evaluated, exported).
    average: tuple = ()
    description: str = ""
    learning_method: str = ""
    # The published row this experiment reproduces, for reports: `model` and metrics.json keys,
    # accuracies in percent as published (see facenet_mtl.training.references).
    reference: dict = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    source: str = ""  # the file it came from

    def to_dict(self):
        return dataclasses.asdict(self)

    def loss_weight(self, task):
        return float(self.loss.weights.get(task, 1.0))

    def parents(self):
        """The experiments (or model paths) a finetune starts from: its `average`, else its `init`."""
        return parents_of(self.to_dict())


def parents_of(config):
    """`ExperimentConfig.parents` of a config as a dict (a run's config.json): a finetune's
    `average`, else its `init`; () for a pretrain."""
    if config.get("stage") != "finetune":
        return ()
    return tuple(config.get("average") or ()) or ((config["init"],) if config.get("init") else ())


# Tables a config replaces whole rather than merging into its base's: each is one distribution
# or one published row, and a key left over from the base would change its meaning.
REPLACED_TABLES = ("weights", "sampling_weights", "reference")

SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "loss": LossConfig,
    "optimizer": OptimizerConfig,
    "train": TrainConfig,
}


def load_config(path, overrides=(), loss_weights=None):
    """Read a TOML experiment (following `base`), apply `section.key=value` overrides and the
    `--loss-weights` text (`age=1,gender=0.1`, merged into `loss.weights`), then validate."""
    path = Path(path)
    raw = _read_with_bases(path, seen=())
    raw.setdefault("name", path.stem)
    origins = {}  # field -> the command-line text that set it, for the error message
    for item in overrides:
        origins[apply_override(raw, item, f"--set {item}")] = f"--set {item}"
    if loss_weights:
        for task, weight in parse_loss_weights(loss_weights, f"{path} (--loss-weights {loss_weights})").items():
            raw.setdefault("loss", {}).setdefault("weights", {})[task] = weight
            origins[f"loss.weights.{task}"] = f"--loss-weights {loss_weights}"
    try:
        return parse_config(raw, source=path)
    except ConfigError as exc:
        field_name = exc.field_name
        origin = next((text for name, text in origins.items() if field_name == name
                       or field_name.startswith(name + ".") or name.startswith(field_name + ".")), None)
        if origin is None:
            raise
        raise ConfigError(f"{path} ({origin})", exc.field_name, exc.problem) from None


def _read_with_bases(path, seen):
    if not path.is_file():
        raise ConfigError(seen[-1] if seen else path, "base" if seen else "path",
                          f"config file not found: {path}\n  fix: {CONFIG_NOT_FOUND_FIX}")
    if path.resolve() in seen:
        raise ConfigError(path, "base", "configs include each other in a loop")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(syntax)", f"not valid TOML: {exc}") from None
    base = raw.pop("base", None)
    _check_keys(raw, path)  # here, so a typo is reported in the file that has it, base or not
    if base is None:
        return raw
    parent = _read_with_bases((path.parent / base), seen + (path.resolve(),))
    parent.pop("name", None)
    return _deep_merge(parent, raw)


def _deep_merge(base, top):
    merged = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in REPLACED_TABLES:
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_override(raw, item, source="command line"):
    """Set `a.b.c=value` in the raw dict; value is parsed as a TOML value when it can be."""
    if "=" not in item:
        raise ConfigError(source, item, "an override must look like section.key=value")
    dotted, text = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    node = raw
    keys = dotted.strip().split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(source, dotted, f"'{key}' is not a section")
    node[keys[-1]] = value
    _check_keys({keys[0]: {keys[1]: value}} if len(keys) > 1 else {keys[0]: value}, source)
    return dotted.strip()


def parse_loss_weights(text, source=None):
    """`age=1,gender=0.1` -> {"age": 1.0, "gender": 0.1}; the values are checked by `_validate`.

    >>> parse_loss_weights("age=1, gender=0.1")
    {'age': 1.0, 'gender': 0.1}
    """
    source = source or f"--loss-weights {text}"
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        task, _, value = (s.strip() for s in part.partition("="))
        if task not in task_registry.names() or not value:
            raise ConfigError(source, part,
                              f"expected task=weight with task one of {', '.join(task_registry.names())}")
        try:
            weights[task] = float(value)
        except ValueError:
            raise ConfigError(source, f"loss.weights.{task}",
                              f"'{value}' is not a number; give a weight >= 0, e.g. {task}=1") from None
    if not weights:
        raise ConfigError(source, "loss.weights", "empty; give task=weight pairs, e.g. age=1,gender=0.1")
    return weights


def parse_config(raw, source="<dict>"):
    raw = dict(raw)
    sections = {}
    for name, cls in SECTIONS.items():
        section = raw.pop(name, {})
        if not isinstance(section, dict):
            raise ConfigError(source, name, "must be a [section] table")
        sections[name] = _build(cls, section, source, prefix=f"{name}.")
    top = _build(ExperimentConfig, {**raw, **sections}, source, prefix="")
    top.source = str(source)
    _validate(top, source)
    return top


def _check_keys(raw, source):
    """Raise on a key no section has, naming it and `source`; values are checked later."""
    sections = {key: value for key, value in raw.items() if key in SECTIONS}
    _reject_unknown(ExperimentConfig, {k: v for k, v in raw.items() if k not in SECTIONS}, source, "")
    for name, section in sections.items():
        if isinstance(section, dict):
            _reject_unknown(SECTIONS[name], section, source, f"{name}.")


def _reject_unknown(cls, values, source, prefix):
    known = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(source, prefix + unknown[0], f"unknown key; allowed here: {', '.join(known)}")


def _build(cls, values, source, prefix):
    known = {f.name: f for f in dataclasses.fields(cls)}
    _reject_unknown(cls, values, source, prefix)
    kwargs = {key: _typed(known[key].type, value, source, prefix + key) for key, value in values.items()}
    for key, f in known.items():  # fields without a default: only the experiment's `name`
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and key not in kwargs:
            raise ConfigError(source, prefix + key, "required: every experiment needs one")
    return cls(**kwargs)


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", dict: "a table", tuple: "a list"}


def _typed(expected, value, source, field_name):
    """`value` as the field's annotated type (list -> tuple, int -> float), or a ConfigError."""
    if isinstance(value, list):
        value = tuple(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is bool and not isinstance(value, bool):
        raise ConfigError(source, field_name, f"must be true or false, got {value!r}")
    if expected in _TYPE_WORDS and (
        not isinstance(value, expected) or (expected in (int, float) and isinstance(value, bool))
    ):
        raise ConfigError(source, field_name, f"expected {_TYPE_WORDS[expected]}, got {value!r}")
    return value


def _choice(source, field_name, value, allowed):
    if value not in allowed:
        raise ConfigError(source, field_name, f"'{value}' is not one of {', '.join(map(str, allowed))}")


# The allowed range of every number in a config (each must also be finite: TOML has nan and inf).
NUMBER_RULES = {
    "model.input_size": ("between 16 and 512", lambda v: 16 <= v <= 512),
    "model.dropout": ("in [0, 1)", lambda v: 0 <= v < 1),
    "model.head_units": (">= 0 (0: no hidden layer)", lambda v: v >= 0),
    "data.epoch_size": (">= 0 (0: as the mixing implies)", lambda v: v >= 0),
    "data.batch_size": (">= 1", lambda v: v >= 1),
    "data.shuffle_buffer": (">= 1", lambda v: v >= 1),
    "data.limit": (">= 0 (0: no cap)", lambda v: v >= 0),
    "data.erasing": ("a share in [0, 1]", lambda v: 0 <= v <= 1),
    "model.test_time_crop_scale": ("a share of the input side in (0, 1)", lambda v: 0 < v < 1),
    "data.partition_seed": ("0 (the datasets' split) or a seed > 0", lambda v: v >= 0),
    "data.balance_power": ("in [0, 1] (0: equal shares, 1: natural)", lambda v: 0 <= v <= 1),
    "data.balance_max_repeat": (">= 1", lambda v: v >= 1),
    "data.teacher_weight": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "loss.age_sigma": ("a finite number (< 0: use each record's age_std)", lambda v: True),
    "loss.age_l1": (">= 0", lambda v: v >= 0),
    "loss.label_smoothing": ("in [0, 1)", lambda v: 0 <= v < 1),
    "optimizer.lr": ("> 0", lambda v: v > 0),
    "optimizer.momentum": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "optimizer.weight_decay": (">= 0", lambda v: v >= 0),
    "optimizer.warmup_epochs": (">= 0", lambda v: v >= 0),
    "optimizer.step_every": (">= 1", lambda v: v >= 1),
    "optimizer.step_gamma": ("> 0", lambda v: v > 0),
    "optimizer.clipnorm": (">= 0 (0: off)", lambda v: v >= 0),
    "train.epochs": (">= 0 (0: an `average` stage finished untrained)", lambda v: v >= 0),
    "train.steps_per_epoch": (">= 0 (0: epoch_size // batch_size)", lambda v: v >= 0),
    "train.freeze_backbone_epochs": (">= 0", lambda v: v >= 0),
    "train.patience": (">= 0 (0: no early stopping)", lambda v: v >= 0),
    "train.seed": ("between 0 and 2**32 - 1", lambda v: 0 <= v < 2**32),
    "train.bn_recalibration_batches": ("a whole number >= 0 (0: off)", lambda v: v >= 0),
}


def _check_numbers(cfg, source):
    for dotted, (allowed, ok) in NUMBER_RULES.items():
        section, name = dotted.split(".")
        value = getattr(getattr(cfg, section), name)
        if not (math.isfinite(value) and ok(value)):
            raise ConfigError(source, dotted, f"must be {allowed}, got {value!r}")


def _check_weights(source, field_name, weights, allowed_keys, what):
    """A {key: weight} table: known keys, finite weights >= 0."""
    for key, weight in weights.items():
        if key not in allowed_keys:
            raise ConfigError(source, field_name, f"'{key}' is not one of {', '.join(allowed_keys)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise ConfigError(source, f"{field_name}.{key}", f"{what} must be a finite number >= 0, got {weight!r}")


def _validate(cfg, source):
    if not isinstance(cfg.name, str) or not cfg.name.strip() or cfg.name in (".", "..") \
            or any(c in cfg.name for c in "/\\"):
        raise ConfigError(source, "name", f"{cfg.name!r} cannot name a run directory: give a name without / or \\")
    _choice(source, "stage", cfg.stage, STAGES)
    _choice(source, "model.test_time_crops", cfg.model.test_time_crops, (1, 5))
    _choice(source, "data.mixing", cfg.data.mixing, MIXING)
    _choice(source, "optimizer.name", cfg.optimizer.name, OPTIMIZERS)
    _choice(source, "optimizer.schedule", cfg.optimizer.schedule, SCHEDULES)
    _choice(source, "train.precision", cfg.train.precision, PRECISIONS)
    _choice(source, "train.distribute", cfg.train.distribute, ("auto", "none", "mirrored", "multi_worker"))
    _choice(source, "loss.balancing", cfg.loss.balancing, BALANCING)
    for grouping in cfg.data.balance_by:
        _choice(source, "data.balance_by", grouping, BALANCE_GROUPINGS)
    _check_numbers(cfg, source)
    if not cfg.model.tasks:
        raise ConfigError(source, "model.tasks", "name at least one task")
    for task in cfg.model.tasks:
        _choice(source, "model.tasks", task, task_registry.names())
    _check_weights(source, "loss.weights", cfg.loss.weights, task_registry.names(), "a loss weight")
    if all(cfg.loss_weight(task) == 0 for task in cfg.model.tasks):
        raise ConfigError(source, "loss.weights", f"every task's weight is 0 ({', '.join(cfg.model.tasks)}): "
                          "nothing would learn; give at least one task a weight > 0")
    _validate_start(cfg, source)
    _validate_reference(cfg.reference, source)
    from facenet_mtl.data.readers import DATASETS

    for name in cfg.data.datasets:
        if name not in DATASETS:
            raise ConfigError(source, "data.datasets", f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    fields = {f for name in cfg.data.datasets for f in DATASETS[name].tasks}  # the label fields they carry
    labelled = {task.name for task in task_registry.TASKS.values() if fields & set(task.label_fields)}
    unlabelled = [task for task in cfg.model.tasks if task not in labelled]
    if cfg.data.datasets and unlabelled:  # a head no example labels would never learn
        raise ConfigError(source, "model.tasks", f"no dataset in data.datasets labels '{unlabelled[0]}'; "
                          f"they label: {', '.join(sorted(labelled))}")
    unknown_weights = set(cfg.data.sampling_weights) - set(cfg.data.datasets)
    if unknown_weights:
        raise ConfigError(source, "data.sampling_weights", f"{sorted(unknown_weights)} not in data.datasets")
    _check_weights(source, "data.sampling_weights", cfg.data.sampling_weights, cfg.data.datasets, "a sampling weight")
    if cfg.data.mixing == "weights" and cfg.data.datasets and \
            all(float(cfg.data.sampling_weights.get(n, 1.0)) == 0 for n in cfg.data.datasets):
        raise ConfigError(source, "data.sampling_weights", "every dataset's weight is 0: nothing would be drawn")
    from facenet_mtl.models.backbones import BACKBONES

    if cfg.model.backbone not in BACKBONES:
        raise ConfigError(source, "model.backbone",
                          f"unknown backbone '{cfg.model.backbone}'; known: {', '.join(sorted(BACKBONES))}")
    smallest = BACKBONES[cfg.model.backbone].min_input_size
    if cfg.model.input_size < smallest:
        raise ConfigError(source, "model.input_size",
                          f"backbone '{cfg.model.backbone}' needs input_size >= {smallest}")


def _validate_start(cfg, source):
    """What a stage starts from: a finetune's `init` or `average` (not both), and 0 epochs only for
    an `average` (nothing else would be trained)."""
    if cfg.average:
        if cfg.stage != "finetune":
            raise ConfigError(source, "average", "only a finetune starts from an average: set stage = \"finetune\"")
        if cfg.init:
            raise ConfigError(source, "init", f"give `init` ('{cfg.init}') or `average`, not both: set init = \"\" "
                              "(a base config's init is inherited)")
        if len(cfg.average) < 2 or not all(isinstance(v, str) and v.strip() for v in cfg.average) \
                or len(set(cfg.average)) != len(cfg.average):
            raise ConfigError(source, "average", f"name two or more different experiments or model paths, "
                              f"got {list(cfg.average)!r}")
    elif cfg.stage == "finetune" and not cfg.init:
        raise ConfigError(source, "init", "a finetune needs `init`: the pretrain experiment or model path "
                          "(or `average`: several)")
    if cfg.train.epochs == 0 and not cfg.average:
        raise ConfigError(source, "train.epochs", "0 epochs trains nothing: give 1 or more (0 only finishes "
                          "an `average` stage untrained)")


def _validate_reference(reference, source):
    if not reference:
        return
    try:
        check_reference(reference)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise ConfigError(source, f"reference.{key}", problem) from None

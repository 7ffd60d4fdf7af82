"""The tasks a face model learns, each defined once: a `Task` owns everything about its head.

A task knows its model outputs (`outputs`; `task_of_output` goes back), how a record's labels
become its training targets and masks (`targets`), its losses and their weights (`losses`,
`loss_weights`), its Keras metrics (`metrics`), its evaluation figures and table columns
(`figures`, `columns`), its prediction and its text (`describe`, `text`) and its plots (one
`curves_<output>.png` per output). Data, models, training and inference ask the registry here,
so a task registered from outside (`register`) is built, trained, evaluated, saved and
predicted like the built-in four. This module imports nothing of the package but the registry
type (keras and TensorFlow only inside the functions that need them), so every layer may import it.

>>> task_of_output("age_probs").name, get("age").outputs
('age', ('age', 'age_probs'))
>>> output_names(("smile", "age"))
('age', 'age_probs', 'smile')
>>> with registered(Task("hair", "binary", ("short", "long"))):
...     names()
('age', 'gender', 'emotion', 'smile', 'hair')
"""
import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Optional

import numpy as np

from facenet_mtl.registry import Registry

MISSING = -1  # the "no label" value for every label field and task, float or int
AGE_BINS = 101  # DEX: ages 0..100, one softmax bin per year
MAX_AGE = AGE_BINS - 1
# FER2013 label order (the ids in fer2013.csv).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDERS = ("female", "male")  # gender 0 female, 1 male
SMILES = ("no_smile", "smile")
KINDS = ("age", "binary", "categorical")
AGE_OUTPUTS = ("age", "age_probs")  # the expectation, then the bins it is computed from
REDUCTION = "mean_with_sample_weight"  # divide by the weights' sum: masked samples don't dilute
AGE_RANGE = (0.1, 0.9)  # the percentiles of the age bins' distribution that `age_range` reports


@dataclass(frozen=True)
class Task:
    """One prediction task and everything about it.

    kind: "age" (DEX bins + their expectation), "binary" (a sigmoid over `classes[1]`) or
    "categorical" (a softmax over `classes`). `label` maps a record's labels (a dict of label
    fields: tf tensors in the input pipeline, numpy arrays in evaluation) to the task's class
    index, `MISSING` where unknown; None reads the field named like the task. `fields` are the
    label fields it reads (None: its own name; a dataset labels the task when it carries one of
    them). Tasks with the same `line` share one line of a face's label text; `text` overrides
    how a prediction reads there.
    """

    name: str
    kind: str
    classes: tuple = ()
    label: Optional[Callable] = None
    fields: Optional[tuple] = None
    line: str = ""
    text_of: Optional[Callable] = None  # (prediction, probabilities) -> str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task '{self.name}': unknown kind '{self.kind}'; known: {', '.join(KINDS)}")
        if self.kind == "binary" and len(self.classes) != 2:
            raise ValueError(f"binary task '{self.name}' needs 2 classes, got {self.classes}")
        if self.kind == "categorical" and len(self.classes) < 2:
            raise ValueError(f"categorical task '{self.name}' needs at least 2 classes, got {self.classes}")

    # --- model ---------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return AGE_BINS if self.kind == "age" else len(self.classes)

    @property
    def outputs(self) -> tuple:
        """Its output names, in a fixed order: age's expectation and bins, else the task's name."""
        return AGE_OUTPUTS if self.kind == "age" else (self.name,)

    @property
    def label_fields(self) -> tuple:
        if self.fields is not None:
            return tuple(self.fields)
        return ("age", "age_min", "age_max") if self.kind == "age" else (self.name,)

    def output_descriptions(self) -> dict:
        """{output name: what its values are}, for an exported model's metadata."""
        if self.kind == "age":
            return {"age": f"years: the expectation of age_probs over {AGE_BINS} one-year bins (0..{MAX_AGE})",
                    "age_probs": f"softmax over ages 0..{MAX_AGE}"}
        if self.kind == "binary":
            return {self.name: f"sigmoid: P({self.classes[1]})"}
        return {self.name: f"softmax over the {self.name} labels"}

    # --- labels --------------------------------------------------------------------------------

    def values(self, labels):
        """The task's label per example (`MISSING` where unknown), from record label fields."""
        return self.label(labels) if self.label is not None else labels[self.name]

    def targets(self, example, age_sigma=0.0):
        """A decoded example -> ({output: target}, {output: weight}); weight 0 where unlabelled."""
        import tensorflow as tf

        raw = self.values(example)
        known = tf.not_equal(raw, tf.cast(MISSING, raw.dtype))
        value = tf.where(known, raw, tf.zeros_like(raw))
        weight = tf.cast(known, tf.float32)
        if self.kind == "age":
            return _age_targets(example, value, known, weight, age_sigma)
        if self.kind == "categorical":
            return {self.name: tf.one_hot(tf.cast(value, tf.int32), self.num_classes)}, {self.name: weight}
        return {self.name: tf.expand_dims(tf.cast(value, tf.float32), -1)}, {self.name: weight}

    # --- training ------------------------------------------------------------------------------

    def losses(self, label_smoothing=0.0) -> dict:
        """{output: Keras loss}, each the mean over the labelled samples (`REDUCTION`)."""
        import keras

        if self.kind == "age":
            return {"age": keras.losses.MeanAbsoluteError(reduction=REDUCTION, name="age_l1"),
                    "age_probs": age_bin_loss()}
        if self.kind == "categorical":
            return {self.name: keras.losses.CategoricalCrossentropy(
                label_smoothing=label_smoothing, reduction=REDUCTION, name=f"{self.name}_ce")}
        return {self.name: keras.losses.BinaryCrossentropy(reduction=REDUCTION, name=f"{self.name}_bce")}

    def loss_weights(self, weight, age_l1=0.0) -> dict:
        """{output: loss weight}: the task's weight; age's L1 on the expectation `age_l1` times it."""
        weight = float(weight)
        if self.kind == "age":
            return {"age": weight * float(age_l1), "age_probs": weight}
        return {self.name: weight}

    def metrics(self) -> dict:
        """{output: [Keras metrics]}, masked as `weighted_metrics`."""
        import keras

        if self.kind == "age":
            return {"age": [keras.metrics.MeanAbsoluteError(name="mae")], "age_probs": []}
        if self.kind == "categorical":
            return {self.name: [keras.metrics.CategoricalAccuracy(name="accuracy")]}
        return {self.name: [keras.metrics.BinaryAccuracy(name="accuracy")]}

    # --- evaluation ----------------------------------------------------------------------------

    def figures(self, preds, labels) -> dict:
        """Evaluation figures over the labelled examples (numpy predictions by output, labels by
        field); {} when the model has no such head or no example is labelled."""
        if self.outputs[0] not in preds:
            return {}
        if self.kind == "age":
            return _age_figures(preds, labels)
        truth = np.asarray(self.values(labels))
        known = truth != MISSING
        if not known.any():
            return {}
        truth = truth[known].astype(np.int64)
        if self.kind == "binary":
            guess = (preds[self.name].reshape(-1)[known] >= 0.5).astype(np.int64)
            return {f"{self.name}_acc": float(np.mean(guess == truth)), f"{self.name}_n": int(known.sum())}
        guess = preds[self.name][known].argmax(-1)
        confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        np.add.at(confusion, (truth, guess), 1)
        return {f"{self.name}_acc": float(np.mean(guess == truth)), f"{self.name}_n": int(known.sum()),
                f"{self.name}_confusion": confusion.tolist()}

    def columns(self, by_group=False) -> list:
        """[(figure key, column title, format)] of its figures in evaluation tables."""
        if self.kind == "age":
            columns = [("age_mae", "Age MAE", "{:.2f}"), ("age_group_acc", "Age group %", "{:.2%}")]
            return columns if by_group else columns + [("age_eps", "Age eps", "{:.3f}")]
        return [(f"{self.name}_acc", f"{self.name.replace('_', ' ').capitalize()} %", "{:.2%}")]

    # --- prediction ----------------------------------------------------------------------------

    def describe(self, out):
        """One face's outputs (numpy, by output name) -> the task's prediction; None without its head."""
        if self.kind == "age":
            if "age" in out:
                return round(float(out["age"].reshape(-1)[0]), 1)
            if "age_probs" in out:  # DEX: the expected age under the 101 one-year bins
                return round(float(out["age_probs"].reshape(-1) @ np.arange(AGE_BINS)), 1)
            return None
        if self.name not in out:
            return None
        if self.kind == "binary":
            p = float(out[self.name].reshape(-1)[0])  # P(classes[1])
            label = int(p >= 0.5)
            return {"label": self.classes[label], "probability": round(p if label else 1 - p, 4)}
        probs = out[self.name].reshape(-1)
        return {"label": self.classes[int(probs.argmax())],
                "probabilities": {name: round(float(p), 4) for name, p in zip(self.classes, probs)}}

    def readout(self, out) -> dict:
        """One face's outputs -> {result key: value}: the task's prediction under its name and, for
        age with its bins, `age_range` (the 80 % interval of the bins' distribution); {} without its head."""
        prediction = self.describe(out)
        if prediction is None:
            return {}
        if self.kind == "age" and "age_probs" in out:
            return {self.name: prediction, "age_range": age_range(out["age_probs"].reshape(-1))}
        return {self.name: prediction}

    def csv_columns(self) -> list:
        """The columns of its prediction in `predict --format csv`."""
        if self.kind == "age":
            return [self.name, "age_range_low", "age_range_high"]
        if self.kind == "binary":
            return [self.name, f"{self.name}_probability"]
        return [self.name] + [f"{self.name}_{label}" for label in self.classes]

    def csv_cells(self, face) -> dict:
        """{column: value} of its prediction in one face's result ({} when the face has none)."""
        if self.name not in face:
            return {}
        prediction = face[self.name]
        if self.kind == "age":
            low, high = face.get("age_range", ("", ""))
            return {self.name: prediction, "age_range_low": low, "age_range_high": high}
        if self.kind == "binary":
            return {self.name: prediction["label"], f"{self.name}_probability": prediction["probability"]}
        return {self.name: prediction["label"],
                **{f"{self.name}_{k}": v for k, v in prediction["probabilities"].items()}}

    def text(self, prediction, probabilities=True) -> str:
        """The short text of its prediction in a face's label, e.g. "34y", "happy 0.81"."""
        if self.text_of is not None:
            return self.text_of(prediction, probabilities)
        if self.kind == "age":
            return f"{max(prediction, 0):.0f}y"
        label = prediction["label"]
        p = prediction.get("probability", prediction.get("probabilities", {}).get(label))
        text = label.replace("_", " ")
        return f"{text} {p:.2f}" if probabilities and p is not None else text

    @property
    def plot_names(self) -> tuple:
        """The learning-curve files of its outputs."""
        return tuple(f"curves_{output}.png" for output in self.outputs)


def age_range(probs, percentiles=AGE_RANGE) -> list:
    """[low, high] years: the `percentiles` of the distribution `probs` over the one-year age bins,
    each the first bin where the cumulative probability reaches it.

    >>> age_range(np.eye(AGE_BINS)[30])
    [30, 30]
    """
    cdf = np.cumsum(np.asarray(probs, np.float64))
    cdf = cdf / max(cdf[-1], 1e-12)
    return [int(min(np.searchsorted(cdf, q - 1e-9), MAX_AGE)) for q in percentiles]


def _age_targets(example, value, known, weight, age_sigma):
    """Age's targets: the expectation's L1 sees years only; the bins also age groups (FairFace),
    as `[age, sigma, age_min, age_max]` with bounds -1 for a year (`age_bin_crossentropy`)."""
    import tensorflow as tf

    sigma = tf.fill(tf.shape(value), tf.cast(age_sigma, tf.float32))
    if age_sigma < 0:
        std = example["age_std"]
        sigma = tf.where(tf.greater(std, 0), std, tf.ones_like(std))
    age_min = example.get("age_min", tf.fill(tf.shape(value), tf.cast(MISSING, tf.float32)))
    age_max = example.get("age_max", age_min)
    group = tf.logical_and(tf.logical_not(known), tf.not_equal(age_min, MISSING))
    low = tf.where(group, age_min, -tf.ones_like(age_min))
    high = tf.where(group, age_max, -tf.ones_like(age_max))
    targets = {"age": tf.reshape(tf.cast(value, tf.float32), (1,)),
               "age_probs": tf.stack([tf.clip_by_value(tf.cast(value, tf.float32), 0, MAX_AGE), sigma,
                                      low, high], axis=-1)}
    return targets, {"age": weight, "age_probs": tf.cast(tf.logical_or(known, group), tf.float32)}


def _age_figures(preds, labels):
    result = {}
    age = labels["age"]
    known = age != MISSING
    if known.any():
        est = preds["age"].reshape(-1)[known]
        result["age_mae"] = float(np.mean(np.abs(est - age[known])))
        result["age_n"] = int(known.sum())
    grouped = (age == MISSING) & (labels.get("age_min", np.full_like(age, MISSING)) != MISSING)
    if grouped.any():  # an age group (FairFace): right when the expected age rounds into it
        est = np.round(preds["age"].reshape(-1)[grouped])
        low, high = labels["age_min"][grouped], labels["age_max"][grouped]
        result["age_group_acc"] = float(np.mean((est >= low) & (est <= high)))
        result["age_group_n"] = int(grouped.sum())
        sigma_known = known & (labels["age_std"] > 0)
        if sigma_known.any():
            # ChaLearn LAP 2016 epsilon-error: 1 - exp(-(x - mu)^2 / (2 sigma^2)).
            x = preds["age"].reshape(-1)[sigma_known]
            mu, sigma = age[sigma_known], labels["age_std"][sigma_known]
            result["age_eps"] = float(np.mean(1 - np.exp(-((x - mu) ** 2) / (2 * sigma**2))))
    return result


# --- the age bins' loss -------------------------------------------------------------------------

def age_bin_crossentropy(y_true, y_pred):
    """DEX age loss per sample: cross-entropy between the 101-bin softmax and the age target.

    y_true is `[age, sigma]` or `[age, sigma, age_min, age_max]` per sample: sigma 0 gives a
    one-hot bin at round(age); sigma > 0 a Gaussian label distribution over the bins (ChaLearn's
    apparent-age sigma, or a fixed width). A sample with `age_min >= 0` is an age group (FairFace):
    its loss is -log of the probability mass inside [age_min, age_max], the interval likelihood,
    so a group is never turned into a made-up year.
    """
    from keras import ops

    y_true = ops.cast(y_true, "float32")
    age, sigma = y_true[:, 0:1], y_true[:, 1:2]
    bins = ops.cast(ops.arange(AGE_BINS), "float32")[None, :]
    one_hot = ops.cast(ops.equal(bins, ops.round(age)), "float32")
    safe_sigma = ops.maximum(sigma, 1e-3)
    gaussian = ops.exp(-ops.square(bins - age) / (2.0 * ops.square(safe_sigma)))
    gaussian = gaussian / ops.maximum(ops.sum(gaussian, axis=-1, keepdims=True), 1e-7)
    target = ops.where(sigma > 0, gaussian, one_hot)
    probs = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)
    point_loss = -ops.sum(target * ops.log(probs), axis=-1)
    if y_true.shape[-1] is None or y_true.shape[-1] < 4:
        return point_loss
    low, high = y_true[:, 2:3], y_true[:, 3:4]
    inside = ops.cast((bins >= low) & (bins <= high), "float32")
    interval_loss = -ops.log(ops.clip(ops.sum(inside * probs, axis=-1), 1e-7, 1.0))
    return ops.where(low[:, 0] >= 0, interval_loss, point_loss)


def age_bin_loss(name="age_bin_crossentropy", reduction=REDUCTION):
    """`age_bin_crossentropy` as a Keras loss (an `age_bin_loss_class()` instance)."""
    return age_bin_loss_class()(name=name, reduction=reduction)


@functools.cache
def age_bin_loss_class():
    """The Keras loss class of `age_bin_crossentropy`, defined on first use (keras loads late)."""
    import keras

    class AgeBinCrossEntropy(keras.losses.Loss):
        __doc__ = age_bin_crossentropy.__doc__

        def __init__(self, name="age_bin_crossentropy", reduction=REDUCTION):
            super().__init__(name=name, reduction=reduction)

        def call(self, y_true, y_pred):
            return age_bin_crossentropy(y_true, y_pred)

    return AgeBinCrossEntropy


# --- the registry -------------------------------------------------------------------------------

def _gender_text(prediction, probabilities=True):
    """ "M 0.97": the initial, always with its probability (it shares the age's line)."""
    return f"{prediction['label'][0].upper()} {prediction['probability']:.2f}"


BUILTIN = (
    Task("age", "age", line="person"),
    Task("gender", "binary", GENDERS, line="person", text_of=_gender_text),
    Task("emotion", "categorical", EMOTIONS),
    Task("smile", "binary", SMILES),
)
TASKS = Registry("task")  # the registry, in order; use register()
for _task in BUILTIN:
    TASKS.add(_task.name, _task)
BUILTIN_NAMES = tuple(task.name for task in BUILTIN)


def register(task: Task, replace=False) -> Task:
    """Add `task` to the registry (after those there); its outputs must be new."""
    if task.name in TASKS and not replace:
        raise ValueError(f"task '{task.name}' is already registered")
    taken = {output: other.name for other in TASKS.values() if other.name != task.name for output in other.outputs}
    clash = [output for output in task.outputs if output in taken]
    if clash:
        raise ValueError(f"task '{task.name}': output '{clash[0]}' belongs to task '{taken[clash[0]]}'")
    return TASKS.add(task.name, task, replace=True)


def unregister(name: str) -> Task:
    """Remove a registered task (the built-in ones stay)."""
    if name in BUILTIN_NAMES:
        raise ValueError(f"task '{name}' is built in and cannot be removed")
    get(name)
    return TASKS.pop(name)


@contextlib.contextmanager
def registered(task: Task) -> Iterator[Task]:
    """`task` registered for the duration of a `with` block (tests, experiments)."""
    register(task)
    try:
        yield task
    finally:
        TASKS.pop(task.name, None)


def names() -> tuple:
    """The registered task names, built-in first, in the order every layer lists tasks."""
    return tuple(TASKS)


def get(name: str) -> Task:
    return TASKS.lookup(name)


def ordered(task_names) -> tuple:
    """`task_names` validated (ValueError naming an unknown one), deduplicated, in registry order."""
    task_names = (task_names,) if isinstance(task_names, str) else tuple(task_names)
    for name in task_names:
        get(name)
    return tuple(name for name in TASKS if name in task_names)


def outputs_of(name: str) -> tuple:
    """Task name -> its output names."""
    return get(name).outputs


def output_names(task_names) -> tuple:
    """The output names of `task_names`, in registry order (age, age_probs, gender, ...)."""
    return tuple(output for name in ordered(task_names) for output in get(name).outputs)


def all_outputs() -> tuple:
    return tuple(output for task in TASKS.values() for output in task.outputs)


def task_of_output(output: str) -> Task:
    """Output name -> the task that produces it (ValueError for an output no task has)."""
    for task in TASKS.values():
        if output in task.outputs:
            return task
    raise ValueError(f"no task has an output '{output}'; outputs: {', '.join(all_outputs())}")


def tasks_of_outputs(outputs) -> tuple:
    """The names of the tasks all of whose outputs are in `outputs`, in registry order."""
    present = set(outputs)
    return tuple(task.name for task in TASKS.values() if set(task.outputs) <= present)


def task_of_layer(layer_name: str) -> Optional[str]:
    """The task a head layer belongs to (its output layer `<task>`, or `<task>_...`), else None;
    the longest matching name wins (`age_group_hidden` is age_group's, not age's)."""
    owners = [task for task in TASKS.values()
              if any(layer_name == o or layer_name.startswith(f"{o}_") for o in (task.name, *task.outputs))]
    return max(owners, key=lambda t: len(t.name)).name if owners else None


def output_of_key(key: str, outputs=None) -> Optional[str]:
    """The output a history key such as "age_probs_loss" is about (the longest output name it
    starts with), else None."""
    owners = [o for o in (outputs or all_outputs()) if key.startswith(f"{o}_")]
    return max(owners, key=len) if owners else None


def losses_for(outputs, label_smoothing=0.0) -> dict:
    """{output: loss} for a model's outputs."""
    found = {}
    for output in outputs:
        found[output] = task_of_output(output).losses(label_smoothing)[output]
    return found


def metrics_for(outputs) -> dict:
    return {output: task_of_output(output).metrics()[output] for output in outputs}


def loss_weights_for(outputs, task_weights: Mapping, age_l1=0.0) -> dict:
    """{output: weight} from {task: weight} (a missing task weighs 1)."""
    weights = {}
    for output in outputs:
        task = task_of_output(output)
        weights[output] = task.loss_weights(task_weights.get(task.name, 1.0), age_l1)[output]
    return weights

"""The kinds of task, each a class that owns what its heads are: the head's layers, how a
record's labels become its targets and masks, its losses and their weights, its Keras metrics,
its evaluation figures and table columns, its prediction, CSV cells and text. A kind's options
are its own fields (`AgeKind(sigma=2.0, l1=0.1)`), set from the config by `options_from`.

- `AgeKind` (DEX, Rothe et al. 2015): a softmax over `AGE_BINS` one-year bins ("age_probs") and
  their expectation ("age"); `sigma` the Gaussian label width over the bins (0 one-hot, < 0 each
  record's `age_std`), `l1` the weight of an L1 loss on the expectation, relative to the task's.
- `BinaryKind`: one sigmoid unit, P(classes[1]), named after the task.
- `CategoricalKind`: a softmax over the task's classes, named after the task.

A `facenet_mtl.tasks.Task` holds its kind and asks it; this module imports nothing of the package
(keras and TensorFlow only inside the methods that need them).

>>> AgeKind(sigma=2.0).outputs(None), KINDS["binary"]().name
(('age', 'age_probs'), 'binary')
"""
import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

MISSING = -1  # the "no label" value for every label field and task, float or int
AGE_BINS = 101  # DEX: ages 0..100, one softmax bin per year
MAX_AGE = AGE_BINS - 1
AGE_OUTPUTS = ("age", "age_probs")  # the expectation, then the bins it is computed from
REDUCTION = "mean_with_sample_weight"  # divide by the weights' sum: masked samples don't dilute
AGE_RANGE = (0.1, 0.9)  # the percentiles of the age bins' distribution that `age_range` reports
DTYPE = "float32"  # every head layer's, so outputs and losses stay float32 under mixed precision


class Kind:
    """What every kind answers about a task (`task`: the `Task` asking)."""

    name: ClassVar[str] = ""

    def check(self, task):
        """ValueError when `task` cannot be of this kind."""

    def options_from(self, loss_config) -> dict:
        """This kind's options from a config's `loss` section ({} for a kind without options)."""
        return {}

    # --- model ---------------------------------------------------------------------------------

    def num_classes(self, task) -> int:
        return len(task.classes)

    def outputs(self, task) -> tuple:
        return (task.name,)

    def label_fields(self, task) -> tuple:
        return (task.name,)

    def head(self, task, features, units=0, dropout=0.0) -> dict:
        """{output: tensor}: the task's head on a pooled feature tensor."""
        import keras

        x = hidden(features, task.name, units, dropout)
        return {task.name: keras.layers.Dense(self._units(task), activation=self.activation, name=task.name,
                                              dtype=DTYPE)(x)}

    # --- training ------------------------------------------------------------------------------

    def targets(self, task, example, value, known, weight):
        raise NotImplementedError

    def loss_weights(self, task, weight) -> dict:
        return {task.name: float(weight)}

    def frozen_layers(self, task) -> tuple:
        """Head layers that hold fixed weights and never train."""
        return ()

    # --- prediction ----------------------------------------------------------------------------

    def readout(self, task, out) -> dict:
        prediction = self.describe(task, out)
        return {} if prediction is None else {task.name: prediction}

    def text(self, task, prediction, probabilities=True) -> str:
        label = prediction["label"]
        p = prediction.get("probability", prediction.get("probabilities", {}).get(label))
        text = label.replace("_", " ")
        return f"{text} {p:.2f}" if probabilities and p is not None else text

    def columns(self, task, by_group=False) -> list:
        return [(f"{task.name}_acc", f"{task.name.replace('_', ' ').capitalize()} %", "{:.2%}")]


def hidden(features, name, units, dropout):
    """`units > 0`: a hidden Dense + ReLU (`<name>_hidden`) and, with `dropout`, a Dropout
    (`<name>_hidden_dropout`) between the features and a head's output layer."""
    if not units:
        return features
    import keras

    x = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden", dtype=DTYPE)(features)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_hidden_dropout", dtype=DTYPE)(x)
    return x


def _class_figures(task, preds, labels):
    """(truth, known, guess-input) of a class task's labelled examples, or None."""
    truth = np.asarray(task.values(labels))
    known = truth != MISSING
    if not known.any():
        return None
    return truth[known].astype(np.int64), known


@dataclass(frozen=True)
class BinaryKind(Kind):
    """A sigmoid over `classes[1]`."""

    name: ClassVar[str] = "binary"
    activation: ClassVar[str] = "sigmoid"

    def check(self, task):
        if len(task.classes) != 2:
            raise ValueError(f"binary task '{task.name}' needs 2 classes, got {task.classes}")

    def _units(self, task):
        return 1

    def output_descriptions(self, task) -> dict:
        return {task.name: f"sigmoid: P({task.classes[1]})"}

    def targets(self, task, example, value, known, weight):
        import tensorflow as tf

        return {task.name: tf.expand_dims(tf.cast(value, tf.float32), -1)}, {task.name: weight}

    def losses(self, task, label_smoothing=0.0) -> dict:
        import keras

        return {task.name: keras.losses.BinaryCrossentropy(reduction=REDUCTION, name=f"{task.name}_bce")}

    def metrics(self, task) -> dict:
        import keras

        return {task.name: [keras.metrics.BinaryAccuracy(name="accuracy")]}

    def figures(self, task, preds, labels) -> dict:
        found = _class_figures(task, preds, labels)
        if found is None:
            return {}
        truth, known = found
        guess = (preds[task.name].reshape(-1)[known] >= 0.5).astype(np.int64)
        return {f"{task.name}_acc": float(np.mean(guess == truth)), f"{task.name}_n": int(known.sum())}

    def describe(self, task, out):
        if task.name not in out:
            return None
        p = float(out[task.name].reshape(-1)[0])  # P(classes[1])
        label = int(p >= 0.5)
        return {"label": task.classes[label], "probability": round(p if label else 1 - p, 4)}

    def csv_columns(self, task) -> list:
        return [task.name, f"{task.name}_probability"]

    def csv_cells(self, task, prediction, face) -> dict:
        return {task.name: prediction["label"], f"{task.name}_probability": prediction["probability"]}


@dataclass(frozen=True)
class CategoricalKind(Kind):
    """A softmax over `classes` (at least two)."""

    name: ClassVar[str] = "categorical"
    activation: ClassVar[str] = "softmax"

    def check(self, task):
        if len(task.classes) < 2:
            raise ValueError(f"categorical task '{task.name}' needs at least 2 classes, got {task.classes}")

    def _units(self, task):
        return len(task.classes)

    def output_descriptions(self, task) -> dict:
        return {task.name: f"softmax over the {task.name} labels"}

    def targets(self, task, example, value, known, weight):
        import tensorflow as tf

        return {task.name: tf.one_hot(tf.cast(value, tf.int32), self.num_classes(task))}, {task.name: weight}

    def losses(self, task, label_smoothing=0.0) -> dict:
        import keras

        return {task.name: keras.losses.CategoricalCrossentropy(
            label_smoothing=label_smoothing, reduction=REDUCTION, name=f"{task.name}_ce")}

    def metrics(self, task) -> dict:
        import keras

        return {task.name: [keras.metrics.CategoricalAccuracy(name="accuracy")]}

    def figures(self, task, preds, labels) -> dict:
        found = _class_figures(task, preds, labels)
        if found is None:
            return {}
        truth, known = found
        n = self.num_classes(task)
        guess = preds[task.name][known].argmax(-1)
        confusion = np.zeros((n, n), np.int64)
        np.add.at(confusion, (truth, guess), 1)
        return {f"{task.name}_acc": float(np.mean(guess == truth)), f"{task.name}_n": int(known.sum()),
                f"{task.name}_confusion": confusion.tolist()}

    def describe(self, task, out):
        if task.name not in out:
            return None
        probs = out[task.name].reshape(-1)
        return {"label": task.classes[int(probs.argmax())],
                "probabilities": {name: round(float(p), 4) for name, p in zip(task.classes, probs)}}

    def csv_columns(self, task) -> list:
        return [task.name] + [f"{task.name}_{label}" for label in task.classes]

    def csv_cells(self, task, prediction, face) -> dict:
        return {task.name: prediction["label"],
                **{f"{task.name}_{k}": v for k, v in prediction["probabilities"].items()}}


@dataclass(frozen=True)
class AgeKind(Kind):
    """DEX age: 101 one-year bins and their expectation; `sigma` and `l1` as the module says."""

    name: ClassVar[str] = "age"
    sigma: float = 0.0
    l1: float = 0.0
    CONFIG: ClassVar[dict] = {"sigma": "age_sigma", "l1": "age_l1"}  # option -> the loss config key

    def options_from(self, loss_config) -> dict:
        return {option: float(getattr(loss_config, key)) for option, key in self.CONFIG.items()}

    def num_classes(self, task) -> int:
        return AGE_BINS

    def outputs(self, task) -> tuple:
        return AGE_OUTPUTS

    def label_fields(self, task) -> tuple:
        return ("age", "age_min", "age_max")

    def head(self, task, features, units=0, dropout=0.0) -> dict:
        import keras

        expectation_name, bins_name = AGE_OUTPUTS
        x = hidden(features, expectation_name, units, dropout)
        probs = keras.layers.Dense(AGE_BINS, activation="softmax", name=bins_name, dtype=DTYPE)(x)
        expectation = keras.layers.Dense(1, use_bias=False, trainable=False, name=expectation_name, dtype=DTYPE)
        age = expectation(probs)
        set_expectation_kernel(expectation)  # built by the call above
        return {expectation_name: age, bins_name: probs}

    def frozen_layers(self, task) -> tuple:
        return AGE_OUTPUTS[:1]  # the expectation's kernel is the bin ages

    def output_descriptions(self, task) -> dict:
        return {"age": f"years: the expectation of age_probs over {AGE_BINS} one-year bins (0..{MAX_AGE})",
                "age_probs": f"softmax over ages 0..{MAX_AGE}"}

    def targets(self, task, example, value, known, weight):
        return _age_targets(example, value, known, weight, self.sigma)

    def losses(self, task, label_smoothing=0.0) -> dict:
        import keras

        return {"age": keras.losses.MeanAbsoluteError(reduction=REDUCTION, name="age_l1"),
                "age_probs": age_bin_loss()}

    def loss_weights(self, task, weight) -> dict:
        """The task's weight on the bins' loss; `l1` times it on the expectation's L1."""
        weight = float(weight)
        return {"age": weight * float(self.l1), "age_probs": weight}

    def metrics(self, task) -> dict:
        import keras

        return {"age": [keras.metrics.MeanAbsoluteError(name="mae")], "age_probs": []}

    def figures(self, task, preds, labels) -> dict:
        return _age_figures(preds, labels)

    def columns(self, task, by_group=False) -> list:
        columns = [("age_mae", "Age MAE", "{:.2f}"), ("age_group_acc", "Age group %", "{:.2%}")]
        return columns if by_group else columns + [("age_eps", "Age eps", "{:.3f}")]

    def describe(self, task, out):
        if "age" in out:
            return round(float(out["age"].reshape(-1)[0]), 1)
        if "age_probs" in out:  # DEX: the expected age under the 101 one-year bins
            return round(float(out["age_probs"].reshape(-1) @ np.arange(AGE_BINS)), 1)
        return None

    def readout(self, task, out) -> dict:
        """The age and, with its bins, `age_range`: the 80 % interval of their distribution."""
        prediction = self.describe(task, out)
        if prediction is None:
            return {}
        if "age_probs" in out:
            return {task.name: prediction, "age_range": age_range(out["age_probs"].reshape(-1))}
        return {task.name: prediction}

    def csv_columns(self, task) -> list:
        return [task.name, "age_range_low", "age_range_high"]

    def csv_cells(self, task, prediction, face) -> dict:
        low, high = face.get("age_range", ("", ""))
        return {task.name: prediction, "age_range_low": low, "age_range_high": high}

    def text(self, task, prediction, probabilities=True) -> str:
        return f"{max(prediction, 0):.0f}y"


KINDS = {kind.name: kind for kind in (AgeKind, BinaryKind, CategoricalKind)}


def of(kind) -> Kind:
    """A kind from its name (its default options) or as given."""
    if isinstance(kind, Kind):
        return kind
    if kind not in KINDS:
        raise ValueError(f"unknown kind '{kind}'; known: {', '.join(KINDS)}")
    return KINDS[kind]()


def set_expectation_kernel(layer):
    """The age expectation layer's kernel: the bin ages 0..AGE_BINS-1 (frozen)."""
    layer.set_weights([np.arange(AGE_BINS, dtype="float32").reshape(AGE_BINS, 1)])


def age_range(probs, percentiles=AGE_RANGE) -> list:
    """[low, high] years: the `percentiles` of the distribution `probs` over the one-year age bins,
    each the first bin where the cumulative probability reaches it.

    >>> age_range(np.eye(AGE_BINS)[30])
    [30, 30]
    """
    low, high = age_ranges(np.asarray(probs)[None], percentiles)
    return [int(low[0]), int(high[0])]


def age_ranges(probs, percentiles=AGE_RANGE):
    """(lows, highs) in years for a batch of age distributions `probs` (faces x bins): for each
    face, the first bin where the cumulative probability reaches each of the `percentiles`."""
    probs = np.asarray(probs, np.float64)
    cdf = np.cumsum(probs, axis=-1)
    cdf = cdf / np.maximum(cdf[:, -1:], 1e-12)
    low, high = (np.minimum(np.argmax(cdf >= q - 1e-9, axis=-1), MAX_AGE) for q in percentiles)
    return low, high


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

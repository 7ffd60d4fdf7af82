"""Per-head losses, metrics and `loss_weights`, keyed by the model's output names.

Every output gets a loss (Keras 3 needs one per output for metrics) and a weight; metrics are
`weighted_metrics`, so the sample weight of 0 that the input gives a missing label removes that
sample from the head's loss *and* its metric.
"""
import keras
from keras import ops

from facenet_mtl.data.schema import AGE_BINS

REDUCTION = "mean_with_sample_weight"  # divide by the weights' sum: masked samples don't dilute


class AgeBinCrossEntropy(keras.losses.Loss):
    """DEX age loss: cross-entropy between the 101-bin softmax and the age target.

    y_true is `[age, sigma]` or `[age, sigma, age_min, age_max]` per sample: sigma 0 gives a
    one-hot bin at round(age); sigma > 0 a Gaussian label distribution over the bins (ChaLearn's
    apparent-age sigma, or a fixed width). A sample with `age_min >= 0` is an age group (FairFace):
    its loss is -log of the probability mass inside [age_min, age_max], the interval likelihood,
    so a group is never turned into a made-up year.
    """

    def __init__(self, name="age_bin_crossentropy", reduction=REDUCTION):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
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


def head_losses(outputs, label_smoothing=0.0):
    losses = {}
    for name in outputs:
        if name == "age_probs":
            losses[name] = AgeBinCrossEntropy()
        elif name == "age":
            losses[name] = keras.losses.MeanAbsoluteError(reduction=REDUCTION, name="age_l1")
        elif name == "emotion":
            losses[name] = keras.losses.CategoricalCrossentropy(
                label_smoothing=label_smoothing, reduction=REDUCTION, name="emotion_ce")
        else:
            losses[name] = keras.losses.BinaryCrossentropy(reduction=REDUCTION, name=f"{name}_bce")
    return losses


def output_loss_weights(outputs, task_weights, age_l1=0.0):
    """Loss weight per output. The age task's weight scales its bin loss; `age_l1` (times the
    age weight) scales the L1 on the expected age."""
    weights = {}
    for name in outputs:
        task = "age" if name in ("age", "age_probs") else name
        w = float(task_weights.get(task, 1.0))
        weights[name] = w * float(age_l1) if name == "age" else w
    return weights


def head_metrics(outputs):
    """Masked metrics per output (pass as compile(weighted_metrics=...))."""
    metrics = {}
    for name in outputs:
        if name == "age":
            metrics[name] = [keras.metrics.MeanAbsoluteError(name="mae")]
        elif name == "age_probs":
            metrics[name] = []
        elif name == "emotion":
            metrics[name] = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        else:
            metrics[name] = [keras.metrics.BinaryAccuracy(name="accuracy")]
    return metrics

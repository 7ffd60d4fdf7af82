"""Per-head losses, metrics and `loss_weights`, keyed by the model's output names.

Each output's task (`facenet_mtl.tasks`) says which loss, weight and metrics it has. Every output
gets a loss (Keras 3 needs one per output for metrics) and a weight; metrics are
`weighted_metrics`, so the sample weight of 0 that the input gives a missing label removes that
sample from the head's loss *and* its metric.

A head's loss as Keras logs it (`<output>_loss`) is a mean of per-batch means weighted by the
batch size, labelled or not: on a validation set whose datasets come one after another, every
batch without an age label adds a 0 to `val_age_probs_loss`. `head_metrics` therefore also gives
each output a `labelled_loss` metric (the mean of its loss over every labelled sample of the
epoch), and `LabelledLosses`, a callback, logs those as `<output>_loss` and `val_<output>_loss`
and the total `loss` / `val_loss` as their sum under the configured loss weights, for training
and validation alike (under "uncertainty" balancing too: its objective's learned weights and
log-variance terms are in `uw_<task>`, `val_loss` compares epochs by the configured weights).
"""
import keras

from facenet_mtl import tasks
from facenet_mtl.tasks import REDUCTION, age_bin_loss_class  # noqa: F401  (REDUCTION re-exported)

LABELLED = "labelled_loss"  # the metric behind each logged `<output>_loss`


AgeBinCrossEntropy = age_bin_loss_class()  # the DEX age-bin loss (`facenet_mtl.tasks.age_bin_crossentropy`)


def head_losses(outputs, label_smoothing=0.0):
    """{output: loss} as each output's task defines it."""
    return tasks.losses_for(outputs, label_smoothing)


def output_loss_weights(outputs, task_weights, task_options=()):
    """Loss weight per output: each task's weight, spread over its outputs by its kind, whose
    options `task_options` sets (`tasks.options_from`; age: `l1` times its weight on the L1 of
    the expected age)."""
    return tasks.loss_weights_for(outputs, task_weights, task_options)


def head_metrics(outputs, label_smoothing=0.0):
    """Masked metrics per output (pass as compile(weighted_metrics=...)), each output's loss over
    its labelled samples (`labelled_loss`, see `LabelledLosses`) first."""
    metrics = tasks.metrics_for(outputs)
    losses = head_losses(outputs, label_smoothing)
    return {output: [labelled_loss(losses[output])] + metrics[output] for output in outputs}


def labelled_loss(loss):
    """A metric: the mean of `loss` per sample, weighted by the sample weights, over an epoch."""
    return keras.metrics.MeanMetricWrapper(fn=loss.call, name=LABELLED)


class LabelledLosses(keras.callbacks.Callback):
    """Logs each head's loss as the mean over its labelled samples, and the total as their sum
    under `loss_weights` ({output: weight}); pass it first among `fit`'s callbacks, so the
    others (history.csv, checkpoints' monitor, early stopping) see these values."""

    def __init__(self, loss_weights):
        super().__init__()
        self.loss_weights = dict(loss_weights)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            relabel(logs, self.loss_weights)


def relabel(logs, loss_weights):
    """`logs` (a Keras logs dict) with the labelled-sample means in place of Keras' head losses."""
    for prefix in ("", "val_"):
        found = False
        for output in loss_weights:
            key = f"{prefix}{output}_{LABELLED}"
            if key in logs:
                logs[f"{prefix}{output}_loss"] = float(logs.pop(key))
                found = True
        if found:
            logs[f"{prefix}loss"] = float(sum(weight * logs.get(f"{prefix}{output}_loss", 0.0)
                                              for output, weight in loss_weights.items()))
    return logs

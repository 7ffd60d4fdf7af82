"""Learned task weights from homoscedastic uncertainty (Kendall, Gal & Cipolla, CVPR 2018).

With `loss.balancing = "uncertainty"` the trainer fits an `UncertaintyWeighting` around the
functional network. For each task t whose config weight w_t is above 0 it learns a log-variance
s_t = log σ_t² (starting at 0) and minimises

    loss = Σ_t  w_t · (exp(−s_t) · L_t + s_t)

where L_t is the task's masked mean loss as "static" balancing compiles it (`losses.head_losses`,
mean over the labelled samples); the age task's L_t is its bin cross-entropy plus its kind's `l1` option (`loss.age_l1`) times
the L1 on the expected age, both under the one s_age. Weight 0 disables a task: no s_t, no loss
(and `compile_for_phase` freezes its head).

The form: Kendall et al. derive ½·exp(−s)·L + ½·s for regression and about exp(−s)·L + ½·s
for classification; like most implementations we use exp(−s)·L + s for every task, whose
optimum exp(−s_t) = 1/L_t divides each task's loss by its own current size. w_t multiplies the
whole term: on the data term alone it would be absorbed by s_t (s_t − log w_t), so it would only
move the start; this way it stays a relative weight of the normalised tasks. A task with no label
in the batch adds nothing, not even s_t, which would otherwise fall on every batch it misses.

The log-variances are training state only: they live in the wrapper, are saved and restored with
its checkpoints, and the exported model is `network_of(model)`, the plain functional network.
`fit` logs `<output>_loss` (unweighted, as under "static") and `uw_<task>` = exp(−s_t).

>>> from facenet_mtl.models import build_model
>>> network = build_model("compact", tasks=("age", "gender"), input_size=32,
...                       backbone_args={"widths": (8,), "stem_width": 8})
>>> model = UncertaintyWeighting(network, {"age": 1.0, "gender": 0.0}, task_options={"age": {"l1": 0.1}})
>>> model.balanced_tasks, network_of(model) is network
(('age',), True)
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from facenet_mtl.models import model_tasks
from facenet_mtl.models.heads import output_names as task_outputs
from facenet_mtl.training.losses import head_losses, output_loss_weights


class UncertaintyWeighting(keras.Model):
    """Trains `network` (a functional multi-task model) with learned task weights; compile it
    with an optimizer and `weighted_metrics` only: it computes its own loss."""

    def __init__(self, network: keras.Model, task_weights: Mapping[str, float], task_options: Any = (),
                 label_smoothing: float = 0.0, name: str = "uncertainty_weighting") -> None:
        super().__init__(name=name)
        self.network = network
        outputs = list(network.output_names)
        tasks = model_tasks(network)
        weights = {t: float(task_weights.get(t, 1.0)) for t in tasks}
        self.balanced_tasks = tuple(t for t in tasks if weights[t] > 0)
        self.task_weights = [weights[t] for t in self.balanced_tasks]
        self.head_losses = head_losses(outputs, label_smoothing)
        self.output_weights = output_loss_weights(outputs, weights, task_options)  # age: w_age, w_age·l1
        self.log_variances = self.add_weight(shape=(len(self.balanced_tasks),), initializer="zeros",
                                             dtype="float32", name="log_variances")
        self.output_loss_trackers = {output: keras.metrics.Mean(name=f"{output}_loss") for output in outputs}
        self.built = True  # its only layer, the network, is built; loading a checkpoint needs this

    @property
    def output_names(self) -> list[str]:
        return self.network.output_names

    def call(self, inputs: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        return self.network(inputs, training=training)

    def compute_loss(self, x: tf.Tensor | None = None, y: Mapping[str, tf.Tensor] | None = None,
                     y_pred: Mapping[str, tf.Tensor] | None = None,
                     sample_weight: Mapping[str, tf.Tensor] | None = None,
                     training: bool = True) -> tf.Tensor:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync  # Keras' losses are per-replica shares
        output_losses = {}
        for output, tracker in self.output_loss_trackers.items():
            weight = None if sample_weight is None else sample_weight[output]
            output_losses[output] = ops.cast(self.head_losses[output](y[output], y_pred[output], weight), "float32")  # type: ignore[index]  # fit: not None
            tracker.update_state(output_losses[output] * replicas, sample_weight=ops.shape(y_pred[output])[0])  # type: ignore[index]  # fit: not None
        total = ops.zeros((), "float32")
        for i, task in enumerate(self.balanced_tasks):
            outputs = task_outputs(task)
            weighted_loss = sum(self.output_weights[o] * output_losses[o] for o in outputs)  # w_t · L_t
            labelled = 1.0 if sample_weight is None else ops.cast(
                sum(ops.sum(sample_weight[o]) for o in outputs) > 0, "float32")
            s = self.log_variances[i]
            total += ops.exp(-s) * weighted_loss + self.task_weights[i] * labelled * s / replicas
        for extra in self.losses:  # regularisers, should a backbone ever add some
            total += ops.cast(extra, "float32") / replicas
        return total

    def get_metrics_result(self) -> dict[str, Any]:
        result = super().get_metrics_result()
        weights = ops.exp(-self.log_variances)
        result.update({f"uw_{task}": weights[i] for i, task in enumerate(self.balanced_tasks)})
        return result

    def task_uncertainty_weights(self) -> dict[str, float]:
        """{task: exp(−s_t)} now, as floats."""
        weights = ops.convert_to_numpy(ops.exp(-self.log_variances))
        return {task: float(weights[i]) for i, task in enumerate(self.balanced_tasks)}


def network_of(model: keras.Model) -> keras.Model:
    """The functional network `model` trains: the one an UncertaintyWeighting wraps, or itself."""
    return model.network if isinstance(model, UncertaintyWeighting) else model

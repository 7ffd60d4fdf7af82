"""Task heads: built-in layers on a feature tensor, each made by its task's kind (`facenet_mtl.kinds`).

Heads know nothing of backbones. Each takes the pooled features and returns its named outputs
(`{output_name: tensor}`); every head layer has `dtype="float32"`, so the outputs, their
softmaxes and the losses on them stay float32 under a mixed-precision policy. What a head is
(its layers, the number of classes, the output names) is its kind's:

- age (DEX, Rothe et al. 2015): a softmax over `AGE_BINS` one-year bins and their expectation
  sum_k k * p_k, computed by a frozen bias-free Dense whose kernel is 0..100. The kernel is a
  weight, so saving, loading and cloning keep it; being frozen, it must not be unfrozen: change
  trainability with `set_backbone_trainable`, never `model.trainable = True`.
- binary: a sigmoid unit named after the task; categorical: a softmax over its classes.

`head_units > 0` puts a hidden Dense + ReLU (`<task>_hidden`) and, if `dropout`, a Dropout
(`<task>_hidden_dropout`) between the features and the task's output layer.

>>> import keras
>>> features = keras.Input((16,))
>>> outputs = task_head(features, "emotion")
>>> sorted(outputs), tuple(outputs["emotion"].shape)
(['emotion'], (None, 7))
"""
from facenet_mtl import kinds, tasks
from facenet_mtl.kinds import AGE_BINS, AGE_OUTPUTS, DTYPE  # noqa: F401  (re-exported)


def output_names(task):
    """The output names the head of `task` produces, in a fixed order (`Task.outputs`)."""
    return tasks.outputs_of(task)


def task_head(features, task, head_units=0, dropout=0.0):
    """The head for `task` (a registered name, `facenet_mtl.tasks`), made by its kind."""
    return tasks.get(task).head(features, head_units, dropout)


def set_age_expectation_kernel(model):
    """Set the age expectation layer's kernel of `model` to the bin ages 0..AGE_BINS-1."""
    kinds.set_expectation_kernel(model.get_layer(AGE_OUTPUTS[0]))

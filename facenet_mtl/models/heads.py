"""Task heads: built-in layers on a feature tensor, one function per kind of task.

Heads know nothing of backbones. Each takes the pooled features and returns its named outputs
(`{output_name: tensor}`); every head layer has `dtype="float32"`, so the outputs, their
softmaxes and the losses on them stay float32 under a mixed-precision policy. The number of
classes and the output names come from the task registry, `facenet_mtl.tasks`.

- age (DEX, Rothe et al. 2015): "age_probs", a softmax over `AGE_BINS` one-year bins, and "age",
  their expectation sum_k k * p_k, computed by a frozen bias-free Dense whose kernel is 0..100.
  The kernel is a weight, so saving, loading and cloning keep it; being frozen, it must not be
  unfrozen: change trainability with `set_backbone_trainable`, never `model.trainable = True`.
- binary (gender, smile): a sigmoid unit named after the task.
- categorical (emotion): a softmax over the task's classes, named after the task.

`head_units > 0` puts a hidden Dense + ReLU (`<task>_hidden`) and, if `dropout`, a Dropout
(`<task>_hidden_dropout`) between the features and the task's output layer.

>>> import keras
>>> features = keras.Input((16,))
>>> outputs = task_head(features, "age")
>>> sorted(outputs), tuple(outputs["age_probs"].shape)
(['age', 'age_probs'], (None, 101))
"""
import keras
import numpy as np

from facenet_mtl import tasks
from facenet_mtl.tasks import AGE_BINS, AGE_OUTPUTS  # noqa: F401  (AGE_OUTPUTS re-exported)

DTYPE = "float32"


def output_names(task):
    """The output names the head of `task` produces, in a fixed order (`Task.outputs`)."""
    return tasks.outputs_of(task)


def task_head(features, task, head_units=0, dropout=0.0):
    """The head for `task` (a registered name, `facenet_mtl.tasks`), chosen by its kind."""
    spec = tasks.get(task)
    kind = spec.kind
    if kind == "age":
        return age_head(features, head_units, dropout)
    if kind == "binary":
        return binary_head(features, task, head_units, dropout)
    if kind == "categorical":
        return categorical_head(features, task, spec.num_classes, head_units, dropout)
    raise ValueError(f"task '{task}' has kind '{kind}', which has no head")


def age_head(features, head_units=0, dropout=0.0):
    x = _hidden(features, "age", head_units, dropout)
    probs = keras.layers.Dense(AGE_BINS, activation="softmax", name="age_probs", dtype=DTYPE)(x)
    expectation = keras.layers.Dense(1, use_bias=False, trainable=False, name="age", dtype=DTYPE)
    age = expectation(probs)
    _set_expectation_kernel(expectation)  # built by the call above
    return {"age": age, "age_probs": probs}


def binary_head(features, task, head_units=0, dropout=0.0):
    x = _hidden(features, task, head_units, dropout)
    return {task: keras.layers.Dense(1, activation="sigmoid", name=task, dtype=DTYPE)(x)}


def categorical_head(features, task, num_classes, head_units=0, dropout=0.0):
    x = _hidden(features, task, head_units, dropout)
    return {task: keras.layers.Dense(num_classes, activation="softmax", name=task, dtype=DTYPE)(x)}


def set_age_expectation_kernel(model):
    """Set the "age" layer's kernel of `model` to the bin ages 0..AGE_BINS-1."""
    _set_expectation_kernel(model.get_layer("age"))


def _set_expectation_kernel(layer):
    layer.set_weights([np.arange(AGE_BINS, dtype="float32").reshape(AGE_BINS, 1)])


def _hidden(features, task, units, dropout):
    if not units:
        return features
    x = keras.layers.Dense(units, activation="relu", name=f"{task}_hidden", dtype=DTYPE)(features)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{task}_hidden_dropout", dtype=DTYPE)(x)
    return x

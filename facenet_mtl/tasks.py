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
import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Optional

from facenet_mtl import kinds
from facenet_mtl.kinds import (AGE_BINS, AGE_OUTPUTS, AGE_RANGE, MAX_AGE, MISSING, REDUCTION,  # noqa: F401
                               AgeKind, BinaryKind, CategoricalKind, age_bin_crossentropy, age_bin_loss,
                               age_bin_loss_class, age_range)
from facenet_mtl.registry import Registry

# FER2013 label order (the ids in fer2013.csv).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDERS = ("female", "male")  # gender 0 female, 1 male
SMILES = ("no_smile", "smile")
KINDS = tuple(kinds.KINDS)


@dataclass(frozen=True)
class Task:
    """One prediction task: its name, its kind and its classes, and how a record labels it.

    kind: an `AgeKind`, `BinaryKind` or `CategoricalKind` (`facenet_mtl.kinds`), or its name for
    one with default options; the kind owns the head, targets, losses, metrics, figures and text.
    `label` maps a record's labels (a dict of label fields: tf tensors in the input pipeline,
    numpy arrays in evaluation) to the task's class index, `MISSING` where unknown; None reads the
    field named like the task. `fields` are the label fields it reads (None: its kind's; a
    dataset labels the task when it carries one of them). Tasks with the same `line` share one
    line of a face's label text; `text_of` overrides how a prediction reads there.
    """

    name: str
    kind: object
    classes: tuple = ()
    label: Optional[Callable] = None
    fields: Optional[tuple] = None
    line: str = ""
    text_of: Optional[Callable] = None  # (prediction, probabilities) -> str

    def __post_init__(self):
        try:
            object.__setattr__(self, "kind", kinds.of(self.kind))
        except ValueError as exc:
            raise ValueError(f"task '{self.name}': {exc}") from None
        self.kind.check(self)

    def with_options(self, **options) -> "Task":
        """The same task with its kind's options set, e.g. `get("age").with_options(sigma=2.0)`."""
        return dataclasses.replace(self, kind=dataclasses.replace(self.kind, **options)) if options else self

    # --- model ---------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return self.kind.num_classes(self)

    @property
    def outputs(self) -> tuple:
        """Its output names, in a fixed order (age: the expectation, then the bins)."""
        return self.kind.outputs(self)

    @property
    def label_fields(self) -> tuple:
        return tuple(self.fields) if self.fields is not None else self.kind.label_fields(self)

    def head(self, features, units=0, dropout=0.0) -> dict:
        """{output: tensor}: its head's layers on a pooled feature tensor."""
        return self.kind.head(self, features, units, dropout)

    def output_descriptions(self) -> dict:
        """{output name: what its values are}, for an exported model's metadata."""
        return self.kind.output_descriptions(self)

    # --- labels and training -------------------------------------------------------------------

    def values(self, labels):
        """The task's label per example (`MISSING` where unknown), from record label fields."""
        return self.label(labels) if self.label is not None else labels[self.name]

    def targets(self, example):
        """A decoded example -> ({output: target}, {output: weight}); weight 0 where unlabelled."""
        import tensorflow as tf

        raw = self.values(example)
        known = tf.not_equal(raw, tf.cast(MISSING, raw.dtype))
        value = tf.where(known, raw, tf.zeros_like(raw))
        return self.kind.targets(self, example, value, known, tf.cast(known, tf.float32))

    def losses(self, label_smoothing=0.0) -> dict:
        """{output: Keras loss}, each the mean over the labelled samples (`REDUCTION`)."""
        return self.kind.losses(self, label_smoothing)

    def loss_weights(self, weight) -> dict:
        """{output: loss weight} for the task's weight (its kind may weigh its outputs apart)."""
        return self.kind.loss_weights(self, weight)

    def metrics(self) -> dict:
        """{output: [Keras metrics]}, masked as `weighted_metrics`."""
        return self.kind.metrics(self)

    # --- evaluation ----------------------------------------------------------------------------

    def figures(self, preds, labels) -> dict:
        """Evaluation figures over the labelled examples (numpy predictions by output, labels by
        field); {} when the model has no such head or no example is labelled."""
        if self.outputs[0] not in preds:
            return {}
        return self.kind.figures(self, preds, labels)

    def columns(self, by_group=False) -> list:
        """[(figure key, column title, format)] of its figures in evaluation tables."""
        return self.kind.columns(self, by_group)

    # --- prediction ----------------------------------------------------------------------------

    def describe(self, out):
        """One face's outputs (numpy, by output name) -> the task's prediction; None without its head."""
        return self.kind.describe(self, out)

    def readout(self, out) -> dict:
        """One face's outputs -> {result key: value}: the prediction under the task's name, and
        what else its kind reads (age: `age_range`); {} without its head."""
        return self.kind.readout(self, out)

    def csv_columns(self) -> list:
        """The columns of its prediction in `predict --format csv`."""
        return self.kind.csv_columns(self)

    def csv_cells(self, face) -> dict:
        """{column: value} of its prediction in one face's result ({} when the face has none)."""
        return self.kind.csv_cells(self, face[self.name], face) if self.name in face else {}

    def text(self, prediction, probabilities=True) -> str:
        """The short text of its prediction in a face's label, e.g. "34y", "happy 0.81"."""
        if self.text_of is not None:
            return self.text_of(prediction, probabilities)
        return self.kind.text(self, prediction, probabilities)

    @property
    def frozen_layers(self) -> tuple:
        """Its head layers that hold fixed weights (age: the expectation), never trained."""
        return self.kind.frozen_layers(self)

    @property
    def plot_names(self) -> tuple:
        """The learning-curve files of its outputs."""
        return tuple(f"curves_{output}.png" for output in self.outputs)


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
    return {output: task_of_output(output).losses(label_smoothing)[output] for output in outputs}


def metrics_for(outputs) -> dict:
    return {output: task_of_output(output).metrics()[output] for output in outputs}


def loss_weights_for(outputs, task_weights: Mapping, task_options=()) -> dict:
    """{output: weight} from {task: weight} (a missing task weighs 1), each task's kind set by
    `task_options` (`options_from`)."""
    weights = {}
    for output in outputs:
        task = configured(task_of_output(output), task_options)
        weights[output] = task.loss_weights(task_weights.get(task.name, 1.0))[output]
    return weights


def options_from(task_names, loss_config) -> tuple:
    """The kind options of `task_names` from a config's `loss` section, as hashable
    `((task, ((option, value), ...)), ...)` for `configured` (tasks without options left out)."""
    found = ((name, tuple(sorted(get(name).kind.options_from(loss_config).items()))) for name in task_names)
    return tuple((name, options) for name, options in found if options)


def configured(task, task_options=()) -> Task:
    """`task` (a Task or a registered name) with its kind's options from `task_options`."""
    task = get(task) if isinstance(task, str) else task
    return task.with_options(**dict(dict(task_options).get(task.name, ())))

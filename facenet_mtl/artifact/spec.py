"""`ModelSpec`: the contract a saved model states about itself, written into every file we save.

A model file carries its weights and, beside them, what a reader needs to use it without asking
the running process: its tasks (name, kind, label names, outputs, label line), its input size,
the face framing its crops had (the landmark template and the box margin), its preprocessing,
the calibration of its heads (per-head temperatures, or None) and the data it was trained on.
Where each format keeps it (`METADATA_KEY`, under "spec"): a `.h5`'s root attribute, a member of
a `.keras` zip, the `facenet_mtl.json` beside a SavedModel, ONNX `metadata_props`, a LiteRT
metadata buffer. A file written before the spec existed gets one derived from its outputs once
(`derive_spec`): the built-in tasks, the default framing.

>>> spec = ModelSpec(tasks=(TaskSpec("smile", "binary", ("no_smile", "smile"), ("smile",)),), input_size=64)
>>> ModelSpec.from_dict(spec.as_dict()) == spec
True
>>> [task.name for task in spec.task_objects()]
['smile']
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from facenet_mtl import tasks as task_registry
from facenet_mtl.data.faces import TEMPLATE
from facenet_mtl.data.schema import DEFAULT_IMAGE_SIZE, FACE_MARGIN

if TYPE_CHECKING:
    import keras

METADATA_KEY = "facenet_mtl"  # the h5 attribute, LiteRT metadata and ONNX property name
KERAS_MEMBER = "facenet_mtl.json"  # the member of a .keras zip
SAVED_MODEL_MARKER = "facenet_mtl.json"  # the file beside a SavedModel's saved_model.pb
MARKER_FORMAT = "facenet-mtl saved_model"
SPEC_VERSION = 1
PREPROCESSING = "RGB 0-255 in, float32 NHWC; the model scales and normalises inside"


@dataclass(frozen=True)
class TaskSpec:
    """One head as the file states it: `kind` one of `tasks.KINDS`, `labels` its class names."""

    name: str
    kind: str
    labels: tuple = ()
    outputs: tuple = ()
    line: str = ""

    def task(self) -> task_registry.Task:
        """The task that reads this head: the registered one when it states the same head (its text
        and label readers come with it), else one made from the file's own words."""
        known = task_registry.TASKS.get(self.name)
        if known is not None and known.kind.name == self.kind and tuple(known.classes) == tuple(self.labels):
            return known
        return task_registry.Task(self.name, self.kind, tuple(self.labels), line=self.line)


@dataclass(frozen=True)
class ModelSpec:
    """What a model file says about itself (see the module's docstring)."""

    tasks: tuple
    input_size: int
    template: tuple = field(default_factory=lambda: tuple(tuple(float(v) for v in p) for p in TEMPLATE))
    margin: float = FACE_MARGIN
    preprocessing: str = PREPROCESSING
    calibration: Optional[dict] = None  # {output: temperature} when the heads were calibrated
    training_data: str = ""  # the datasets it was trained on, comma-separated
    trained_on: str = "unknown"  # "real", "demo" or "unknown"
    derived: bool = False  # True: read from an older file's outputs, not stated by the file

    @property
    def task_names(self) -> tuple:
        return tuple(task.name for task in self.tasks)

    def task_objects(self) -> tuple[task_registry.Task, ...]:
        return tuple(task.task() for task in self.tasks)

    def labels(self) -> dict:
        """{task: label names} of the heads that have labels."""
        return {task.name: list(task.labels) for task in self.tasks if task.labels}

    def as_dict(self) -> dict[str, Any]:
        spec = asdict(self)
        spec["tasks"] = [dict(asdict(task), labels=list(task.labels), outputs=list(task.outputs))
                         for task in self.tasks]
        spec["template"] = [list(point) for point in self.template]
        spec["version"] = SPEC_VERSION
        spec.pop("derived")
        return spec

    @classmethod
    def from_dict(cls, spec: dict[str, Any], derived: bool = False) -> ModelSpec:
        tasks = tuple(TaskSpec(t["name"], t["kind"], tuple(t.get("labels", ())), tuple(t.get("outputs", ())),
                               t.get("line", "")) for t in spec["tasks"])
        return cls(tasks=tasks, input_size=int(spec["input_size"]),
                   template=tuple(tuple(float(v) for v in p) for p in spec.get("template", TEMPLATE)),
                   margin=float(spec.get("margin", FACE_MARGIN)), preprocessing=spec.get("preprocessing", PREPROCESSING),
                   calibration=spec.get("calibration"), training_data=spec.get("training_data", ""),
                   trained_on=spec.get("trained_on", "unknown"), derived=derived)


def task_spec(task: task_registry.Task) -> TaskSpec:
    return TaskSpec(task.name, task.kind.name, tuple(task.classes), tuple(task.outputs), task.line)


def spec_of_model(model: keras.Model, training_data: str = "", trained_on: str = "unknown",
                  calibration: Optional[dict] = None, derived: bool = False) -> ModelSpec:
    """The spec of a model built here: its heads as the task registry defines them (by output name)."""
    size = model.input_shape[1]
    size = int(size) if size is not None else DEFAULT_IMAGE_SIZE
    present = set(_output_names(model, size))
    known = [task for task in task_registry.TASKS.values() if set(task.outputs) & present]
    return ModelSpec(tasks=tuple(task_spec(task) for task in known), input_size=size,
                     calibration=calibration, training_data=training_data, trained_on=trained_on, derived=derived)


def _output_names(model, size):
    """A Keras model's output names; any other model's (a SavedModel) from one forward pass of zeros."""
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    import numpy as np

    return list(dict(model(np.zeros((1, size, size, 3), np.float32))))


def derive_spec(model: keras.Model, path: str | Path | None = None) -> ModelSpec:
    """The spec of a file written before the spec existed: its heads from its output names (the
    built-in tasks), the default framing, and the training data from the run's `config.json`
    beside `path` when there is one."""
    config = read_json(Path(path).parent / "config.json") if path is not None else {}
    datasets = ",".join((config.get("data") or {}).get("datasets", ()))
    trained_on = data_kind(config) if config else "unknown"
    return spec_of_model(model, training_data=datasets, trained_on=trained_on, derived=True)


def data_kind(config: dict[str, Any]) -> str:
    """"demo" when a run's resolved config (a dict) trained on the generated demo faces, else "real".

    >>> data_kind({"name": "demo-mtl-w1111", "data": {"root": "demo_data/records"}})
    'demo'
    >>> data_kind({"name": "release-mtl", "data": {"root": "data_out/release"}})
    'real'
    """
    root = Path(str((config.get("data") or {}).get("root", "")))
    demo = any(part.startswith("demo") for part in root.parts) or str(config.get("name", "")).startswith("demo")
    return "demo" if demo else "real"


# --- reading a file's spec ------------------------------------------------------------------------

def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The facenet-mtl metadata a model file carries (a dict), or None when it has none: `.h5`,
    `.keras`, a SavedModel directory, `.onnx` or `.tflite`."""
    path = Path(path)
    try:
        if path.is_dir():
            return read_json(path / SAVED_MODEL_MARKER) or None
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as handle:
                value = handle.attrs.get(METADATA_KEY)
            return json.loads(value) if value is not None else None
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                if KERAS_MEMBER not in archive.namelist():
                    return None
                return json.loads(archive.read(KERAS_MEMBER))
        if path.suffix == ".onnx":
            import onnx

            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            return json.loads(props[METADATA_KEY]) if METADATA_KEY in props else None
        if path.suffix == ".tflite":
            return litert_metadata(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    return None


def litert_metadata(path: str | Path) -> dict[str, Any] | None:
    """The METADATA_KEY entry of a LiteRT file (`exporting.with_litert_metadata`), as a dict (or None)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(Path(path).read_bytes()), 0))
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_KEY:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode("utf8"))
    return None


def read_spec(path: str | Path) -> ModelSpec | None:
    """The spec a model file states, or None (a file written before the spec existed)."""
    metadata = read_metadata(path)
    if not metadata or not isinstance(metadata.get("spec"), dict):
        return None
    return ModelSpec.from_dict(metadata["spec"])


def spec_of_file(path: str | Path, model: keras.Model) -> ModelSpec:
    """The file's own spec, or the one derived from the loaded `model` for an older file."""
    return read_spec(path) or derive_spec(model, path)


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object file as a dict; {} when it is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

"""`facenet-mtl export`: a saved Keras model as ONNX, LiteRT, a TF Serving SavedModel, a portable
`.h5` or a Keras 2 `.h5`, each checked in its own runtime before it is reported written.

    result = export_model_file("runs/real-mtl/model.h5", "onnx", "face.onnx")
    result.differences   # {"age": 3e-06, "emotion": 1e-08, ...}: max |exported - Keras| per output

The check runs the written file (onnxruntime, the LiteRT interpreter, `tf.saved_model.load`,
The check runs the written file (onnxruntime, the LiteRT interpreter, `tf.saved_model.load`,
Keras, tf-keras in a subprocess) on `samples` (the CLI gives drawn demo faces; by default a fixed
noise batch) and compares every output with the Keras model's; above `TOLERANCE` the file is
removed and `ExportCheckError` raised (CLI: exit 1). The model's `ModelSpec` (the one its file
states, `saving.model_metadata`) goes into every file: ONNX `metadata_props`, a LiteRT metadata
buffer named "facenet_mtl", an h5 attribute, and `labels.json` (plus the loader's
`facenet_mtl.json`) beside `OUT/1/saved_model.pb`.
Optional runtimes come from `pip install -e ".[export]"` in the facenet-mtl source folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_mtl.artifact import saving
from facenet_mtl.artifact.loading import load_keras_model
from facenet_mtl.artifact.spec import METADATA_KEY, ModelSpec, litert_metadata, read_spec  # noqa: F401
from facenet_mtl.errors import DataError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter
    from numpy.typing import ArrayLike

FORMATS = ("onnx", "litert", "saved_model", "h5", "keras2-h5")
TOLERANCE = 1e-4
ONNX_OPSET = 17
SAMPLE_FACES = 8
EXTRA = 'pip install -e ".[export]" in the facenet-mtl source folder'


class ExportCheckError(Exception):
    """The exported file's outputs differ from Keras' by more than TOLERANCE (CLI: exit 1)."""


@dataclass
class ExportResult:
    format: str
    path: Path
    runtime: str
    differences: dict = field(default_factory=dict)

    @property
    def max_difference(self) -> float:
        """The largest difference over the outputs (NaN when any output held NaN)."""
        values = list(self.differences.values())
        return float("nan") if any(np.isnan(values)) else max(values, default=0.0)


def export_model_file(model_path: str | Path, fmt: str, out: str | Path,
                      samples: ArrayLike | None = None) -> ExportResult:
    """Write the model at `model_path` (`.h5` / `.keras`) as `fmt` at `out`, then check it on
    `samples` (an array, or a function of the model's input size that returns one)."""
    if fmt not in FORMATS:
        raise DataError(fmt, f"unknown export format; known: {', '.join(FORMATS)}")
    model = load_keras_model(model_path)
    import keras

    if not isinstance(model, keras.Model):
        raise DataError(model_path, "is a SavedModel; export reads Keras models",
                        "give the model.h5 or model.keras beside it")
    return export_model(model, fmt, out, samples, spec=read_spec(model_path))


def export_model(model: keras.Model, fmt: str, out: str | Path, samples: ArrayLike | None = None,
                 spec: ModelSpec | None = None) -> ExportResult:
    """Export a Keras model with its `spec` (None: the one its outputs give); see `export_model_file`."""
    out = Path(out)
    size = int(model.input_shape[1])
    if samples is None or callable(samples):  # a callable: size -> the batch, e.g. demo.faces.sample_faces
        samples = (samples or noise_samples)(size)
    samples = np.asarray(samples, np.float32)
    writer, runner = WRITERS[fmt]
    _require(fmt)
    if out.exists() and fmt == "saved_model" and not out.is_dir():
        raise DataError(out, "exists and is a file", "give a folder for the SavedModel (it is written to OUT/1/)")
    metadata = saving.model_metadata(model, spec)
    # A file is written beside `out` under a name of its own and moved onto `out` only once
    # checked: a failed export never touches (nor removes) a file that was there before.
    staged = out if fmt == "saved_model" else out.with_name(f".{out.stem}.export-{os.getpid()}{out.suffix}")
    written, runtime = writer(model, staged, metadata)
    try:
        got = runner(written, samples)
    except BaseException:
        _remove(written)
        raise
    expected = reference_outputs(model, samples)
    missing = sorted(set(expected) - set(got))
    differences = {name: float(np.max(np.abs(np.asarray(got[name], np.float64).reshape(expected[name].shape)
                                             - expected[name]))) for name in expected if name in got}
    result = ExportResult(fmt, written, runtime, differences)
    if missing or not result.max_difference <= TOLERANCE:  # NaN fails too
        _remove(written)
        problem = f"missing outputs {missing}" if missing else (
            f"max abs difference {result.max_difference:.2e} > {TOLERANCE:.0e} ({_describe(differences)})")
        raise ExportCheckError(f"{out}: the {fmt} export does not match Keras in {runtime}: {problem}; "
                               f"{'the file was removed' if staged == out else 'nothing was written'}")
    if staged != out:
        os.replace(staged, out)
        result.path = out
    return result


def noise_samples(size: int, count: int = SAMPLE_FACES) -> np.ndarray:
    """A fixed batch of smooth random images (RGB 0-255, float32) at the model's size: the check's
    inputs when the caller gives none (`facenet_mtl.demo.faces.sample_faces` draws faces)."""
    import cv2

    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 255, (count, 8, 8, 3)).astype(np.float32)
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC) for image in coarse]).clip(0, 255)


def reference_outputs(model: keras.Model, samples: np.ndarray) -> dict[str, np.ndarray]:
    """The Keras model's outputs on `samples` (float64 arrays by output name)."""
    return {name: np.asarray(value, np.float64) for name, value in model.predict(samples, verbose=0).items()}


def traced_forward(model: keras.Model) -> tuple[tf.types.experimental.PolymorphicFunction, tf.TensorSpec]:
    """The model's forward pass as a tf.function over a batch of images named "image"."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name="image")
    return tf.function(lambda image: model(image, training=False), input_signature=[spec]), spec


def _describe(differences):
    return ", ".join(f"{name} {value:.1e}" for name, value in differences.items())


def _remove(path):
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# Optional runtimes.

REQUIRES = {"onnx": (("tf2onnx", "tf2onnx"), ("onnxruntime", "onnxruntime"), ("onnx", "onnx"))}


def _require(fmt):
    if fmt == "keras2-h5" and not _has_tf_keras():
        raise DataError(fmt, "exporting a Keras 2 file needs tf-keras (to check it), which is not installed",
                        'pip install "tf-keras~=<your TensorFlow version>" (e.g. tf-keras~=2.21.0 for TF 2.21)')
    for module, package in REQUIRES.get(fmt, ()):
        try:
            __import__(module)
        except ImportError:
            raise DataError(fmt, f"exporting to {fmt} needs the package '{package}', which is not installed",
                            f"{EXTRA} (the 'export' extra: tf2onnx, onnxruntime, ai-edge-litert)") from None


def litert_interpreter(path: str | Path) -> LiteRTInterpreter | tf.lite.Interpreter:
    """The LiteRT interpreter: `ai_edge_litert` when installed, else the one inside TensorFlow."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path))


# Writers: (model, out, metadata) -> (written path, runtime name).

def _write_onnx(model, out, metadata):
    import onnx
    import tf2onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    forward, spec = traced_forward(model)
    proto, _ = tf2onnx.convert.from_function(forward, input_signature=[spec], opset=ONNX_OPSET)
    for key, value in _flat_metadata(metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "facenet-mtl"
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)
    return out, "onnxruntime"


def _flat_metadata(metadata):
    """ONNX metadata_props are strings: each top-level field as JSON, plus the whole under METADATA_KEY."""
    flat = {key: json.dumps(value) for key, value in metadata.items()}
    flat[METADATA_KEY] = json.dumps(metadata)
    return flat


def _run_onnx(path, samples):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: samples})))


def _write_litert(model, out, metadata):
    import tensorflow as tf

    out.parent.mkdir(parents=True, exist_ok=True)
    # Through a SavedModel: converting the traced function directly gives NaN outputs (TF 2.21: its
    # resource variables are not frozen into the flatbuffer).
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        flatbuffer = with_litert_metadata(tf.lite.TFLiteConverter.from_saved_model(folder).convert(), metadata)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(flatbuffer)
    os.replace(tmp, out)
    return out, "the LiteRT interpreter"


def with_litert_metadata(flatbuffer: bytes, metadata: Mapping[str, Any]) -> bytes:
    """The LiteRT flatbuffer with a metadata entry METADATA_KEY holding `metadata` as JSON."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(flatbuffer), 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata).encode("utf8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _run_litert(path, samples):
    runner = litert_interpreter(path).get_signature_runner("serving_default")
    return runner(image=samples)


def _write_saved_model(model, out, metadata):
    """TF Serving's layout: OUT/1/ (the next free version number if OUT already has versions)."""
    out.mkdir(parents=True, exist_ok=True)
    versions = [int(p.name) for p in out.iterdir() if p.name.isdigit()]
    target = out / str(max(versions, default=0) + 1)
    saving.save_saved_model(model, target, _spec_of(metadata))
    (target / "labels.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return target, "tf.saved_model"


def _run_saved_model(path, samples):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return {name: value.numpy() for name, value in loaded.serve(tf.constant(samples)).items()}


def _write_h5(model, out, metadata):
    saving.save_h5(model, out, _spec_of(metadata))
    return out, f"Keras {_keras_version()}"


def _write_keras2_h5(model, out, metadata):
    saving.save_keras2_h5(model, out, _spec_of(metadata))
    return out, "tf-keras (TF_USE_LEGACY_KERAS=1, in a subprocess)"


def _spec_of(metadata):
    return ModelSpec.from_dict(metadata["spec"])


def _keras_version():
    import keras

    return keras.__version__


def _run_h5(path, samples):
    import keras

    return keras.models.load_model(path, compile=False).predict(samples, verbose=0)


KERAS2_CHECK = """
import sys, numpy as np, tf_keras
model = tf_keras.models.load_model(sys.argv[1], compile=False)
np.savez(sys.argv[3], **model.predict(np.load(sys.argv[2]), verbose=0))
"""


def _has_tf_keras():
    import importlib.util

    try:
        return importlib.util.find_spec("tf_keras") is not None
    except ValueError:
        return False


def _run_keras2_h5(path, samples):
    """tf-keras in a fresh process (TF_USE_LEGACY_KERAS=1 must be set before TensorFlow starts)."""
    if not _has_tf_keras():
        raise DataError(path, "checking a Keras 2 export needs tf-keras, which is not installed",
                        'pip install "tf-keras~=<your TensorFlow version>" (e.g. tf-keras~=2.21.0 for TF 2.21)')
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "x.npy", samples)
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([sys.executable, "-c", KERAS2_CHECK, str(path), f"{folder}/x.npy", f"{folder}/y.npz"],
                              env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise ExportCheckError(f"{path}: tf-keras cannot load the Keras 2 export: {done.stderr[-1500:]}")
        return dict(np.load(f"{folder}/y.npz"))


WRITERS = {"onnx": (_write_onnx, _run_onnx), "litert": (_write_litert, _run_litert),
           "saved_model": (_write_saved_model, _run_saved_model), "h5": (_write_h5, _run_h5),
           "keras2-h5": (_write_keras2_h5, _run_keras2_h5)}

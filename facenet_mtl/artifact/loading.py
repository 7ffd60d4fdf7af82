"""Loading a saved model: a `.h5` / `.keras` file or a SavedModel directory, with errors that name
the cause (not found, not a model, truncated, written by a newer Keras, a Keras 2 file).

A SavedModel is a program as much as a model: loading and calling it runs the graph it carries,
and that graph may hold any TensorFlow op (`WriteFile`, `ReadFile`, ...). So a SavedModel loads
only when it is ours and pure tensor math: the `facenet_mtl.json` beside `saved_model.pb` that
`facenet-mtl train` / `export` writes must match the graph's sha256 (a statement of origin, not
a safeguard: anyone can compute a sha256), and every op that loading and calling the model can
run must be in `GRAPH_OPS`: the functions the object graph names (what `tf.saved_model.load`
restores and calls: `serve`, signatures, resource initialisers, restore functions) and every
function they call, followed through the library by what they call, whatever they are named
(checked on the protobuf, before TensorFlow loads anything). A TF1 SavedModel (no object graph,
its init and restore ops run on load) is refused. Anything else needs `trust_saved_model=True`
(CLI: `--trust-saved-model`).

>>> from facenet_mtl.artifact.loading import hdf5_or_zip
>>> hdf5_or_zip(__file__)
'other'
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facenet_mtl.errors import DataError
from facenet_mtl.artifact.bounds import check_model_file, check_saved_model_variables
from facenet_mtl.artifact.spec import MARKER_FORMAT, SAVED_MODEL_MARKER
from facenet_mtl.weights import sha256_of

if TYPE_CHECKING:
    import keras

MODEL_SUFFIXES = (".h5", ".keras")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
TRUST_HINT = ("if you trust whoever wrote it, load it with trust_saved_model=True "
              "(CLI: --trust-saved-model), or write one from the Keras model with facenet-mtl export MODEL --format saved_model")

# Ops a model's forward pass may use: tensor math and variable reads, no I/O, no Python.
GRAPH_OPS = frozenset("""
    Abs Add AddN AddV2 All Any ArgMax ArgMin AssignVariableOp AvgPool BatchMatMul BatchMatMulV2 BatchMatMulV3
    BiasAdd BroadcastArgs BroadcastTo Cast Ceil ClipByValue ConcatV2 Const Conv2D Conv2DBackpropInput Cos Cumsum
    DepthwiseConv2dNative DisableCopyOnRead Einsum Elu Equal Erf Exp ExpandDims Fill Floor FloorDiv FloorMod
    FusedBatchNorm FusedBatchNormV3 GatherV2 Greater GreaterEqual Identity IdentityN LeakyRelu Less LessEqual Log
    Log1p LogSoftmax LogicalAnd LogicalNot LogicalOr MatMul Max MaxPool MaxPoolV2 Maximum Mean Min Minimum
    MirrorPad Mul Neg NoOp NotEqual OnesLike Pack Pad PadV2 PartitionedCall Placeholder Pow Prod Range Rank
    ReadVariableOp RealDiv Reciprocal Relu Relu6 Reshape ResizeBilinear ResizeNearestNeighbor ReverseV2 Round
    Rsqrt Select SelectV2 Selu Shape Sigmoid Sign Sin Size Slice Softmax Softplus Softsign Split SplitV Sqrt
    Square SquaredDifference Squeeze StatefulPartitionedCall StopGradient StridedSlice Sub Sum Tanh Tile
    Transpose Unpack VarHandleOp VarIsInitializedOp ZerosLike
""".split())



def load_keras_model(path: str | Path, trust_saved_model: bool = False,
                     verified: bool = False) -> keras.Model | _SavedModelAdapter:
    """A `.h5` / `.keras` file or a SavedModel directory; a DataError naming the cause otherwise.
    `verified`: the package's own model, whose sha256 was just checked against its release record
    (`weights.release_model_path`), so the bounds on its declared arrays (a second build of its
    config, a third of a second for the shipped model) are skipped."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "model not found", "give the model.h5, model.keras or saved_model/ of a run")
    if path.is_dir():
        return load_saved_model(path, trust_saved_model)
    if path.suffix not in MODEL_SUFFIXES:
        raise DataError(path, f"is not a Keras model file (suffix '{path.suffix}')",
                        "give a model.h5 or model.keras written by facenet-mtl train")
    _check_container(_regular_file(path))
    if not verified:
        check_model_file(path)  # the arrays it declares, bounded before Keras allocates them
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        error = exc
    writer = written_by(path)
    if writer and _version_tuple(writer) > _version_tuple(keras.__version__) >= (3, 4):
        model = _load_rewritten(path)  # a newer Keras 3's file: the portable rewrite, in a copy
        if model is not None:
            return model
    raise _load_error(path, error)


def _load_rewritten(path):
    """`path` loaded after `portable.keras3_config` rewrote its config in a temporary copy (what a
    newer Keras 3 added, at its defaults, dropped), or None when that is not enough."""
    import shutil
    import tempfile

    import keras

    from facenet_mtl.artifact import portable

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        shutil.copy(path, copy)
        try:
            if path.suffix == ".h5":
                portable.rewrite_h5_config(copy, portable.keras3_config)
            else:
                portable.rewrite_keras_config(copy, portable.keras3_config)
            return keras.models.load_model(copy, compile=False)
        except Exception:
            return None


def hdf5_or_zip(path: str | Path) -> str:
    """What the file's first bytes say it is: 'hdf5', 'zip' or 'other'."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head.startswith(ZIP_SIGNATURE):
        return "zip"
    return "other"


def _check_container(path):
    """A `.keras` must be a complete zip and a `.h5` a complete HDF5 file holding a model config."""
    kind, size = hdf5_or_zip(path), path.stat().st_size
    if path.suffix == ".keras":
        if kind == "hdf5":
            raise DataError(path, "is an HDF5 file, not a .keras zip archive", "rename it to .h5 and load that")
        if kind != "zip":
            raise DataError(path, f"is not a .keras model: a .keras file is a zip archive, and this one "
                            f"({size} bytes) is not", "give the model.keras written by facenet-mtl train or export")
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(path, f"is a truncated or damaged zip archive ({size} bytes; {exc})",
                            "copy or download it again, or export it again") from None
        if bad is not None:
            raise DataError(path, f"is damaged: member '{bad}' fails its checksum", "copy or download it again")
        if "config.json" not in names:
            raise DataError(path, f"is a zip archive but not a Keras model (no config.json; it holds "
                            f"{', '.join(sorted(names)[:5]) or 'nothing'})", "give a model.keras written by Keras")
        return
    if kind == "zip":
        raise DataError(path, "is a zip archive (a .keras model?), not an HDF5 file", "rename it to .keras")
    if kind != "hdf5":
        raise DataError(path, f"is not an HDF5 file ({size} bytes that do not start with the HDF5 signature)",
                        "give a model.h5 written by facenet-mtl train or export")
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "model_config" not in handle.attrs:
                what = "a weights-only file?" if "model_weights" in handle or "layers" in handle else "no model_config"
                raise DataError(path, f"is an HDF5 file but not a saved Keras model ({what})",
                                "give a model.h5 saved with model.save(), not save_weights()")
    except OSError as exc:
        cause = "truncated" if "truncated" in str(exc) else "damaged"
        raise DataError(path, f"is a {cause} HDF5 file ({size} bytes; {str(exc)[:160]})",
                        "copy or download it again, or export it again") from None


def written_by(path: str | Path) -> str | None:
    """The Keras version a `.h5` / `.keras` file says wrote it, or None."""
    try:
        if hdf5_or_zip(path) == "hdf5":
            import h5py

            with h5py.File(path, "r") as handle:
                version = handle.attrs.get("keras_version")
            return version.decode() if isinstance(version, bytes) else version
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("metadata.json")).get("keras_version")
    except Exception:
        return None


def _version_tuple(text):
    return tuple(int(part) for part in re.findall(r"\d+", str(text))[:3])


def _load_error(path, exc):
    """The DataError for a file Keras refused: which Keras wrote it, which is here, what to do."""
    import keras

    cause = f"{type(exc).__name__}: {str(exc)[:200]}"
    writer, here = written_by(path), keras.__version__
    if writer and _version_tuple(writer)[:1] == (2,) and _version_tuple(here)[:1] == (3,):
        return DataError(path, f"is a Keras 2 file (keras_version {writer}), which Keras {here} cannot read ({cause})",
                         "load it with tf-keras (TF_USE_LEGACY_KERAS=1), or load the model.h5 / model.keras beside it")
    if writer and _version_tuple(writer) > _version_tuple(here):
        return DataError(path, f"was written by Keras {writer}; this Python has Keras {here}, which cannot read it "
                         f"({cause})", f"upgrade Keras (pip install 'keras>={writer}'), or write a portable copy with "
                         f"facenet-mtl export {path} --format h5 (it loads in Keras 3.4 and later)")
    return DataError(path, f"cannot be read as a Keras model by Keras {here} (written by Keras {writer or 'unknown'}; "
                     f"{cause})", "give a model.h5 or model.keras written by facenet-mtl train or export")


# SavedModels.

def load_saved_model(path: str | Path, trust_saved_model: bool = False) -> _SavedModelAdapter:
    """A SavedModel directory as a predict-able object (`_SavedModelAdapter`), checked first."""
    path = Path(path)
    _only_regular_files(path)
    if not (path / "saved_model.pb").is_file():
        found = sorted(p.name for p in path.iterdir())
        listing = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") if found else "nothing"
        numbered = [p for p in found if p.isdigit() and (path / p / "saved_model.pb").is_file()]
        fix = (f"give the version folder {path / numbered[-1]}" if numbered else
               "give a SavedModel directory, or a model.h5 / model.keras file")
        raise DataError(path, f"is a directory without saved_model.pb (it holds: {listing})", fix)
    if not trust_saved_model:
        check_saved_model(path)
    check_saved_model_variables(path)  # trusted or not, its variables are bounded
    try:
        return _SavedModelAdapter(path)
    except Exception as exc:
        raise DataError(path, f"cannot be loaded as a SavedModel ({type(exc).__name__}: {str(exc)[:200]})",
                        "give the saved_model/ directory written by facenet-mtl train or export") from None


def _only_regular_files(folder):
    """DataError when anything under a SavedModel folder is a pipe or a device (TensorFlow would
    block reading it); symbolic links are judged by what they point at."""
    import os

    for root, _, names in os.walk(folder):
        for name in names:
            _regular_file(Path(root) / name)


def check_saved_model(path: str | Path) -> None:
    """Refuse (DataError) a SavedModel that facenet-mtl did not write or whose graph is not pure math."""
    path = Path(path)
    marker_path = path / SAVED_MODEL_MARKER
    why = "a SavedModel runs the graph it carries, so only facenet-mtl's own are loaded by default"
    try:
        marker = json.loads(marker_path.read_text())
    except FileNotFoundError:
        raise DataError(path, f"is a SavedModel that facenet-mtl did not write (no {SAVED_MODEL_MARKER}); {why}",
                        TRUST_HINT) from None
    except (ValueError, OSError) as exc:
        raise DataError(marker_path, f"is not a valid facenet-mtl marker ({exc}); {why}", TRUST_HINT) from None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        raise DataError(marker_path, f"is not a facenet-mtl marker (no format '{MARKER_FORMAT}'); {why}", TRUST_HINT)
    if marker.get("saved_model_sha256") != sha256_of(path / "saved_model.pb"):
        raise DataError(path, f"saved_model.pb does not match the sha256 in {SAVED_MODEL_MARKER} (it was changed "
                        f"after facenet-mtl wrote it); {why}", TRUST_HINT)
    unsafe = unsafe_graph_ops(path)
    if unsafe:
        raise DataError(path, f"is a SavedModel whose graph runs ops that are not tensor math "
                        f"({', '.join(unsafe[:8])}); {why}", TRUST_HINT)


def unsafe_graph_ops(path: str | Path) -> list[str]:
    """Op types outside `GRAPH_OPS` that loading the SavedModel and calling it can run, read from
    the protobuf without running anything: every function the object graph names, and every
    function those call (attributes holding functions, or a node whose op is a function), by
    reachability, never by name. The graph's own save/restore nodes, which only TF1 loaders and
    TF Serving run, are not reached; a SavedModel without an object graph gives `["<TF1 graph>"]`."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(_regular_file(Path(path) / "saved_model.pb").read_bytes())
    unsafe = set()
    for graph in saved.meta_graphs:
        library = {function.signature.name: function for function in graph.graph_def.library.function}
        pending = sorted(_object_graph_functions(graph.object_graph_def))
        if not pending:
            unsafe.add("<TF1 graph: no object graph, its init and restore ops run on load>")
        seen = set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            function = library.get(name)
            if function is None:
                unsafe.add(f"<missing function {name}>")
                continue
            for node in function.node_def:
                called = _called_functions(node)
                if node.op in library:
                    called.append(node.op)
                elif node.op not in GRAPH_OPS:
                    unsafe.add(node.op)
                pending.extend(called)
    return sorted(unsafe)


def _object_graph_functions(object_graph):
    """The names of the functions a TF2 object graph holds (all of them may run on load or call)."""
    names = set()
    for node in object_graph.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            names.update(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            names.add(node.bare_concrete_function.concrete_function_name)
    return names


def _called_functions(node):
    """Functions a node's attributes name (`f` of a PartitionedCall, branches, bodies, lists)."""
    called = []
    for value in node.attr.values():
        if value.HasField("func"):
            called.append(value.func.name)
        if value.HasField("list"):
            called.extend(func.name for func in value.list.func)
    return called


def _regular_file(path):
    """`path` when it is a regular file; a DataError when it is a FIFO, a device or a folder (reading
    one would block or never end)."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror})", "check the path and its permissions") from None
    if not stat.S_ISREG(mode):
        raise DataError(path, "is not a regular file (a pipe, a device or a folder)",
                        "give a model file saved on disk")
    return path


class _SavedModelAdapter:
    """Makes a SavedModel's `serve` signature look like a Keras model for prediction."""

    def __init__(self, path):
        import tensorflow as tf

        self._loaded = tf.saved_model.load(str(path))  # keep a reference: it owns the variables
        if hasattr(self._loaded, "serve"):  # keras `model.export()`: serve(images) -> outputs
            self._serve = self._loaded.serve
            spec = self._serve.input_signature[0] if self._serve.input_signature else None
        else:  # any other SavedModel: the serving signature, called with its one input by name
            signature = self._loaded.signatures["serving_default"]
            (name, spec), = signature.structured_input_signature[1].items()
            self._serve = lambda x: signature(**{name: x})
        self.input_shape = tuple(spec.shape) if spec is not None else (None, None, None, 3)

    def __call__(self, x, training=False):
        import tensorflow as tf

        return self._serve(tf.convert_to_tensor(x, tf.float32))

    def predict(self, x, verbose=0, batch_size=64):
        outs = [self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}

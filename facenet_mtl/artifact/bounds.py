"""The arrays a model file declares, bounded before anything is allocated for them.

A model file states the sizes of the arrays loading it creates, and those statements cost nothing
to write: a 2 KB `.h5` can declare a weight of 10^12 floats (an HDF5 dataset whose storage was
never written reads back as its fill value), a config can declare `Dense(10**7)`, a SavedModel's
checkpoint index can declare a variable larger than its data file. Loading such a file would
allocate terabytes and end the process (MemoryError, or the kernel's OOM killer) instead of
refusing the file. Every file is therefore checked first, reading only metadata:

- every stored array (an `.h5` dataset, the `model.weights.h5` inside a `.keras`, a SavedModel
  checkpoint's variables) must be backed by bytes actually in the file: Keras and TensorFlow write
  weights uncompressed, so an array may declare at most `MAX_EXPANSION` times the bytes it stores;
- every array together, stored or created by building the config, at most `MAX_MODEL_BYTES`;
  the config's variables are counted by building it in a Keras `StatelessScope`, which gives each
  variable its shape without allocating its value.

A file that fails gets a DataError naming what it declares and the limit.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from facenet_mtl.errors import DataError

MAX_MODEL_BYTES = 2 * 1024 ** 3  # every array of a model file together; the shipped model needs ~5 MB
MAX_EXPANSION = 4  # bytes an array may declare per byte it stores (weights are written uncompressed)
SMALL_ARRAY_BYTES = 4096  # an array this small is never judged by its storage

FIX = "give a model file written by facenet-mtl train or export"


def check_model_file(path: Path) -> None:
    """DataError when the `.h5` / `.keras` at `path` declares arrays beyond the limits (see the
    module's docstring); reads its metadata only."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            declared = sum(info.file_size for info in infos)
            if declared > MAX_MODEL_BYTES:
                raise DataError(path, f"declares {_gib(declared)} of archive members, beyond the "
                                f"{_gib(MAX_MODEL_BYTES)} a model file may hold", FIX)
            config = _json(archive.read("config.json"))
            stored = 0
            if "model.weights.h5" in {info.filename for info in infos}:
                with archive.open("model.weights.h5") as member:
                    stored, _ = _check_h5(path, io.BytesIO(member.read()))
    else:
        stored, config = _check_h5(path, str(path))
    built = _config_bytes(config, legacy=path.suffix != ".keras") if config is not None else 0
    if max(stored, built) > MAX_MODEL_BYTES:
        raise DataError(path, f"declares {_gib(max(stored, built))} of weights, beyond the "
                        f"{_gib(MAX_MODEL_BYTES)} a model file may declare", FIX)


def check_saved_model_variables(path: Path) -> None:
    """DataError when a SavedModel's checkpoint declares more bytes of variables than its data files
    hold (times `MAX_EXPANSION`) or than `MAX_MODEL_BYTES`; reads the checkpoint's index only."""
    import tensorflow as tf

    prefix = Path(path) / "variables" / "variables"
    if not Path(str(prefix) + ".index").is_file():
        return
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    except Exception as exc:  # noqa: BLE001  (a damaged index: the loader names it)
        raise DataError(path, f"has an unreadable variables index ({type(exc).__name__})",
                        "give the saved_model/ directory written by facenet-mtl export") from None
    declared = sum(int(np.prod(shape, dtype=np.float64)) * max(dtypes[name].size, 1) for name, shape in shapes.items())
    stored = sum(part.stat().st_size for part in prefix.parent.glob("variables.data-*"))
    if declared > min(MAX_MODEL_BYTES, MAX_EXPANSION * stored + SMALL_ARRAY_BYTES * len(shapes)):
        raise DataError(path, f"declares {_gib(declared)} of variables but stores {_gib(stored)} "
                        f"(the limit: {MAX_EXPANSION}x what is stored, at most {_gib(MAX_MODEL_BYTES)})", FIX)


def _check_h5(path, source):
    """The bytes the HDF5 file's datasets declare, and its `model_config` (None when it has none
    or it is not JSON: Keras's own load names that); DataError for an array not backed by its storage."""
    import h5py

    found = []
    with h5py.File(source, "r") as handle:
        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                declared = int(np.prod(item.shape, dtype=np.float64)) * item.dtype.itemsize
                found.append((name, declared, item.id.get_storage_size()))

        handle.visititems(visit)
        config = handle.attrs.get("model_config")
    total = 0
    for name, declared, stored in found:
        total += declared
        if declared > SMALL_ARRAY_BYTES and declared > MAX_EXPANSION * stored:
            raise DataError(path, f"declares the array '{name}' as {_gib(declared)} but stores {_gib(stored)} "
                            f"of it (a weight is stored in full)", FIX)
        if total > MAX_MODEL_BYTES:
            raise DataError(path, f"declares more than {_gib(MAX_MODEL_BYTES)} of arrays (at '{name}')", FIX)
    return total, (_json(config) if config is not None else None)


def _json(text):
    """A config's JSON, or None when it is not JSON (loading then says the file is not a model)."""
    try:
        return json.loads(text.decode() if isinstance(text, bytes) else text)
    except (ValueError, TypeError):
        return None


def _config_bytes(config, legacy=False):
    """The bytes of every variable that building `config` creates, counted without allocating any:
    the model is built in a `StatelessScope` (variables get their shape, not their value) and
    dropped. 0 when Keras cannot build it here (loading then reports why)."""
    import copy

    import keras
    from keras.src.backend.common import global_state

    config = copy.deepcopy(config)  # Keras edits the config it builds from
    pending = list(global_state.get_global_attribute("uninitialized_variables", []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            if not (isinstance(config, dict) and "class_name" in config):
                return 0
            if legacy:  # an .h5's config, read as Keras reads it (legacy_h5_format)
                from keras.src.legacy.saving import saving_utils

                model = saving_utils.model_from_config(config)
            else:
                model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        variables = list(getattr(model, "variables", []))
    except Exception:  # noqa: BLE001  (not buildable here: the real load names the cause)
        return 0
    finally:  # the scope's variables are never initialised
        global_state.set_global_attribute("uninitialized_variables", pending)
    return sum(int(np.prod(v.shape, dtype=np.float64)) * np.dtype(_numpy_dtype(v.dtype)).itemsize
               for v in variables)


def _numpy_dtype(dtype):
    name = str(dtype)
    return "float32" if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2") else name


def _gib(n):
    return f"{n / 1024 ** 3:.1f} GiB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.1f} MiB" if n >= 1024 ** 2 else f"{n} bytes"

"""Saved files that other Keras versions read: the model's real config, rewritten into the subset
every target understands, beside the same weights.

A file written by `model.save` in Keras 3.15 loads only in Keras 3.15: older Keras 3 releases
refuse config keys they do not know (`GlorotUniform(input_axes=...)`, `Dense(quantization_config=
...)`, `InputLayer(optional=...)`, `BatchNormalization(renorm=...)`) and Keras 2 (tf-keras) also
refuses `InputLayer(batch_shape=...)`, dtype-policy objects and Keras 3's node format. So:

- `keras3_config(config)`: keys a newer Keras added are dropped when they hold their default (a
  non-default value raises `NotPortableError`: dropping it would change the model), dtype policies
  become their plain name. Read by every Keras 3 from 3.4 on (`tests/training/test_portable.py`
  loads the files in each minor release). Keras 3.0-3.3 read single-input functional configs only
  in a list form that turns newer Keras' input into a list; they can load `model.keras2.h5`.
- `keras2_config(config)`: the same, in Keras 2's functional format (`batch_input_shape`,
  `[[layer, node, tensor, kwargs]]` inbound nodes), for `model.keras2.h5`.

The weights are the ones `model.save` wrote; only the JSON config is replaced, then the file is
read back and checked against the model before it is kept (`facenet_mtl.artifact.saving`).
"""
from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (layer class, config key) -> the default under which a key that newer Keras releases added
# changes nothing; the comment says which release added it (older ones refuse it).
ADDED_KEYS = {
    ("BatchNormalization", "renorm"): False,  # 3.14
    ("BatchNormalization", "renorm_clipping"): None,  # 3.14
    ("BatchNormalization", "renorm_momentum"): 0.99,  # 3.14
    ("Dense", "quantization_config"): None,  # 3.13
    ("EinsumDense", "quantization_config"): None,  # 3.13
    ("Embedding", "quantization_config"): None,  # 3.13
    ("InputLayer", "optional"): False,  # 3.13
    ("InputLayer", "ragged"): False,  # 3.9
}
INITIALIZER_ADDED_KEYS = {"input_axes": None, "output_axes": None}  # 3.15 (VarianceScaling family)
# Keras 3 keys Keras 2 (tf-keras 2.15-2.21) does not know, each with its lossless default.
KERAS2_MISSING_KEYS = {
    ("BatchNormalization", "synchronized"): False,
    ("InputLayer", "optional"): False,
    ("Dense", "lora_rank"): None,
    ("Dense", "lora_alpha"): None,
    ("Conv2D", "lora_rank"): None,
}
KERAS2_FORMAT_VERSION = "2.15.0"  # what `model.keras2.h5` says wrote it: Keras 2's h5 layout


class NotPortableError(ValueError):
    """The model uses a setting that an older Keras cannot read; dropping it would change it."""


def keras3_config(config: dict[str, Any]) -> dict[str, Any]:
    """A Keras 3 model config (`model.get_config()` wrapped as {"class_name", "config"}, or the
    `.h5`/`.keras` JSON) that every Keras 3 from 3.4 on reads, with nothing lost."""
    return _walk(config, ADDED_KEYS)


def keras2_config(config: dict[str, Any]) -> dict[str, Any]:
    """The same model config in Keras 2's functional format."""
    return _to_keras2(_walk(config, {**ADDED_KEYS, **KERAS2_MISSING_KEYS}))


def _walk(obj, droppable):
    if isinstance(obj, list):
        return [_walk(item, droppable) for item in obj]
    if not isinstance(obj, dict):
        return obj
    class_name = obj.get("class_name")
    if class_name in ("DTypePolicy", "FloatDTypePolicy") and isinstance(obj.get("config"), dict):
        return obj["config"]["name"]  # a plain float policy: its name is the whole of it
    if obj.get("module") == "keras.initializers" and isinstance(obj.get("config"), dict):
        return dict(obj, config=_drop_defaults(obj["config"], INITIALIZER_ADDED_KEYS, class_name))
    out = {}
    for key, value in obj.items():
        if key == "config" and isinstance(value, dict) and class_name:
            value = _drop_defaults(value, {k: v for (cls, k), v in droppable.items() if cls == class_name},
                                   f"{class_name} '{value.get('name', '')}'")
        out[key] = _walk(value, droppable)
    return out


def _drop_defaults(config, defaults, where):
    kept = {}
    for key, value in config.items():
        if key in defaults:
            if value != defaults[key]:
                raise NotPortableError(f"{where} sets {key}={value!r}, which older Keras releases cannot read")
            continue
        kept[key] = value
    return kept


FUNCTIONAL_CLASSES = ("Functional", "Model")


def _to_keras2(obj):
    """Keras 3's functional format -> Keras 2's, recursively (nested functional models too)."""
    if isinstance(obj, list):
        return [_to_keras2(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out = {key: _to_keras2(value) for key, value in obj.items()}
    class_name = obj.get("class_name")
    if class_name == "InputLayer" and "batch_shape" in out.get("config", {}):
        config = dict(out["config"])
        config["batch_input_shape"] = config.pop("batch_shape")
        out["config"] = config
    if class_name in FUNCTIONAL_CLASSES and isinstance(out.get("config"), dict) and "layers" in out["config"]:
        out["config"] = _keras2_graph(out["config"])
    if out.get("module") == "keras.initializers":
        out = {"class_name": out["class_name"], "config": out["config"]}
    return out


def _keras2_graph(config):
    """A functional model's layers and their connections in Keras 2's node format.

    Keras 2 counts a nested model's calls from 1 (its node 0 is the model's own), Keras 3 from 0,
    so every reference to a nested model's output moves up by one.
    """
    nested = {layer["name"] for layer in config["layers"] if layer.get("class_name") in FUNCTIONAL_CLASSES}

    def ref(history):
        name, node, tensor = history[:3]
        return [name, node + 1 if name in nested else node, tensor]

    def refs(value):
        if _is_node_ref(value):
            return [ref(value)]  # Keras 2 always lists a single input or output
        if isinstance(value, dict):
            return {key: ref(item) if _is_node_ref(item) else refs(item) for key, item in value.items()}
        return [ref(item) if _is_node_ref(item) else refs(item) for item in value]

    layers = [dict(layer, inbound_nodes=[_keras2_node(node, layer["name"], ref) for node in layer["inbound_nodes"]])
              for layer in config["layers"]]
    return dict(config, layers=layers, input_layers=refs(config["input_layers"]),
                output_layers=refs(config["output_layers"]))


def _is_node_ref(value):
    return isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)


def _keras2_node(node, layer_name, ref):
    """{"args": [tensor or [tensors]], "kwargs": {...}} -> [[layer, node, tensor, kwargs], ...]."""
    args, kwargs = node.get("args", []), {k: v for k, v in node.get("kwargs", {}).items() if v is not None}
    if len(args) != 1 or any(_is_tensor(v) for v in kwargs.values()):
        raise NotPortableError(f"layer '{layer_name}' is called with {len(args)} positional inputs or tensor "
                               "keyword arguments, which Keras 2's format cannot say")
    inputs = args[0] if isinstance(args[0], list) else [args[0]]
    if not all(_is_tensor(t) for t in inputs):
        raise NotPortableError(f"layer '{layer_name}' takes a non-tensor input, which Keras 2's format cannot say")
    return [[*ref(t["config"]["keras_history"]), kwargs] for t in inputs]


def _is_tensor(value):
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def rewrite_h5_config(path: str | Path, transform: Callable[[dict[str, Any]], dict[str, Any]],
                      keras_version: str | None = None) -> None:
    """Replace the model config of a `.h5` written by Keras 3 with `transform(config)`."""
    import h5py

    with h5py.File(path, "r+") as handle:
        config = json.loads(_text(handle.attrs["model_config"]))
        handle.attrs["model_config"] = json.dumps(transform(config)).encode("utf8")
        if keras_version:
            handle.attrs["keras_version"] = keras_version
            if "model_weights" in handle:
                handle["model_weights"].attrs["keras_version"] = keras_version


def rewrite_keras_config(path: Path, transform: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Replace `config.json` inside a `.keras` zip with `transform(config)` (other members kept)."""
    tmp = path.with_name(path.name + ".rewrite")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                data = json.dumps(transform(json.loads(data))).encode("utf8")
            target.writestr(item, data)
    shutil.move(tmp, path)


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else value

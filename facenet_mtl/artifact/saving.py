"""Writing a model file: a float32, uncompiled model as `.h5`, `.keras`, a Keras 2 `.keras2.h5` or
a SavedModel, each with its `ModelSpec` inside. Built-in layers only, so plain
`keras.models.load_model` reads them with no custom objects; the input is RGB 0-255 at the
model's size, all preprocessing inside.

`.h5` and `.keras` carry the model's config rewritten into what every Keras 3 from 3.4 on reads
(`facenet_mtl.artifact.portable`), `.keras2.h5` the same in Keras 2's format for tf-keras, and a
SavedModel the `facenet_mtl.json` marker (its graph's sha256, the spec and the labels) that
`facenet_mtl.artifact.loading` checks before it loads one. Each is written beside, then renamed,
so an interrupted save leaves the previous file whole.
"""
import json
import os
import shutil
import zipfile
from pathlib import Path

from facenet_mtl.artifact import portable
from facenet_mtl.artifact.spec import (KERAS_MEMBER, MARKER_FORMAT, METADATA_KEY, SAVED_MODEL_MARKER, ModelSpec,
                                       spec_of_model)
from facenet_mtl.weights import sha256_of


def save_h5(model, path, spec=None):
    """`model` as a `.h5` that every Keras 3 from 3.4 on loads (`portable.keras3_config`)."""
    return _save_rewritten(model, Path(path), ".h5", spec,
                           lambda tmp: portable.rewrite_h5_config(tmp, portable.keras3_config))


def save_keras(model, path, spec=None):
    """`model` as a `.keras` zip that every Keras 3 from 3.4 on loads."""
    return _save_rewritten(model, Path(path), ".keras", spec,
                           lambda tmp: portable.rewrite_keras_config(tmp, portable.keras3_config))


def save_keras2_h5(model, path, spec=None):
    """`model` as a Keras 2 `.h5` (tf-keras 2.15+, `TF_USE_LEGACY_KERAS=1`)."""
    return _save_rewritten(model, Path(path), ".h5", spec, lambda tmp: portable.rewrite_h5_config(
        tmp, portable.keras2_config, keras_version=portable.KERAS2_FORMAT_VERSION))


def _save_rewritten(model, final, suffix, spec, rewrite):
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp{suffix}")
    try:
        model.save(tmp)
        rewrite(tmp)
        write_metadata(tmp, model_metadata(model, spec))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def write_metadata(path, metadata):
    """`metadata` (with the spec) into a `.h5` (a root attribute) or a `.keras` (a zip member)."""
    path = Path(path)
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r+") as handle:
            handle.attrs[METADATA_KEY] = json.dumps(metadata)
        return
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(KERAS_MEMBER, json.dumps(metadata, indent=2))


def save_saved_model(model, final, spec=None):
    """`model.export(..., "tf_saved_model")` into `final`, with the facenet-mtl marker beside it."""
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), format="tf_saved_model", verbose=False)
    write_saved_model_marker(tmp, model_metadata(model, spec))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def write_saved_model_marker(directory, metadata=None):
    """`facenet_mtl.json` beside `saved_model.pb`: the graph's sha256 (what the loader checks) and
    the model's spec, labels and input contract."""
    directory = Path(directory)
    marker = {"format": MARKER_FORMAT, "saved_model_sha256": sha256_of(directory / "saved_model.pb"),
              **(metadata or {})}
    (directory / SAVED_MODEL_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return marker


def model_metadata(model, spec: ModelSpec = None):
    """What a user of a saved file needs besides the weights: the spec, and in plain words the input
    contract, the outputs and their labels (each task's own descriptions)."""
    spec = spec or spec_of_model(model)
    size = spec.input_size
    known = spec.task_objects()
    outputs = {name: text for task in known for name, text in task.output_descriptions().items()}
    return {"model": model.name, "tasks": list(spec.task_names),
            "input": {"name": model.inputs[0].name if hasattr(model.inputs[0], "name") else "image",
                      "shape": [None, size, size, 3], "dtype": "float32", "layout": "NHWC",
                      "values": "RGB 0-255 (no scaling: preprocessing is inside the model)",
                      "crop": f"aligned face crop (facenet_mtl.data.faces.crop_face, margin {spec.margin})"},
            "outputs": {name: outputs[name] for name in model.output_names if name in outputs},
            "labels": spec.labels(), "spec": spec.as_dict()}

"""Write the run's products: a float32, uncompiled copy of the model as `.h5`, `.keras`, a Keras 2
`.keras2.h5` and a SavedModel. Built-in layers only, so plain `keras.models.load_model` reads them
with no custom objects; the input is RGB 0-255 at the model's size, all preprocessing inside.

`model.h5` and `model.keras` carry the model's config rewritten into what every Keras 3 from 3.4
on reads (`facenet_mtl.training.portable`), `model.keras2.h5` the same in Keras 2's format for
tf-keras, and `saved_model/` a `facenet_mtl.json` marker (its graph's sha256, the labels and the
input contract) that `facenet_mtl.inference.loading` checks before it loads a SavedModel.
"""
import json
import os
import shutil
from pathlib import Path

import keras

from facenet_mtl import tasks as task_registry
from facenet_mtl.models import model_tasks
from facenet_mtl.training import portable
from facenet_mtl.training.plan import build_network
from facenet_mtl.training.rundir import MODEL_FILES, SAVED_MODEL
from facenet_mtl.weights import sha256_of

SAVED_MODEL_MARKER = "facenet_mtl.json"
MARKER_FORMAT = "facenet-mtl saved_model"


def inference_copy(trained, model_cfg):
    """The same network rebuilt under the float32 policy, with the trained weights."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = build_network(model_cfg)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.set_weights(trained.get_weights())
    return model


def export_model(model, run_dir, saved_model=True):
    """Save `model.h5`, `model.keras`, `model.keras2.h5` and `saved_model/` under run_dir
    (`rundir.MODEL_FILES`; each written beside, then renamed, so an interrupted export leaves the
    previous files whole)."""
    run_dir = Path(run_dir)
    paths = {"h5": save_h5(model, run_dir / MODEL_FILES["h5"]),
             "keras": save_keras(model, run_dir / MODEL_FILES["keras"]),
             "keras2_h5": save_keras2_h5(model, run_dir / MODEL_FILES["keras2_h5"])}
    if saved_model:
        paths["saved_model"] = save_saved_model(model, run_dir / SAVED_MODEL)
    return paths


def save_h5(model, path):
    """`model` as a `.h5` that every Keras 3 from 3.4 on loads (`portable.keras3_config`)."""
    return _save_rewritten(model, Path(path), ".h5", lambda tmp: portable.rewrite_h5_config(tmp, portable.keras3_config))


def save_keras(model, path):
    """`model` as a `.keras` zip that every Keras 3 from 3.4 on loads."""
    return _save_rewritten(model, Path(path), ".keras",
                           lambda tmp: portable.rewrite_keras_config(tmp, portable.keras3_config))


def save_keras2_h5(model, path):
    """`model` as a Keras 2 `.h5` (tf-keras 2.15+, `TF_USE_LEGACY_KERAS=1`)."""
    return _save_rewritten(model, Path(path), ".h5", lambda tmp: portable.rewrite_h5_config(
        tmp, portable.keras2_config, keras_version=portable.KERAS2_FORMAT_VERSION))


def _save_rewritten(model, final, suffix, rewrite):
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp{suffix}")
    try:
        model.save(tmp)
        rewrite(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def save_saved_model(model, final):
    """`model.export(..., "tf_saved_model")` into `final`, with the facenet-mtl marker beside it."""
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), format="tf_saved_model", verbose=False)
    write_saved_model_marker(tmp, model_metadata(model))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def write_saved_model_marker(directory, metadata=None):
    """`facenet_mtl.json` beside `saved_model.pb`: the graph's sha256 (what the loader checks) and
    the model's labels and input contract."""
    directory = Path(directory)
    marker = {"format": MARKER_FORMAT, "saved_model_sha256": sha256_of(directory / "saved_model.pb"),
              **(metadata or {})}
    (directory / SAVED_MODEL_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return marker


def model_metadata(model):
    """What a user of an exported file needs besides the weights: the input contract, the outputs
    and their labels, as each task (facenet_mtl.tasks) describes them."""
    size = int(model.input_shape[1])
    tasks = model_tasks(model)
    known = [task_registry.get(name) for name in tasks]
    outputs = {name: text for task in known for name, text in task.output_descriptions().items()}
    return {"model": model.name, "tasks": list(tasks),
            "input": {"name": model.inputs[0].name if hasattr(model.inputs[0], "name") else "image",
                      "shape": [None, size, size, 3], "dtype": "float32", "layout": "NHWC",
                      "values": "RGB 0-255 (no scaling: preprocessing is inside the model)",
                      "crop": "aligned face crop (facenet_mtl.data.faces.crop_face)"},
            "outputs": {name: outputs[name] for name in model.output_names if name in outputs},
            "labels": {task.name: list(task.classes) for task in known if task.kind != "age"}}

"""Write the run's products: a float32, uncompiled copy of the model as `.h5`, `.keras` and a
SavedModel. Built-in layers only, so plain `keras.models.load_model` reads them with no
custom objects; the input is RGB 0-255 at the model's size, all preprocessing inside."""
import os
import shutil
from pathlib import Path

import keras

from facenet_mtl.models import build_model


def network_from(model_cfg):
    """The functional network a config's `[model]` section describes, untrained."""
    return build_model(backbone=model_cfg.backbone, tasks=tuple(model_cfg.tasks), input_size=model_cfg.input_size,
                       backbone_args=dict(model_cfg.backbone_args), dropout=model_cfg.dropout,
                       head_units=model_cfg.head_units)


def inference_copy(trained, model_cfg):
    """The same network rebuilt under the float32 policy, with the trained weights."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = network_from(model_cfg)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.set_weights(trained.get_weights())
    return model


def export_model(model, run_dir, saved_model=True):
    """Save `model.h5`, `model.keras` and `saved_model/` under run_dir (each written, then renamed)."""
    run_dir = Path(run_dir)
    paths = {}
    for suffix in (".h5", ".keras"):
        final = run_dir / f"model{suffix}"
        tmp = run_dir / f"model.tmp{suffix}"
        model.save(tmp)
        os.replace(tmp, final)
        paths[suffix.lstrip(".")] = final
    if saved_model:
        final = run_dir / "saved_model"
        tmp = run_dir / "saved_model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        paths["saved_model"] = final
    return paths

"""A finished run's products: the trained network as a float32 copy, saved as every model file a
run holds (`rundir.MODEL_FILES` and `saved_model/`), each with the run's `ModelSpec` inside
(`facenet_mtl.artifact`)."""
from pathlib import Path

import keras

from facenet_mtl.artifact.saving import save_h5, save_keras, save_keras2_h5, save_saved_model
from facenet_mtl.artifact.spec import data_kind, spec_of_model
from facenet_mtl.training.plan import build_network
from facenet_mtl.training.rundir import MODEL_FILES, SAVED_MODEL


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


def run_spec(model, cfg, calibration=None):
    """The spec of a run's product: its heads, the data `cfg` (an `ExperimentConfig`) trained it on,
    and the temperatures its heads were calibrated with (`training.calibration`), if any."""
    config = {"name": cfg.name, "data": {"root": str(cfg.data.root)}}
    return spec_of_model(model, training_data=",".join(cfg.data.datasets), trained_on=data_kind(config),
                         calibration=calibration)


def export_model(model, run_dir, saved_model=True, spec=None):
    """Save `model.h5`, `model.keras`, `model.keras2.h5` and `saved_model/` under run_dir, each
    carrying `spec` (None: the one the model's outputs give)."""
    run_dir = Path(run_dir)
    paths = {"h5": save_h5(model, run_dir / MODEL_FILES["h5"], spec),
             "keras": save_keras(model, run_dir / MODEL_FILES["keras"], spec),
             "keras2_h5": save_keras2_h5(model, run_dir / MODEL_FILES["keras2_h5"], spec)}
    if saved_model:
        paths["saved_model"] = save_saved_model(model, run_dir / SAVED_MODEL, spec)
    return paths

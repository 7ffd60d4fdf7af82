import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def mixed_bfloat16():
    """Run a test under the mixed_bfloat16 policy, and restore the previous policy after it."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _walk_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk_layers(layer)


def _walk_config(config):
    for entry in config["layers"]:
        yield entry
        if entry["class_name"] == "Functional":
            yield from _walk_config(entry["config"])


def check_builtin_only(model):
    """Every layer is a Keras built-in, and the graph holds nothing else (no Lambda, no bare ops
    such as `x + 3` that a `.h5` file cannot load back)."""
    for layer in _walk_layers(model):
        assert type(layer).__module__.startswith("keras."), f"{layer.name} is a {type(layer)}"
        assert type(layer).__name__ not in ("Lambda", "TFOpLambda"), layer.name
    for entry in _walk_config(model.get_config()):
        assert entry["module"] in ("keras.layers", "keras.src.models.functional"), \
            f"{entry['name']}: {entry['module']}.{entry['class_name']} is not a built-in layer"


@pytest.fixture
def assert_builtin_only():
    return check_builtin_only

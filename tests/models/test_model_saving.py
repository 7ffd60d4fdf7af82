"""Saved models are the product: they must load with plain Keras, in a process that has never
imported facenet_mtl, with no custom objects, and predict exactly what the built model did."""
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from facenet_mtl.data.schema import AGE_BINS
from facenet_mtl.models import build_model, model_tasks, transfer_weights

MODELS = {
    "resnet18": dict(backbone="resnet18", input_size=32, backbone_args={"width": 4}, head_units=4),
    "compact": dict(backbone="compact", input_size=48, backbone_args={"widths": (8, 16, 32), "stem_width": 8}),
}
TASKS = ("age", "gender", "emotion", "smile")

LOAD_IN_PLAIN_KERAS = textwrap.dedent("""
    import sys
    import numpy as np
    import keras

    folder, names = sys.argv[1], sys.argv[2:]
    for name in names:
        images = np.load(f"{folder}/{name}.images.npy")
        for ext in ("h5", "keras"):
            model = keras.models.load_model(f"{folder}/{name}.{ext}")
            assert model.inputs[0].name == "image", model.inputs[0].name
            assert not model.get_layer("age").trainable
            np.savez(f"{folder}/{name}.{ext}.loaded.npz", **model.predict(images, verbose=0))
    assert not [m for m in sys.modules if m.startswith("facenet_mtl")], "facenet_mtl was imported"
""")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The models built, saved as .h5 and .keras, and their predictions before saving."""
    folder = tmp_path_factory.mktemp("saved")
    predictions = {}
    for name, kwargs in MODELS.items():
        model = build_model(tasks=TASKS, **kwargs)
        size = kwargs["input_size"]
        images = np.random.default_rng(0).uniform(0, 255, (3, size, size, 3)).astype("float32")
        np.save(folder / f"{name}.images.npy", images)
        predictions[name] = model.predict(images, verbose=0)
        model.save(folder / f"{name}.h5")
        model.save(folder / f"{name}.keras")
    return folder, predictions


def test_saved_models_load_in_plain_keras_and_predict_the_same(saved):
    folder, predictions = saved
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    # Run from the saving folder, so the source tree is not even on the path.
    result = subprocess.run([sys.executable, "-c", LOAD_IN_PLAIN_KERAS, str(folder), *MODELS],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in MODELS:
        for ext in ("h5", "keras"):
            loaded = np.load(folder / f"{name}.{ext}.loaded.npz")
            assert sorted(loaded.files) == sorted(predictions[name])
            for output, expected in predictions[name].items():
                np.testing.assert_allclose(loaded[output], expected, atol=1e-5, err_msg=f"{name}.{ext}:{output}")


@pytest.mark.parametrize("ext", ["h5", "keras"])
def test_a_loaded_model_keeps_its_tasks_and_can_seed_a_finetune(saved, ext):
    folder, _ = saved
    loaded = keras.models.load_model(folder / f"compact.{ext}")
    assert model_tasks(loaded) == TASKS
    np.testing.assert_array_equal(loaded.get_layer("age").get_weights()[0][:, 0], np.arange(AGE_BINS))
    target = build_model(tasks=("age", "emotion"), **MODELS["compact"])
    assert sorted(transfer_weights(loaded, target)) == ["age", "age_probs", "backbone", "emotion"]
    for a, b in zip(loaded.get_layer("backbone").get_weights(), target.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)

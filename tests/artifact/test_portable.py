"""The compatibility matrix: the files `export_model` writes load in every Keras 3 minor release
from 3.4 to the one installed, and `model.keras2.h5` in tf-keras, each in a subprocess that never
imports facenet_mtl, with the same outputs (max abs difference <= 1e-5).

Each target Keras is a pure-Python wheel installed once with `pip install --no-deps --target` into
~/.cache/facenet-mtl/keras-matrix/<version> (FACENET_MTL_CACHE moves it) and put first on the
subprocess' PYTHONPATH over the installed TensorFlow. The test skips only when pip cannot reach
the package registry to install a missing one.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl.models import build_model
from facenet_mtl.models.flip_average import with_flip_average
from facenet_mtl.artifact import portable
from facenet_mtl.artifact.saving import save_h5, save_keras, save_keras2_h5
from facenet_mtl.weights import release_model_path

# The newest patch of every Keras 3 minor before the installed one (3.15, loaded in-process by
# tests/models/test_model_saving.py). Keras 3.0-3.3 cannot read a single-input functional model
# written in Keras 3.4+'s form (see facenet_mtl.artifact.portable).
KERAS3_MATRIX = ("3.4.1", "3.5.0", "3.6.0", "3.7.0", "3.8.0", "3.9.2", "3.10.0", "3.11.3", "3.12.4",
                 "3.13.2", "3.14.1")
TF_KERAS = "tf-keras~={}.0".format(".".join(tf.__version__.split(".")[:2]))
CACHE = Path(os.environ.get("FACENET_MTL_CACHE", Path.home() / ".cache" / "facenet-mtl")) / "keras-matrix"
TOLERANCE = 1e-5

LOAD = textwrap.dedent("""
    import sys
    import numpy as np
    if sys.argv[1] == "keras2":
        import tf_keras as keras
    else:
        import keras
    folder, names = sys.argv[2], sys.argv[3:]
    for name in names:
        model = keras.models.load_model(f"{folder}/{name}", compile=False)
        images = np.load(f"{folder}/{name.split('.')[0]}.images.npy")
        np.savez(f"{folder}/{name}.{keras.__version__}.npz", **model.predict(images, verbose=0))
    assert not [m for m in sys.modules if m.startswith("facenet_mtl")], "facenet_mtl was imported"
    print(keras.__version__, keras.__file__)
""")


def install(requirement, folder):
    """`requirement` as a pure-Python wheel in `folder` (cached); skip if the registry is unreachable."""
    if (folder / ".complete").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".partial")
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                           "--target", str(tmp), requirement], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        unreachable = any(word in done.stderr for word in ("NewConnectionError", "Could not find a version",
                                                            "Temporary failure", "No matching distribution"))
        if unreachable:
            pytest.skip(f"pip cannot reach the package registry to install {requirement}: {done.stderr[-300:]}")
        raise AssertionError(done.stderr[-3000:])
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    tmp.rename(folder)
    (folder / ".complete").write_text(requirement + "\n")
    return folder


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A demo-sized flip-averaged model and the shipped release model, each written by the
    package's writers, with sample images and the outputs Keras gave before saving."""
    folder = tmp_path_factory.mktemp("portable")
    demo = with_flip_average(build_model("compact", ("age", "gender", "emotion", "smile"), 32,
                                         backbone_args={"widths": (8, 16), "stem_width": 8}, head_units=4))
    release = keras.models.load_model(release_model_path(), compile=False)
    expected = {}
    for name, model in (("demo", demo), ("release", release)):
        size = int(model.input_shape[1])
        images = np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)).astype("float32")
        np.save(folder / f"{name}.images.npy", images)
        expected[name] = model.predict(images, verbose=0)
        save_h5(model, folder / f"{name}.h5")
        save_keras(model, folder / f"{name}.keras")
        save_keras2_h5(model, folder / f"{name}.keras2.h5")
    return folder, expected


def run_loaders(jobs, folder):
    """Start every (flavour, site folder, files) load at once, two at a time; wait for each."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    results, running = [], []
    for flavour, site, files in jobs:
        job_env = dict(env, PYTHONPATH=str(site), **({"TF_USE_LEGACY_KERAS": "1"} if flavour == "keras2" else {}))
        running.append((flavour, site, subprocess.Popen(
            [sys.executable, "-c", LOAD, flavour, str(folder), *files], cwd=folder, env=job_env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        if len(running) == 2:
            results.append(_wait(*running.pop(0)))
    results.extend(_wait(*job) for job in running)
    return results


def _wait(flavour, site, process):
    stdout, stderr = process.communicate(timeout=600)
    return site, process.returncode, stdout, stderr


def compare(folder, expected, file_name, version):
    loaded = np.load(folder / f"{file_name}.{version}.npz")
    reference = expected[file_name.split(".")[0]]
    assert sorted(loaded.files) == sorted(reference), (file_name, version)
    for output, values in reference.items():
        # rtol: ages (~70 years) in float32 differ by a unit in the last place (7.6e-6) between runtimes.
        np.testing.assert_allclose(loaded[output], values, atol=TOLERANCE, rtol=1e-6,
                                   err_msg=f"{file_name} in Keras {version}: {output}")


@pytest.mark.slow  # about other Keras versions: `make test` runs it, `make test-min` does not
def test_every_keras_3_minor_and_tf_keras_load_the_files_with_the_same_outputs(written):
    folder, expected = written
    jobs = [("keras3", install(f"keras=={version}", CACHE / version), ["demo.h5", "demo.keras", "release.h5",
                                                                       "release.keras"]) for version in KERAS3_MATRIX]
    tf_keras_version = TF_KERAS.split("~=")[1].removesuffix(".0")
    jobs.append(("keras2", install(TF_KERAS, CACHE / f"tf-keras-{tf_keras_version}"),
                 ["demo.keras2.h5", "release.keras2.h5"]))
    for site, returncode, stdout, stderr in run_loaders(jobs, folder):
        assert returncode == 0, f"{site}: {stderr[-3000:]}"
        version, location = stdout.split()[-2:]
        assert location.startswith(str(site)), f"loaded {location}, not the Keras in {site}"
    for version in KERAS3_MATRIX:
        for name in ("demo.h5", "demo.keras", "release.h5", "release.keras"):
            compare(folder, expected, name, version)
    loaded_tf_keras = next(p.name.split(".npz")[0].split("keras2.h5.")[1] for p in folder.glob("demo.keras2.h5.*.npz"))
    for name in ("demo.keras2.h5", "release.keras2.h5"):
        compare(folder, expected, name, loaded_tf_keras)


def test_the_keras3_config_drops_only_defaults_and_keeps_the_graph():
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "name": "image", "inbound_nodes": [],
         "config": {"batch_shape": [None, 8, 8, 3], "dtype": "float32", "ragged": False, "optional": False,
                    "name": "image"}},
        {"class_name": "Dense", "name": "d", "config": {
            "name": "d", "units": 2, "quantization_config": None,
            "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}},
            "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                   "config": {"seed": 3, "input_axes": None, "output_axes": None}}},
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                      "config": {"keras_history": ["image", 0, 0]}}], "kwargs": {}}]}],
        "input_layers": ["image", 0, 0], "output_layers": {"d": ["d", 0, 0]}}}
    portable_config = portable.keras3_config(config)
    image, dense = portable_config["config"]["layers"]
    assert image["config"] == {"batch_shape": [None, 8, 8, 3], "dtype": "float32", "name": "image"}
    assert dense["config"]["dtype"] == "float32" and "quantization_config" not in dense["config"]
    assert dense["config"]["kernel_initializer"]["config"] == {"seed": 3}
    assert portable_config["config"]["input_layers"] == ["image", 0, 0]  # Keras 3.4+'s leaf form kept

    keras2 = portable.keras2_config(config)["config"]
    assert keras2["layers"][0]["config"]["batch_input_shape"] == [None, 8, 8, 3]
    assert keras2["layers"][1]["inbound_nodes"] == [[["image", 0, 0, {}]]]
    assert keras2["input_layers"] == [["image", 0, 0]]

    config["config"]["layers"][1]["config"]["quantization_config"] = {"mode": "int8"}
    with pytest.raises(portable.NotPortableError, match="Dense 'd' sets quantization_config"):
        portable.keras3_config(config)

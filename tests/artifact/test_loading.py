"""Loading saved models: each bad file gets its own message (not a zip, truncated, not a model,
a newer Keras, a Keras 2 file), and a SavedModel that facenet-mtl did not write never runs."""
import json
import shutil
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from facenet_mtl.cli import main
from facenet_mtl.errors import DataError
from facenet_mtl.artifact.loading import load_keras_model, unsafe_graph_ops
from facenet_mtl.artifact.saving import save_h5, save_keras, save_keras2_h5, save_saved_model, write_saved_model_marker


def small_model(size=16):
    image = keras.Input((size, size, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(image))
    return keras.Model(image, {"smile": keras.layers.Dense(1, activation="sigmoid", name="smile")(x)})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    model = small_model()
    return {"h5": save_h5(model, folder / "m.h5"), "keras": save_keras(model, folder / "m.keras"),
            "keras2": save_keras2_h5(model, folder / "m.keras2.h5"), "folder": folder, "model": model}


class WritesAFile(tf.Module):
    """A SavedModel whose serve() also writes a file: what loading must never run by default."""

    def __init__(self, target):
        super().__init__()
        self.target = str(target)
        self.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    def serve(self, images):
        tf.io.write_file(self.target, "pwned")
        return {"smile": tf.reduce_mean(images, axis=[1, 2, 3])[:, None] * self.scale}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    target = folder / "written_by_the_model.txt"
    module = WritesAFile(target)
    tf.saved_model.save(module, str(folder / "saved_model"), signatures={"serving_default": module.serve})
    return folder / "saved_model", target


def test_a_foreign_saved_model_is_refused_and_never_runs(hostile):
    path, target = hostile
    with pytest.raises(DataError, match=r"(?s)facenet-mtl did not write \(no facenet_mtl.json\).*trust_saved_model=True"):
        load_keras_model(path)
    result = CliRunner().invoke(main, ["predict", str(path), "--no-detect", str(path / "saved_model.pb")])
    assert result.exit_code == 2 and "--trust-saved-model" in result.output and "Traceback" not in result.output
    assert not target.exists()
    # A forged marker (the right sha256 over the hostile graph) is still refused: the graph is read.
    forged = path.parent / "forged"
    shutil.copytree(path, forged)
    write_saved_model_marker(forged)
    with pytest.raises(DataError, match="ops that are not tensor math \\(WriteFile\\)"):
        load_keras_model(forged)
    assert not target.exists()
    # Opting in runs it: the test's model really is hostile.
    model = load_keras_model(path, trust_saved_model=True)
    model.predict(np.zeros((1, 16, 16, 3), np.float32))
    assert target.read_text() == "pwned"


def test_our_saved_model_loads_and_a_changed_one_does_not(files):
    path = save_saved_model(files["model"], files["folder"] / "saved_model")
    assert unsafe_graph_ops(path) == []
    marker = json.loads((path / "facenet_mtl.json").read_text())
    assert marker["labels"] == {"smile": ["no_smile", "smile"]} and marker["input"]["shape"] == [None, 16, 16, 3]
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(load_keras_model(path).predict(x)["smile"], files["model"].predict(x, verbose=0)["smile"],
                               atol=1e-6)
    changed = files["folder"] / "changed"
    shutil.copytree(path, changed)
    with open(changed / "saved_model.pb", "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(DataError, match="does not match the sha256"):
        load_keras_model(changed)


def test_a_keras_file_that_is_not_a_zip_says_so(files, tmp_path):
    text = tmp_path / "model.keras"
    text.write_text("not a model")
    with pytest.raises(DataError, match="a .keras file is a zip archive, and this one .* is not"):
        load_keras_model(text)
    renamed = tmp_path / "really_h5.keras"
    shutil.copy(files["h5"], renamed)
    with pytest.raises(DataError, match="(?s)is an HDF5 file, not a .keras zip archive.*rename it to .h5"):
        load_keras_model(renamed)


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_a_truncated_file_says_truncated(files, tmp_path, kind):
    data = files[kind].read_bytes()
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_keras_model(cut)


def test_files_that_are_not_models(files, tmp_path):
    weights = tmp_path / "weights.weights.h5"
    files["model"].save_weights(weights)
    shutil.move(weights, tmp_path / "weights.h5")
    with pytest.raises(DataError, match="HDF5 file but not a saved Keras model"):
        load_keras_model(tmp_path / "weights.h5")
    archive = tmp_path / "photos.keras"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("photo.jpg", b"jpeg")
    with pytest.raises(DataError, match="zip archive but not a Keras model \\(no config.json"):
        load_keras_model(archive)


def test_a_file_from_a_newer_keras_names_both_versions(files, tmp_path):
    newer = tmp_path / "newer.h5"
    shutil.copy(files["h5"], newer)
    with h5py.File(newer, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"]["layers"][-1]["config"]["from_the_future"] = True
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["keras_version"] = "9.1.0"
    with pytest.raises(DataError, match=rf"(?s)written by Keras 9.1.0; this Python has Keras {keras.__version__}.*"
                                        r"upgrade Keras"):
        load_keras_model(newer)


def test_a_keras2_file_of_a_nested_model_in_keras3_points_to_tf_keras(files, tmp_path):
    inner = files["model"]
    image = keras.Input(inner.input_shape[1:], name="image")
    outer = keras.Model(image, inner(image), name="outer")  # Keras 3 misreads Keras 2's nested nodes
    path = save_keras2_h5(outer, tmp_path / "nested.keras2.h5")
    with pytest.raises(DataError, match="(?s)is a Keras 2 file .*tf-keras"):
        load_keras_model(path)


class NamedLikeTheCheckpointWriter(tf.Module):
    """serve() calls a tf.function named `_traced_save`: TensorFlow names it
    `__inference__traced_save_N`, like the checkpoint writer every SavedModel carries."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = str(prefix)
        self.scale = tf.Variable(2.0)

    @tf.function
    def _traced_save(self, value):
        tf.raw_ops.SaveV2(prefix=self.prefix, tensor_names=["a"], shape_and_slices=[""], tensors=[value])
        return value

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    def serve(self, images):
        self._traced_save(tf.constant(1.0))
        return {"smile": tf.reduce_mean(images, axis=[1, 2, 3])[:, None] * self.scale}


def test_file_writing_ops_are_refused_whatever_their_function_is_named(tmp_path):
    prefix = tmp_path / "written_by_the_model"
    module = NamedLikeTheCheckpointWriter(prefix)
    path = tmp_path / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    write_saved_model_marker(path)  # anyone can write the marker
    assert "SaveV2" in unsafe_graph_ops(path)
    photo = tmp_path / "photo.png"
    photo.write_bytes(tf.io.encode_png(np.zeros((16, 16, 3), np.uint8)).numpy())
    result = CliRunner().invoke(main, ["predict", "--model", str(path), "--no-detect", str(photo)])
    assert result.exit_code == 2 and "SaveV2" in result.output and "--trust-saved-model" in result.output
    assert not list(tmp_path.glob("written_by_the_model*"))


def _loads_within(path, seconds=60):
    """The exception loading `path` raised, or a failure when it blocked (the FIFO is then opened
    for writing so the reader wakes up and the thread ends)."""
    import os
    import threading

    raised = []
    thread = threading.Thread(target=lambda: raised.append(pytest.raises(DataError, load_keras_model, path)),
                              daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in [path, path / "saved_model.pb"]:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        pytest.fail(f"loading {path} blocked")
    thread.join()
    return raised[0].value


def test_a_model_path_that_is_a_pipe_is_refused_not_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "model.h5")
    assert "not a regular file" in str(_loads_within(tmp_path / "model.h5"))
    (tmp_path / "saved").mkdir()
    os.mkfifo(tmp_path / "saved" / "saved_model.pb")
    assert "not a regular file" in str(_loads_within(tmp_path / "saved"))


# --- the arrays a file declares are bounded before anything is allocated -------------------------

def test_an_h5_weight_declared_larger_than_it_stores_is_refused(files, tmp_path):
    """An HDF5 dataset whose storage was never written reads back as its fill value: a 2 KB file
    could make loading allocate terabytes."""
    path = tmp_path / "huge.h5"
    shutil.copy(files["folder"] / "m.h5", path)
    with h5py.File(path, "r+") as handle:
        weights = handle["model_weights"]
        weights.create_dataset("declared_only", shape=(10 ** 6, 10 ** 6), dtype="float32")
    assert path.stat().st_size < 1024 ** 2
    with pytest.raises(DataError, match="declares the array 'model_weights/declared_only'"):
        load_keras_model(path)


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_a_config_declaring_huge_layers_is_refused_before_keras_builds_it(files, tmp_path, kind):
    """Dense(10**9) after 3 channels: 12 GB of kernel that building the model would allocate."""
    path = tmp_path / f"wide.{kind}"
    shutil.copy(files["folder"] / f"m.{kind}", path)
    if kind == "h5":
        with h5py.File(path, "r+") as handle:
            config = handle.attrs["model_config"]
            config = config.decode() if isinstance(config, bytes) else config
            handle.attrs["model_config"] = config.replace('"units": 1', '"units": 1000000000')
    else:
        with zipfile.ZipFile(files["folder"] / "m.keras") as source, zipfile.ZipFile(path, "w") as target:
            for name in source.namelist():
                data = source.read(name)
                if name == "config.json":
                    data = data.replace(b'"units": 1', b'"units": 1000000000')
                target.writestr(name, data)
    with pytest.raises(DataError, match=r"declares 1\d\.\d GiB of weights, beyond the 2\.0 GiB"):
        load_keras_model(path)


def test_the_files_we_write_and_the_shipped_model_pass_the_bounds(files):
    from facenet_mtl.artifact.bounds import check_model_file
    from facenet_mtl.weights import release_model_path

    for path in (files["folder"] / "m.h5", files["folder"] / "m.keras", release_model_path()):
        check_model_file(path)  # raises on a refusal


def test_only_the_verified_shipped_model_skips_the_bounds(monkeypatch, tmp_path):
    """The shipped model, its sha256 checked against release.json, loads without a second build of
    its config; the same bytes anywhere else are bounded like any file."""
    from facenet_mtl.artifact import loading
    from facenet_mtl.inference.predictor import FacePredictor
    from facenet_mtl.weights import release_model_path

    checked = []
    monkeypatch.setattr(loading, "check_model_file", checked.append)
    FacePredictor.from_path(None)
    assert checked == []
    copy = tmp_path / "release.h5"
    shutil.copy(release_model_path(), copy)
    FacePredictor.from_path(copy)
    assert checked == [copy]


def test_a_saved_model_declaring_more_variables_than_it_stores_is_refused(files, tmp_path):
    folder = tmp_path / "saved_model"
    save_saved_model(files["model"], folder)
    load_keras_model(folder)  # whole, it loads
    module = tf.Module()
    module.big = tf.Variable(tf.zeros([512, 512]))
    tf.saved_model.save(module, str(tmp_path / "big"))
    for part in (tmp_path / "big" / "variables").glob("variables.data-*"):
        part.write_bytes(part.read_bytes()[:1000])  # the index still declares 1 MiB
    with pytest.raises(DataError, match="declares 1.0 MiB of variables but stores"):
        load_keras_model(tmp_path / "big", trust_saved_model=True)


def test_a_keras_file_whose_config_is_not_json_says_it_cannot_be_read(files, tmp_path):
    """The bounds read the config first; a broken one is left for Keras's own load to name."""
    path = tmp_path / "broken.keras"
    with zipfile.ZipFile(files["folder"] / "m.keras") as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            target.writestr(name, b"{not json" if name == "config.json" else source.read(name))
    with pytest.raises(DataError, match="cannot be read as a Keras model"):
        load_keras_model(path)

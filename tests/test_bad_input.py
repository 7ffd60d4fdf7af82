"""Bad input through the command line, as a new user gives it (issue 12): each case exits with
code 2 and a message naming the file or field, prints no traceback, and leaves nothing
half-written (no run directory, no records folder, no fingerprint that blocks the next build)."""
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from tests.cli_checks import assert_user_error

from facenet_mtl import cli as cli_module
from facenet_mtl.demo import native_layouts

CONFIG = """\
name = "bad"
[model]
backbone = "compact"
input_size = 32
tasks = ["age", "gender"]
backbone_args = {{ widths = [8, 16], stem_width = 8 }}
[data]
root = "{root}"
datasets = ["utkface"]
"""




def files_under(path):
    path = Path(path)
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def utk_faces(n, seed=0):
    rng = np.random.default_rng(seed)
    return [dict(image=rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), age=20 + i, gender=i % 2)
            for i in range(n)]


@pytest.fixture
def experiment(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG.format(root=tmp_path / "records"))
    return path


# --- train: one validation of every value, before any work ---------------------------------------

TRAIN_CASES = {
    "negative and NaN loss weights": (["--loss-weights", "age=-1,gender=nan"], ["--loss-weights", "loss.weights.age"]),
    "a loss weight that is not a number": (["--loss-weights", "age=abc"], ["--loss-weights", "loss.weights.age", "abc"]),
    "every loss weight zero": (["--loss-weights", "age=0,gender=0"], ["loss.weights", "every task's weight is 0"]),
    "an unknown task": (["--loss-weights", "beauty=1"], ["--loss-weights", "beauty"]),
    "an infinite weight by --set": (["--set", "loss.weights.gender=inf"], ["--set", "loss.weights.gender", "inf"]),
    "zero epochs": (["--epochs", "0"], ["train.epochs", "0 epochs trains nothing"]),
    "negative epochs": (["--epochs", "-3"], ["train.epochs"]),
    "NaN learning rate": (["--set", "optimizer.lr=nan"], ["optimizer.lr", "> 0"]),
    "negative limit": (["--set", "data.limit=-1"], ["data.limit"]),
    "zero batch size": (["--set", "data.batch_size=0"], ["data.batch_size"]),
    "a huge input size": (["--set", "model.input_size=10000"], ["model.input_size", "512"]),
    "a name that escapes runs/": (["--set", 'name="../escaped"'], ["name", "../escaped"]),
    "a negative seed": (["--set", "train.seed=-1"], ["train.seed"]),
    "dropout of 1": (["--set", "model.dropout=1.0"], ["model.dropout"]),
    "a weight of the wrong type": (["--set", 'loss.weights.age="heavy"'], ["loss.weights.age", "heavy"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_refuses_a_bad_value_before_any_work(cli, tmp_path, experiment, case):
    args, named = TRAIN_CASES[case]
    result = cli("train", "--config", experiment, "--runs-dir", tmp_path / "runs", *args)
    assert_user_error(result, experiment, *named)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("line, field", [
    ("[loss]\nweights = { age = nan }", "loss.weights.age"),
    ("[optimizer]\nlr = -0.1", "optimizer.lr"),
    ("[data]\nsampling_weights = { utkface = -1 }\nmixing = \"weights\"", "data.sampling_weights.utkface"),
    ("[train]\nepochs = inf", "train.epochs"),
])
def test_a_bad_value_in_the_config_file_names_the_file_and_field(cli, tmp_path, line, field):
    path = tmp_path / "exp.toml"
    base = CONFIG.format(root=tmp_path / "records")
    section = line.split("\n", 1)[0]
    text = base.replace(section + "\n", line + "\n", 1) if section in base else base + line + "\n"
    path.write_text(text)
    result = cli("train", "--config", path, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, path, field)
    assert not (tmp_path / "runs").exists()


def test_run_on_a_folder_without_configs_exits_2(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_base.toml").write_text('name = "base"\n')  # a base alone is not an experiment
    result = cli("run", tmp_path / "empty", "--runs-dir", tmp_path / "runs")
    assert_user_error(result, tmp_path / "empty", "no experiment configs")
    assert not (tmp_path / "runs").exists()


# --- build-tfrecords: options, damaged files, unwritable output ----------------------------------

@pytest.mark.parametrize("option, value", [
    ("--image-size", 0), ("--image-size", -5), ("--image-size", 10000),
    ("--limit", -1), ("--workers", -2), ("--workers", 100000),
])
def test_build_refuses_a_bad_option_before_any_work(cli, tmp_path, option, value):
    native_layouts.write_utkface(tmp_path / "utk", utk_faces(6))
    out = tmp_path / "out"
    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "utk", "--out", out, option, value)
    assert_user_error(result, option, str(value), "fix:")
    assert not out.exists()


@pytest.mark.parametrize("option", ["age_target=foo", "limit=abc"])
def test_a_bad_reader_option_value_exits_2(cli, tmp_path, option):
    faces = [dict(image=np.zeros((32, 32, 3), np.uint8), split="train", apparent_age=30, apparent_std=2,
                  real_age=30, gender=1)]
    native_layouts.write_appa_real(tmp_path / "appa", faces)
    result = cli("build-tfrecords", "appa_real", "--source", tmp_path / "appa", "--out", tmp_path / "out",
                 "--option", option)
    assert_user_error(result, option.split("=")[1], "fix:")
    assert not (tmp_path / "out").exists()


def test_a_failed_build_leaves_no_fingerprint_that_blocks_the_next(cli, tmp_path):
    native_layouts.write_utkface(tmp_path / "utk", utk_faces(6))
    out = tmp_path / "out"
    base = ("build-tfrecords", "utkface", "--source", tmp_path / "utk", "--out", out, "--workers", 1)
    assert_user_error(cli(*base, "--image-size", 0), "--image-size")
    # A build that stopped before finishing a shard (an older version's fingerprint of size 0).
    done = out / "utkface" / "1.0.0" / ".done"
    done.mkdir(parents=True)
    (done / "fingerprint").write_text("0123456789abcdef")
    result = cli(*base, "--image-size", 16)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "utkface" / "manifest.json").read_text())
    assert manifest["image_size"] == 16 and sum(s["count"] for s in manifest["splits"].values()) == 6


def fer_csv(path, n=8):
    faces = [dict(image=np.full((48, 48), 10 * i, np.uint8), emotion=i % 7, usage="Training") for i in range(n)]
    return native_layouts.write_fer2013_csv(path, faces)


@pytest.mark.parametrize("damage", ["truncated", "not_utf8"])
def test_a_damaged_fer2013_csv_exits_2_naming_it(cli, tmp_path, damage):
    path = fer_csv(tmp_path / "fer2013.csv")
    data = path.read_bytes()
    if damage == "truncated":  # cut in the middle of the last row's pixels
        data = data[: data.rstrip().rfind(b"\n") + 200]
    else:
        data = data.replace(b"Training", "Träining".encode("latin-1"), 1)
    path.write_bytes(data)
    out = tmp_path / "out"
    result = cli("build-tfrecords", "fer2013", "--source", path, "--out", out, "--image-size", 16, "--workers", 1)
    assert_user_error(result, path, "fix:")
    assert {"truncated": "truncated", "not_utf8": "UTF-8"}[damage] in result.output
    assert not out.exists()


def test_a_damaged_fer2013_row_is_dropped_and_counted(cli, tmp_path):
    path = fer_csv(tmp_path / "fer2013.csv")
    data = path.read_bytes()
    path.write_bytes(data[:300] + b"\0" + data[301:])  # one pixel value of the first row is a NUL
    out = tmp_path / "out"
    result = cli("build-tfrecords", "fer2013", "--source", path, "--out", out, "--image-size", 16, "--workers", 1)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "fer2013" / "manifest.json").read_text())
    assert manifest["dropped"] == {"bad_pixels": 1} and sum(s["count"] for s in manifest["splits"].values()) == 7


def test_genki_labels_that_are_not_utf8_exit_2(cli, tmp_path):
    native_layouts.write_genki4k(tmp_path / "genki", [dict(image=np.zeros((24, 24, 3), np.uint8), smile=1)] * 3)
    labels = tmp_path / "genki" / "labels.txt"
    labels.write_bytes(b"\xff\xfe" + labels.read_bytes())
    result = cli("build-tfrecords", "genki4k", "--source", tmp_path / "genki", "--out", tmp_path / "out")
    assert_user_error(result, labels, "UTF-8")


def unwritable_folder(tmp_path):
    """A folder this process cannot create files in: read-only for a normal user; for root
    (who ignores permission bits), a folder under /sys."""
    if os.geteuid() != 0:
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o500)
        return folder / "out"
    try:
        (Path("/sys") / "facenet-mtl-test").mkdir()
    except PermissionError:
        return Path("/sys") / "facenet-mtl-test" / "out"
    pytest.skip("no unwritable folder available")


def test_an_unwritable_out_exits_2_naming_it(cli, tmp_path):
    native_layouts.write_utkface(tmp_path / "utk", utk_faces(4))
    out = unwritable_folder(tmp_path)
    try:
        result = cli("build-tfrecords", "utkface", "--source", tmp_path / "utk", "--out", out, "--workers", 1,
                     "--image-size", 16)
    finally:
        if out.parent.parent == tmp_path:
            out.parent.chmod(0o700)
    assert_user_error(result, out.parent.name, "fix:", "permission")
    assert not out.exists()


def test_a_build_whose_images_are_all_corrupt_exits_2_naming_the_reasons(cli, tmp_path):
    paths = native_layouts.write_utkface(tmp_path / "utk", utk_faces(6))
    good = {p: p.read_bytes() for p in paths}
    for path in paths:
        path.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    args = ("build-tfrecords", "utkface", "--source", tmp_path / "utk", "--out", out, "--image-size", 16,
            "--workers", 1)
    result = cli(*args)
    assert_user_error(result, tmp_path / "utk", "no utkface image could be used", "corrupt_image 6"[:13])
    assert "corrupt_image" in result.output and not (out / "utkface" / "manifest.json").exists()
    assert not list((out / "utkface").rglob("*.tfrecord-*"))  # no empty shard a rerun would reuse

    # train on it names the build, never "split 'train' is empty (built splits: train, valid)"
    config = tmp_path / "exp.toml"
    config.write_text(CONFIG.format(root=out))
    result = cli("train", "--config", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "build-tfrecords utkface")
    assert "is empty" not in result.output and not (tmp_path / "runs").exists()

    for path, data in good.items():  # repaired: the same command builds every image
        path.write_bytes(data)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "utkface" / "manifest.json").read_text())
    assert sum(s["count"] for s in manifest["splits"].values()) == 6 and manifest["dropped"] == {}


def test_a_split_whose_images_are_all_corrupt_is_an_error_naming_it(cli, tmp_path):
    from facenet_mtl.data.readers.splits import hash_split

    paths = native_layouts.write_utkface(tmp_path / "utk", utk_faces(20))
    by_split = {}
    for path in paths:
        by_split.setdefault(hash_split(path.name), []).append(path)
    assert {"train", "valid", "test"} <= set(by_split), by_split.keys()
    for path in by_split["valid"]:
        path.write_bytes(b"")
    out = tmp_path / "out"
    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "utk", "--out", out, "--image-size", 16,
                 "--workers", 1)
    n = len(by_split["valid"])
    assert_user_error(result, "valid", f"all {n} dropped (corrupt_image {n})")
    assert not (out / "utkface" / "manifest.json").exists()
    assert not list((out / "utkface").rglob("*-valid.tfrecord-*"))


def test_appa_real_non_finite_or_negative_std_is_dropped_and_counted(cli, tmp_path):
    faces = [dict(image=np.full((32, 32, 3), 40 * i, np.uint8), split="train", apparent_age=20 + i,
                  apparent_std=3.0, real_age=20 + i, gender=i % 2) for i in range(5)]
    native_layouts.write_appa_real(tmp_path / "appa", faces)
    csv_path = tmp_path / "appa" / "gt_avg_train.csv"
    lines = csv_path.read_text().splitlines()
    for row, bad in zip((1, 2, 3), ("inf", "nan", "-1.0")):
        lines[row] = lines[row].replace("3.000000", bad)
    csv_path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = cli("build-tfrecords", "appa_real", "--source", tmp_path / "appa", "--out", out, "--image-size", 16,
                 "--workers", 1)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "appa_real" / "manifest.json").read_text())
    assert manifest["dropped"] == {"bad_label": 3} and manifest["splits"]["train"]["count"] == 2


# --- evaluate --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(records root, a tiny model file) for evaluate."""
    import keras

    from facenet_mtl.data.records import BuildOptions, build_tfrecords

    root = tmp_path_factory.mktemp("evaluate")
    native_layouts.write_utkface(root / "utk", utk_faces(12))
    build_tfrecords("utkface", root / "utk", root / "records", BuildOptions(image_size=16, workers=1, progress=False))
    image = keras.Input((16, 16, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(image)
    outputs = {"age_probs": keras.layers.Dense(101, activation="softmax", name="age_probs")(x),
               "gender": keras.layers.Dense(1, activation="sigmoid", name="gender")(x)}
    keras.Model(image, outputs).save(root / "model.keras")
    return root / "records", root / "model.keras"


def test_evaluate_on_a_split_no_dataset_has_exits_2_naming_the_built_ones(cli, built, tmp_path):
    records, model = built
    result = cli("evaluate", model, "--data", records, "--split", "bogus", "--json", tmp_path / "m.json")
    assert_user_error(result, "bogus", "utkface: ", "train", "--split")
    assert not (tmp_path / "m.json").exists()


def test_evaluate_with_a_negative_limit_exits_2(cli, built):
    records, model = built
    result = cli("evaluate", model, "--data", records, "--limit", -1)
    assert result.exit_code == 2 and "--limit" in result.output and "Traceback" not in result.output


# --- the wrapper: expected failures exit 2, a real bug keeps its traceback -------------------------

@pytest.mark.parametrize("error, fix", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/out"), "permissions"),
    (OSError(errno.EROFS, "Read-only file system", "/data/out"), "read-only"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out/x"), "disk space"),
])
def test_user_errors_turns_an_os_error_on_a_path_into_exit_2(error, fix, capsys):
    @cli_module.user_errors
    def command():
        raise error

    with pytest.raises(SystemExit) as stopped:
        command()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {error.filename}: {error.strerror}") and fix in err


@pytest.mark.parametrize("error", [ZeroDivisionError("bug"), OSError("no path: a bug"), KeyError("x")])
def test_user_errors_lets_a_real_bug_through_with_its_traceback(error):
    @cli_module.user_errors
    def command():
        raise error

    with pytest.raises(type(error)):
        command()


@pytest.mark.parametrize("write, said, fix", [
    (lambda tf: tf.io.write_file("/dev/full", "x" * 100_000), "/dev/full; No space left on device", "disk space"),
    (lambda tf: tf.io.TFRecordWriter("/dev/full").write(b"x" * 10_000_000), "No space left", "disk space"),
    (lambda tf: tf.io.gfile.GFile("/no/such/folder/x.txt", "w").write("x"), "/no/such/folder", "exist"),
])
def test_user_errors_maps_tensorflows_file_errors_like_os_errors(write, said, fix, capsys):
    """tf.errors.ResourceExhaustedError & co. are not OSError: a full disk (/dev/full) under a
    TensorFlow writer exits 2 with a message too."""
    import tensorflow as tf

    @cli_module.user_errors
    def command():
        write(tf)

    with pytest.raises(SystemExit) as stopped:
        command()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("error: ") and said in err and fix in err
    assert "{{function_node" not in err and "Traceback" not in err


@pytest.mark.parametrize("limit", ["nan", "inf", "1e400", "-1", "0"])
def test_serve_refuses_an_upload_limit_that_is_no_size(limit):
    from click.testing import CliRunner

    result = CliRunner().invoke(cli_module.main, ["serve", "--max-upload-mb", limit])
    assert result.exit_code == 2 and "--max-upload-mb" in result.output and "Traceback" not in result.output

"""The facenet-mtl command line: every command's help shows an example, `--list` names every
dataset, a build through the CLI, and bad input exits with code 2 and a message that names the
path (or key) and the fix, never a traceback."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.cli_checks import assert_user_error

from facenet_mtl.cli import main
from facenet_mtl.data.readers import DATASETS
from facenet_mtl.errors import DataError
from facenet_mtl.demo import native_layouts




def utk_faces(n, first_age=20):
    rng = np.random.default_rng(first_age)
    return [dict(image=rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), age=first_age + i, gender=i % 2)
            for i in range(n)]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny face model with our output names, saved as a run saves it."""
    import keras

    image = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Dense(4, activation="relu")(keras.layers.GlobalAveragePooling2D()(image))
    outputs = {"age_probs": keras.layers.Dense(101, activation="softmax", name="age_probs")(x),
               "gender": keras.layers.Dense(1, activation="sigmoid", name="gender")(x),
               "emotion": keras.layers.Dense(7, activation="softmax", name="emotion")(x),
               "smile": keras.layers.Dense(1, activation="sigmoid", name="smile")(x)}
    path = tmp_path_factory.mktemp("model") / "model.keras"
    keras.Model(image, outputs).save(path)
    return path


# --- help and listing ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and f"facenet-mtl {command} " in result.output


HELP_WITHOUT_TENSORFLOW = """
import sys
from facenet_mtl.cli import main
try:
    main(sys.argv[1:], prog_name="facenet-mtl")
except SystemExit as done:
    assert done.code in (0, None), done.code
print("IMPORTED:", sorted(m for m in ("tensorflow", "keras", "mtcnn") if m in sys.modules))
"""


def test_help_of_every_command_does_not_import_tensorflow():
    """`facenet-mtl predict --help` took 5-8 s because the CLI imported TensorFlow before any
    command; help (of the group and of every command) must come without it."""
    for args in [["--help"]] + [[command, "--help"] for command in sorted(main.commands)]:
        done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TENSORFLOW, *args], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout and "IMPORTED: []" in done.stdout, (args, done.stdout[-300:])


def test_top_level_help_lists_every_command_and_an_example(cli):
    result = cli("--help")
    assert result.exit_code == 0 and "Example" in result.output
    for command in main.commands:
        assert command in result.output


def test_list_names_every_dataset_and_its_layout(cli):
    result = cli("build-tfrecords", "--list")
    assert result.exit_code == 0
    assert set(DATASETS) >= {"appa_real", "chalearn_lap_2016", "celeba", "fer2013", "genki4k", "smile_folders",
                             "imdb", "wiki", "utkface"}
    for name, spec in DATASETS.items():
        assert f"{name}  [" in result.output and spec.layout in result.output


# --- build-tfrecords ----------------------------------------------------------------------------

def test_build_through_the_cli_then_force_for_another_source(cli, tmp_path):
    native_layouts.write_utkface(tmp_path / "utk", utk_faces(12))
    native_layouts.write_utkface(tmp_path / "other", utk_faces(5, first_age=60))
    out = tmp_path / "out"
    args = ("--out", out, "--image-size", 16, "--workers", 1)
    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "utk", *args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "utkface" / "manifest.json").read_text())
    assert sum(s["count"] for s in manifest["splits"].values()) == 12 and manifest["image_size"] == 16
    assert f"-> {out / 'utkface'}" in result.output

    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "other", *args)
    assert_user_error(result, out / "utkface", "--force")
    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "other", *args, "--force")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "utkface" / "manifest.json").read_text())
    assert sum(s["count"] for s in manifest["splits"].values()) == 5


def test_reader_options_reach_the_reader(cli, tmp_path):
    faces = [dict(image=np.full((48, 48), i, np.uint8), emotion=i % 7) for i in range(20)]
    native_layouts.write_fer2013_csv(tmp_path / "fer2013.csv", faces)
    result = cli("build-tfrecords", "fer2013", "--source", tmp_path / "fer2013.csv", "--out", tmp_path / "out",
                 "--image-size", 16, "--workers", 1, "--option", "valid_fraction=0.5", "--limit", 10)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "fer2013" / "manifest.json").read_text())
    assert manifest["reader_options"] == {"valid_fraction": 0.5, "limit": 10}
    assert sum(s["count"] for s in manifest["splits"].values()) == 10 and manifest["splits"]["valid"]["count"] > 0


def test_missing_source_path_exits_2(cli, tmp_path):
    missing = tmp_path / "missing"
    result = cli("build-tfrecords", "utkface", "--source", missing, "--out", tmp_path / "out")
    assert_user_error(result, missing, "does not exist", "fix:", "UTKFace")
    assert not (tmp_path / "out").exists()


def test_empty_source_folder_exits_2(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "empty", "--out", tmp_path / "out")
    assert_user_error(result, tmp_path / "empty", "no images found", "fix:", "jpg.chip.jpg")


def test_csv_without_the_pixels_column_exits_2(cli, tmp_path):
    csv = tmp_path / "fer2013.csv"
    csv.write_text("emotion,Usage\n0,Training\n")
    result = cli("build-tfrecords", "fer2013", "--source", csv, "--out", tmp_path / "out")
    assert_user_error(result, csv, "'pixels'", "fix:")


def test_unknown_dataset_exits_2_listing_the_known_ones(cli, tmp_path):
    result = cli("build-tfrecords", "utk_face", "--source", tmp_path, "--out", tmp_path / "out")
    assert_user_error(result, "utk_face", "unknown dataset", "fix:", "utkface", "fer2013")


def test_unknown_reader_option_and_missing_source_flag_exit_2(cli, tmp_path):
    native_layouts.write_utkface(tmp_path / "utk", utk_faces(2))
    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "utk", "--out", tmp_path / "out",
                 "--option", "min_face_score=2")
    assert_user_error(result, "min_face_score", "fix:", "limit")
    result = cli("build-tfrecords", "utkface", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "--source" in result.output
    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "utk", "--option", "no_equals_sign")
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_installed_command_prints_errors_to_stderr_with_exit_2(tmp_path):
    script = Path(sys.executable).with_name("facenet-mtl")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "facenet_mtl.cli"]
    missing = tmp_path / "nowhere"
    done = subprocess.run(command + ["build-tfrecords", "genki4k", "--source", str(missing), "--out",
                                     str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {missing}") and "fix:" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


# --- train, evaluate, predict -------------------------------------------------------------------

def test_config_with_unknown_key_exits_2_naming_key_and_file(cli, tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text('name = "x"\n[train]\nepochz = 3\n')
    assert_user_error(cli("train", "--config", config, "--runs-dir", tmp_path / "runs"), "epochz", config)
    config.write_text('name = "x"\n[modle]\nbackbone = "compact"\n')
    assert_user_error(cli("train", "--config", config, "--runs-dir", tmp_path / "runs"), "modle", config)
    assert not (tmp_path / "runs").exists()


def test_missing_config_exits_2(cli, tmp_path):
    assert_user_error(cli("train", "--config", tmp_path / "nope.toml"), tmp_path / "nope.toml")


@pytest.mark.parametrize("kind", ["text", "garbage_h5", "folder", "missing"])
def test_evaluate_on_something_that_is_not_a_model_exits_2(cli, tmp_path, kind):
    path = {"text": tmp_path / "model.txt", "garbage_h5": tmp_path / "model.h5",
            "folder": tmp_path / "run", "missing": tmp_path / "gone.keras"}[kind]
    if kind == "folder":
        path.mkdir()
        (path / "notes.txt").write_text("hi")
    elif kind != "missing":
        path.write_text("not a model")
    result = cli("evaluate", path, "--data", tmp_path)
    assert_user_error(result, path, "fix:")


def test_predict_prints_json_for_a_readable_image(cli, tmp_path, model_path):
    import cv2

    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), np.full((40, 40, 3), 128, np.uint8))
    result = cli("predict", model_path, photo, "--no-detect")
    assert result.exit_code == 0, result.output
    record, = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["path"] == str(photo) and len(record["faces"]) == 1
    assert record["model"].startswith("model.keras-") and "warning" not in record
    assert set(record["faces"][0]) == {"box", "confidence", "age", "age_range", "gender", "emotion", "smile"}


@pytest.mark.parametrize("kind", ["truncated", "not_an_image", "missing"])
def test_predict_on_an_unreadable_image_exits_2_naming_it(cli, tmp_path, model_path, kind):
    import cv2

    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), np.full((40, 40, 3), 128, np.uint8))
    bad = tmp_path / f"{kind}.jpg"
    if kind == "truncated":
        bad.write_bytes(good.read_bytes()[:150])
    elif kind == "not_an_image":
        bad.write_text("hello")
    result = cli("predict", model_path, good, bad, "--no-detect")
    assert_user_error(result, bad, "fix:")


@pytest.mark.parametrize("args", [["train", "--config", "experiments/demo/demo-pretrain.toml"],
                                  ["run", "experiments/demo/"]])
def test_the_help_examples_outside_a_checkout_say_where_the_configs_are(args, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from facenet_mtl.cli import main

    monkeypatch.chdir(tmp_path)  # an installed package, run anywhere: no experiments/ here
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "\n  fix: " in result.output and "facenet-mtl source" in result.output


def test_run_orders_a_folder_by_what_each_stage_starts_from():
    """`run` trains each finetune after the experiments it starts from: its `init`, or every model
    of its `average`, whatever order the folder lists them in; a loop is refused."""
    from facenet_mtl.cli import _in_dependency_order
    from facenet_mtl.training.config import ExperimentConfig

    configs = [ExperimentConfig("soup", stage="finetune", average=("restart", "restart2")),
               ExperimentConfig("restart2", stage="finetune", init="restart"),
               ExperimentConfig("restart", stage="finetune", init="pre"),
               ExperimentConfig("pre")]
    assert [cfg.name for cfg in _in_dependency_order(configs)] == ["pre", "restart", "restart2", "soup"]
    with pytest.raises(DataError, match="loop"):
        _in_dependency_order([ExperimentConfig("a", stage="finetune", average=("b", "c")),
                              ExperimentConfig("b", stage="finetune", init="a")])

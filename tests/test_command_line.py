"""The facenet-mtl command line: help with examples, dataset listing, and exit code 2 with a
message naming the path and the fix for bad input."""
import pytest
from click.testing import CliRunner

from facenet_mtl.cli import main
from facenet_mtl.data.readers import DATASETS, _load_all

COMMANDS = ("build-tfrecords", "demo-data", "train", "run", "evaluate", "predict", "report")


@pytest.fixture
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0 and "Example" in result.output and "facenet-mtl" in result.output


def test_list_names_every_dataset_and_its_layout(cli):
    _load_all()
    result = cli("build-tfrecords", "--list")
    assert result.exit_code == 0
    for name in DATASETS:
        assert name in result.output


def test_bad_input_exits_2_naming_path_and_fix(cli, tmp_path):
    result = cli("build-tfrecords", "fer2013", "--source", tmp_path / "missing", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "missing" in result.output and "fix:" in result.output
    (tmp_path / "empty").mkdir()
    result = cli("build-tfrecords", "utkface", "--source", tmp_path / "empty", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "empty" in result.output
    csv = tmp_path / "fer2013.csv"
    csv.write_text("emotion,Usage\n0,Training\n")
    result = cli("build-tfrecords", "fer2013", "--source", csv, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "pixels" in result.output and "fer2013.csv" in result.output
    result = cli("build-tfrecords", "no_such_set", "--source", tmp_path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "unknown dataset" in result.output


def test_config_with_unknown_key_exits_2_naming_key_and_file(cli, tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text('name = "x"\n[train]\nepochz = 3\n')
    result = cli("train", "--config", config)
    assert result.exit_code == 2 and "train.epochz" in result.output and "exp.toml" in result.output


def test_evaluate_and_predict_with_bad_files_exit_2(cli, tmp_path):
    text = tmp_path / "model.txt"
    text.write_text("not a model")
    result = cli("evaluate", text, "--data", tmp_path)
    assert result.exit_code == 2 and "model.txt" in result.output
    result = cli("predict", tmp_path / "nothing.h5", tmp_path / "photo.jpg")
    assert result.exit_code == 2 and "nothing.h5" in result.output

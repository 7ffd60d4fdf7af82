"""`kill -9` during a training epoch and during the export, then the same command again: a
finished run, each epoch once in history.csv, models that load. While the first `train` runs, a
second one on the same run exits 2 naming its pid (two real processes)."""
import json
import signal
import subprocess
import sys
import time

import keras
from click.testing import CliRunner

from facenet_mtl.cli import main
from facenet_mtl.training.rundir import RunDir
from tests.training.conftest import IMAGE_SIZE

CONFIG = """\
name = "faults"
[model]
backbone = "compact"
input_size = {size}
tasks = ["age", "gender"]
backbone_args = {{ widths = [8, 16], stem_width = 8 }}
[data]
root = "{root}"
datasets = ["utkface"]
batch_size = 16
epoch_size = 160
shuffle_buffer = 256
[optimizer]
name = "adam"
lr = 3e-3
schedule = "constant"
[train]
epochs = 3
precision = "float32"
seed = 3
"""

# `facenet-mtl train` in a child process, each training batch slowed by argv[1] seconds.
SLOW_TRAIN = """
import sys, time, keras
from facenet_mtl.training import callbacks
run_callbacks = callbacks.run_callbacks
class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(float(sys.argv[1]))
callbacks.run_callbacks = lambda *a, **k: run_callbacks(*a, **k) + [Slow()]
from facenet_mtl.cli import main
main(sys.argv[2:], prog_name="facenet-mtl")
"""


def wait_for(condition, process, seconds=300):
    deadline = time.time() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.005)


def state(run_dir):
    path = run_dir / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def kill_9(process):
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_kill_9_during_an_epoch_and_during_export_then_the_same_command_finishes(tiny_records, tmp_path):
    config = tmp_path / "faults.toml"
    config.write_text(CONFIG.format(size=IMAGE_SIZE, root=tiny_records))
    args = ["train", "--config", str(config), "--runs-dir", str(tmp_path / "runs")]
    run_dir = tmp_path / "runs" / "faults"

    def start(seconds_per_batch):
        return subprocess.Popen([sys.executable, "-c", SLOW_TRAIN, str(seconds_per_batch), *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    first = start(0.1)  # 10 steps an epoch: 1 s or more each
    wait_for(lambda: state(run_dir).get("epoch", 0) >= 1, first)
    second = CliRunner().invoke(main, args)  # a second writer while the first trains
    assert second.exit_code == 2 and f"pid {first.pid}" in second.output, second.output
    kill_9(first)
    assert 1 <= state(run_dir)["epoch"] < 3 and not state(run_dir).get("finished")

    exporting = start(0)  # resumes, trains the rest, and is killed while it exports
    wait_for(lambda: (run_dir / "model.tmp.h5").exists() or (run_dir / "model.h5").exists(), exporting)
    kill_9(exporting)
    assert state(run_dir)["epoch"] == 3 and not state(run_dir).get("finished")
    assert not (run_dir / "metrics.json").exists()

    result = CliRunner().invoke(main, args)  # the same command again: finishes
    assert result.exit_code == 0, result.output
    assert state(run_dir)["finished"] is True and state(run_dir)["epoch"] == 3
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]  # each epoch once, no torn row
    for name in ("model.h5", "model.keras"):
        model = keras.models.load_model(run_dir / name)
        assert {"age", "gender"} <= set(model.output_names)
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    assert not list(run_dir.glob("*.tmp*")) and not list(run_dir.glob("checkpoints/*.tmp*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and "age_mae" in metrics["splits"]["test"]["overall"]


def test_trim_history_drops_rows_past_the_checkpoint_and_a_torn_row(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.5\n1,1.2\n2,1.1\n3,1.")
    RunDir(tmp_path).trim_history(2)
    assert (tmp_path / "history.csv").read_text() == "epoch,loss\n0,1.5\n1,1.2\n"


def test_a_checkpoint_that_cannot_be_written_stops_training_with_exit_2(tiny_records, tmp_path, monkeypatch):
    """The disk fills up under the first checkpoint: the run stops there with a message, not three
    printed thread tracebacks and more epochs trained with nothing saved."""
    import errno

    config = tmp_path / "faults.toml"
    config.write_text(CONFIG.format(size=IMAGE_SIZE, root=tiny_records))
    run_dir = tmp_path / "runs" / "faults"

    def disk_full(self, epoch, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "checkpoints" / "last.npz"))

    monkeypatch.setattr(RunDir, "record_epoch", disk_full)
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "the checkpoint of epoch 1 could not be written" in result.output and "free some disk space" in result.output
    assert "Traceback" not in result.output and not state(run_dir).get("epoch")
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert len(rows) <= 2  # the header and epoch 1 at most: epoch 2 was not trained to its end

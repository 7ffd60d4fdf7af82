"""One writer per folder: while another process holds a run directory or a records folder, a
second `train` or `build-tfrecords` exits 2 naming the holder's pid and writes nothing; a holder
killed with `kill -9` releases the lock by itself (the kernel drops its flock)."""
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from facenet_mtl.cli import main
from facenet_mtl.demo import native_layouts
from facenet_mtl.locks import FolderInUseError, exclusive

HOLD = """
import sys, time
from facenet_mtl.locks import exclusive
with exclusive(sys.argv[1], "test folder"):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder():
    """holder(folder) -> a separate process that holds `folder`'s lock until killed."""
    started = []

    def start(folder):
        process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def kill_9(process):
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_a_second_train_on_a_held_run_exits_2_with_the_holders_pid(holder, tmp_path):
    config = tmp_path / "held.toml"
    config.write_text('name = "held"\n[model]\nbackbone = "compact"\ninput_size = 32\n'
                      f'[data]\nroot = "{tmp_path / "records"}"\ndatasets = ["utkface"]\n')
    run_dir = tmp_path / "runs" / "held"
    process = holder(run_dir)
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert str(run_dir) in result.output and f"pid {process.pid}" in result.output and "fix:" in result.output
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written

    kill_9(process)
    with exclusive(run_dir):  # released by the kernel when its holder died
        pass


def test_a_second_build_into_a_held_records_folder_exits_2(holder, tmp_path):
    faces = [dict(image=np.full((24, 24, 3), 9 * i, np.uint8), age=20 + i, gender=i % 2) for i in range(4)]
    native_layouts.write_utkface(tmp_path / "utk", faces)
    out = tmp_path / "out"
    process = holder(out / "utkface")
    args = ["build-tfrecords", "utkface", "--source", str(tmp_path / "utk"), "--out", str(out), "--image-size", "16",
            "--workers", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"pid {process.pid}" in result.output and str(out / "utkface") in result.output
    assert sorted(p.name for p in (out / "utkface").iterdir()) == [".lock"]

    kill_9(process)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (out / "utkface" / "manifest.json").is_file()


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with exclusive(tmp_path / "run"):
        with pytest.raises(FolderInUseError) as error:
            with exclusive(tmp_path / "run", "run directory"):
                pass
    assert error.value.pid is not None and "run directory" in str(error.value)
    with exclusive(tmp_path / "run"):
        pass

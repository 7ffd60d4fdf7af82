"""`kill -9` during `build-tfrecords`, then the same command again: the records and the manifest
equal an uninterrupted build's (finished shards are kept, the half-written one is rebuilt)."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
from click.testing import CliRunner

from facenet_mtl.cli import main
from facenet_mtl.demo import native_layouts

# The build in a child process, each image slowed by 10 ms so that the kill lands mid-build.
SLOW_BUILD = """
import sys, time
from facenet_mtl.data import process
encode = process.encode_record
def slow(job):
    time.sleep(0.01)
    return encode(job)
process.encode_record = slow
from facenet_mtl.cli import main
main(sys.argv[1:], prog_name="facenet-mtl")
"""


def wait_for(condition, process, seconds=180):
    deadline = time.time() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.005)


def build_outputs(out):
    """The manifest (less its timing) and every shard's examples, in order (compared as
    messages: a protobuf map's byte order may differ from process to process)."""
    import tensorflow as tf

    manifest = json.loads((out / "utkface" / "manifest.json").read_text())
    manifest.pop("build_seconds")
    shards = {p.name: [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(p))]
              for p in sorted((out / "utkface" / "1.0.0").glob("*.tfrecord-*"))}
    return manifest, shards


def test_kill_9_during_a_build_then_the_same_command_equals_an_uninterrupted_build(tmp_path):
    rng = np.random.default_rng(0)
    faces = [dict(image=rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), age=1 + i % 90, gender=i % 2)
             for i in range(300)]
    native_layouts.write_utkface(tmp_path / "utk", faces)
    out = tmp_path / "out"
    args = ["build-tfrecords", "utkface", "--source", str(tmp_path / "utk"), "--out", str(out),
            "--image-size", "16", "--workers", "1"]

    child = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    done = out / "utkface" / "1.0.0" / ".done"
    wait_for(lambda: any(done.glob("*.json")), child)  # one split's shard finished (test), train is next
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (out / "utkface" / "manifest.json").exists()  # killed mid-build
    assert len(list(done.glob("*.json"))) < 3

    result = CliRunner().invoke(main, args)  # the same command again
    assert result.exit_code == 0, result.output
    assert not list(out.rglob("*.tmp*"))  # no half-written shard left behind

    reference = tmp_path / "reference"
    result = CliRunner().invoke(main, [*args[:5], str(reference), *args[6:]])
    assert result.exit_code == 0, result.output
    manifest, shards = build_outputs(out)
    expected_manifest, expected_shards = build_outputs(reference)
    assert manifest == expected_manifest and sum(s["count"] for s in manifest["splits"].values()) == 300
    assert shards == expected_shards and len(shards) == 3
    assert sum(map(len, shards.values())) == 300

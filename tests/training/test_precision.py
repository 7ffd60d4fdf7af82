"""Choosing the precision policy and the distribution strategy: decisions from injected facts
(GPUs, the CPU's flags, TF_CONFIG), so no test needs the hardware or a cluster."""
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from facenet_mtl.training import precision  # noqa: E402
from facenet_mtl.training.precision import (  # noqa: E402
    choose_precision,
    choose_strategy,
    cpu_has_bf16,
    is_chief,
    strategy_kind,
    tf_config_from_env,
)

GPU = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")


def cluster(workers=2, chief=0, task=("worker", 0)):
    spec = {"worker": [f"localhost:{2000 + i}" for i in range(workers)]}
    if chief:
        spec["chief"] = ["localhost:1999"]
    return {"cluster": spec, "task": {"type": task[0], "index": task[1]}}


# --- precision ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gpus, bf16_cpu, policy", [
    ([GPU], False, "mixed_float16"),
    ([GPU], True, "mixed_float16"),  # a GPU wins over the CPU's bf16
    ([], True, "mixed_bfloat16"),
    ([], False, "float32"),
])
def test_auto_precision(gpus, bf16_cpu, policy):
    assert choose_precision("auto", gpus=gpus, bf16_cpu=bf16_cpu) == policy


@pytest.mark.parametrize("requested", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_explicit_precision_passes_through(requested):
    assert choose_precision(requested, gpus=[GPU], bf16_cpu=True) == requested
    assert choose_precision(requested, gpus=[], bf16_cpu=False) == requested


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", True),
    ("fpu sse2 avx2 amx_bf16 amx_tile", True),
    ("fpu sse2 avx2 avx512f avx512_vnni", False),
    ("fpu sse2 avx512_bf16x", False),  # whole flags only
])
def test_cpu_has_bf16_reads_the_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n"
                       f"processor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_has_bf16(cpuinfo) is expected


def test_cpu_has_bf16_without_cpuinfo(tmp_path):
    assert cpu_has_bf16(tmp_path / "missing") is False


# --- strategy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("requested, tf_config, n_gpus, kind", [
    ("auto", cluster(workers=2), 0, "multi_worker"),
    ("auto", cluster(workers=1, chief=1, task=("chief", 0)), 0, "multi_worker"),
    ("auto", cluster(workers=1), 4, "mirrored"),  # a one-worker cluster is not multi-worker
    ("auto", {}, 2, "mirrored"),
    ("auto", {}, 1, "default"),
    ("auto", {}, 0, "default"),
    ("none", cluster(workers=2), 2, "default"),
    ("mirrored", {}, 0, "mirrored"),
    ("multi_worker", {}, 0, "multi_worker"),
])
def test_strategy_kind(requested, tf_config, n_gpus, kind):
    assert strategy_kind(requested, tf_config, n_gpus) == kind


def test_unknown_strategy_is_an_error():
    with pytest.raises(ValueError, match="parameter_server"):
        strategy_kind("parameter_server", {}, 0)


def test_tf_config_from_env(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert tf_config_from_env() == {}
    monkeypatch.setenv("TF_CONFIG", "")
    assert tf_config_from_env() == {}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster(workers=2)))
    assert tf_config_from_env() == cluster(workers=2)


def test_choose_strategy_auto_with_two_workers_builds_multi_worker(monkeypatch):
    """The decision reaches the constructor; the real one would wait for the other worker."""
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster(workers=2)))
    monkeypatch.setattr(precision.tf.distribute, "MultiWorkerMirroredStrategy", lambda: "multi-worker strategy")
    assert choose_strategy("auto") == ("multi-worker strategy", "multi_worker")


def test_choose_strategy_without_a_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy, kind = choose_strategy("auto")
    assert kind == "default" and strategy is tf.distribute.get_strategy()


@pytest.mark.parametrize("tf_config, chief", [
    ({}, True),  # no cluster: this process writes its run
    (cluster(task=("worker", 0)), True),
    (cluster(task=("worker", 1)), False),
    (cluster(chief=1, task=("chief", 0)), True),
    (cluster(chief=1, task=("worker", 0)), False),  # with a chief task, worker 0 is not it
])
def test_is_chief(tf_config, chief):
    assert is_chief(tf_config) is chief


def test_is_chief_reads_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster(task=("worker", 1))))
    assert is_chief() is False

"""build-tfrecords: round trip, manifest, corrupt images, resumable shards, --force, tfds."""
import json
import logging

import cv2
import numpy as np
import pytest

from facenet_mtl.data import native_layouts
from facenet_mtl.data.errors import DataError
from facenet_mtl.data.pipeline import read_split
from facenet_mtl.data.records import BuildOptions, build_tfrecords, shard_dir, shard_files

SIZE = 32


def _faces(n, seed=0):
    rng = np.random.default_rng(seed)
    faces = []
    for i in range(n):
        image = np.zeros((64, 64, 3), np.uint8)
        image[:] = rng.integers(0, 255, 3)  # one flat colour per face: easy to compare after JPEG
        faces.append(dict(image=image, age=int(10 + i), gender=i % 2, race=i % 5))
    return faces


@pytest.fixture
def utk(tmp_path):
    faces = _faces(40)
    native_layouts.write_utkface(tmp_path / "utk", faces)
    return tmp_path / "utk", faces


def options(**kw):
    return BuildOptions(image_size=SIZE, workers=1, progress=False, **kw)


def test_round_trip_keeps_labels_and_pixels(utk, tmp_path):
    source, faces = utk
    manifest = build_tfrecords("utkface", source, tmp_path / "out", options())
    assert sum(s["count"] for s in manifest["splits"].values()) == 40
    by_age = {f["age"]: f for f in faces}
    seen = 0
    for split in manifest["splits"]:
        for example in read_split(str(tmp_path / "out"), "utkface", split, SIZE, cache=False):
            face = by_age[int(example["age"].numpy())]
            assert int(example["gender"]) == face["gender"]
            assert int(example["emotion"]) == -1 and int(example["smile"]) == -1
            colour = face["image"][0, 0].astype(float)
            assert np.abs(example["image"].numpy().astype(float) - colour).mean() < 3
            seen += 1
    assert seen == 40
    assert manifest["image_size"] == SIZE and manifest["schema_version"] == 1
    train = manifest["splits"]["train"]
    assert sum(train["labels"]["gender"].values()) == train["count"]
    assert manifest["source_fingerprint"]


def test_corrupt_image_is_skipped_counted_and_named(utk, tmp_path, caplog):
    source, _ = utk
    victim = sorted(source.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:60])  # truncated JPEG
    with caplog.at_level(logging.WARNING):
        manifest = build_tfrecords("utkface", source, tmp_path / "out", options())
    assert manifest["dropped"]["corrupt_image"] == 1
    assert sum(s["count"] for s in manifest["splits"].values()) == 39
    assert victim.name in caplog.text


def test_rerun_skips_finished_shards_and_force_rebuilds(utk, tmp_path):
    source, _ = utk
    out = tmp_path / "out"
    build_tfrecords("utkface", source, out, options(shard_size=8))
    files = shard_files(out, "utkface", "train")
    assert len(files) >= 2
    stamps = {f: f.stat().st_mtime_ns for f in files}
    build_tfrecords("utkface", source, out, options(shard_size=8))
    assert {f: f.stat().st_mtime_ns for f in files} == stamps
    build_tfrecords("utkface", source, out, options(shard_size=8, force=True))
    assert any(f.stat().st_mtime_ns != stamps[f] for f in files)


def test_unfinished_shard_is_never_read_and_is_completed_on_rerun(utk, tmp_path):
    source, _ = utk
    out = tmp_path / "out"
    build_tfrecords("utkface", source, out, options(shard_size=8))
    files = shard_files(out, "utkface", "train")
    victim = files[0]
    (shard_dir(out, "utkface") / ".done" / f"{victim.name}.json").unlink()  # as if killed mid-shard
    victim.write_bytes(b"half a shard")
    (victim.parent / (victim.name + ".tmp-123")).write_bytes(b"leftover")
    assert victim not in shard_files(out, "utkface", "train")
    build_tfrecords("utkface", source, out, options(shard_size=8))
    assert victim in shard_files(out, "utkface", "train")
    total = sum(1 for _ in read_split(str(out), "utkface", "train", SIZE, cache=False))
    assert total == json.loads((out / "utkface" / "manifest.json").read_text())["splits"]["train"]["count"]


def test_other_source_into_the_same_output_asks_for_force(utk, tmp_path):
    source, _ = utk
    build_tfrecords("utkface", source, tmp_path / "out", options())
    native_layouts.write_utkface(tmp_path / "other", _faces(12, seed=5))
    with pytest.raises(DataError, match="--force"):
        build_tfrecords("utkface", tmp_path / "other", tmp_path / "out", options())


def test_missing_source_and_empty_folder_name_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_tfrecords("utkface", tmp_path / "nowhere", tmp_path / "out", options())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        build_tfrecords("utkface", tmp_path / "empty", tmp_path / "out", options())


def test_tfds_reads_the_records(utk, tmp_path):
    import tensorflow_datasets as tfds

    source, _ = utk
    manifest = build_tfrecords("utkface", source, tmp_path / "out", options())
    builder = tfds.builder_from_directory(str(shard_dir(tmp_path / "out", "utkface")))
    ds = builder.as_dataset(split="train")
    examples = list(ds)
    assert len(examples) == manifest["splits"]["train"]["count"]
    assert examples[0]["image"].shape == (SIZE, SIZE, 3) and 10 <= int(examples[0]["age"]) < 50

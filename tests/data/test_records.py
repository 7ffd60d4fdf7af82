"""build-tfrecords: round trip, manifest, corrupt images, resumable shards, --force, tfds.

Fixtures are UTKFace folders written by `native_layouts.write_utkface`; each face has a unique
age (so a record names its source face) and a smooth colour pattern of its own (so a record's
pixels can be compared with its source image after JPEG).
"""
import json
import logging
import math
from collections import Counter

import cv2
import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl.data import images, process, records
from facenet_mtl.data.built_dataset import BuiltDataset, shard_dir, shard_files
from facenet_mtl.errors import DataError
from facenet_mtl.data.record_format import parse_spec
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.records import BuildOptions, build_tfrecords
from facenet_mtl.data.schema import SCHEMA_VERSION
from facenet_mtl.demo import native_layouts

SIZE = 24


def pattern(seed, height=48, width=40):
    """A smooth RGB pattern, different for every seed (a 3x3 random grid, upscaled)."""
    grid = np.random.default_rng(seed).integers(0, 256, (3, 3, 3), dtype=np.uint8)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def utk_faces(n, seed=0, first_age=10):
    return [dict(image=pattern(seed * 1000 + i), age=first_age + i, gender=i % 2, race=i % 5) for i in range(n)]


def write_utk(root, faces):
    """Write the faces; return {file name: (face, path)}."""
    paths = native_layouts.write_utkface(root, faces)
    return {p.name: (face, p) for face, p in zip(faces, paths)}


def options(**kw):
    return BuildOptions(**{"image_size": SIZE, "workers": 1, "progress": False, **kw})


def read_records(out, dataset="utkface"):
    """Every finished record as {file_id: dict(split, image RGB, labels...)}, parsed by protobuf."""
    found = {}
    for split in BuiltDataset.open(out, dataset).splits:
        for path in shard_files(out, dataset, split):
            for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                feature = tf.train.Example.FromString(raw).features.feature
                file_id = feature["file_id"].bytes_list.value[0].decode()
                assert file_id not in found, f"{file_id} written twice"
                jpeg = np.frombuffer(feature["image"].bytes_list.value[0], np.uint8)
                found[file_id] = dict(
                    split=split, image=cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
                    source=feature["source"].bytes_list.value[0].decode(),
                    age=feature["age"].float_list.value[0], age_std=feature["age_std"].float_list.value[0],
                    gender=feature["gender"].int64_list.value[0], emotion=feature["emotion"].int64_list.value[0],
                    smile=feature["smile"].int64_list.value[0])
    return found


@pytest.fixture
def utk(tmp_path):
    """(source folder, {file name: (face, path)}) with 30 faces."""
    return tmp_path / "utk", write_utk(tmp_path / "utk", utk_faces(30))


def test_round_trip_keeps_splits_labels_and_pixels(utk, tmp_path):
    source, by_name = utk
    out = tmp_path / "out"
    manifest = build_tfrecords("utkface", source, out, options(shard_size=8))
    expected = get_dataset("utkface").read(source)
    expected_splits = {r.file_id: r.split for r in expected.records}

    found = read_records(out)
    assert set(found) == set(by_name)
    for split, info in manifest["splits"].items():
        assert info["count"] == sum(1 for s in expected_splits.values() if s == split)
    for name, record in found.items():
        face, path = by_name[name]
        assert record["split"] == expected_splits[name]
        assert (record["age"], record["gender"]) == (face["age"], face["gender"])
        assert (record["age_std"], record["emotion"], record["smile"]) == (-1, -1, -1)
        assert record["source"] == "utkface"
        want = images.square_resize(images.load_rgb(path), SIZE).astype(float)
        assert record["image"].shape == (SIZE, SIZE, 3)
        assert np.abs(record["image"] - want).mean() < 4, name
    # The comparison can tell faces apart: another face's pixels are far off.
    names = sorted(found)
    other = images.square_resize(images.load_rgb(by_name[names[1]][1]), SIZE).astype(float)
    assert np.abs(found[names[0]]["image"] - other).mean() > 20


def test_manifest_counts_labels_drops_and_fingerprint(tmp_path):
    faces = utk_faces(24) + [dict(image=pattern(99), age=105, gender=1)]  # DEX stops at 100
    by_name = write_utk(tmp_path / "utk", faces)
    victim = next(p for name, (f, p) in by_name.items() if f["age"] == 20)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    out = tmp_path / "out"
    manifest = build_tfrecords("utkface", tmp_path / "utk", out, options(shard_size=5))

    on_disk = json.loads((out / "utkface" / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["dataset"] == "utkface" and manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["image_size"] == SIZE and manifest["version"] == records.VERSION
    assert manifest["dropped"] == {"age_out_of_range": 1, "corrupt_image": 1}
    assert manifest["source"] == str((tmp_path / "utk").resolve())
    fingerprint = manifest["source_fingerprint"]
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert (shard_dir(out, "utkface") / ".done" / "fingerprint").read_text() == fingerprint

    kept = {}
    for name, record in read_records(out).items():
        kept.setdefault(record["split"], []).append(by_name[name][0])
    assert set(manifest["splits"]) == set(kept)
    for split, faces_in_split in kept.items():
        info = manifest["splits"][split]
        n = len(faces_in_split)
        assert info["count"] == n == sum(s["count"] for s in info["shards"])
        genders = [str(f["gender"]) for f in faces_in_split]
        assert info["labels"]["gender"] == {g: genders.count(g) for g in sorted(set(genders))}
        assert info["labels"]["emotion"] == {"missing": n} and info["labels"]["smile"] == {"missing": n}
        ages = [f["age"] for f in faces_in_split]
        assert info["labels"]["age"] == {"count": n, "mean": round(float(np.mean(ages)), 2),
                                         "min": float(min(ages)), "max": float(max(ages))}
    assert sum(v["count"] for v in manifest["splits"].values()) == 23


def test_corrupt_images_are_skipped_counted_and_named(utk, tmp_path, caplog):
    source, by_name = utk
    names = sorted(by_name)
    truncated, garbage = by_name[names[3]][1], by_name[names[7]][1]
    truncated.write_bytes(truncated.read_bytes()[:200])
    garbage.write_bytes(b"this is not a JPEG at all")
    with caplog.at_level(logging.WARNING, logger="facenet_mtl.data.records"):
        manifest = build_tfrecords("utkface", source, tmp_path / "out", options())
    assert manifest["dropped"] == {"corrupt_image": 2}
    assert sum(s["count"] for s in manifest["splits"].values()) == 28
    assert set(read_records(tmp_path / "out")) == set(names) - {truncated.name, garbage.name}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in (truncated.name, garbage.name):
        assert any(name in w and "corrupt_image" in w for w in warnings), warnings


def test_rerun_skips_finished_shards_and_force_rebuilds(utk, tmp_path):
    source, _ = utk
    out = tmp_path / "out"
    first = build_tfrecords("utkface", source, out, options(shard_size=6))
    files = sorted(shard_dir(out, "utkface").glob("utkface-*.tfrecord-*"))
    assert len(files) >= 4
    stamps = {f: f.stat().st_mtime_ns for f in files}
    done = {f: f.read_bytes() for f in (shard_dir(out, "utkface") / ".done").glob("*.json")}

    again = build_tfrecords("utkface", source, out, options(shard_size=6))
    assert {f: f.stat().st_mtime_ns for f in files} == stamps
    assert {f: f.read_bytes() for f in done} == done
    assert {k: v for k, v in again.items() if k != "build_seconds"} == \
           {k: v for k, v in first.items() if k != "build_seconds"}

    forced = build_tfrecords("utkface", source, out, options(shard_size=6, force=True))
    assert all(f.stat().st_mtime_ns != stamps[f] for f in files)
    assert forced["splits"] == first["splits"]
    assert len(read_records(out)) == 30


def test_one_worker_builds_in_process_and_more_use_a_pool(utk, tmp_path, monkeypatch):
    source, _ = utk

    def no_processes(method):
        raise AssertionError(f"workers=1 must not start processes ({method})")

    monkeypatch.setattr(records.multiprocessing, "get_context", no_processes)
    manifest = build_tfrecords("utkface", source, tmp_path / "one", options())
    assert sum(s["count"] for s in manifest["splits"].values()) == 30
    with pytest.raises(AssertionError, match="must not start processes"):
        build_tfrecords("utkface", source, tmp_path / "two", options(workers=2))


def test_interrupted_build_leaves_no_readable_shard_and_rerun_completes(utk, tmp_path, monkeypatch):
    source, by_name = utk
    out = tmp_path / "out"
    # Splits are written in name order, each split's records dealt round-robin into its shards.
    splits = Counter(r.split for r in get_dataset("utkface").read(source).records)
    first = splits[min(splits)]
    first_shard = len(range(0, first, math.ceil(first / 4)))
    real_encode, calls = process.encode_record, []

    def encode_then_die(job):  # the build dies on the first image of the second shard
        calls.append(job)
        if len(calls) == first_shard + 1:
            raise RuntimeError("killed")
        return real_encode(job)

    monkeypatch.setattr(process, "encode_record", encode_then_die)  # workers=1: runs in this process
    with pytest.raises(RuntimeError, match="killed"):
        build_tfrecords("utkface", source, out, options(shard_size=4))
    monkeypatch.undo()

    directory = shard_dir(out, "utkface")
    written = sorted(p.name for p in directory.glob("utkface-*.tfrecord-*"))
    assert not (out / "utkface" / "manifest.json").exists()
    assert not [n for n in written if ".tmp-" in n]  # the half-written shard was removed
    finished = [p for split in ("test", "train", "valid") for p in shard_files(out, "utkface", split)]
    assert [p.name for p in finished] == written and len(finished) == 1  # only the first shard
    with pytest.raises(DataError, match="build-tfrecords"):  # nothing half-built is read
        BuiltDataset.open(out, "utkface")
    stamp = finished[0].stat().st_mtime_ns

    manifest = build_tfrecords("utkface", source, out, options(shard_size=4))
    assert finished[0].stat().st_mtime_ns == stamp  # the finished shard was kept
    assert sum(s["count"] for s in manifest["splits"].values()) == 30
    assert set(read_records(out)) == set(by_name)


def test_killed_build_leftovers_are_ignored_then_rebuilt(utk, tmp_path):
    """A build killed outright leaves a temporary file, or a shard without its `.done` sidecar."""
    source, by_name = utk
    out = tmp_path / "out"
    build_tfrecords("utkface", source, out, options(shard_size=6))
    files = shard_files(out, "utkface", "train")
    victim, kept = files[0], files[1]
    (shard_dir(out, "utkface") / ".done" / f"{victim.name}.json").unlink()
    victim.write_bytes(victim.read_bytes()[:100])  # half a shard: reading it would fail
    leftover = victim.with_name(victim.name + ".tmp-4242")
    leftover.write_bytes(b"partial")
    assert victim not in shard_files(out, "utkface", "train") and kept in shard_files(out, "utkface", "train")
    assert leftover not in shard_files(out, "utkface", "train")
    stamp = kept.stat().st_mtime_ns

    manifest = build_tfrecords("utkface", source, out, options(shard_size=6))
    assert victim in shard_files(out, "utkface", "train") and not leftover.exists()
    assert kept.stat().st_mtime_ns == stamp
    assert set(read_records(out)) == set(by_name)
    assert sum(s["count"] for s in manifest["splits"].values()) == 30


def test_other_source_into_the_same_out_asks_for_force(utk, tmp_path):
    source, _ = utk
    out = tmp_path / "out"
    build_tfrecords("utkface", source, out, options(shard_size=6))
    other = write_utk(tmp_path / "other", utk_faces(9, seed=5, first_age=50))
    with pytest.raises(DataError, match="--force") as error:
        build_tfrecords("utkface", tmp_path / "other", out, options(shard_size=6))
    assert str(shard_dir(out, "utkface")) in str(error.value)

    manifest = build_tfrecords("utkface", tmp_path / "other", out, options(shard_size=6, force=True))
    assert set(read_records(out)) == set(other)
    listed = {s["file"] for info in manifest["splits"].values() for s in info["shards"]}
    assert {p.name for p in shard_dir(out, "utkface").glob("utkface-*.tfrecord-*")} == listed


def test_progress_bar_advances_per_image(utk, tmp_path, monkeypatch):
    import tqdm

    bars = []

    class RecordingBar:
        def __init__(self, total, **kwargs):
            self.total, self.updates = total, []
            bars.append(self)

        def update(self, n=1):
            self.updates.append(n)

        def close(self):
            pass

    monkeypatch.setattr(tqdm, "tqdm", RecordingBar)
    source, by_name = utk
    by_name[sorted(by_name)[0]][1].write_bytes(b"broken")  # a skipped image counts too
    build_tfrecords("utkface", source, tmp_path / "out", options())
    assert sum(b.total for b in bars) == 30
    for bar in bars:
        assert bar.updates == [1] * bar.total


def test_unknown_reader_option_is_a_data_error(utk, tmp_path):
    source, _ = utk
    with pytest.raises(DataError, match="min_face_scor") as error:
        build_tfrecords("utkface", source, tmp_path / "out", options(), {"min_face_scor": 2})
    assert "limit" in str(error.value)  # the fix lists what the reader takes


def test_tfds_reads_the_records(utk, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets", reason="the [tfds] extra is not installed")

    source, by_name = utk
    manifest = build_tfrecords("utkface", source, tmp_path / "out", options(shard_size=8))
    builder = tfds.builder_from_directory(str(shard_dir(tmp_path / "out", "utkface")))
    stored = builder.info.features.get_serialized_info()  # the metadata written follows the one format
    assert {name: info.dtype for name, info in stored.items()} == {name: f.dtype for name, f in parse_spec().items()}
    seen = 0
    for split, info in manifest["splits"].items():
        assert builder.info.splits[split].num_examples == info["count"]
        for example in builder.as_dataset(split=split).as_numpy_iterator():
            face, _ = by_name[example["file_id"].decode()]
            assert example["image"].shape == (SIZE, SIZE, 3) and example["image"].dtype == np.uint8
            assert (int(example["age"]), int(example["gender"])) == (face["age"], face["gender"])
            assert int(example["emotion"]) == -1
            seen += 1
    assert seen == 30


@pytest.mark.parametrize("no_face, kept", [("skip", 6), ("keep_full", 10)])
def test_detected_builds_skip_or_keep_and_count_images_without_a_face(tmp_path, monkeypatch, no_face, kept):
    from facenet_mtl.data.faces import Face

    bright = [np.full((60, 60, 3), 200 if i < 6 else 40, np.uint8) for i in range(10)]
    faces = [{"image": image, "smile": i % 2, "yaw": 0.0, "pitch": 0.0, "roll": 0.0} for i, image in enumerate(bright)]
    native_layouts.write_genki4k(tmp_path / "genki", faces)

    from facenet_mtl.data import faces as face_module

    landmarks = dict(zip(face_module.LANDMARKS, face_module.TEMPLATE * 30))

    def fake_detect_batch(self, rgbs, **kwargs):  # "finds" a face in the 6 bright images only
        return [[Face((0, 0, 30, 30), 0.99, landmarks)] if rgb.mean() > 120 else [] for rgb in rgbs]

    monkeypatch.setattr(face_module.FaceDetector, "detect_batch", fake_detect_batch)
    manifest = build_tfrecords("genki4k", tmp_path / "genki", tmp_path / "out", options(no_face=no_face),
                               {"detect": True})
    assert sum(s["count"] for s in manifest["splits"].values()) == kept
    assert manifest["dropped"] == ({"no_face": 4} if no_face == "skip" else {})
    aligned = {"aligned_by_landmarks": 6}
    assert manifest["notes"] == (aligned if no_face == "skip" else {**aligned, "no_face_kept_whole": 4})

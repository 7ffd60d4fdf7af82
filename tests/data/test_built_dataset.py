"""A built dataset is one object: its manifest read once, its splits and shards, clear errors."""
import json

import pytest

from facenet_mtl.data.built_dataset import BuiltDataset, built_dataset_names, manifest_path, shard_dir
from facenet_mtl.errors import DataError
from facenet_mtl.data.pipeline import read_split
from facenet_mtl.data.record_format import RECORD_FEATURES


def fake_build(root, name, splits):
    """A manifest (and no shards) as build-tfrecords writes it."""
    manifest_path(root, name).parent.mkdir(parents=True)
    manifest_path(root, name).write_text(json.dumps({"dataset": name, "image_size": 32,
                                                     "splits": {s: {"count": n} for s, n in splits.items()}}))


def test_open_reads_the_manifest_once_and_answers_from_it(tmp_path, manifest_reads):
    fake_build(tmp_path, "utkface", {"train": 8, "valid": 0, "test": 2})
    built = BuiltDataset.open(tmp_path, "utkface")
    assert (built.size("train"), built.size("valid"), built.size("private_test")) == (8, 0, 0)
    assert list(built.splits) == ["train", "valid", "test"] and built.built_splits() == "train, valid, test"
    assert built.manifest["image_size"] == 32 and built.features is RECORD_FEATURES
    assert built.directory == tmp_path / "utkface" and built.shard_files("train") == []
    assert manifest_reads == ["utkface"]


def test_a_dataset_never_built_is_an_error_naming_the_build_command(tmp_path):
    with pytest.raises(DataError, match="build-tfrecords fer2013 --source") as error:
        BuiltDataset.open(tmp_path, "fer2013")
    assert str(tmp_path / "fer2013" / "manifest.json") in str(error.value)


def test_a_split_without_finished_shards_names_the_built_splits(tmp_path):
    fake_build(tmp_path, "utkface", {"train": 8})
    shard_dir(tmp_path, "utkface").mkdir()
    (shard_dir(tmp_path, "utkface") / "utkface-train.tfrecord-00000-of-00001").write_bytes(b"")  # no .done
    with pytest.raises(DataError, match=r"no finished shards for split 'train' \(built splits: train\)"):
        read_split(BuiltDataset.open(tmp_path, "utkface"), "train", 32)


def test_built_dataset_names_lists_the_folders_with_a_manifest(tmp_path):
    fake_build(tmp_path, "utkface", {"train": 1})
    fake_build(tmp_path, "fer2013", {"train": 1})
    (tmp_path / "half_built").mkdir()
    assert built_dataset_names(tmp_path) == ["fer2013", "utkface"]
    assert built_dataset_names(tmp_path / "nowhere") == []

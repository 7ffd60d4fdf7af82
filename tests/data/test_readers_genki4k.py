from collections import Counter

import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.data.images import load_rgb
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.readers.genki4k import read, read_smile_folders
from facenet_mtl.data.readers.splits import hash_split
from facenet_mtl.demo.native_layouts import write_genki4k, write_smile_folders
from tests.photos import missing_data


@pytest.fixture
def genki_root(tmp_path, image):
    faces = [{"image": image(36, 32, seed=i), "smile": int(i < 6), "yaw": 0.1 * i, "pitch": -0.05, "roll": 0.0}
             for i in range(10)]
    write_genki4k(tmp_path, faces)
    return tmp_path


def test_written_layout(genki_root):
    assert sorted(p.name for p in (genki_root / "files").iterdir())[:2] == ["file0001.jpg", "file0002.jpg"]
    assert (genki_root / "labels.txt").read_text().splitlines()[1] == "1 0.100000 -0.050000 0.000000"


def test_read_genki4k(genki_root):
    result = get_dataset("genki4k").read(genki_root)
    assert not result.dropped and len(result.records) == 10
    assert [r.labels["smile"] for r in result.records] == [1] * 6 + [0] * 4
    assert [r.file_id for r in result.records][:2] == ["files/file0001.jpg", "files/file0002.jpg"]
    assert all(r.split == hash_split(r.file_id.split("/")[1]) for r in result.records)
    assert all(not r.detect and r.source == "genki4k" for r in result.records)
    assert load_rgb(result.records[0].image).shape == (36, 32, 3)
    assert all(r.detect for r in read(genki_root, detect=True, limit=3).records)
    assert len(read(genki_root, limit=3).records) == 3


def test_bad_label_line_is_dropped(genki_root):
    lines = (genki_root / "labels.txt").read_text().splitlines()
    lines[2] = "x 0 0 0"
    (genki_root / "labels.txt").write_text("\n".join(lines) + "\n\n")  # a trailing blank line is fine
    result = read(genki_root)
    assert result.dropped == {"bad_label": 1} and len(result.records) == 9


def test_line_and_file_counts_must_match(genki_root):
    (genki_root / "files" / "file0010.jpg").unlink()
    with pytest.raises(DataError, match="has 10 label lines but .* has 9 images") as error:
        read(genki_root)
    assert "labels.txt" in str(error.value)


def test_missing_labels_or_files(tmp_path, genki_root):
    (genki_root / "labels.txt").unlink()
    with pytest.raises(DataError, match="missing labels.txt") as error:
        read(genki_root)
    assert str(genki_root / "labels.txt") in str(error.value)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "labels.txt").write_text("1 0 0 0\n")
    with pytest.raises(DataError, match="files/ folder"):
        read(tmp_path / "other")


def test_smile_folders(tmp_path, image):
    faces = [{"image": image(seed=i), "smile": i % 2, "split": s}
             for i, s in enumerate(["train"] * 4 + ["val", "test"])]
    write_smile_folders(tmp_path, faces)
    assert (tmp_path / "train" / "1" / "000001.jpg").is_file()
    result = get_dataset("smile_folders").read(tmp_path)
    assert Counter((r.split, r.labels["smile"]) for r in result.records) == {
        ("train", 0): 2, ("train", 1): 2, ("valid", 0): 1, ("test", 1): 1}
    assert result.records[0].file_id == "test/1/000005.jpg"
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        read_smile_folders(empty)
    with pytest.raises(DataError, match="no train/"):
        read_smile_folders(tmp_path / "train")
    with pytest.raises(DataError, match="no train/"):
        read_smile_folders(tmp_path / "train" / "1" / "000001.jpg")


def test_real_genki4k(shared_data):
    root = shared_data / "genki4k"
    if not (root / "labels.txt").is_file():
        pytest.skip(missing_data(root))
    result = read(root)
    assert len(result.records) == 3200 and not result.dropped
    assert Counter(r.labels["smile"] for r in result.records) == {1: 1730, 0: 1470}
    splits = Counter(r.split for r in result.records)
    assert 0.07 < splits["valid"] / 3200 < 0.13 and 0.07 < splits["test"] / 3200 < 0.13
    test_smiles = Counter(r.labels["smile"] for r in result.records if r.split == "test")
    assert test_smiles[0] > 100 and test_smiles[1] > 100  # labels.txt is sorted: the split must mix

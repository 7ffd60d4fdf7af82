import csv

import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.readers.appa_real import read, read_chalearn_lap_2016
from facenet_mtl.demo.native_layouts import write_appa_real, write_chalearn_lap_2016


def _appa_faces(image):
    face = lambda i, split, **kw: {"image": image(40, 30, seed=i), "split": split, "apparent_age": 20.5 + i,
                                   "apparent_std": 3.25, "real_age": 22 + i, "gender": i % 2, **kw}
    return [face(0, "train"), face(1, "train"), face(2, "train", no_face_crop=True),
            face(3, "valid"), face(4, "test", gender=None), face(5, "test", apparent_age=104.0)]


@pytest.fixture
def appa_root(tmp_path, image):
    write_appa_real(tmp_path, _appa_faces(image))
    return tmp_path


def test_written_layout_is_the_release_layout(appa_root):
    assert sorted(p.name for p in (appa_root / "train").iterdir())[:2] == ["000000.jpg", "000000.jpg_face.jpg"]
    assert not (appa_root / "train" / "000002.jpg_face.jpg").exists()
    with open(appa_root / "gt_avg_train.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age"]
    assert rows[1]["file_name"] == "000001.jpg" and float(rows[1]["apparent_age_avg"]) == 21.5
    with open(appa_root / "allcategories_test.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "gender", "race", "makeup", "time", "happiness"]
    assert rows[0]["file"] == "000004.jpg"


def test_read_apparent_age_uses_face_crops(appa_root):
    result = get_dataset("appa_real").read(appa_root)
    assert dict(result.dropped) == {"age_out_of_range": 1}
    assert [(r.file_id, r.split) for r in result.records] == [
        ("train/000000.jpg", "train"), ("train/000001.jpg", "train"), ("train/000002.jpg", "train"),
        ("valid/000003.jpg", "valid"), ("test/000004.jpg", "test")]
    first, no_crop, no_gender = result.records[0], result.records[2], result.records[4]
    assert first.labels == {"age": 20.5, "age_std": 3.25, "gender": 0}
    assert first.image.endswith("000000.jpg_face.jpg") and not first.detect and first.box is None
    assert no_crop.image.endswith("train/000002.jpg") and no_crop.detect
    assert "gender" not in no_gender.labels and {r.source for r in result.records} == {"appa_real"}


def test_read_real_age_and_without_categories(appa_root):
    for split in ("train", "valid", "test"):
        (appa_root / f"allcategories_{split}.csv").unlink()
    result = read(appa_root, age_target="real")
    assert [r.labels for r in result.records[:3]] == [{"age": 22.0}, {"age": 23.0}, {"age": 24.0}]
    assert len(read(appa_root, age_target="real", limit=3).records) == 3
    assert read(appa_root, age_target="real").dropped == {}  # real age 27 of the 104-year-look is fine


def test_missing_image_and_layout_errors(appa_root, tmp_path):
    (appa_root / "valid" / "000003.jpg").unlink()
    (appa_root / "valid" / "000003.jpg_face.jpg").unlink()
    assert read(appa_root).dropped["missing_file"] == 1
    (appa_root / "gt_avg_valid.csv").write_text("file_name,apparent_age_avg,real_age\n000003.jpg,20,21\n")
    with pytest.raises(DataError, match="'apparent_age_std'") as error:
        read(appa_root)
    assert "gt_avg_valid.csv" in str(error.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no gt_avg"):
        read(empty)
    with pytest.raises(ValueError, match="age_target"):
        read(appa_root, age_target="both")


def test_chalearn_lap_2016(tmp_path, image):
    faces = [{"image": image(40, 40, seed=i), "split": split, "apparent_age": 30.0 + i, "apparent_std": 4.5}
             for i, split in enumerate(["train", "train", "valid", "test"])]
    write_chalearn_lap_2016(tmp_path, faces)
    assert (tmp_path / "train_gt.csv").read_text().splitlines()[0] == "image,mean,stdv"
    result = get_dataset("chalearn_lap_2016").read(tmp_path)
    assert [(r.file_id, r.split, r.labels) for r in result.records] == [
        ("train/000000.jpg", "train", {"age": 30.0, "age_std": 4.5}),
        ("train/000001.jpg", "train", {"age": 31.0, "age_std": 4.5}),
        ("valid/000002.jpg", "valid", {"age": 32.0, "age_std": 4.5}),
        ("test/000003.jpg", "test", {"age": 33.0, "age_std": 4.5})]
    assert all(r.detect and r.source == "chalearn_lap_2016" for r in result.records)
    (tmp_path / "test" / "000003.jpg").unlink()
    assert read_chalearn_lap_2016(tmp_path).dropped == {"missing_file": 1}
    (tmp_path / "valid_gt.csv").write_text("image,mean\n000002.jpg,32\n")
    with pytest.raises(DataError, match="'stdv'"):
        read_chalearn_lap_2016(tmp_path)

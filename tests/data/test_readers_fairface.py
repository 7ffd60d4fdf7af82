"""FairFace: its own csv + image layout, age groups as bounds, spreadsheet repairs, splits, race."""
from collections import Counter

import numpy as np
import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.readers.fairface import FRAMING, age_group_bounds, read
from facenet_mtl.data.readers.splits import hash_split
from facenet_mtl.data.schema import MISSING, RACES, full_labels
from facenet_mtl.demo.native_layouts import write_fairface
from tests.photos import missing_data


def faces(image, rows):
    return [{"image": image(40, 40, seed=i), "age": age, "gender": gender, "race": race}
            for i, (age, gender, race) in enumerate(rows)]


def test_age_groups_become_bounds_and_mangled_groups_are_repaired():
    assert age_group_bounds("0-2") == (0, 2) and age_group_bounds("more than 70") == (70, 100)
    assert age_group_bounds("03-Sep") == (3, 9) and age_group_bounds("Oct-19") == (10, 19)
    assert age_group_bounds("70+") is None


def test_read_fairface(tmp_path, image):
    write_fairface(tmp_path, faces(image, [("20-29", "Male", "East Asian"), ("Oct-19", "Female", "Black"),
                                           ("more than 70", "Female", "Middle Eastern"),
                                           ("70+", "Male", "White"), ("3-9", "Robot", "White"),
                                           ("30-39", "Male", "Martian")]))
    (tmp_path / "train" / "6.jpg").unlink()  # a bad label is dropped before the missing file is noticed
    result = get_dataset("fairface").read(tmp_path)
    assert dict(result.dropped) == {"bad_label": 3}
    labels = [r.labels for r in result.records]
    assert labels == [
        {"age_min": 20.0, "age_max": 29.0, "gender": 1, "race": RACES.index("east_asian")},
        {"age_min": 10.0, "age_max": 19.0, "gender": 0, "race": RACES.index("black")},
        {"age_min": 70.0, "age_max": 100.0, "gender": 0, "race": RACES.index("middle_eastern")}]
    stored = full_labels(labels[0])
    assert stored["age"] == MISSING and stored["age_min"] == 20.0  # a group is never a made-up year
    record = result.records[0]
    assert record.file_id == "train/1.jpg" and record.split == hash_split("train/1.jpg")
    assert record.framing == FRAMING and not record.detect and record.source == "fairface"


def test_official_val_is_the_test_split(tmp_path, image):
    write_fairface(tmp_path, faces(image, [("20-29", "Male", "White")] * 30))
    write_fairface(tmp_path, faces(image, [("40-49", "Female", "Indian")] * 3), split="val")
    splits = Counter(r.split for r in read(tmp_path).records)
    assert splits["test"] == 3 and splits["train"] + splits["valid"] == 30 and set(splits) <= {"train", "valid", "test"}


def test_missing_files_and_layout_errors(tmp_path, image):
    write_fairface(tmp_path, faces(image, [("20-29", "Male", "White")] * 2))
    (tmp_path / "train" / "2.jpg").unlink()
    assert dict(read(tmp_path).dropped) == {"missing_file": 1}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="fairface_label_train.csv"):
        read(tmp_path / "empty")
    (tmp_path / "fairface_label_train.csv").write_text("file,age\ntrain/1.jpg,20-29\n")
    with pytest.raises(DataError, match="missing column"):
        read(tmp_path)


def test_real_fairface(shared_data):
    root = shared_data / "fairface"
    if not (root / "fairface_label_train.csv").is_file():
        pytest.skip(missing_data(root))
    result = read(root)
    assert len(result.records) == 10000 and not result.dropped
    genders = Counter(r.labels["gender"] for r in result.records)
    assert genders == {1: 5239, 0: 4761}
    races = Counter(RACES[r.labels["race"]] for r in result.records)
    assert races["white"] == 1913 and races["middle_eastern"] == 1053 and len(races) == 7
    splits = Counter(r.split for r in result.records)
    assert 0.07 < splits["test"] / 10000 < 0.13
    bounds = np.array([(r.labels["age_min"], r.labels["age_max"]) for r in result.records])
    assert (bounds[:, 0] <= bounds[:, 1]).all() and bounds.min() == 0 and bounds.max() == 100

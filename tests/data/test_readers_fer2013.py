import zipfile
from collections import Counter

import numpy as np
import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.data.images import load_rgb
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.readers.fer2013 import fer_plus_label, read
from facenet_mtl.data.readers.splits import carve_valid
from facenet_mtl.data.schema import EMOTIONS
from facenet_mtl.demo.native_layouts import write_fer2013_csv, write_fer2013_folders, write_fer_plus
from tests.photos import missing_data

REAL_TRAIN = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830, "surprise": 3171,
              "neutral": 4965}
REAL_TEST = {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "sad": 653, "surprise": 415, "neutral": 607}


def _grey(image, seed):
    return image(48, 48, seed=seed)[..., 0]


def _csv_faces(image):
    face = lambda i, emotion, usage, **kw: {"image": _grey(image, i), "emotion": emotion, "usage": usage, **kw}
    bad = " ".join(["7"] * 2303 + ["300"])
    return [face(0, 3, "Training"), face(1, 0, "Training"), face(2, 5, "PublicTest"),
            face(3, 6, "PrivateTest"), face(4, 2, "Training", pixels="1 2 3"), face(5, 9, "Training"),
            face(6, 1, "Training", pixels=bad), face(7, 4, "Bogus")]


@pytest.fixture
def fer_csv(tmp_path, image):
    return write_fer2013_csv(tmp_path / "fer2013.csv", _csv_faces(image))


def test_csv_keeps_the_three_usages_apart(fer_csv, image):
    result = read(fer_csv, valid_fraction=0.0)
    assert dict(result.dropped) == {"bad_pixels": 2, "bad_emotion": 1, "bad_usage": 1}
    assert [(r.file_id, r.split, r.labels) for r in result.records] == [
        ("fer0000000", "train", {"emotion": 3}), ("fer0000001", "train", {"emotion": 0}),
        ("fer0000002", "test", {"emotion": 5}), ("fer0000003", "private_test", {"emotion": 6})]
    first = result.records[0]
    assert first.image.shape == (48, 48) and np.array_equal(first.image, _grey(image, 0))
    assert load_rgb(first.image).shape == (48, 48, 3) and first.source == "fer2013"
    assert [r.file_id for r in get_dataset("fer2013").read(fer_csv.parent).records] == \
        [r.file_id for r in result.records]  # the folder holding fer2013.csv


def test_csv_carves_valid_from_training(tmp_path, image):
    faces = [{"image": _grey(image, i), "emotion": i % 7, "usage": "Training"} for i in range(40)]
    path = write_fer2013_csv(tmp_path / "fer2013.csv", faces)
    result = read(path, valid_fraction=0.3)
    assert {r.split for r in result.records} == {"train", "valid"}
    assert all(r.split == carve_valid(r.file_id, 0.3) for r in result.records)
    assert len(read(path, limit=5).records) == 5


def test_csv_missing_column_is_named(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(DataError, match="'pixels'") as error:
        read(path)
    assert str(path) in str(error.value)


def test_fer_plus_majority_vote(fer_csv, tmp_path):
    votes = [{"happiness": 8, "neutral": 2}, {"surprise": 6, "fear": 4}, {"neutral": 4, "sadness": 4, "anger": 2},
             {"NF": 10}, {"anger": 9}, {"contempt": 6, "neutral": 4}, {"disgust": 7}, {"unknown": 5, "fear": 3}]
    fer_plus = write_fer_plus(tmp_path / "fer2013new.csv", votes)
    header = fer_plus.read_text().splitlines()[0]
    assert header == "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    result = read(fer_csv, fer_plus=str(fer_plus), valid_fraction=0.0)
    assert [(r.file_id, r.labels["emotion"]) for r in result.records] == [("fer0000000", 3), ("fer0000001", 5)]
    assert dict(result.dropped) == {"fer_plus_tie": 1, "not_face": 1, "bad_pixels": 2, "contempt": 1,
                                    "bad_usage": 1}
    assert fer_plus_label([0] * 10) == (None, "not_face")
    assert fer_plus_label([0, 0, 0, 0, 0, 0, 0, 0, 6, 4]) == (None, "not_face")  # unknown wins
    write_fer_plus(tmp_path / "short.csv", votes[:3])
    with pytest.raises(DataError, match="has 3 rows but fer2013.csv has 8"):
        read(fer_csv, fer_plus=tmp_path / "short.csv")


def _folder_faces(image):
    usages = ["Training"] * 5 + ["PublicTest", "PublicTest", "PrivateTest"]
    return [{"image": image(48, 48, seed=i), "emotion": i % 7, "usage": u, "id": 1000 + i}
            for i, u in enumerate(usages)]


def test_folders_and_zip_give_the_same_records(tmp_path, image):
    written = write_fer2013_folders(tmp_path / "folders", _folder_faces(image))
    assert written[0].relative_to(tmp_path / "folders").as_posix() == "train/angry/Training_1000.jpg"
    members = write_fer2013_folders(None, _folder_faces(image), zip_path=tmp_path / "fer.zip")
    with zipfile.ZipFile(tmp_path / "fer.zip") as archive:
        assert archive.namelist() == members and members[7] == "test/angry/PrivateTest_1007.jpg"
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    from_folders = read(tmp_path / "folders", valid_fraction=0.0)
    from_zip = get_dataset("fer2013").read(tmp_path / "fer.zip", valid_fraction=0.0)
    summary = lambda res: [(r.file_id, r.split, r.labels["emotion"]) for r in res.records]
    assert summary(from_folders) == summary(from_zip)
    assert Counter(r.split for r in from_zip.records) == {"train": 5, "test": 2, "private_test": 1}
    assert from_zip.records[0].image == (str(tmp_path / "fer.zip"), from_zip.records[0].file_id)
    assert all(load_rgb(r.image).shape == (48, 48, 3) for r in from_zip.records + from_folders.records)
    assert all(EMOTIONS[r.labels["emotion"]] == r.file_id.split("/")[1] for r in from_zip.records)


def test_folder_layout_errors(tmp_path, image):
    with pytest.raises(DataError, match="source path not found"):
        read(tmp_path / "missing")
    with pytest.raises(DataError, match="no fer2013.csv"):
        read(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no images found"):
        read(tmp_path)
    write_fer2013_folders(tmp_path, _folder_faces(image)[:1])
    (tmp_path / "train" / "angry").rename(tmp_path / "train" / "furious")
    with pytest.raises(DataError, match="unknown emotion folder 'furious'"):
        read(tmp_path)
    with pytest.raises(DataError, match="need the csv source"):
        read(tmp_path, fer_plus=tmp_path / "fer2013new.csv")


def test_real_fer2013_zip(shared_data):
    zip_path = shared_data / "fer2013" / "fer2013_images.zip"
    if not zip_path.is_file():
        pytest.skip(missing_data(zip_path))
    result = read(zip_path)
    assert not result.dropped
    by_split = Counter(r.split for r in result.records)
    assert by_split["train"] + by_split["valid"] == 28709 and by_split["test"] == 3589
    assert 0.08 < by_split["valid"] / 28709 < 0.12
    train = Counter(EMOTIONS[r.labels["emotion"]] for r in result.records if r.split != "test")
    test = Counter(EMOTIONS[r.labels["emotion"]] for r in result.records if r.split == "test")
    assert train == REAL_TRAIN and test == REAL_TEST
    for record in result.records[::8000]:
        assert load_rgb(record.image).shape == (48, 48, 3)

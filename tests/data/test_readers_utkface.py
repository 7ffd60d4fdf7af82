from collections import Counter

import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.readers.splits import hash_split
from facenet_mtl.data.readers.utkface import parse_name, read
from facenet_mtl.demo.native_layouts import write_utkface
from tests.photos import missing_data


def test_parse_name():
    assert parse_name("25_0_2_20170116174525125.jpg.chip.jpg") == (25, 1, 2)  # UTK 0 male -> our 1
    assert parse_name("3_1_4_20161219140623097.jpg.chip.jpg") == (3, 0, 4)
    assert parse_name("55_0_0_20170116232725357jpg.chip.jpg") == (55, 1, 0)  # the release's typo
    assert parse_name("1_0_0_20161219140623097.jpg") == (1, 1, 0)  # in-the-wild style
    assert parse_name("39_1_20170116174525125.jpg.chip.jpg") == (39, 0, None)  # no race field: age, gender kept
    assert parse_name("39_1.jpg.chip.jpg") is None
    assert parse_name("25_2_0_20170116174525125.jpg.chip.jpg") is None


def test_read_utkface(tmp_path, image):
    faces = [{"image": image(seed=i), "age": age, "gender": gender, "race": i % 5}
             for i, (age, gender) in enumerate([(25, 1), (3, 0), (100, 1), (101, 0), (116, 1)])]
    faces += [{"image": image(), "raw_name": "39_1_20170116174525125.jpg.chip.jpg"},
              {"image": image(), "raw_name": "55_0_0_20170116232725357jpg.chip.jpg"},
              {"image": image(), "raw_name": "39_x_20170116174525125.jpg.chip.jpg"}]
    written = write_utkface(tmp_path, faces)
    assert written[0].name == "25_0_0_20170116000000000.jpg.chip.jpg"
    with pytest.warns(UserWarning, match="skipped 1 file.*39_x_20170116174525125"):
        result = get_dataset("utkface").read(tmp_path)
    assert dict(result.dropped) == {"malformed_name": 1, "age_out_of_range": 2}
    assert sorted((r.labels["age"], r.labels["gender"]) for r in result.records) == [(3, 0), (25, 1), (39, 0), (55, 1), (100, 1)]
    by_name = {r.file_id: r.labels for r in result.records}
    assert "race" not in by_name["39_1_20170116174525125.jpg.chip.jpg"] and by_name[written[1].name]["race"] == 1
    assert all(r.split == hash_split(r.file_id) and r.source == "utkface" and not r.detect for r in result.records)
    assert result.records[0].file_id == "100_0_2_20170116000000002.jpg.chip.jpg"  # sorted by name
    with pytest.warns(UserWarning):
        assert len(read(tmp_path, limit=2).records) == 2


def test_parent_folder_and_errors(tmp_path, image):
    write_utkface(tmp_path / "UTKFace", [{"image": image(), "age": 30, "gender": 0}])
    assert len(read(tmp_path).records) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        read(tmp_path / "empty")
    with pytest.raises(DataError, match="source path not found"):
        read(tmp_path / "nowhere")


def test_real_utkface(shared_data):
    root = shared_data / "utkface" / "UTKFace"
    if not root.is_dir():
        pytest.skip(missing_data(root))
    result = read(root)
    over_100 = sum(1 for p in root.iterdir() if int(p.name.split("_")[0]) > 100)
    assert dict(result.dropped) == ({"age_out_of_range": over_100} if over_100 else {})
    kept = 19032 - over_100  # all 19,032 names give age and gender, the two without race too
    assert len(result.records) == kept
    ids = {r.file_id: r.labels for r in result.records}
    assert "55_0_0_20170116232725357jpg.chip.jpg" in ids
    assert "race" not in ids["61_1_20170109150557335.jpg.chip.jpg"] and ids["61_1_20170109150557335.jpg.chip.jpg"]["age"] == 61
    genders = Counter(r.labels["gender"] for r in result.records)
    assert genders[1] + genders[0] == kept and abs(genders[1] - 9924) <= over_100  # UTK male (0) -> our 1
    splits = Counter(r.split for r in result.records)
    assert 0.07 < splits["valid"] / kept < 0.13 and 0.07 < splits["test"] / kept < 0.13

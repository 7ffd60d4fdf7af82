import datetime
import math
import re

import numpy as np
import pytest
import scipy.io

from facenet_mtl.errors import DataError
from facenet_mtl.data.images import load_rgb
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.readers.imdb_wiki import age_at_photo, read
from facenet_mtl.demo.native_layouts import matlab_datenum, write_imdb_wiki
from tests.photos import missing_data

BOX = (16, 16, 48, 48)


def _faces(image):
    face = lambda i, **kw: {"image": image(64, 64, seed=i), "age": 30, "gender": 1, "face_box": BOX, **kw}
    return [
        face(0),                                          # kept
        face(1, age=25, gender=0, birth_month=9),         # kept: born after June
        face(2, face_box=None),                           # no_face
        face(3, face_score=0.5),                          # low_face_score
        face(4, second_face_score=2.0),                   # second_face
        face(5, age=120),                                 # age_out_of_range
        face(6, gender=None),                             # gender_unknown
        face(7, dob=float("nan")),                        # bad_dob
        face(8, missing_file=True),                       # missing_file
        face(9, age=60, face_box=(5.5, 6.5, 40.25, 50.0)),  # kept
    ]


@pytest.fixture
def wiki_root(tmp_path, image):
    write_imdb_wiki(tmp_path, "wiki", _faces(image))
    return tmp_path


def test_written_mat_is_shaped_like_the_real_one(wiki_root):
    mat = scipy.io.loadmat(wiki_root / "wiki_crop" / "wiki.mat", squeeze_me=True, struct_as_record=False)
    wiki = mat["wiki"]
    assert wiki._fieldnames == ["dob", "photo_taken", "full_path", "gender", "name", "face_location",
                                "face_score", "second_face_score"]
    assert wiki.dob.shape == (10,) and wiki.face_location[0].shape == (4,)
    assert re.fullmatch(r"\d\d/\d+_\d{4}-\d\d-\d\d_2009\.jpg", wiki.full_path[0])
    assert math.isinf(wiki.face_score[2]) and math.isnan(wiki.second_face_score[0])
    assert math.isnan(wiki.gender[6]) and wiki.gender[1] == 0
    assert (wiki_root / "wiki_crop" / wiki.full_path[0]).is_file()
    assert not (wiki_root / "wiki_crop" / wiki.full_path[8]).exists()


def test_read_wiki_cleans_by_each_rule(wiki_root):
    result = read(wiki_root / "wiki_crop", db="wiki")
    assert dict(result.dropped) == {"no_face": 1, "low_face_score": 1, "second_face": 1,
                                    "age_out_of_range": 1, "gender_unknown": 1, "bad_dob": 1,
                                    "missing_file": 1}
    assert [r.labels for r in result.records] == [{"age": 30, "gender": 1}, {"age": 25, "gender": 0},
                                                  {"age": 60, "gender": 1}]
    first = result.records[0]
    assert first.source == "wiki" and first.box == BOX and not first.detect
    assert result.records[2].box == (5.5, 6.5, 40.25, 50.0)
    assert first.file_id.endswith("_2009.jpg") and first.image.endswith(first.file_id)
    assert load_rgb(first.image).shape == (64, 64, 3)
    assert all(r.split in ("train", "valid", "test") for r in result.records)


def test_source_may_be_the_parent_folder_and_registered_name(wiki_root):
    parent = get_dataset("wiki").read(wiki_root)
    assert [r.file_id for r in parent.records] == [r.file_id for r in read(wiki_root / "wiki_crop").records]
    with pytest.raises(TypeError, match="db"):
        get_dataset("wiki").read(wiki_root, db="imdb")


def test_options_relax_the_rules(wiki_root):
    result = read(wiki_root, min_face_score=0.1, allow_second_face=True, max_age=130,
                  require_gender=False, check_files=False)
    assert dict(result.dropped) == {"no_face": 1, "bad_dob": 1}
    assert {"age": 30} in [r.labels for r in result.records]  # gender unknown: no gender label
    assert len(read(wiki_root, limit=2).records) == 2


def test_age_is_taken_mid_year():
    assert age_at_photo(matlab_datenum(datetime.date(1981, 5, 5)), 2009) == 28
    assert age_at_photo(matlab_datenum(datetime.date(1981, 9, 5)), 2009) == 27
    assert age_at_photo(matlab_datenum(datetime.date(1981, 6, 30)), 2009) == 28
    assert age_at_photo(float("nan"), 2009) is None and age_at_photo(12.0, 2009) is None


def test_split_keeps_a_person_together(tmp_path, image):
    faces = [{"image": image(32, 32), "age": 30, "gender": 1, "face_box": BOX,
              "full_path": f"17/10000217_1981-05-05_{year}.jpg", "photo_taken": year}
             for year in range(1990, 2010)]
    write_imdb_wiki(tmp_path, "wiki", faces)
    assert len({r.split for r in read(tmp_path).records}) == 1
    assert len({r.split for r in read(tmp_path, split_by="file").records}) > 1


def test_imdb_has_celeb_fields_and_its_own_dataset(tmp_path, image):
    faces = [{"image": image(32, 32, seed=i), "age": 20 + i, "gender": i % 2, "face_box": BOX,
              "name": f"Star {i % 2}"} for i in range(4)]
    write_imdb_wiki(tmp_path, "imdb", faces)
    imdb = scipy.io.loadmat(tmp_path / "imdb_crop" / "imdb.mat", squeeze_me=True, struct_as_record=False)["imdb"]
    assert list(imdb.celeb_names) == ["Star 0", "Star 1"] and list(imdb.celeb_id) == [1, 2, 1, 2]
    assert re.fullmatch(r"\d\d/nm\d{7}_rm\d+_\d{4}-\d{1,2}-\d{1,2}_2009\.jpg", imdb.full_path[0])
    result = get_dataset("imdb").read(tmp_path)
    assert [r.labels["age"] for r in result.records] == [20, 21, 22, 23]
    assert {r.source for r in result.records} == {"imdb"}


def test_layout_errors_name_the_path(tmp_path, image):
    with pytest.raises(DataError, match="source path not found"):
        read(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no wiki.mat found") as error:
        read(tmp_path)
    assert str(tmp_path) in str(error.value)
    write_imdb_wiki(tmp_path, "imdb", [{"image": image(), "age": 30, "gender": 1, "face_box": BOX}])
    (tmp_path / "imdb_crop" / "imdb.mat").rename(tmp_path / "imdb_crop" / "wiki.mat")
    with pytest.raises(DataError, match="no struct variable named 'wiki'"):
        read(tmp_path / "imdb_crop", db="wiki")


@pytest.mark.parametrize("db", ["wiki", "imdb"])
def test_real_mat_if_present(shared_data, db):
    crop_dir = shared_data / f"{db}_crop"
    if not (crop_dir / f"{db}.mat").is_file():
        pytest.skip(missing_data(crop_dir / f"{db}.mat"))
    result = read(crop_dir, db=db, check_files=False)
    print(f"{db}: {len(result.records)} cleaned, dropped {dict(result.dropped)}")
    assert result.records and np.isfinite([r.labels["age"] for r in result.records]).all()


def test_single_entry_mat(tmp_path, image):
    write_imdb_wiki(tmp_path, "wiki", [{"image": image(), "age": 41, "gender": 0, "face_box": BOX}])
    [record] = read(tmp_path).records
    assert record.labels == {"age": 41, "gender": 0} and record.box == BOX

import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.readers.celeba import read
from facenet_mtl.demo.native_layouts import CELEBA_ATTRIBUTES, write_celeba


@pytest.fixture
def celeba_root(tmp_path, image):
    faces = [{"image": image(44, 36, seed=i), "smile": int(i in (0, 3)), "gender": int(i < 2), "partition": p}
             for i, p in enumerate([0, 0, 1, 2, 2])]
    write_celeba(tmp_path, faces)
    return tmp_path


def test_written_files_follow_the_real_format(celeba_root):
    lines = (celeba_root / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "5" and lines[1].split() == list(CELEBA_ATTRIBUTES) and len(CELEBA_ATTRIBUTES) == 40
    assert lines[2].startswith("000001.jpg -1 -1") and len(lines[2].split()) == 41
    assert (celeba_root / "list_eval_partition.txt").read_text().splitlines()[2] == "000003.jpg 1"
    assert (celeba_root / "img_align_celeba" / "000005.jpg").is_file()


def test_read_celeba(celeba_root):
    result = get_dataset("celeba").read(celeba_root)
    assert not result.dropped
    assert [(r.file_id, r.split, r.labels) for r in result.records] == [
        ("000001.jpg", "train", {"smile": 1, "gender": 1}), ("000002.jpg", "train", {"smile": 0, "gender": 1}),
        ("000003.jpg", "valid", {"smile": 0, "gender": 0}), ("000004.jpg", "test", {"smile": 1, "gender": 0}),
        ("000005.jpg", "test", {"smile": 0, "gender": 0})]
    assert not result.records[0].detect and result.records[0].image.endswith("img_align_celeba/000001.jpg")
    everything = [r.file_id for r in read(celeba_root).records]
    limited = [r.file_id for r in read(celeba_root, limit=2).records]
    assert len(limited) == 2 and set(limited) <= set(everything) and limited[0] == everything[0]


def test_drops(celeba_root):
    (celeba_root / "img_align_celeba" / "000002.jpg").unlink()
    partition = celeba_root / "list_eval_partition.txt"
    partition.write_text("\n".join(partition.read_text().splitlines()[:-1]) + "\n")
    attrs = celeba_root / "list_attr_celeba.txt"
    lines = attrs.read_text().splitlines()
    lines[4] = lines[4].replace("000003.jpg -1", "000003.jpg 0")  # damaged: first attribute only, ok
    lines[5] = lines[5][:-3]  # a short line
    attrs.write_text("\n".join(lines) + "\n")
    result = read(celeba_root)
    assert dict(result.dropped) == {"missing_file": 1, "no_partition": 1, "bad_label": 1}
    assert [r.file_id for r in result.records] == ["000001.jpg", "000003.jpg"]


def test_layout_errors(celeba_root):
    attrs = celeba_root / "list_attr_celeba.txt"
    lines = attrs.read_text().splitlines()
    attrs.write_text("\n".join([lines[0], lines[1].replace("Smiling", "Smile")] + lines[2:]) + "\n")
    with pytest.raises(DataError, match="Smiling"):
        read(celeba_root)
    attrs.unlink()
    with pytest.raises(DataError, match="missing list_attr_celeba.txt") as error:
        read(celeba_root)
    assert str(celeba_root) in str(error.value)


def test_kaggle_csv_layout(tmp_path, image):
    (tmp_path / "img_align_celeba" / "img_align_celeba").mkdir(parents=True)
    (tmp_path / "img_align_celeba" / "img_align_celeba" / "000001.jpg").write_bytes(b"")
    (tmp_path / "list_attr_celeba.csv").write_text("image_id,Male,Smiling\n000001.jpg,-1,1\n")
    (tmp_path / "list_eval_partition.csv").write_text("image_id,partition\n000001.jpg,2\n")
    [record] = read(tmp_path).records
    assert (record.split, record.labels) == ("test", {"smile": 1, "gender": 0})

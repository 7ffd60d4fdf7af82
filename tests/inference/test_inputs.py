"""What `predict` reads: files, folders walked for images, globs, `-` (stdin), and bad arguments."""
import io
from pathlib import Path

import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.inference.inputs import expand_inputs, is_model_path
from facenet_mtl.inference.predictor import annotated_names


@pytest.fixture
def tree(tmp_path):
    for name in ("a/face.jpg", "a/deep/er/x.PNG", "b/face.png", "b/notes.txt", "b/.hidden.jpg", "b/clip.mp4",
                 "c.webp", "z.mkv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def names(paths, root):
    return [str(Path(p).relative_to(root)) for p in paths]


def test_folders_are_walked_for_images_and_the_rest_counted(tree):
    found = expand_inputs([tree / "a", tree / "b"])
    assert names(found.images, tree) == ["a/deep/er/x.PNG", "a/face.jpg", "b/face.png"]
    assert found.videos == [] and found.skipped == {str(tree / "b"): 2}  # notes.txt and clip.mp4


def test_files_globs_and_videos_in_order_each_once(tree):
    found = expand_inputs([tree / "c.webp", str(tree / "**" / "face.*"), tree / "a" / "face.jpg", tree / "z.mkv"])
    assert names(found.images, tree) == ["c.webp", "a/face.jpg", "b/face.png"]
    assert names(found.videos, tree) == ["z.mkv"] and len(found) == 4


def test_dash_reads_paths_from_stdin(tree):
    stdin = io.StringIO(f"{tree / 'c.webp'}\n\n  {tree / 'b'}  \n{tree / 'z.mkv'}\n")
    found = expand_inputs([tree / "a" / "face.jpg", "-"], stdin)
    assert names(found.images, tree) == ["a/face.jpg", "c.webp", "b/face.png"]
    assert names(found.videos, tree) == ["z.mkv"] and found.skipped == {str(tree / "b"): 2}


@pytest.mark.parametrize("arg, problem", [("missing.jpg", "no such file or folder"),
                                          ("empty", "no image in it"), ("*.gif", "matches no image"),
                                          ("-", "standard input")])
def test_bad_arguments_name_the_path_and_the_fix(tmp_path, arg, problem):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no pictures here")
    with pytest.raises(DataError, match=problem) as error:
        expand_inputs([tmp_path / arg if arg != "-" else arg])
    assert "fix:" in str(error.value)


def test_model_paths_are_told_from_images(tmp_path):
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "saved_model" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "photos").mkdir()
    assert [is_model_path(tmp_path / n) for n in ("m.h5", "m.keras", "saved_model", "photos", "x.jpg")] == \
        [True, True, True, False, False]


def test_annotated_names_never_collide():
    paths = ["in/a/face.jpg", "in/b/face.png", "in/b/face.jpg", "in/b/face.JPG", "in/b/other.jpg"]
    assert [str(n) for n in annotated_names(paths)] == [
        "a/face_annotated.jpg", "b/face_annotated.jpg", "b/face_jpg_annotated.jpg",
        "b/face_JPG_2_annotated.jpg",  # case-blind file systems would merge face_jpg and face_JPG
        "b/other_annotated.jpg"]
    assert [str(n) for n in annotated_names(["x/p.jpg"])] == ["p_annotated.jpg"]

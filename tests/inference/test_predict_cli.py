"""`facenet-mtl predict` as a user runs it: folders, globs, stdin, formats, --out, videos, the
shipped model by default, and bad input as exit 2 with a message (never a traceback)."""
import csv
import io
import json

import cv2
import keras
import numpy as np
import pytest
from click.testing import CliRunner

from facenet_mtl import weights
from facenet_mtl.cli import main
from tests.photos import face_photo, iou


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    image = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Dense(4, activation="relu")(keras.layers.GlobalAveragePooling2D()(image))
    outputs = {"age": keras.layers.Dense(1, name="age")(x),
               "smile": keras.layers.Dense(1, activation="sigmoid", name="smile")(x)}
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    keras.Model(image, outputs).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    """photos/a/face.jpg, photos/b/face.png (same stem), photos/b/deep/more.jpg, photos/b/readme.txt."""
    for name, level in (("a/face.jpg", 60), ("b/face.png", 120), ("b/deep/more.jpg", 180)):
        (tmp_path / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "photos" / name), np.full((24, 32, 3), level, np.uint8))
    (tmp_path / "photos" / "b" / "readme.txt").write_text("not a photo")
    return tmp_path / "photos"


def run(*args, stdin=None):
    return CliRunner().invoke(main, ["predict", *(str(a) for a in args)], input=stdin)


def lines(result):
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_user_error(result, *named):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "fix:" in result.stderr
    for text in named:
        assert str(text) in result.stderr, (text, result.stderr)


def test_a_folder_is_walked_and_other_files_counted(photos, model):
    result = run("--model", model, photos, "--no-detect")
    records = lines(result)
    assert [r["path"] for r in records] == [str(photos / p) for p in ("a/face.jpg", "b/deep/more.jpg", "b/face.png")]
    assert {r["model"] for r in records} == {"tiny.keras-" + weights.sha256_of(model)[:8]}
    assert all(set(r["faces"][0]) == {"box", "confidence", "age", "smile"} for r in records)
    assert f"skipped 1 file(s) in {photos}" in result.stderr and "re-extract" not in result.output


def test_globs_stdin_and_the_old_model_first_form(photos, model):
    by_glob = lines(run(model, str(photos / "**" / "*.jpg"), "--no-detect"))
    assert [r["path"] for r in by_glob] == [str(photos / "a/face.jpg"), str(photos / "b/deep/more.jpg")]
    by_stdin = lines(run("--model", model, "-", "--no-detect", stdin=f"{photos / 'b/face.png'}\n{photos / 'a'}\n"))
    assert [r["path"] for r in by_stdin] == [str(photos / "b/face.png"), str(photos / "a/face.jpg")]
    assert by_stdin[1]["faces"] == by_glob[0]["faces"]


def test_csv_and_json_formats(photos, model):
    result = run("--model", model, photos / "a", photos / "b" / "face.png", "--no-detect", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["path"], r["x2"], r["y2"]) for r in rows] == [(str(photos / "a/face.jpg"), "32", "24"),
                                                             (str(photos / "b/face.png"), "32", "24")]
    assert rows[0]["smile"] in ("smile", "no_smile") and float(rows[0]["smile_probability"]) >= 0.5
    result = run("--model", model, photos / "a", "--no-detect", "--format", "json")
    assert [r["path"] for r in json.loads(result.stdout)] == [str(photos / "a/face.jpg")]


def test_out_writes_one_file_per_input_even_for_a_shared_stem_and_says_where(photos, model, tmp_path):
    out = tmp_path / "annotated"
    result = run("--model", model, photos / "a" / "face.jpg", photos / "b" / "face.png", "--no-detect", "--out", out)
    records = lines(result)
    assert [r["annotated"] for r in records] == [str(out / "a" / "face_annotated.jpg"),
                                                 str(out / "b" / "face_annotated.jpg")]
    assert all(cv2.imread(r["annotated"]).shape == (24, 32, 3) for r in records)
    assert f"2 file(s) written under {out}" in result.stderr


def test_out_that_is_a_file_exits_2_before_anything_runs(photos, model, tmp_path):
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    result = run("--model", model, photos, "--out", taken)
    assert_user_error(result, taken, "is a file")
    assert result.stdout == "" and taken.read_text() == "keep me"


def test_an_unreadable_image_is_reported_the_others_still_predicted_and_exit_is_2(photos, model):
    (photos / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    result = run("--model", model, photos / "a", "--no-detect")
    assert_user_error(result, photos / "a" / "broken.jpg", "1 of 2 image(s) could not be read")
    broken, good = [json.loads(line) for line in result.stdout.splitlines()]
    assert broken["faces"] == [] and "unreadable image" in broken["error"] and len(good["faces"]) == 1


@pytest.mark.parametrize("args, named", [
    (("nowhere.jpg",), "no such file or folder"),
    (("--camera", "97"), "camera 97: cannot be opened"),
    ((), "no images given"),
])
def test_bad_inputs_exit_2(model, tmp_path, args, named):
    args = [tmp_path / a if a.endswith(".jpg") else a for a in args]
    assert_user_error(run("--model", model, *args, "--no-detect"), named)


def test_a_model_given_twice_exits_2(model, photos):
    assert_user_error(run("--model", model, model, photos), "give the model once")


def test_a_video_gives_a_line_per_sampled_frame_and_an_annotated_video(model, tmp_path):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 4, (32, 24))
    for i in range(6):
        writer.write(np.full((24, 32, 3), 30 * i, np.uint8))
    writer.release()
    result = run("--model", model, clip, "--every", "2", "--no-detect", "--out", tmp_path / "out")
    *records, summary = lines(result)
    assert [(r["frame"], r["time_s"]) for r in records] == [(0, 0.0), (2, 0.5), (4, 1.0)]
    assert [r["faces"][0]["track"] for r in records] == [1, 1, 1]  # the whole frame: one face, one track
    assert summary["track_summary"]["first_frame"] == 0 and summary["track_summary"]["last_frame"] == 4
    assert f"{clip} track 1: frames 0-4 (3 faces)" in result.stderr
    assert {r["annotated"] for r in records} == {str(tmp_path / "out" / "clip_annotated.mp4")}
    assert cv2.VideoCapture(records[0]["annotated"]).get(cv2.CAP_PROP_FRAME_COUNT) == 6


def test_without_a_model_the_shipped_one_predicts_and_says_what_it_is(tmp_path):
    photo = tmp_path / "photo.jpg"
    pasted = face_photo(photo)
    result = run(photo)
    record, = lines(result)
    info = weights.release_info()
    assert record["model"] == weights.model_id(info)
    face, = record["faces"]
    assert iou(face["box"], pasted) > 0.5 and 0.9 <= face["confidence"] <= 1
    assert set(face) == {"box", "confidence", "age_range", *info["tasks"]}  # the placeholder's values are not asserted
    if info["trained_on"] != "real":
        assert record["warning"].startswith(f"model {record['model']} ")
        assert f"warning: {record['warning']}" in result.stderr


def test_min_face_skips_faces_smaller_than_it(model, tmp_path):
    """`--min-face` is the detector's smallest face: a 32-px face is found at the default (20 px)
    and not searched for at 80; a 200-px face is found at both."""
    small, large = tmp_path / "small.jpg", tmp_path / "large.jpg"
    small_box, large_box = face_photo(small, side=32), face_photo(large)
    found = {min_face: [r["faces"] for r in lines(run("--model", model, small, large, "--min-face", min_face))]
             for min_face in (20, 80)}
    assert [len(faces) for faces in found[20]] == [1, 1] and iou(found[20][0][0]["box"], small_box) > 0.3
    assert [len(faces) for faces in found[80]] == [0, 1] and iou(found[80][1][0]["box"], large_box) > 0.5
    too_small = run("--model", model, small, "--min-face", 8)  # under P-Net's 12-px window
    assert too_small.exit_code == 2 and "--min-face" in too_small.stderr


def test_a_progress_bar_on_stderr_for_several_images_only(photos, model):
    cv2.imwrite(str(photos / "a" / "fourth.jpg"), np.full((24, 32, 3), 9, np.uint8))
    many = run("--model", model, photos, "--no-detect", "--batch-size", "3")
    assert many.exit_code == 0 and "4/4" in many.stderr and len(many.stdout.splitlines()) == 4
    few = run("--model", model, photos / "a", "--no-detect")
    assert few.exit_code == 0 and "2/2" not in few.stderr


def test_a_file_name_that_is_not_utf8_is_read_and_written_without_a_crash(model, tmp_path):
    """OpenCV's imread/imwrite/VideoCapture crash (SIGSEGV) on such names: run in a subprocess."""
    import os
    import subprocess
    import sys

    folder = os.fsencode(tmp_path / "in")
    os.mkdir(folder)
    ok, encoded = cv2.imencode(".jpg", np.full((24, 32, 3), 90, np.uint8))
    with open(folder + b"/bad\xff\xfe.jpg", "wb") as handle:
        handle.write(encoded.tobytes())
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 4, (32, 24))
    for i in range(3):
        writer.write(np.full((24, 32, 3), 30 * i, np.uint8))
    writer.release()
    clip = folder + b"/clip\xff.avi"
    os.rename(tmp_path / "clip.avi", clip)
    out = os.fsencode(tmp_path) + b"/out\xfe"
    for fmt in ("jsonl", "csv"):
        done = subprocess.run([sys.executable, "-m", "facenet_mtl.cli", "predict", "--model", os.fsencode(model),
                               folder, clip, "--no-detect", "--out", out, "--format", fmt],
                              capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert sorted(os.listdir(out)) == [b"bad\xff\xfe_annotated.jpg", b"clip\xff_annotated.mp4"]
    with open(out + b"/bad\xff\xfe_annotated.jpg", "rb") as handle:
        assert cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR).shape == (24, 32, 3)
    os.link(out + b"/clip\xff_annotated.mp4", tmp_path / "copy.mp4")  # an ASCII name to check it by
    assert cv2.VideoCapture(str(tmp_path / "copy.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3


def test_each_bad_path_in_a_folder_gets_its_own_error_and_the_others_go_on(model, photos, monkeypatch):
    """A symbolic link loop, an unreadable file and an unreadable subfolder: an `error` record each,
    every readable photo predicted, exit 2 at the end. As root, chmod does not stop reading, so
    there the permission errors are raised where the operating system would raise them."""
    import os
    import pathlib

    os.symlink("self.jpg", photos / "a" / "self.jpg")
    locked, hidden = photos / "b" / "locked.jpg", photos / "c"
    cv2.imwrite(str(locked), np.full((24, 32, 3), 7, np.uint8))
    hidden.mkdir()
    cv2.imwrite(str(hidden / "inside.jpg"), np.full((24, 32, 3), 7, np.uint8))
    if os.geteuid() != 0:
        locked.chmod(0)
        hidden.chmod(0)
    else:
        read_bytes, scandir = pathlib.Path.read_bytes, os.scandir

        def denied(path):
            return PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(pathlib.Path, "read_bytes",
                            lambda self: (_ for _ in ()).throw(denied(self)) if self == locked else read_bytes(self))
        monkeypatch.setattr(os, "scandir", lambda path=".": (_ for _ in ()).throw(denied(path))
                            if str(path) == str(hidden) else scandir(path))
    try:
        result = run("--model", model, photos, "--no-detect")
    finally:
        locked.chmod(0o644)
        hidden.chmod(0o755)
    assert result.exit_code == 2 and "Traceback" not in result.output
    records = {r["path"]: r for r in map(json.loads, result.stdout.splitlines())}
    errors = {path for path, r in records.items() if "error" in r}
    assert errors == {str(photos / "a" / "self.jpg"), str(locked), str(hidden)}
    good = {path for path, r in records.items() if r["faces"]}
    assert good == {str(photos / n) for n in ("a/face.jpg", "b/face.png", "b/deep/more.jpg")}
    assert all(f"error: {records[path]['error']}" in result.stderr for path in errors)
    assert "3 of 6 image(s) could not be read" in result.stderr


def test_out_inside_an_input_folder_is_not_read_by_the_next_run(model, photos):
    for _ in range(2):
        result = run("--model", model, photos, "--no-detect", "--out", photos / "annotated")
        assert result.exit_code == 0, result.output
        assert len(lines(result)) == 3 and not any("_annotated" in r["path"] for r in lines(result))
    glob = run("--model", model, str(photos / "**" / "*.jpg"), "--no-detect", "--out", photos / "annotated")
    assert len(lines(glob)) == 2 and not any("_annotated" in r["path"] for r in lines(glob))


def test_a_model_that_fails_to_load_on_the_loading_thread_exits_2_not_an_abort(photos, tmp_path):
    """The model loads on a thread while the detector's networks build on another; a bad model
    file must end the process with its message and code 2 (not `terminate called`, code 134,
    from a process that exits while TensorFlow still builds a network)."""
    import subprocess
    import sys

    bad = tmp_path / "bad.h5"
    bad.write_text("x")
    done = subprocess.run([sys.executable, "-m", "facenet_mtl.cli", "predict", "--model", str(bad),
                           str(photos / "a" / "face.jpg")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"error: {bad}" in done.stderr and "terminate called" not in done.stderr

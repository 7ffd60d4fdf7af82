"""Video input: every Nth frame predicted, frame numbers and times, the annotated video."""
import cv2
import keras
import numpy as np
import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.inference.predictor import FacePredictor
from facenet_mtl.inference.video import predict_camera, predict_video


def tiny_predictor():
    image = keras.Input((16, 16, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(image)
    return FacePredictor(keras.Model(image, {"smile": keras.layers.Dense(1, activation="sigmoid", name="smile")(x)}))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """10 frames of 48x64 at 5 fps, frame i filled with grey level 20 * i."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path


def frame_count(path):
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    return count


@pytest.mark.parametrize("batch_size", [1, 3])
def test_every_nth_frame_with_its_time_and_an_annotated_copy(clip, tmp_path, batch_size):
    out = tmp_path / "clip_annotated.mp4"
    *records, summary = predict_video(tiny_predictor(), clip, every=3, detect=False, batch_size=batch_size,
                                      out_path=out, progress=False)
    assert [(r["frame"], r["time_s"]) for r in records] == [(0, 0.0), (3, 0.6), (6, 1.2), (9, 1.8)]
    assert all(r["path"] == str(clip) and r["faces"][0]["box"] == [0, 0, 64, 48] for r in records)
    assert [r["faces"][0]["track"] for r in records] == [1, 1, 1, 1]  # one face, one track
    smile = summary["track_summary"].pop("smile")
    assert summary["track_summary"] == {"track": 1, "first_frame": 0, "last_frame": 9, "faces": 4}
    assert smile in ("smile", "no_smile")
    assert frame_count(out) == 10  # every frame kept, each with the last prediction drawn
    first = cv2.VideoCapture(str(out)).read()[1]  # black in the source; the box and label are drawn green
    assert (first[:, :, 1] > 150).mean() > 0.1


def test_batches_predicted_two_at_once_give_each_frame_its_own_answer_in_order(clip):
    """Batches of one frame, predicted two at a time on their threads, give every frame what one
    batch of all ten gives it, in frame order (the clip's frames differ, so do their answers)."""
    predictor = tiny_predictor()
    predictor.model.get_layer("smile").set_weights([np.full((3, 1), 0.01, np.float32), np.array([-2.0], np.float32)])

    def smiles(batch_size):
        records = predict_video(predictor, clip, detect=False, batch_size=batch_size, progress=False, tracker=False)
        return [(r["frame"], r["faces"][0]["smile"]["probability"]) for r in records]

    together, pipelined = smiles(10), smiles(1)
    assert [frame for frame, _ in pipelined] == list(range(10))
    assert pipelined == together and len({p for _, p in together}) > 5
    records = predict_video(predictor, clip, detect=False, batch_size=1, progress=False, tracker=False, ahead=1)
    assert [(r["frame"], r["faces"][0]["smile"]["probability"]) for r in records] == together  # a camera's way


def test_without_out_frames_are_skipped_and_max_frames_stops(clip):
    records = list(predict_video(tiny_predictor(), clip, every=4, detect=False, max_frames=7, progress=False,
                                 tracker=False))
    assert [r["frame"] for r in records] == [0, 4] and "track" not in records[0]["faces"][0]


def test_a_file_that_is_no_video_and_a_missing_camera_say_so(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(DataError, match="fake.mp4: cannot be opened as a video"):
        list(predict_video(tiny_predictor(), fake))
    with pytest.raises(DataError, match="camera 97: cannot be opened"):
        list(predict_camera(tiny_predictor(), 97))

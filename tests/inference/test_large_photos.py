"""Photos above `DECODE_PIXELS` are decoded reduced, yet every box comes back in the original
photo's pixels: from `predict` (files), the library's `FacePredictor.predict`, `serve` (uploads)
and video frames, which are bounded the same way."""
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from facenet_mtl.cli import main
from facenet_mtl.data import images
from facenet_mtl.inference.predictor import FacePredictor
from tests.photos import face_photo, iou


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory):
    """6000 x 4000 (24 megapixels: decoded at half size), a real face at x 3000-3712."""
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    return path, face_photo(path, shape=(4000, 6000), at=(3000, 1500), side=712)


@pytest.fixture(scope="module")
def predictor():
    return FacePredictor.from_path()


def test_predict_reports_boxes_in_the_original_pixels(big_photo):
    path, pasted = big_photo
    assert images.load_rgb_scaled(path)[1] == 0.5  # the premise: decoded reduced
    result = CliRunner().invoke(main, ["predict", str(path)])
    assert result.exit_code == 0, result.output
    face, = json.loads(result.stdout.splitlines()[0])["faces"]
    assert iou(face["box"], pasted) > 0.5, (face["box"], pasted)


def test_the_library_and_the_server_code_path_report_original_pixels(big_photo, predictor):
    path, pasted = big_photo
    face, = predictor.predict(path)
    assert iou(face["box"], pasted) > 0.5
    whole, = predictor.predict(path, detect=False)
    assert whole["box"] == [0, 0, 6000, 4000]


def test_video_frames_are_bounded_and_boxes_stay_in_frame_pixels(tmp_path, predictor, monkeypatch):
    from facenet_mtl.inference.video import predict_video

    clip = tmp_path / "big.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 2, (4400, 4000))
    for level in (60, 120):
        writer.write(np.full((4000, 4400, 3), level, np.uint8))
    writer.release()
    seen = []
    predict_arrays = predictor.predict_arrays
    monkeypatch.setattr(predictor, "predict_arrays",
                        lambda rgbs, **kw: seen.extend(r.shape for r in rgbs) or predict_arrays(rgbs, **kw))
    records = [r for r in predict_video(predictor, clip, detect=False) if "frame" in r]  # not the track summaries
    assert [r["faces"][0]["box"] for r in records] == [[0, 0, 4400, 4000]] * 2
    assert seen and all(h * w <= images.DECODE_PIXELS for h, w, _ in seen)

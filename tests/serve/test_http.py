"""`facenet-mtl serve` over real HTTP on 127.0.0.1: predictions on a real face, the model card,
and every promised error as JSON (400, 413, 404, 405)."""
import base64
import http.client
import json
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from facenet_mtl import weights
from tests.photos import face_photo, iou
from tests.serve.client import multipart, request, require_serve_extra
from tests.serve.conftest import MAX_UPLOAD_MB

require_serve_extra()


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "face.jpg"
    return path, face_photo(path)


def assert_faces_well_formed(faces):
    for face in faces:
        assert set(face) == {"box", "confidence", "age", "age_range", "gender", "emotion", "smile"}
        x1, y1, x2, y2 = face["box"]
        assert x1 < x2 and y1 < y2 and 0.9 <= face["confidence"] <= 1
        assert list(face["emotion"]["probabilities"]) == ["angry", "disgust", "fear", "happy", "sad", "surprise",
                                                            "neutral"]
        assert sum(face["emotion"]["probabilities"].values()) == pytest.approx(1, abs=2e-3)
        assert face["gender"]["label"] in ("female", "male") and face["smile"]["label"] in ("no_smile", "smile")


def test_multipart_upload_finds_the_face_and_names_the_model(server, photo):
    path, pasted = photo
    body, kind = multipart("image", "face.jpg", path.read_bytes(), "image/jpeg")
    status, result, _ = request(server + "/v1/predict", body, kind)
    assert status == 200, result
    assert result["model"] == weights.model_id() and (result["width"], result["height"]) == (640, 480)
    assert result["path"] == "face.jpg" and "note" not in result
    if weights.release_info()["trained_on"] == "real":
        assert "warning" not in result
    else:  # the placeholder (or a demo model) says so in every answer
        assert result["warning"].startswith(f"model {result['model']} ")
    face, = result["faces"]
    assert iou(face["box"], pasted) > 0.5
    assert_faces_well_formed(result["faces"])


def test_json_base64_and_raw_bytes_give_the_same_faces(server, photo):
    path, _ = photo
    body, kind = multipart("file", "face.jpg", path.read_bytes())
    _, by_form, _ = request(server + "/v1/predict", body, kind)
    encoded = json.dumps({"image": base64.b64encode(path.read_bytes()).decode()}).encode()
    status, by_json, _ = request(server + "/v1/predict", encoded, "application/json")
    assert status == 200, by_json
    data_url = json.dumps({"image": "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()})
    _, by_data_url, _ = request(server + "/v1/predict", data_url.encode(), "application/json")
    status, by_bytes, _ = request(server + "/v1/predict", path.read_bytes(), "image/jpeg")
    assert status == 200, by_bytes
    assert by_form["faces"] == by_json["faces"] == by_data_url["faces"] == by_bytes["faces"]


def test_a_photo_without_a_face_is_200_with_an_empty_list_and_a_note(server):
    ok, encoded = cv2.imencode(".png", np.full((120, 160, 3), 128, np.uint8))
    status, result, _ = request(server + "/v1/predict", encoded.tobytes(), "image/png")
    assert status == 200 and result["faces"] == [] and result["note"] == "no face found"


def test_whole_image_mode_boxes_the_whole_crop(server):
    ok, encoded = cv2.imencode(".jpg", np.full((64, 48, 3), 128, np.uint8))
    status, result, _ = request(server + "/v1/predict?detect=false", encoded.tobytes(), "image/jpeg")
    assert status == 200
    face, = result["faces"]
    assert face["box"] == [0, 0, 48, 64] and face["confidence"] is None


@pytest.mark.parametrize("body, kind, expected", [
    (b"hello, not a picture", "image/jpeg", "not an image"),
    (json.dumps({"image": "%%% not base64"}).encode(), "application/json", "base64"),
    (json.dumps({"picture": "abc"}).encode(), "application/json", '{"image"'),
    (b"{not json", "application/json", '{"image"'),
    (b"x=1", "application/x-www-form-urlencoded", "content type"),
    (None, None, "content type"),
])
def test_bad_uploads_are_400_with_a_message(server, body, kind, expected):
    status, result, _ = request(server + "/v1/predict", body or b"", kind, method="POST")
    assert status == 400 and result["status"] == 400
    assert expected in result["error"], result


def test_a_multipart_form_without_the_file_field_or_with_a_text_file_is_400(server):
    body, kind = multipart("photo", "face.jpg", b"...")
    status, result, _ = request(server + "/v1/predict", body, kind)
    assert status == 400 and "'image'" in result["error"]
    body, kind = multipart("image", "notes.txt", b"just text", "text/plain")
    status, result, _ = request(server + "/v1/predict", body, kind)
    assert status == 400 and "notes.txt: not an image" in result["error"]


def test_uploads_over_the_limit_are_413_declared_or_chunked(server):
    too_big = b"\xff\xd8" + bytes(MAX_UPLOAD_MB * 1024 * 1024 + 10)
    status, result, _ = request(server + "/v1/predict", too_big, "image/jpeg")
    assert status == 413 and f"{MAX_UPLOAD_MB} MB" in result["error"]
    host = urllib.parse.urlsplit(server)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    chunks = (too_big[i:i + 65536] for i in range(0, len(too_big), 65536))  # no Content-Length
    connection.request("POST", "/v1/predict", body=chunks, headers={"Content-Type": "image/jpeg"},
                       encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["status"] == 413
    connection.close()


def test_wrong_path_is_404_and_wrong_method_405_both_json(server):
    status, result, _ = request(server + "/v2/predict")
    assert status == 404 and "/v1/predict" in result["error"]
    status, result, headers = request(server + "/v1/predict")
    assert status == 405 and "POST" in result["error"] and "POST" in headers["Allow"]
    status, result, _ = request(server + "/v1/model", b"{}", "application/json", method="POST")
    assert status == 405 and result["status"] == 405


def test_model_card_health_and_the_page(server):
    status, card, _ = request(server + "/v1/model")
    info = weights.release_info()
    assert status == 200 and card["id"] == weights.model_id(info) and card["version"] == info["version"]
    assert card["tasks"] == ["age", "gender", "emotion", "smile"] and card["input_size"] == info["input_size"]
    assert card["labels"]["emotion"][3] == "happy" and card["labels"]["gender"] == ["female", "male"]
    assert card["figures"] == info["figures"] and card["max_upload_bytes"] == MAX_UPLOAD_MB * 1024 * 1024
    assert request(server + "/healthz")[:2] == (200, {"status": "ok", "model": card["id"]})
    status, page, headers = request(server + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 'id="file"' in page and "/static/app.js" in page and "http" not in page.replace("http-equiv", "")
    for asset in ("/static/app.js", "/static/style.css"):
        status, text, _ = request(server + asset)
        assert status == 200 and "://" not in text  # offline: nothing fetched from elsewhere


def test_concurrent_requests_succeed_and_the_event_loop_keeps_answering(server, photo):
    path, _ = photo
    body, kind = multipart("image", "face.jpg", path.read_bytes())

    def predict(_):
        status, result, _ = request(server + "/v1/predict", body, kind)
        return status, result, time.perf_counter()

    with ThreadPoolExecutor(6) as pool:
        predictions = [pool.submit(predict, i) for i in range(5)]
        time.sleep(0.2)  # the predictions are queued or running in the server's worker threads
        health = pool.submit(lambda: (request(server + "/healthz")[0], time.perf_counter()))
        results = [p.result() for p in predictions]
    assert [status for status, _, _ in results] == [200] * 5
    assert all(result["faces"] == results[0][1]["faces"] for _, result, _ in results)
    status, answered = health.result()
    assert status == 200 and answered < max(done for _, _, done in results)  # not queued behind them


def test_serve_on_a_port_in_use_exits_2_before_loading_the_model(server):
    from click.testing import CliRunner

    from facenet_mtl.cli import main

    port = urllib.parse.urlsplit(server).port
    result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 2 and f"127.0.0.1:{port}: cannot be listened on" in result.stderr
    assert "fix: give another --port" in result.stderr and "Traceback" not in result.output


def test_a_photo_above_the_decode_limit_is_answered_in_its_own_pixels(server, tmp_path):
    """6000 x 4000 is decoded at half size; the answer's box and size are the upload's."""
    pasted = face_photo(tmp_path / "big.jpg", shape=(4000, 6000), at=(3000, 1500), side=712)
    status, result, _ = request(server + "/v1/predict", (tmp_path / "big.jpg").read_bytes(), "image/jpeg")
    assert status == 200, result
    assert (result["width"], result["height"]) == (6000, 4000)
    face, = result["faces"]
    assert iou(face["box"], pasted) > 0.5, face["box"]


def test_deeply_nested_json_is_a_400_json_error(server):
    status, result, _ = request(server + "/v1/predict", b"[" * 100_000 + b"]" * 100_000, "application/json")
    assert status == 400 and result["status"] == 400 and '{"image"' in result["error"]


def test_the_model_card_shows_no_path_of_this_machine(server):
    status, card, _ = request(server + "/v1/model")
    assert status == 200 and "/" not in card.get("path", "") and "\\" not in card.get("path", "")
    assert not any(isinstance(v, str) and v.startswith("/") for v in card.values())


def test_only_the_served_host_names_are_answered_and_other_origins_refused(server):
    port = urllib.parse.urlsplit(server).port
    status, result, _ = request(server + "/healthz", headers={"Host": f"attacker.example:{port}"})
    assert status == 400 and "attacker.example" in result["error"] and "--allow-host" in result["error"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert request(server + "/healthz", headers={"Host": host})[0] == 200
    body, kind = multipart("image", "x.jpg", b"\xff\xd8")
    status, result, _ = request(server + "/v1/predict", body, kind, headers={"Origin": "http://attacker.example"})
    assert status == 403 and result["status"] == 403
    status, _, _ = request(server + "/v1/model", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200


def test_concurrent_clients_with_distinct_photos_each_get_their_own_faces(server, tmp_path):
    """Eight photos of one size (so the server detects them in one batch), each a different real
    face at a different place, and one with no face, posted three times each from 8 client threads:
    every answer is its own photo's, as that photo gets when it is posted alone."""
    photos = {}
    for i in range(8):
        photos[f"client{i}.jpg"] = tmp_path / f"client{i}.jpg"
        face_photo(photos[f"client{i}.jpg"], index=100 + 37 * i, at=(40 + 55 * i, 30 + 35 * i), side=150)
    photos["empty.jpg"] = tmp_path / "empty.jpg"
    cv2.imwrite(str(photos["empty.jpg"]), np.full((480, 640, 3), 90, np.uint8))

    def predict(name):
        status, result, _ = request(server + "/v1/predict", *multipart("image", name, photos[name].read_bytes()))
        assert status == 200, result
        return result

    alone = {name: predict(name) for name in photos}
    assert alone["empty.jpg"]["faces"] == [] and all(len(alone[f"client{i}.jpg"]["faces"]) == 1 for i in range(8))
    names = list(photos) * 3
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(predict, names))
    for name, result in zip(names, together):
        assert result["path"] == name
        assert len(result["faces"]) == len(alone[name]["faces"])
        for face, reference in zip(result["faces"], alone[name]["faces"]):
            assert np.abs(np.subtract(face["box"], reference["box"])).max() <= 2
            assert face["age"] == pytest.approx(reference["age"], abs=0.5)
            assert face["gender"]["label"] == reference["gender"]["label"]


def test_serve_min_face_is_its_detectors_smallest_face(monkeypatch):
    """`serve --min-face 80` searches for faces as `predict --min-face 80` does (the model is not
    loaded here: the detector it would be given is caught)."""
    from click.testing import CliRunner

    from facenet_mtl.cli import main
    from facenet_mtl.inference import predictor
    from tests.serve.conftest import free_port

    seen = []

    def from_path(path=None, detector=None, **options):
        seen.append(detector.min_size)
        raise KeyboardInterrupt  # stop before the model loads

    monkeypatch.setattr(predictor.FacePredictor, "from_path", staticmethod(from_path))
    for args, expected in (([], 20), (["--min-face", "80"], 80)):
        CliRunner().invoke(main, ["serve", "--port", str(free_port()), *args])
        assert seen[-1] == expected

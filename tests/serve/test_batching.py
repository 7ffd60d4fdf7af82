"""The server's dynamic batching (`serve.batching`): concurrent requests share a pass, each gets
its own answer, a full queue answers 503 with Retry-After, one failing image costs only itself.

A real uvicorn server on 127.0.0.1 in this process, around a stand-in predictor that answers
each image with the grey level it was filled with (no TensorFlow, so these run in seconds); the
real model under concurrency is `test_http.py`'s."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from facenet_mtl.inference.model_card import ModelCard
from tests.serve.client import multipart, request, require_serve_extra
from tests.serve.conftest import free_port

require_serve_extra()

FAILING_LEVEL = 13  # an image filled with this grey level makes the stand-in predictor raise


class StandInPredictor:
    """What the app needs of a FacePredictor; a pass takes `seconds` and may be held by `gate`."""

    def __init__(self, seconds=0.05, gate=None):
        self.card = ModelCard(id="stand-in", input_size=64)
        self.model_id, self.warning = "stand-in", None
        self.seconds, self.gate, self.passes = seconds, gate, []

    def describe(self):
        return self.card.as_dict()

    def predict_arrays(self, rgbs, detect=True):
        self.passes.append(len(rgbs))
        if self.gate is not None:
            self.gate.wait(30)
        time.sleep(self.seconds)
        levels = [int(rgb[0, 0, 0]) for rgb in rgbs]
        if FAILING_LEVEL in levels:
            raise ValueError("the stand-in fails on this image")
        return [[{"box": [0, 0, int(rgb.shape[1]), int(rgb.shape[0])], "confidence": None, "level": level}]
                for rgb, level in zip(rgbs, levels)]


def png(level, shape=(48, 64)):
    ok, encoded = cv2.imencode(".png", np.full((*shape, 3), level, np.uint8))
    return encoded.tobytes()


@pytest.fixture
def serve_app():
    """serve_app(predictor, **create_app options) -> the base URL of a server running it."""
    import uvicorn

    from facenet_mtl.serve.app import create_app

    servers = []

    def start(predictor, **options):
        app = create_app(predictor, **options)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.time() + 30
        while not server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}", app

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def post(url, level, name=None):
    body, kind = multipart("image", name or f"grey{level}.png", png(level), "image/png")
    return request(url + "/v1/predict", body, kind)


def test_concurrent_requests_share_passes_and_each_gets_its_own_answer(serve_app):
    predictor = StandInPredictor(seconds=0.1)
    url, app = serve_app(predictor, batch_wait_ms=20)
    levels = list(range(40, 200, 5))  # 32 distinct images from 8 client threads
    with ThreadPoolExecutor(8) as clients:
        answers = list(clients.map(lambda level: (level, post(url, level)), levels))
    for level, (status, body, _) in answers:
        assert status == 200, body
        assert body["path"] == f"grey{level}.png" and [face["level"] for face in body["faces"]] == [level]
    assert sum(predictor.passes) == len(levels) and max(predictor.passes) > 1  # batched, none lost or repeated
    assert len(predictor.passes) < len(levels)


def test_a_full_queue_answers_503_with_retry_after_and_the_rest_go_through(serve_app):
    gate = threading.Event()
    predictor = StandInPredictor(seconds=0.0, gate=gate)
    url, _ = serve_app(predictor, max_batch=1, max_queue=2)
    with ThreadPoolExecutor(6) as clients:
        answers = [clients.submit(post, url, 60)]
        deadline = time.time() + 10
        while not predictor.passes and time.time() < deadline:  # the first is held in its pass
            time.sleep(0.02)
        answers += [clients.submit(post, url, level) for level in (61, 62, 63, 64, 65)]
        while sum(a.done() for a in answers) < 3 and time.time() < deadline:  # 2 queued; 3 refused
            time.sleep(0.02)
        gate.set()
        statuses = [a.result() for a in answers]
    refused = [(body, headers) for status, body, headers in statuses if status == 503]
    assert len(refused) == 3 and sum(status == 200 for status, _, _ in statuses) == 3
    for body, headers in refused:
        assert headers["Retry-After"] == "1" and "busy" in body["error"] and body["status"] == 503


def test_an_image_that_fails_costs_only_its_own_request(serve_app):
    predictor = StandInPredictor(seconds=0.05)
    url, _ = serve_app(predictor, batch_wait_ms=50)
    levels = [80, FAILING_LEVEL, 90, 100]
    with ThreadPoolExecutor(4) as clients:
        answers = dict(zip(levels, clients.map(lambda level: post(url, level), levels)))
    assert answers[FAILING_LEVEL][0] == 500
    for level in (80, 90, 100):
        status, body, _ = answers[level]
        assert status == 200 and body["faces"][0]["level"] == level


def test_healthz_answers_while_a_pass_runs(serve_app):
    gate = threading.Event()
    url, _ = serve_app(StandInPredictor(seconds=0.0, gate=gate))
    with ThreadPoolExecutor(2) as clients:
        held = clients.submit(post, url, 70)
        time.sleep(0.2)
        started = time.perf_counter()
        status, body, _ = request(url + "/healthz")
        assert status == 200 and time.perf_counter() - started < 2 and not held.done()
        gate.set()
        assert held.result()[0] == 200

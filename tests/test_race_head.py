"""A head nobody has yet, added from this file only: `race` (a label every UTKFace record already
stores) is registered here, the UTKFace reader's entry is told it carries race, a tiny model is
trained on generated UTKFace files, and race comes out of every reader of the model file:
`evaluate`, the CSV, the JSON, `GET /v1/model` and `POST /v1/predict` of a server in another
process (which never heard of race), the page's text (app.js, run in node) and the model card.
No package file names race as a task."""
import csv
import dataclasses
import io
import json
import shutil
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest

from facenet_mtl import tasks
from facenet_mtl.artifact.spec import read_spec
from facenet_mtl.data.readers import DATASETS
from facenet_mtl.data.records import BuildOptions, build_tfrecords
from facenet_mtl.data.schema import RACES
from facenet_mtl.demo import native_layouts
from facenet_mtl.demo.faces import draw_face
from facenet_mtl.inference.model_card import describe
from facenet_mtl.inference.predictor import FacePredictor
from facenet_mtl.inference.records import RecordWriter, make_record
from facenet_mtl.serve import app as serve_app
from facenet_mtl.training import trainer
from facenet_mtl.training.config import parse_config
from facenet_mtl.training.evaluate import evaluate_model, format_table
from tests.serve.conftest import free_port
from tests.training.conftest import IMAGE_SIZE, tiny_config

RACE = tasks.Task("race", "categorical", RACES)
UTKFACE_RACES = RACES[:5]  # UTKFace's ids 0-4


@pytest.fixture(scope="module")
def race_run(tmp_path_factory):
    """A finished run of an age + race model; race is unregistered again before the tests read it."""
    root = tmp_path_factory.mktemp("race")
    rng = np.random.default_rng(7)
    faces = [dict(image=draw_face(int(rng.integers(5, 80)), i % 2, 6, 0, rng, size=64), age=int(rng.integers(5, 80)),
                  gender=i % 2, race=i % 5) for i in range(120)]
    native_layouts.write_utkface(root / "utkface", faces)
    build_tfrecords("utkface", root / "utkface", root / "records",
                    BuildOptions(image_size=IMAGE_SIZE, workers=1, progress=False))
    carrying_race = dataclasses.replace(DATASETS["utkface"], tasks=("age", "gender", "race"))
    with pytest.MonkeyPatch.context() as patch, tasks.registered(RACE):
        patch.setitem(DATASETS, "utkface", carrying_race)
        cfg = parse_config(tiny_config(root / "records", "race", model={"tasks": ["age", "race"]},
                                       train={"epochs": 1, "steps_per_epoch": 2}))
        run_dir = trainer.train(cfg, root / "runs", verbose=0)
    assert "race" not in tasks.names()  # from here on, only the model file knows race
    return root, run_dir


def test_the_file_states_the_race_head(race_run):
    _, run_dir = race_run
    for name in ("model.h5", "model.keras", "saved_model"):
        spec = read_spec(run_dir / name)
        assert spec.task_names == ("age", "race") and spec.labels() == {"race": list(RACES)}, name
        assert spec.training_data == "utkface"


def test_evaluate_figures_race(race_run):
    root, run_dir = race_run
    predictor = FacePredictor.from_path(run_dir / "model.h5")
    evaluation = evaluate_model(predictor.model, root / "records", ["utkface"], "test", heads=predictor.heads)
    overall = evaluation["overall"]
    assert overall["race_n"] > 0 and 0.0 <= overall["race_acc"] <= 1.0
    assert np.asarray(overall["race_confusion"]).shape == (len(RACES), len(RACES))
    assert "Race %" in format_table(evaluation, "test", predictor.heads)
    metrics = json.loads((run_dir / "metrics.json").read_text())  # the run's own evaluation had it too
    assert metrics["splits"]["test"]["overall"]["race_n"] == overall["race_n"]


def test_json_csv_and_the_card_carry_race(race_run):
    _, run_dir = race_run
    predictor = FacePredictor.from_path(run_dir / "model.h5")
    crops = np.random.default_rng(0).uniform(0, 255, (2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    faces = [dict(box=[0, 0, IMAGE_SIZE, IMAGE_SIZE], confidence=None, **face) for face in predictor.predict_faces(crops)]
    assert faces[0]["race"]["label"] in RACES and len(faces[0]["age_range"]) == 2
    assert sum(faces[0]["race"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    record = json.loads(json.dumps(make_record(predictor.card, "a.jpg", faces)))
    assert record["faces"][1]["race"] == faces[1]["race"]

    stream = io.StringIO()
    writer = RecordWriter(stream, "csv", predictor.heads)
    writer.write(record)
    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert rows[0]["race"] == faces[0]["race"]["label"]
    assert [c for c in rows[0] if c.startswith("race_")] == [f"race_{name}" for name in RACES]
    assert "gender" not in rows[0]  # the columns are the model's heads

    card = describe(run_dir / "model.h5", predictor.spec).as_dict()
    assert card["tasks"] == ["age", "race"] and card["labels"] == {"race": list(RACES)}
    assert {"name": "race", "kind": "categorical", "labels": list(RACES), "line": "race"} in card["heads"]


NODE = shutil.which("node")
PAGE_TEXT = """
global.document = {getElementById: () => ({addEventListener() {}, classList: {add() {}, remove() {}}, style: {},
                                           dataset: {}})};
global.fetch = () => new Promise(() => {});
global.window = {addEventListener() {}};
const page = require(process.argv[1]);
const [card, face] = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(page.labelLines(face, card.heads)));
"""


def page_text(card, face):
    done = subprocess.run([NODE, "-e", PAGE_TEXT, str(serve_app.STATIC / "app.js")], input=json.dumps([card, face]),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="the page's text is checked by running app.js in node")
def test_a_server_that_never_heard_of_race_serves_it_and_the_page_shows_it(race_run, tmp_path):
    _, run_dir = race_run
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "facenet_mtl.cli", "serve", "--model", str(run_dir / "model.h5"),
                               "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/model", timeout=2) as response:
                    card = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, (tmp_path / "serve.log").read_text()[-2000:]
                time.sleep(0.5)
        assert card["tasks"] == ["age", "race"] and card["labels"]["race"] == list(RACES)
        image = cv2.imencode(".png", np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 128, np.uint8))[1].tobytes()
        request = urllib.request.Request(url + "/v1/predict?detect=false", data=image,
                                         headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=120) as response:
            face, = json.loads(response.read())["faces"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert face["race"]["label"] in RACES
    lines = page_text(card, face)
    low, high = face["age_range"]
    assert lines[0] == f"{max(0, round(face['age']))}y ({low}-{high})"
    top = max(face["race"]["probabilities"], key=face["race"]["probabilities"].get)
    assert lines[1].startswith(f"{top.replace('_', ' ')} ") and lines[1].count(" · ") == 2  # its top three

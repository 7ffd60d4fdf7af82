"""Prediction records and the three output formats of `predict`."""
import csv
import io
import json

from facenet_mtl.inference.model_card import ModelCard
from facenet_mtl.inference.records import RecordWriter, csv_columns, make_record

FACE = {"box": [1, 2, 30, 40], "confidence": 0.98, "age": 31.5, "age_range": [24, 40], "gender": {"label": "male", "probability": 0.9},
        "emotion": {"label": "happy", "probabilities": {"angry": 0.1, "disgust": 0.0, "fear": 0.0, "happy": 0.8,
                                                        "sad": 0.1, "surprise": 0.0, "neutral": 0.0}},
        "smile": {"label": "smile", "probability": 0.7}}


def records():
    demo = ModelCard(id="m.h5-0123abcd", trained_on="demo")
    return [make_record(demo, "a.jpg", [FACE, FACE], annotated="out/a_annotated.jpg"),
            make_record(demo, "b.jpg", []),
            make_record(demo, "clip.mp4", [FACE], frame=12, time_s=0.48),
            make_record(ModelCard(id="x"), "c.jpg", [], error="c.jpg: unreadable image")]


def written(fmt):
    stream = io.StringIO()
    writer = RecordWriter(stream, fmt)
    for record in records():
        writer.write(record)
    writer.close()
    return stream.getvalue()


def test_records_carry_the_model_a_note_or_an_error_and_the_warning():
    a, b, clip, c = records()
    assert list(a) == ["path", "model", "faces", "annotated", "warning"] and a["model"] == "m.h5-0123abcd"
    assert b["faces"] == [] and b["note"] == "no face found" and "generated demo faces" in b["warning"]
    assert list(clip)[:3] == ["path", "frame", "time_s"] and clip["time_s"] == 0.48
    assert c["error"] == "c.jpg: unreadable image" and "note" not in c and "warning" not in c


def test_json_lines_and_json_hold_the_same_records():
    lines = [json.loads(line) for line in written("jsonl").splitlines()]
    assert lines == records() == json.loads(written("json"))
    empty = io.StringIO()
    RecordWriter(empty, "json").close()
    assert json.loads(empty.getvalue()) == []


def test_csv_has_one_row_per_face_and_one_for_an_image_without():
    rows = list(csv.DictReader(io.StringIO(written("csv"))))
    assert list(rows[0]) == csv_columns()
    assert list(rows[0])[9:12] == ["age", "age_range_low", "age_range_high"]
    assert [(r["path"], r["face"]) for r in rows] == [("a.jpg", "0"), ("a.jpg", "1"), ("b.jpg", ""),
                                                      ("clip.mp4", "0"), ("c.jpg", "")]
    first = rows[0]
    assert (first["x1"], first["y2"], first["confidence"], first["age"]) == ("1", "40", "0.98", "31.5")
    assert (first["age_range_low"], first["age_range_high"]) == ("24", "40")
    assert (first["gender"], first["gender_probability"], first["emotion"], first["emotion_happy"]) == \
        ("male", "0.9", "happy", "0.8")
    assert rows[2]["note"] == "no face found" and rows[3]["frame"] == "12" and rows[4]["error"]

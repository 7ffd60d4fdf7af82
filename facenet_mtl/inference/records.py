"""Prediction records (one per image or video frame) and the three ways `predict` prints them.

A record: `{"path", ["frame", "time_s",] "model", "faces": [...], ["note"], ["annotated"],
["warning"], ["error"]}`: `faces` as `FacePredictor` gives them, `note` when no face was found,
`annotated` the file `--out` wrote, `warning` when the model was not trained on real faces,
`error` for an image that could not be read (its `faces` is then empty). A video ends with one
`{"path", "model", "track_summary": {...}}` per face track (`tracks.FaceTracker.summaries`). The
CSV's columns are the model's heads' (`Task.csv_columns`, from its `ModelSpec`), so a head no
column names is never dropped.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from facenet_mtl import tasks as task_registry

if TYPE_CHECKING:
    from facenet_mtl.tasks import Task
    from facenet_mtl.inference.model_card import ModelCard

NO_FACE_NOTE = "no face found"
FORMATS = ("jsonl", "json", "csv")


def make_record(card: ModelCard, path: str | Path, faces: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The record for one image or frame; `extra` (frame, time_s, annotated, error) in between."""
    record: dict[str, Any] = {"path": str(path)}
    record.update({k: extra.pop(k) for k in ("frame", "time_s") if k in extra})
    record["model"] = card.id
    record["faces"] = faces
    if not faces and "error" not in extra:
        record["note"] = NO_FACE_NOTE
    record.update({k: v for k, v in extra.items() if v is not None})
    if card.warning:
        record["warning"] = card.warning
    return record


def in_original_pixels(faces: list[dict[str, Any]], scale: float) -> list[dict[str, Any]]:
    """`faces` found on an image decoded reduced by `scale` (`images.load_rgb_scaled`), their
    boxes mapped back onto the original image's pixels: what every record reports."""
    if scale == 1:
        return faces
    return [dict(face, box=[int(round(v / scale)) for v in face["box"]]) for face in faces]


FACE_COLUMNS = ["path", "frame", "time_s", "face", "x1", "y1", "x2", "y2", "confidence"]
RECORD_COLUMNS = ["model", "annotated", "note", "warning", "error"]


def csv_columns(heads: Sequence[Task] | None = None) -> list[str]:
    """The CSV header for a model's `heads` (None: the registered tasks)."""
    heads = task_registry.TASKS.values() if heads is None else heads
    return FACE_COLUMNS + [column for task in heads for column in task.csv_columns()] + RECORD_COLUMNS


def csv_rows(record: Mapping[str, Any], heads: Sequence[Task] | None = None) -> list[dict[str, Any]]:
    """One row per face (a record without faces still gets one row, its face fields empty); a
    video's track summary has none (it goes to stderr)."""
    if "track_summary" in record:
        return []
    common = {k: record.get(k, "") for k in ("path", "frame", "time_s", "model", "annotated", "note",
                                                "warning", "error")}
    if not record["faces"]:
        return [common]
    rows = []
    for index, face in enumerate(record["faces"]):
        row = dict(common, face=index, confidence=face.get("confidence"))
        row.update(zip(("x1", "y1", "x2", "y2"), face["box"]))
        for task in task_registry.TASKS.values() if heads is None else heads:
            row.update(task.csv_cells(face))
        rows.append(row)
    return rows


class RecordWriter:
    """Streams records to `stream`: JSON lines (flushed each), one JSON array, or CSV rows."""

    def __init__(self, stream: IO[str], fmt: str = "jsonl", heads: Sequence[Task] | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
        self.stream, self.fmt, self.count, self.heads = stream, fmt, 0, heads
        self._csv = csv.DictWriter(stream, csv_columns(heads), restval="") if fmt == "csv" else None
        if self._csv:
            self._csv.writeheader()
        elif fmt == "json":
            stream.write("[")

    def write(self, record: Mapping[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(record) + "\n")
        elif self.fmt == "json":
            self.stream.write(("," if self.count else "") + "\n" + json.dumps(record, indent=2))
        else:
            self._csv.writerows(csv_rows(record, self.heads))  # type: ignore[union-attr]  # fmt "csv": set in __init__
        self.count += 1
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
        self.stream.flush()

"""Faces on video as tracks: one `track` id per face across frames, its attributes smoothed.

    tracker = FaceTracker(fps=25)
    for frame, faces in frames:                    # faces as `FacePredictor` gives them
        faces = tracker.update(frame, faces)       # each gets "track"; age and probabilities smoothed
    for summary in tracker.summaries():            # one per track: frames, mean age, majority labels
        print(summary)

A face joins the track whose box, moved on by the track's recent motion, it overlaps most (IoU
at least `min_iou`, greedily, best pair first); no identity model, so a face that leaves the
picture for longer than `max_gap_s` comes back as a new track. Smoothing averages the last
`window` predictions of the track: ages, binary probabilities (of one of the two labels) and
categorical probabilities, the label then read off the average, so a label flips only when the
evidence of several frames does; and a track keeps the label it shows until the average favours
another by `margin` (hysteresis: a face that hovers between two labels keeps one). It reads the
face dicts as they are, so a head added to the model is smoothed without a change here.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from facenet_mtl.kinds import AGE_OUTPUTS

AGE = AGE_OUTPUTS[0]  # a face's expected age, which a track averages

MIN_IOU = 0.3
MAX_GAP_S = 1.0  # a track unseen for longer ends
WINDOW = 8  # predictions averaged per face
MARGIN = 0.1  # a shown label gives way when another's averaged probability is this much higher


@dataclass
class Track:
    id: int
    box: tuple
    first_frame: int
    last_frame: int
    velocity: tuple = (0.0, 0.0, 0.0, 0.0)  # box change per frame
    recent: deque = field(default_factory=lambda: deque(maxlen=WINDOW))  # raw predictions
    ages: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)  # task -> Counter of its smoothed labels
    shown: dict = field(default_factory=dict)  # task -> the label the track shows now
    seen: int = 0

    def expected_box(self, frame: int) -> tuple:
        """Where the box should be at `frame`, moved on by the track's motion."""
        steps = frame - self.last_frame
        return tuple(b + v * steps for b, v in zip(self.box, self.velocity))


class FaceTracker:
    """Assigns track ids to the faces of successive frames and smooths their attributes."""

    def __init__(self, fps: float = 25.0, min_iou: float = MIN_IOU, max_gap_s: float = MAX_GAP_S,
                 window: int = WINDOW, margin: float = MARGIN) -> None:
        self.min_iou, self.window, self.margin = min_iou, window, margin
        self.max_gap = max(1, round(max_gap_s * fps))
        self.active: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 1

    def update(self, frame: int, faces: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The faces of `frame` (in order), each with `track` and its attributes smoothed."""
        self._end_stale(frame)
        pairs = sorted(((_iou(track.expected_box(frame), face["box"]), t, f)
                        for t, track in enumerate(self.active) for f, face in enumerate(faces)), reverse=True)
        owner, taken = {}, set()
        for overlap, t, f in pairs:
            if overlap < self.min_iou:
                break
            if f not in owner and t not in taken:
                owner[f] = self.active[t]
                taken.add(t)
        out = []
        for f, face in enumerate(faces):
            track = owner.get(f) or self._new_track(frame, face)
            self._extend(track, frame, face)
            smoothed = _smoothed(track.recent)
            for name, prediction in smoothed.items():
                if isinstance(prediction, dict):
                    smoothed[name] = prediction = _held(prediction, track.shown.get(name), self.margin)
                    track.shown[name] = prediction["label"]
                    track.labels.setdefault(name, Counter())[prediction["label"]] += 1
            out.append({**face, **smoothed, "track": track.id})
        return out

    def summaries(self) -> list[dict[str, Any]]:
        """One dict per track, first seen first: track, first/last frame, faces seen, mean age,
        the majority of each task's smoothed labels (every track so far, ended or not)."""
        rows = []
        for track in sorted(self.finished + self.active, key=lambda t: t.id):
            row = {"track": track.id, "first_frame": track.first_frame, "last_frame": track.last_frame,
                   "faces": track.seen}
            if track.ages:
                row[AGE] = round(sum(track.ages) / len(track.ages), 1)
            for task, counts in track.labels.items():
                row[task] = counts.most_common(1)[0][0]
            rows.append(row)
        return rows

    def _end_stale(self, frame):
        stale = [t for t in self.active if frame - t.last_frame > self.max_gap]
        self.finished += stale
        self.active = [t for t in self.active if t not in stale]

    def _new_track(self, frame, face):
        track = Track(self._next_id, tuple(face["box"]), frame, frame, recent=deque(maxlen=self.window))
        self._next_id += 1
        self.active.append(track)
        return track

    def _extend(self, track, frame, face):
        box = tuple(float(v) for v in face["box"])
        if track.seen:
            steps = max(1, frame - track.last_frame)
            moved = tuple((new - old) / steps for new, old in zip(box, track.box))
            track.velocity = tuple(0.5 * v + 0.5 * m for v, m in zip(track.velocity, moved))
        track.box, track.last_frame, track.seen = box, frame, track.seen + 1
        track.recent.append(face)
        if isinstance(face.get(AGE), (int, float)):
            track.ages.append(float(face[AGE]))


def _smoothed(recent):
    """The predictions averaged over `recent` raw predictions of one track, read off the face
    dicts themselves (a number: averaged; `{"label", "probabilities"}`: each probability averaged,
    the label their argmax; `{"label", "probability"}`, a binary head: the probability of one of
    its two labels averaged); anything else is the latest face's."""
    out: dict[str, Any] = {}
    latest = recent[-1]
    for name, value in latest.items():
        if name in ("box", "confidence", "track"):
            continue
        values = [face[name] for face in recent if name in face]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = round(sum(values) / len(values), 1)
        elif isinstance(value, dict) and "probabilities" in value:
            classes = list(value["probabilities"])
            probabilities = {c: round(sum(v["probabilities"][c] for v in values) / len(values), 4) for c in classes}
            out[name] = {**value, "label": max(probabilities, key=probabilities.get), "probabilities": probabilities}
        elif isinstance(value, dict) and "probability" in value:
            labels = sorted({v["label"] for v in values})
            if len(labels) == 1:
                p = sum(v["probability"] for v in values) / len(values)
                out[name] = {**value, "probability": round(p, 4)}
                continue
            first = labels[0]  # P(first label), averaged: the other label's probability is 1 - it
            p = sum(v["probability"] if v["label"] == first else 1 - v["probability"] for v in values) / len(values)
            out[name] = {**value, "label": first if p >= 0.5 else labels[1],
                         "probability": round(p if p >= 0.5 else 1 - p, 4)}
    return out


def _held(prediction, shown, margin):
    """`prediction` (smoothed) with the label `shown` kept unless the prediction's own label is
    ahead of it by `margin` in averaged probability; a binary head's `probability` is then the
    shown label's."""
    label = prediction["label"]
    if shown is None or shown == label:
        return prediction
    if "probabilities" in prediction:
        probabilities = prediction["probabilities"]
        if shown not in probabilities or probabilities[label] - probabilities[shown] >= margin:
            return prediction
        return {**prediction, "label": shown}
    p = prediction["probability"]  # of `label`; the shown one has 1 - p
    if p - (1 - p) >= margin:
        return prediction
    return {**prediction, "label": shown, "probability": round(1 - p, 4)}


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

"""Published figures the report sets beside our runs (data, not code), and what a row may hold.

Each entry is one table row. Metric keys are those of `metrics.json` (`age_mae`, `gender_acc`,
`emotion_acc`, `smile_acc`), but accuracies are in **percent, as published** (84.15, not
0.8415); a figure given as a range is a `(low, high)` pair. `experiment` names the config under
`experiments/` that reproduces the row (its `reference` table must hold the same figures: the
test suite checks); `origin` says where the figure was published.

Add a set for a new comparison as another list here and pass it to `build_report(references=...)`.
The row schema is here too: `METRICS` (the figures a row may give) and `check_reference`.
"""
from __future__ import annotations

from typing import Any
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # as in metrics.json
    header: str  # the table column
    percent: bool  # metrics.json holds a fraction; tables and references show percent
    lower_is_better: bool = False


METRICS = (
    Metric("age_mae", "Age MAE", percent=False, lower_is_better=True),
    Metric("gender_acc", "Gender Acc %", percent=True),
    Metric("emotion_acc", "Emotion Acc %", percent=True),
    Metric("smile_acc", "Smile Acc %", percent=True),
)
METRIC_KEYS = tuple(m.key for m in METRICS)
REFERENCE_KEYS = ("model", *METRIC_KEYS, "loss_weights", "lr", "learning_method", "experiment", "origin")


def check_reference(ref: dict[str, Any]) -> None:
    """Raise ValueError('<key>: <problem>') unless `ref` is a valid published row."""
    unknown = sorted(set(ref) - set(REFERENCE_KEYS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key; allowed: {', '.join(REFERENCE_KEYS)}")
    if not isinstance(ref.get("model"), str) or not ref["model"]:
        raise ValueError("model: every reference row names its model")
    for metric in METRICS:
        if metric.key not in ref:
            continue
        value = ref[metric.key]
        parts = value if isinstance(value, (list, tuple)) else (value,)
        if not 1 <= len(parts) <= 2 or not all(_is_number(v) for v in parts):
            raise ValueError(f"{metric.key}: must be a number or a [low, high] range, got {value!r}")
        top = 100 if metric.percent else float("inf")
        low = 1 if metric.percent else 0  # an accuracy <= 1 is a fraction written by mistake
        if not all(low < v <= top for v in parts):
            unit = "a percentage as published, e.g. 84.15" if metric.percent else "a number > 0"
            raise ValueError(f"{metric.key}: must be {unit}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_STUDY = "the study's notes"
_PUBLIC = "another public project, ChaLearn LAP 2016"

# The study's fine-tuning table (ChaLearn LAP 2016 apparent age + gender, FER2013 emotion,
# GENKI-4K smile). Its pretraining table (IMDB-WIKI) came without figures in the notes we have,
# so the pretrain experiments have no reference row.
STUDY_REFERENCES: list[dict[str, Any]] = [
    {"model": "ResNet-18 age-gender-emotion", "age_mae": 12.95, "gender_acc": 84.15,
     "emotion_acc": 48.20, "loss_weights": {"age": 1, "gender": 0.1, "emotion": 1}, "lr": 0.01,
     "learning_method": "multi-task finetune", "experiment": "resnet18-mtl-lowgender",
     "origin": _STUDY},
    {"model": "ResNet-18 age-gender-emotion", "age_mae": 12.23, "gender_acc": 86.63,
     "emotion_acc": 52.91, "loss_weights": {"age": 1, "gender": 1, "emotion": 1}, "lr": 0.01,
     "learning_method": "multi-task finetune", "experiment": "resnet18-mtl-w111",
     "origin": _STUDY},
    {"model": "ResNet-18 age", "age_mae": 12.30, "learning_method": "single-task finetune",
     "experiment": "resnet18-age", "origin": _STUDY},
    {"model": "ResNet-18 gender", "gender_acc": 88.12, "learning_method": "single-task finetune",
     "experiment": "resnet18-gender", "origin": _STUDY},
    {"model": "ResNet-18 emotion", "emotion_acc": 55.56, "learning_method": "single-task finetune",
     "experiment": "resnet18-emotion", "origin": _STUDY},
    {"model": "DenseNet-121 age-gender-emotion-smile", "age_mae": 15.71, "emotion_acc": 41.82,
     "smile_acc": 83.43, "loss_weights": {"age": 1, "gender": 1, "emotion": 1, "smile": 1},
     "lr": 0.01, "learning_method": "multi-task finetune",
     "experiment": "densenet121-mtl-w1111-run1", "origin": _STUDY + ", first run"},
    {"model": "DenseNet-121 age-gender-emotion-smile", "age_mae": 15.46, "gender_acc": 76.46,
     "emotion_acc": 33.80, "smile_acc": 83.98,
     "loss_weights": {"age": 1, "gender": 1, "emotion": 1, "smile": 1}, "lr": 0.01,
     "learning_method": "multi-task finetune",
     "experiment": "densenet121-mtl-w1111-run2", "origin": _STUDY + ", second run"},
    {"model": "MTL DenseNet-121 age-gender", "age_mae": 15.83,
     "learning_method": "multi-task finetune", "experiment": "densenet121-age-gender",
     "origin": _STUDY},
    {"model": "public project, 12-epoch finetune", "age_mae": 12.48, "gender_acc": 87.0,
     "learning_method": "multi-task finetune", "origin": _PUBLIC},
    {"model": "public project, 30-epoch pretraining + finetune", "age_mae": 11.79,
     "gender_acc": 83.6, "learning_method": "pretrain + multi-task finetune", "origin": _PUBLIC},
]

# Peers' figures on the real-face benchmarks (issue "Real faces"): other data than the study's
# ChaLearn table, so compare them with a report over those datasets (`build_report(dataset=...)`).
PEER_REFERENCES: list[dict[str, Any]] = [
    {"model": "mini-Xception emotion", "emotion_acc": 66.0,
     "origin": "face_classification (Arriaga et al. 2017), FER2013 test"},
    {"model": "deepface emotion", "emotion_acc": 57.4, "origin": "deepface, FER2013"},
    {"model": "UTKFace peers age-gender", "age_mae": (4.2, 5.4), "gender_acc": (95.0, 97.7),
     "origin": "public UTKFace models, range of reported figures"},
    {"model": "GENKI-4K peers smile", "smile_acc": (92.0, 96.0),
     "origin": "public GENKI-4K smile classifiers, range of reported figures (approx.)"},
]

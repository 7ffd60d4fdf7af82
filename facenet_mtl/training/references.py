"""Published figures the report sets beside our runs: data, not code.

Each entry is one table row. Metric keys are those of `metrics.json` (`age_mae`, `gender_acc`,
`emotion_acc`, `smile_acc`), but accuracies are in **percent, as published** (84.15, not
0.8415); a figure given as a range is a `(low, high)` pair. `experiment` names the config under
`experiments/` that reproduces the row (its `reference` table must hold the same figures: the
test suite checks); `origin` says where the figure was published.

Add a set for a new comparison as another list here and pass it to `build_report(references=...)`.
"""
from __future__ import annotations

from typing import Any

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

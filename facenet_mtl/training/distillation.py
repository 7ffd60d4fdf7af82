"""Write a teacher file: a model's outputs on every training face, for self-distillation.

The file (`data/teacher.py` reads it) is a NumPy `.npz` of plain arrays, one row per face:
`keys` (`<dataset>/<file_id>`), `age_mean` and `age_std` (the expectation and spread of the
teacher's age distribution, years), `gender` (P(male)), `emotion` (7 probabilities), `smile`
(P(smile)), each present when the teacher has that head; `meta` is a JSON text naming the teacher
(path, sha256), the split and the datasets. It is written to a temporary name and renamed, so an
interrupted run leaves no half file.

    facenet-mtl teach runs/dense-mtl/model.h5 --data data_out/release --out runs/dense-mtl-teacher.npz
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from facenet_mtl.data.built_dataset import BuiltDataset
from facenet_mtl.data.teacher import teacher_key
from facenet_mtl.tasks import AGE_BINS
from facenet_mtl.training.evaluate import predict_split


def teacher_rows(preds, file_ids, dataset):
    """The teacher file's columns for one dataset's predictions (numpy, by output name)."""
    rows = {"keys": np.array([teacher_key(dataset, f) for f in file_ids])}
    if "age_probs" in preds:
        probs = preds["age_probs"].astype(np.float64)
        probs /= probs.sum(axis=1, keepdims=True)
        bins = np.arange(AGE_BINS)
        mean = probs @ bins
        rows["age_mean"] = mean.astype(np.float32)
        rows["age_std"] = np.sqrt(np.maximum(probs @ bins**2 - mean**2, 0)).astype(np.float32)
    for name in ("gender", "smile"):
        if name in preds:
            rows[name] = preds[name].reshape(-1).astype(np.float32)
    if "emotion" in preds:
        rows["emotion"] = preds["emotion"].astype(np.float32)
    return rows


def write_teacher(model, model_path, root, datasets, out, split="train", batch_size=256, progress=print):
    """Run `model` over `split` of every dataset in `datasets` under `root` and write the teacher
    file `out`; returns {dataset: faces}."""
    parts, counts = [], {}
    for name in datasets:
        built = BuiltDataset.open(root, name)
        if not built.size(split):
            continue
        preds, labels = predict_split(model, built, split, batch_size)
        parts.append(teacher_rows(preds, labels["file_id"], name))
        counts[name] = len(labels["file_id"])
        progress(f"teacher: {name} {split}: {counts[name]} faces")
    columns = [c for c in parts[0] if all(c in p for p in parts)] if parts else ["keys"]
    rows = {c: np.concatenate([p[c] for p in parts]) if parts else np.zeros(0) for c in columns}
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest() if Path(model_path).is_file() else ""
    rows["meta"] = np.array(json.dumps({"teacher": str(model_path), "sha256": digest, "split": split,
                                        "faces": counts}))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.npz")
    np.savez(partial, **rows)
    os.replace(partial, out)
    return counts

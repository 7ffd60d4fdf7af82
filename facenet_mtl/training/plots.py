"""PNG plots of a run: learning curves per task, and the emotion confusion matrix."""
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facenet_mtl.data.schema import EMOTIONS  # noqa: E402


def read_history(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([_number(r[key]) for r in rows])
            for key in (rows[0] if rows else {})}


def _number(text):
    try:  # CSVLogger writes "NA" for a metric an epoch did not have (no validation split)
        return float(text)
    except (TypeError, ValueError):
        return np.nan


def plot_learning_curves(history_csv, out_dir):
    """One PNG per head (loss and metric, train vs validation); returns the files written."""
    history = read_history(history_csv)
    if "epoch" not in history:
        return []
    epochs = history["epoch"] + 1
    written = []
    for head in ("age", "age_probs", "gender", "emotion", "smile"):
        keys = [k for k in history if k.startswith(f"{head}_") and not k.startswith("age_probs_") or
                (head == "age_probs" and k.startswith("age_probs_"))]
        if not keys:
            continue
        fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
        for ax, key in zip(axes[0], sorted(keys)):
            ax.plot(epochs, history[key], label="train")
            if f"val_{key}" in history:
                ax.plot(epochs, history[f"val_{key}"], label="validation")
            ax.set_title(key)
            ax.set_xlabel("epoch")
            ax.legend()
        fig.tight_layout()
        path = Path(out_dir) / f"curves_{head}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def plot_confusion(confusion, path, title="emotion confusion"):
    confusion = np.asarray(confusion, np.float64)
    normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)

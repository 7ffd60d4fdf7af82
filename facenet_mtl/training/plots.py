"""PNG plots of a run: learning curves per task, and the emotion confusion matrix."""
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facenet_mtl import tasks  # noqa: E402
from facenet_mtl.tasks import EMOTIONS  # noqa: E402


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
    """One PNG per output of the registered tasks (`Task.plot_names`: its loss and metrics, train
    vs validation); returns the files written."""
    history = read_history(history_csv)
    if "epoch" not in history:
        return []
    epochs = history["epoch"] + 1
    written = []
    for task in tasks.TASKS.values():
        for head, name in zip(task.outputs, task.plot_names):
            keys = [k for k in history if tasks.output_of_key(k) == head]
            if keys:
                written.append(_plot_curves(history, epochs, sorted(keys), Path(out_dir) / name))
    return written


def _plot_curves(history, epochs, keys, path):
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_confusion(confusion, path, title="emotion confusion", classes=EMOTIONS):
    """A categorical task's confusion matrix (rows true, columns predicted), normalised per row."""
    confusion = np.asarray(confusion, np.float64)
    normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_confusions(figures, out_dir):
    """`<task>_confusion.png` for every categorical task whose confusion matrix `figures` (an
    evaluation's metrics) holds; returns the files written."""
    written = []
    for task in tasks.TASKS.values():
        confusion = figures.get(f"{task.name}_confusion")
        if task.kind.name == "categorical" and confusion is not None:
            written.append(plot_confusion(confusion, Path(out_dir) / f"{task.name}_confusion.png",
                                          f"{task.name.replace('_', ' ')} confusion", task.classes))
    return written

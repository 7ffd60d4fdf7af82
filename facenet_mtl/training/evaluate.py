"""Evaluate a model on built TFRecords: per-task metrics overall and per dataset.

Works with any Keras model whose outputs follow our names (a run's model in memory, or an
`.h5` / `.keras` file loaded with plain Keras), so `facenet-mtl evaluate` and training share it.
"""
import numpy as np
import tensorflow as tf

from facenet_mtl.data.errors import DataError
from facenet_mtl.data.pipeline import read_split
from facenet_mtl.data.records import read_manifest
from facenet_mtl.data.schema import EMOTIONS, MISSING

LABELS = ("age", "age_std", "gender", "emotion", "smile")


def predict_split(model, root, dataset, split, batch_size=128, limit=0, partition_seed=0):
    """(predictions by output name, labels by field) for one dataset split, as numpy arrays."""
    size = int(model.input_shape[1])
    ds = read_split(root, dataset, split, size, limit=limit, cache=False,
                    partition_seed=partition_seed).batch(batch_size)
    preds, labels = {}, {k: [] for k in LABELS}
    for batch in ds:
        out = model(tf.cast(batch["image"], tf.float32), training=False)
        for name, value in dict(out).items():
            preds.setdefault(name, []).append(np.asarray(value, np.float32))
        for k in LABELS:
            labels[k].append(batch[k].numpy())
    preds = {k: np.concatenate(v) for k, v in preds.items()}
    labels = {k: np.concatenate(v) if v else np.zeros(0) for k, v in labels.items()}
    return preds, labels


def task_metrics(preds, labels):
    """Masked metrics: age MAE and epsilon-error, accuracies, emotion confusion matrix."""
    result = {"n": int(len(labels["age"]))}
    if "age" in preds:
        known = labels["age"] != MISSING
        if known.any():
            est = preds["age"].reshape(-1)[known]
            result["age_mae"] = float(np.mean(np.abs(est - labels["age"][known])))
            result["age_n"] = int(known.sum())
            sigma_known = known & (labels["age_std"] > 0)
            if sigma_known.any():
                # ChaLearn LAP 2016 epsilon-error: 1 - exp(-(x - mu)^2 / (2 sigma^2)).
                x = preds["age"].reshape(-1)[sigma_known]
                mu, sigma = labels["age"][sigma_known], labels["age_std"][sigma_known]
                result["age_eps"] = float(np.mean(1 - np.exp(-((x - mu) ** 2) / (2 * sigma**2))))
    for task in ("gender", "smile"):
        if task in preds:
            known = labels[task] != MISSING
            if known.any():
                guess = (preds[task].reshape(-1)[known] >= 0.5).astype(np.int64)
                result[f"{task}_acc"] = float(np.mean(guess == labels[task][known]))
                result[f"{task}_n"] = int(known.sum())
    if "emotion" in preds:
        known = labels["emotion"] != MISSING
        if known.any():
            guess = preds["emotion"][known].argmax(-1)
            truth = labels["emotion"][known]
            result["emotion_acc"] = float(np.mean(guess == truth))
            result["emotion_n"] = int(known.sum())
            confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), np.int64)
            np.add.at(confusion, (truth, guess), 1)
            result["emotion_confusion"] = confusion.tolist()
    return result


def evaluate_model(model, root, datasets, split="test", batch_size=128, limit=0, partition_seed=0):
    """{"overall": metrics, "by_dataset": {name: metrics}} for the datasets that have `split`;
    a `DataError` naming the built splits when none of them has it."""
    built = {name: list(read_manifest(root, name)["splits"]) for name in datasets}
    if datasets and not any(split in splits for splits in built.values()):
        raise DataError(root, f"no dataset has a split '{split}' (built splits: "
                        + "; ".join(f"{name}: {', '.join(splits) or 'none'}" for name, splits in built.items()) + ")",
                        "choose one of the built splits with --split")
    by_dataset, all_preds, all_labels = {}, {}, {}
    for name in datasets:
        if split not in built[name]:
            continue
        preds, labels = predict_split(model, root, name, split, batch_size, limit, partition_seed)
        by_dataset[name] = task_metrics(preds, labels)
        for k, v in preds.items():
            all_preds.setdefault(k, []).append(v)
        for k, v in labels.items():
            all_labels.setdefault(k, []).append(v)
    if not by_dataset:
        return {"overall": {"n": 0}, "by_dataset": {}}
    overall = task_metrics({k: np.concatenate(v) for k, v in all_preds.items()},
                           {k: np.concatenate(v) for k, v in all_labels.items()})
    return {"overall": overall, "by_dataset": by_dataset}


def format_table(evaluation, split):
    """A plain-text table: one row per dataset plus the overall row."""
    columns = [("age_mae", "Age MAE", "{:.2f}"), ("age_eps", "Age eps", "{:.3f}"),
               ("gender_acc", "Gender %", "{:.2%}"), ("emotion_acc", "Emotion %", "{:.2%}"),
               ("smile_acc", "Smile %", "{:.2%}"), ("n", "n", "{}")]
    rows = [(name, m) for name, m in evaluation["by_dataset"].items()] + [("overall", evaluation["overall"])]
    header = [f"split: {split}"] + [title for _, title, _ in columns]
    table = [header] + [[name] + [fmt.format(m[key]) if key in m else "" for key, _, fmt in columns]
                        for name, m in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)

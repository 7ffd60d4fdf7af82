"""Evaluate a model on built TFRecords: per-task metrics overall and per dataset.

Works with any Keras model whose outputs follow our names (a run's model in memory, or an
`.h5` / `.keras` file loaded with plain Keras), so `facenet-mtl evaluate` and training share it.
The heads figured are `heads` (a model file's `ModelSpec.task_objects()`); None: every
registered task whose head the predictions hold.
"""
import time
import weakref

import numpy as np
import tensorflow as tf

from facenet_mtl.artifact.forward import compiled_forward
from facenet_mtl.data import balance
from facenet_mtl.training.calibration import calibration_report
from facenet_mtl.data.built_dataset import BuiltDataset
from facenet_mtl.errors import DataError
from facenet_mtl.data.pipeline import read_split
from facenet_mtl import tasks
from facenet_mtl.data.schema import AGE_BANDS, GROUP_NAMES, LABEL_FIELDS

LABELS = tuple(LABEL_FIELDS)
GROUPINGS = (*GROUP_NAMES, "age_band")  # race, gender: by the label's value; age_band: by `AGE_BANDS`


_FORWARD = weakref.WeakKeyDictionary()


def traced_forward(model):
    """`model`'s inference pass compiled once per model (`artifact.forward.compiled_forward`, whole:
    a test-time-views model runs its views as one batch through its network, traced once)."""
    if model not in _FORWARD:
        _FORWARD[model] = compiled_forward(model, whole=True)
    return _FORWARD[model]


def predict_split(model, built, split, batch_size=128, limit=0, partition_seed=0):
    """(predictions by output name, labels by field) for one split of `built` (a `BuiltDataset`),
    as numpy arrays."""
    size = int(model.input_shape[1])
    ds = read_split(built, split, size, limit=limit, cache=False,
                    partition_seed=partition_seed).batch(batch_size)
    forward = traced_forward(model)
    preds, labels = {}, {k: [] for k in LABELS}
    labels["file_id"] = []
    for batch in ds:
        out = forward(tf.cast(batch["image"], tf.float32))
        for name, value in dict(out).items():
            preds.setdefault(name, []).append(np.asarray(value, np.float32))
        for k in LABELS:
            labels[k].append(batch[k].numpy())
        labels["file_id"].append(batch["file_id"].numpy())
    preds = {k: np.concatenate(v) for k, v in preds.items()}
    labels = {k: np.concatenate(v) if v else np.zeros(0) for k, v in labels.items()}
    return preds, labels


def pooled_predictions(model, built, split, limit=0, partition_seed=0):
    """(predictions, labels) of `model` over `split` of every dataset in `built` ({name: BuiltDataset}), pooled."""
    return _pooled([predict_split(model, dataset, split, limit=limit, partition_seed=partition_seed)
                    for dataset in built.values() if dataset.size(split)])


def _pooled(parts):
    """[(predictions, labels), ...] of several datasets -> one (predictions, labels), concatenated by
    name; two empty dicts for none."""
    if not parts:
        return {}, {}
    return tuple({name: np.concatenate([part[side][name] for part in parts]) for name in parts[0][side]}
                 for side in (0, 1))


def task_metrics(preds, labels, heads=None):
    """Masked figures of every task the predictions hold (`Task.figures`) among `heads` (None: the
    registered tasks): age MAE and epsilon-error, accuracies, confusion matrices of categorical tasks."""
    result = {"n": int(len(next(iter(labels.values()))))}
    for task in _heads(heads):
        result.update(task.figures(preds, labels))
    return result


def group_keys(labels, grouping):
    """Each example's group name under `grouping` (one of `GROUPINGS`), "" if unknown."""
    if grouping in GROUP_NAMES:
        names = GROUP_NAMES[grouping]
        return np.array([names[v] if 0 <= v < len(names) else "" for v in labels[grouping]], object)
    if grouping == "age_band":
        names = np.array([band[0] for band in AGE_BANDS] + [""], object)
        return names[balance.group_values(labels, "age_band")]  # -1 (no age) -> ""
    raise ValueError(f"unknown grouping '{grouping}'; choose from {', '.join(GROUPINGS)}")


def _heads(heads):
    return tuple(tasks.TASKS.values()) if heads is None else tuple(heads)


def metrics_by_group(preds, labels, groupings, heads=None):
    """{grouping: {group name: metrics}} over the examples whose group is known."""
    out = {}
    for grouping in groupings:
        keys = group_keys(labels, grouping)
        out[grouping] = {}
        for name in sorted(set(keys) - {""}, key=_group_order(grouping)):
            mask = keys == name
            out[grouping][name] = task_metrics({k: v[mask] for k, v in preds.items()},
                                               {k: v[mask] for k, v in labels.items()}, heads)
    return out


def _group_order(grouping):
    order = list(GROUP_NAMES[grouping]) if grouping in GROUP_NAMES else [band[0] for band in AGE_BANDS]
    return lambda name: order.index(name) if name in order else len(order)


def labels_groups(built, split, grouping):
    """Whether `split` of `built` labels `grouping`'s field for some faces (`balance.labels_grouping`)."""
    return balance.labels_grouping(built, split, grouping)


def grouped_datasets(root, datasets, split, groupings):
    """The datasets among `datasets` whose `split` labels every one of `groupings`."""
    return [name for name in datasets
            if all(labels_groups(BuiltDataset.open(root, name), split, g) for g in groupings)]


def evaluate_model(model, root, datasets, split="test", batch_size=128, limit=0, partition_seed=0, by=(),
                   heads=None, built=None):
    """{"overall": metrics, "by_dataset": {name: metrics}} for the datasets that have `split`;
    with `by` (groupings from GROUPINGS), also {"by_group": {dataset: {grouping: {group: metrics}}}}.
    A `DataError` naming the built splits when none of the datasets has `split`. `built`: the
    datasets already opened ({name: BuiltDataset}, e.g. the trainer's); the others are opened here."""
    built = {name: (built or {}).get(name) or BuiltDataset.open(root, name) for name in datasets}
    if datasets and not any(split in dataset.splits for dataset in built.values()):
        raise DataError(root, f"no dataset has a split '{split}' (built splits: "
                        + "; ".join(f"{name}: {dataset.built_splits()}" for name, dataset in built.items()) + ")",
                        "choose one of the built splits with --split")
    by_dataset, parts, by_group, seconds = {}, [], {}, {}
    for name in datasets:
        if split not in built[name].splits:
            continue
        started = time.perf_counter()
        preds, labels = predict_split(model, built[name], split, batch_size, limit, partition_seed)
        seconds[name] = round(time.perf_counter() - started, 1)
        by_dataset[name] = task_metrics(preds, labels, heads)
        if by:
            by_group[name] = metrics_by_group(preds, labels, by, heads)
        parts.append((preds, labels))
    if not by_dataset:
        return {"overall": {"n": 0}, "by_dataset": {}}
    pooled_preds, pooled_labels = _pooled(parts)
    result = {"overall": task_metrics(pooled_preds, pooled_labels, heads), "by_dataset": by_dataset,
              "seconds_by_dataset": seconds, "calibration": calibration_report(pooled_preds, pooled_labels)}
    if by:
        result["by_group"] = by_group
    return result


def format_table(evaluation, split, heads=None):
    """A plain-text table: one row per dataset plus the overall row."""
    columns = [c for task in _heads(heads) for c in task.columns()] + [("n", "n", "{}")]
    rows = [(name, m) for name, m in evaluation["by_dataset"].items()] + [("overall", evaluation["overall"])]
    return _table(rows, columns, f"split: {split}")


def format_group_tables(evaluation, heads=None):
    """One table per dataset and grouping of `evaluation["by_group"]` (figures per group)."""
    columns = [c for task in _heads(heads) for c in task.columns(by_group=True)] + [("n", "n", "{}")]
    tables = []
    for dataset, groupings in evaluation.get("by_group", {}).items():
        for grouping, groups in groupings.items():
            if groups:
                used = [c for c in columns if any(c[0] in m for m in groups.values())]
                tables.append(_table(list(groups.items()), used, f"{dataset} by {grouping}"))
    return "\n\n".join(tables)


def _table(rows, columns, title):
    header = [title] + [title_ for _, title_, _ in columns]
    table = [header] + [[name] + [fmt.format(m[key]) if key in m else "" for key, _, fmt in columns]
                        for name, m in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)

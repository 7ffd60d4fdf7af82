"""Calibrated heads: a temperature per head fitted on validation, folded into the saved model.

A classification head's probability should be right as often as it says: of the faces given
P = 0.9, about 9 in 10 right. Temperature scaling (Guo et al., ICML 2017) divides a head's
logits by one number T fitted on validation (the T of least negative log-likelihood); accuracy
is unchanged (the order of the logits is), the confidence is not. Our heads end in one Dense
layer whose activation is the sigmoid or softmax, so logits / T is that layer with its kernel
and bias divided by T: the calibrated model has exactly the layers it had (built-in, plain Keras
loads it), only two weights changed per head.

The age head's 80 % interval (`age_interval`: from the 10th to the 90th percentile of the DEX
bins) gets a temperature too, fitted so that 80 % of the validation faces' true ages fall inside
(coverage); the age layer reads the expectation of those bins, so the card reports the MAE before
and after, and the age temperature is folded only when it moves the MAE by at most 0.02 years.

On a model that averages test-time views, the fit sees the averaged probabilities (whose logits
are not the views' own), and the figures after are measured on the folded model itself.

>>> p = np.array([[0.6], [0.6], [0.6], [0.6], [0.6]])
>>> y = np.array([1, 1, 1, 0, 0])
>>> round(expected_calibration_error(p, y, "binary"), 3)
0.0
>>> round(fit_temperature(np.array([[0.99], [0.01], [0.99], [0.01]]), np.array([1, 1, 0, 0]), "binary"), 1) > 1
True
"""
from __future__ import annotations

import numpy as np

from facenet_mtl import tasks
from facenet_mtl.data.balance import group_values
from facenet_mtl.data.schema import AGE_BANDS
from facenet_mtl.kinds import AGE_OUTPUTS, age_ranges
from facenet_mtl.tasks import AGE_BINS, MISSING, AgeKind

INTERVAL_MASS = 0.8  # the age interval holds this much of the age distribution
TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(10.0), 400))  # the grid a temperature is chosen on


def head_layer(task_name: str) -> str:
    """The Dense layer whose logits a task's temperature divides."""
    return tasks.get(task_name).outputs[-1]  # age: its bins (the expectation is fixed), else the task's own


def tempered(probs: np.ndarray, temperature: float, kind: str) -> np.ndarray:
    """`probs` as the head would give them with its logits divided by `temperature`."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    if kind == "binary":
        p = p.reshape(-1)
        a, b = p ** (1 / temperature), np.clip(1 - p, 1e-12, 1.0) ** (1 / temperature)
        return (a / (a + b)).reshape(-1, 1)
    logits = np.log(p) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def confidence_and_correct(probs, truth, kind):
    if kind == "binary":
        p = np.asarray(probs, np.float64).reshape(-1)
        guess = (p >= 0.5).astype(np.int64)
        return np.where(guess == 1, p, 1 - p), guess == truth
    probs = np.asarray(probs, np.float64)
    return probs.max(axis=-1), probs.argmax(axis=-1) == truth


def expected_calibration_error(probs, truth, kind: str, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over 15 equal-width confidence bins
    weighted by their faces (the predicted label's probability, for both kinds of head)."""
    confidence, correct = confidence_and_correct(probs, np.asarray(truth), kind)
    if not len(confidence):
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(gap)


def negative_log_likelihood(probs, truth, kind):
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1 - 1e-12)
    if kind == "binary":
        p = p.reshape(-1)
        return float(-np.mean(np.where(truth == 1, np.log(p), np.log(1 - p))))
    return float(-np.mean(np.log(p[np.arange(len(truth)), truth])))


def fit_temperature(probs, truth, kind: str) -> float:
    """The temperature of least negative log-likelihood on (`probs`, `truth`), on `TEMPERATURES`."""
    truth = np.asarray(truth).astype(np.int64)
    losses = [negative_log_likelihood(tempered(probs, t, kind), truth, kind) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def age_interval(age_probs, mass: float = INTERVAL_MASS):
    """(low, high) years per face: the central `mass` of its age distribution
    (`kinds.age_ranges`, the predictor's `age_range` at the default 80 %)."""
    low, high = age_ranges(age_probs, ((1 - mass) / 2, (1 + mass) / 2))
    return low.astype(np.float32), high.astype(np.float32)


def age_coverage(age_probs, ages, mass: float = INTERVAL_MASS) -> float:
    """The share of faces whose true age (years) falls inside their interval."""
    low, high = age_interval(age_probs, mass)
    ages = np.round(np.asarray(ages, np.float64))
    return float(np.mean((ages >= low) & (ages <= high))) if len(ages) else float("nan")


def fit_age_temperature(age_probs, ages, mass: float = INTERVAL_MASS) -> float:
    """The temperature whose intervals hold `mass` of the true ages (coverage grows with it)."""
    coverage = [abs(age_coverage(tempered(age_probs, t, AgeKind.name), ages, mass) - mass) for t in TEMPERATURES[::8]]
    return float(TEMPERATURES[::8][int(np.argmin(coverage))])


def age_mae(age_probs, ages) -> float:
    return float(np.mean(np.abs(np.asarray(age_probs, np.float64) @ np.arange(AGE_BINS) - ages)))


def labelled(task_name, preds, labels):
    """(the head's predictions, the truths) over the faces labelled for `task_name`; None without."""
    task = tasks.get(task_name)
    head = head_layer(task_name)
    if head not in preds:
        return None
    truth = np.asarray(task.values(labels))
    known = truth != MISSING
    if not known.any():
        return None
    return preds[head][known], truth[known] if is_age(task) else truth[known].astype(np.int64)


def is_age(task) -> bool:
    return isinstance(task.kind, AgeKind)


def calibration_figures(preds, labels) -> dict:
    """{task: {"ece": ...} or {"coverage": ..., "mae": ...}} of predictions on labelled faces."""
    out = {}
    for task in tasks.TASKS.values():
        pair = labelled(task.name, preds, labels)
        if pair is None:
            continue
        if is_age(task):
            out[task.name] = {"coverage": age_coverage(*pair), "mae": age_mae(*pair), "n": len(pair[1])}
        else:
            out[task.name] = {"ece": expected_calibration_error(*pair, task.kind.name), "n": len(pair[1])}
    return out


def calibration_report(preds, labels) -> dict:
    """{"overall": `calibration_figures`, "age_by_band": {band: coverage, MAE, n}} of predictions."""
    result = {"overall": calibration_figures(preds, labels), "age_by_band": {}}
    age, bins = AGE_OUTPUTS  # the age label's field and the head's bins
    if bins in preds:
        bands = group_values(labels, "age_band")
        for index, (name, _, _) in enumerate(AGE_BANDS):
            inside = (bands == index) & (labels[age] != MISSING)
            if inside.any():
                result["age_by_band"][name] = {"coverage": age_coverage(preds[bins][inside], labels[age][inside]),
                                               "mae": age_mae(preds[bins][inside], labels[age][inside]),
                                               "n": int(inside.sum())}
    return result


def fit_temperatures(preds, labels) -> dict:
    """{task: temperature} fitted on validation predictions (numpy, by output) and labels."""
    temperatures = {}
    for task in tasks.TASKS.values():
        pair = labelled(task.name, preds, labels)
        if pair is None:
            continue
        if is_age(task):
            temperatures[task.name] = fit_age_temperature(*pair)
        else:
            temperatures[task.name] = fit_temperature(*pair, task.kind.name)
    return temperatures


def fold_temperatures(network, temperatures) -> None:
    """Divide each head's logits by its temperature: its Dense layer's kernel and bias / T."""
    for task_name, t in temperatures.items():
        layer = network.get_layer(head_layer(task_name))
        layer.set_weights([w / np.float32(t) for w in layer.get_weights()])


AGE_MAE_TOLERANCE = 0.02  # years: an age temperature that moves the MAE more is not folded


def calibrate(network, before, valid_split, log=print) -> dict:
    """Fit the heads' temperatures on the predictions `before[valid_split]` (a model's pooled
    (predictions, labels) per split, `evaluate.pooled_predictions`; the model may average views of
    `network`), fold them into `network`, and return the figures before on every split:
    {"temperatures": {task: T}, split: {"before": ...}}. The figures after are the evaluation's
    (`evaluate_model`'s "calibration"), of the folded model."""
    temperatures = fit_temperatures(*before[valid_split])
    for name, t in list(temperatures.items()):
        if is_age(tasks.get(name)):
            pair = labelled(name, *before[valid_split])
            if age_mae(tempered(pair[0], t, AgeKind.name), pair[1]) > age_mae(*pair) + AGE_MAE_TOLERANCE:
                temperatures.pop(name)
    fold_temperatures(network, temperatures)
    result = {"temperatures": temperatures}
    for split, (preds, labels) in before.items():
        result[split] = {"before": calibration_figures(preds, labels)}
    log(f"calibration: temperatures {', '.join(f'{k} {v:.3f}' for k, v in temperatures.items())}")
    return result

"""Group-balanced sampling: every race group and age band seen about equally per epoch.

A dataset whose faces carry the grouping fields (`data.balance_by`, e.g. race and age band:
FairFace and UTKFace) is sampled so that each group's share moves from its natural share toward
an equal one, without repeating the rare faces into overfitting:

1. Count the training faces per cell (race x age band, an unknown value being a value of its own).
2. Choose each grouping's target shares, natural share ** `power` normalised (`power` 0: equal
   shares, 1: as the data has them), and fit cell shares whose marginals match every target
   (iterative proportional fitting, "raking": cells keep their natural proportions within a row).
3. Cap every cell's repeat factor (its sampling share over its natural share) at `max_repeat`, so
   a cell of 40 faces is seen at most `max_repeat` times as often as unbalanced training would.
4. Sample by rejection: the shuffled, repeating stream keeps a face of cell c with probability
   repeat(c) / max repeat. One cached stream, no per-cell copies; the stream reads
   max repeat / 1 faces per face it yields.

Age bands are the model card's (`AGE_BANDS`); an age group (FairFace) falls in the band of its
midpoint, as in `evaluate --by age_band`.

Cells are (race index, band index) pairs; here race 1 and band 1 are the rare values:

>>> counts = {(0, 0): 80, (0, 1): 10, (1, 0): 8, (1, 1): 2}
>>> shares = balanced_shares(counts, power=0.0, max_repeat=100.0)
>>> round(sum(v for (r, _), v in shares.items() if r == 1), 3), round(sum(v for (_, a), v in shares.items() if a == 1), 3)
(0.5, 0.5)
>>> capped = balanced_shares(counts, power=0.0, max_repeat=3.0)
>>> max(capped[c] / (n / 100) for c, n in counts.items()) <= 3.0 + 1e-9
True
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from facenet_mtl.data.schema import AGE_BANDS, MISSING, RACES

GROUPINGS = ("race", "age_band")


def group_values(labels: Mapping[str, np.ndarray], grouping: str) -> np.ndarray:
    """Each face's value (an int index, -1 unknown) under `grouping`, from numpy label fields."""
    if grouping == "race":
        race = np.asarray(labels["race"]).astype(np.int64)
        return np.where((race >= 0) & (race < len(RACES)), race, -1)
    if grouping == "age_band":
        return band_index(np.asarray(labels["age"], np.float32), np.asarray(labels["age_min"], np.float32),
                          np.asarray(labels["age_max"], np.float32))
    raise ValueError(f"unknown balance grouping '{grouping}'; choose from {', '.join(GROUPINGS)}")


def band_index(age, age_min, age_max) -> np.ndarray:
    """The age band index of each face (numpy), -1 where no age is known."""
    years = np.where(age != MISSING, age, np.where(age_min != MISSING, (age_min + age_max) / 2, np.nan))
    index = np.full(years.shape, -1, np.int64)
    for i, (_, low, high) in enumerate(AGE_BANDS):
        index[(np.round(years) >= low) & (np.round(years) <= high)] = i
    return index


def balanced_shares(counts: Mapping[tuple, int], power: float = 0.0, max_repeat: float = 3.0,
                    iterations: int = 100) -> dict:
    """{cell: sampling share} (summing to 1) for cells of natural `counts` (see the module text).
    A cell with an unknown value (-1) keeps its natural share: it belongs to no group to balance."""
    cells = [c for c, n in counts.items() if n > 0]
    natural = np.array([counts[c] for c in cells], np.float64)
    natural /= natural.sum()
    known = np.array([min(c) >= 0 for c in cells])
    shares = natural.copy()
    targets = []
    for axis in range(len(cells[0]) if cells else 0):
        values = sorted({c[axis] for c, k in zip(cells, known) if k})
        member = np.array([[k and c[axis] == v for c, k in zip(cells, known)] for v in values], np.float64)
        marginal = (member @ natural) ** power
        targets.append((member, marginal / marginal.sum() * natural[known].sum()))
    for _ in range(iterations):  # raking: match each grouping's target shares in turn
        for member, target in targets:
            shares = np.where(known, shares * (member.T @ (target / np.maximum(member @ shares, 1e-12))), shares)
    return {cell: float(s) for cell, s in zip(cells, _cap(shares, natural, max_repeat))}


def _cap(shares, natural, max_repeat):
    """min(scale * shares, max_repeat * natural), the scale chosen so that they sum to 1."""
    low, high = 0.0, 1.0
    while np.minimum(high * shares, max_repeat * natural).sum() < 1.0 and high < 1e12:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if np.minimum(middle * shares, max_repeat * natural).sum() < 1.0 else (low, middle)
    capped = np.minimum(high * shares, max_repeat * natural)
    return capped / capped.sum()


def acceptance(counts: Mapping[tuple, int], shares: Mapping[tuple, float]) -> dict:
    """{cell: probability of keeping a face of the cell} that turns natural counts into `shares`."""
    total = sum(counts.values())
    repeat = {c: shares[c] / (counts[c] / total) for c in shares}
    top = max(repeat.values())
    return {c: r / top for c, r in repeat.items()}


def cell_counts(labels: Mapping[str, np.ndarray], by: Sequence[str]) -> dict:
    """{cell (one value per grouping): number of faces} of numpy label fields."""
    columns = [group_values(labels, g) for g in by]
    cells, numbers = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    return {tuple(int(v) for v in cell): int(n) for cell, n in zip(cells, numbers)}


def labels_grouping(built, split: str, grouping: str) -> bool:
    """Whether `split` of `built` (a `BuiltDataset`) labels `grouping` for some faces, by its
    manifest: race and gender counted by value; an age band needs the age task (years or groups)."""
    if grouping == "age_band":
        return "age" in built.manifest.get("tasks", ())
    counts = built.splits.get(split, {}).get("labels", {}).get(grouping, {})
    return any(value != "missing" for value in counts)


def describe(counts: Mapping[tuple, int], shares: Mapping[tuple, float], by: Sequence[str]) -> list:
    """Lines of natural against sampled shares, per grouping value, and the largest repeat."""
    total = sum(counts.values())
    lines = []
    for axis, grouping in enumerate(by):
        values = sorted({c[axis] for c in shares})
        parts = []
        for value in values:
            natural = sum(n for c, n in counts.items() if c[axis] == value) / total
            sampled = sum(s for c, s in shares.items() if c[axis] == value)
            name = cell_names((value,), (grouping,))
            parts.append(f"{name} {natural:.1%} -> {sampled:.1%}")
        lines.append(f"{grouping}: " + ", ".join(parts))
    repeat = max(shares[c] / (counts[c] / total) for c in shares)
    lines.append(f"largest repeat {repeat:.2f}x of natural ({len(shares)} cells)")
    return lines


def cell_names(cell: tuple, by: Sequence[str]) -> str:
    """'black / 60+' for a cell of race and age band."""
    names = []
    for grouping, value in zip(by, cell):
        choices = RACES if grouping == "race" else [b[0] for b in AGE_BANDS]
        names.append(choices[value] if 0 <= value < len(choices) else "unknown")
    return " / ".join(names)


def keep_filter(by: Sequence[str], accept: Mapping[tuple, float], seed: int):
    """A `tf.data` filter for decoded examples: keeps a face of cell c with probability accept[c]."""
    import tensorflow as tf

    sizes = [len(RACES) + 1 if g == "race" else len(AGE_BANDS) + 1 for g in by]
    table = np.zeros(int(np.prod(sizes)), np.float32)
    for cell, p in accept.items():
        table[_flat(cell, sizes)] = p
    table = tf.constant(table)

    def keep(example):
        values = [(_tf_group(example, g) + 1) for g in by]  # -1 (unknown) -> 0
        flat = tf.zeros([], tf.int64)
        for value, size in zip(values, sizes):
            flat = flat * size + value
        return tf.random.uniform([], seed=seed) < tf.gather(table, flat)

    return keep


def _flat(cell, sizes):
    flat = 0
    for value, size in zip(cell, sizes):
        flat = flat * size + (value + 1)
    return flat


def _tf_group(example, grouping):
    """`group_values` of one decoded example, in TensorFlow."""
    import tensorflow as tf

    if grouping == "race":
        race = tf.cast(example["race"], tf.int64)
        return tf.where((race >= 0) & (race < len(RACES)), race, tf.constant(-1, tf.int64))
    age, age_min, age_max = example["age"], example["age_min"], example["age_max"]
    years = tf.round(tf.where(age != MISSING, age, tf.where(age_min != MISSING, (age_min + age_max) / 2, -1000.0)))
    index = tf.constant(-1, tf.int64)
    for i, (_, low, high) in enumerate(AGE_BANDS):
        index = tf.where((years >= low) & (years <= high), tf.constant(i, tf.int64), index)
    return index

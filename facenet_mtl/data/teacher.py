"""A teacher's outputs on the training faces, as training targets (self-distillation).

`facenet-mtl teach MODEL` (training/distillation.py) writes a teacher file: one row per training
face, keyed by `<dataset>/<file_id>`, holding the teacher model's outputs on that face (its
expected age and the spread of its age distribution, P(male), the 7 emotion probabilities,
P(smile)). With `data.teacher` naming that file, the input pipeline gives every face a target for
every head the teacher has:

- a face the dataset labels for a classification head learns `(1 - w) * label + w * teacher`
  (the cross-entropy of that mix is `(1 - w) * CE(label) + w * CE(teacher)`, Hinton et al.'s
  distillation loss at temperature 1; the teacher already averages its test-time views);
- a face without that label learns the teacher's probabilities alone, at weight `w`: FER2013
  faces then carry age and gender targets, UTKFace and FairFace faces emotion and smile targets;
- age: a face with a year or an age group keeps its label; a face without one learns the teacher's
  expected age, and its bins a Gaussian of the teacher's mean and spread, at weight `w`.

A face the teacher file does not hold (a dataset it never saw) keeps its labels unchanged.

>>> import numpy as np
>>> rows = {"keys": np.array(["fer2013/a.jpg"]), "age_mean": np.array([31.0]), "age_std": np.array([4.0]),
...         "gender": np.array([0.8]), "emotion": np.full((1, 7), 1 / 7), "smile": np.array([0.1])}
>>> TeacherTargets(rows, weight=0.5).columns
('age_mean', 'age_std', 'gender', 'emotion', 'smile')
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facenet_mtl.errors import DataError

COLUMNS = ("age_mean", "age_std", "gender", "emotion", "smile")  # what a teacher file holds per face
AGE_STD_FLOOR = 1.0  # the narrowest Gaussian an age target gets (years)


def teacher_key(dataset: str, file_id) -> str:
    return f"{dataset}/{file_id.decode() if isinstance(file_id, bytes) else file_id}"


class TeacherTargets:
    """The rows of a teacher file, looked up and blended into a face's targets in `tf.data`."""

    def __init__(self, rows, weight: float, source: str = "<rows>"):
        self.keys = np.asarray(rows["keys"]).astype(str)
        self.columns = tuple(c for c in COLUMNS if c in rows)
        self.values = {c: np.asarray(rows[c], np.float32) for c in self.columns}
        self.weight = float(weight)
        self.source = source
        self._table = None

    @classmethod
    def load(cls, path, weight: float) -> "TeacherTargets":
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "no teacher file here",
                            "write it first: facenet-mtl teach MODEL --data ROOT --datasets ... --out " + str(path))
        with np.load(path, allow_pickle=False) as rows:  # numbers and strings only, never code
            return cls({name: rows[name] for name in rows.files}, weight, str(path))

    def attach(self, dataset: str):
        """A `tf.data` map adding `teacher_row` (-1: not in the file) to a decoded example of `dataset`."""
        import tensorflow as tf

        table = self._lookup()

        def attach(example):
            key = tf.strings.join([dataset + "/", example["file_id"]])
            return {**example, "teacher_row": table.lookup(key)}

        return attach

    def _lookup(self):
        import tensorflow as tf

        if self._table is None:
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(self.keys), tf.range(len(self.keys), dtype=tf.int64)),
                default_value=-1)
        return self._table

    def blend(self, example, labels: dict, weights: dict) -> tuple:
        """(labels, weights) of one face with the teacher's targets mixed in (see the module text)."""
        import tensorflow as tf

        row = example["teacher_row"]
        found = row >= 0
        safe = tf.maximum(row, 0)
        w = tf.where(found, self.weight, 0.0)
        labels, weights = dict(labels), dict(weights)
        for name in ("gender", "emotion", "smile"):
            if name not in labels or name not in self.values:
                continue
            taught = tf.reshape(tf.gather(tf.constant(self.values[name]), safe), tf.shape(labels[name]))
            labelled = weights[name] > 0
            mixed = (1.0 - w) * labels[name] + w * taught
            labels[name] = tf.where(labelled, mixed, tf.where(found, taught, labels[name]))
            weights[name] = tf.where(labelled, weights[name], w)
        if "age_mean" in self.values and "age_probs" in labels:
            mean = tf.gather(tf.constant(self.values["age_mean"]), safe)
            std = tf.maximum(tf.gather(tf.constant(self.values["age_std"]), safe), AGE_STD_FLOOR)
            unlabelled = weights["age_probs"] <= 0
            bins = tf.stack([mean, std, -1.0, -1.0])[: labels["age_probs"].shape[0]]
            labels["age_probs"] = tf.where(unlabelled & found, bins, labels["age_probs"])
            weights["age_probs"] = tf.where(unlabelled, w, weights["age_probs"])
            if "age" in labels:
                no_year = weights["age"] <= 0
                labels["age"] = tf.where(no_year & found, tf.reshape(mean, (1,)), labels["age"])
                weights["age"] = tf.where(no_year, w, weights["age"])
        return labels, weights

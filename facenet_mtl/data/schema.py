"""The one example schema shared by every dataset, record, pipeline, head and metric.

Every face record, whatever its source, carries the image and all five labels; a label the
source does not provide holds `MISSING`. Change a task here and every layer follows.
"""
from dataclasses import dataclass, field

import numpy as np

SCHEMA_VERSION = 2  # 2: age_min/age_max (age groups), race
MISSING = -1  # the "no label" value for every label field, float or int
DEFAULT_IMAGE_SIZE = 112

# FER2013 label order (the ids in fer2013.csv).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDERS = ("female", "male")  # gender 0 female, 1 male
SMILES = ("no_smile", "smile")
AGE_BINS = 101  # DEX: ages 0..100, one softmax bin per year
MAX_AGE = AGE_BINS - 1
# Race groups, for reporting figures per group (never a model output). UTKFace's ids 0-4 keep
# their meaning; FairFace's seven groups use 0, 1 and 3 where they match and 5-8 for the rest.
RACES = ("white", "black", "asian", "indian", "others", "latino_hispanic", "east_asian",
         "southeast_asian", "middle_eastern")


@dataclass(frozen=True)
class Task:
    """One prediction task: its label field, its kind and (for classification) its classes."""

    name: str
    kind: str  # "age" (DEX bins + expectation), "binary" or "categorical"
    classes: tuple = ()

    @property
    def num_classes(self):
        return AGE_BINS if self.kind == "age" else len(self.classes)


TASKS = {
    "age": Task("age", "age"),
    "gender": Task("gender", "binary", GENDERS),
    "emotion": Task("emotion", "categorical", EMOTIONS),
    "smile": Task("smile", "binary", SMILES),
}
TASK_NAMES = tuple(TASKS)

# Label fields stored in every record: name -> numpy dtype. `age_std` is ChaLearn's sigma;
# `age_min`/`age_max` an age group's bounds in years (FairFace), with `age` missing;
# `race` an index into RACES.
LABEL_FIELDS = {
    "age": np.float32,
    "age_std": np.float32,
    "age_min": np.float32,
    "age_max": np.float32,
    "race": np.int64,
    "gender": np.int64,
    "emotion": np.int64,
    "smile": np.int64,
}


@dataclass
class FaceRecord:
    """One face as a reader yields it, before cropping and encoding.

    `image` is where the pixels come from: a file path, a `(zip_path, member)` pair, or an
    HxW / HxWx3 uint8 array (FER2013's csv). `box` is a known face box `(x1, y1, x2, y2)` in
    pixels (IMDB-WIKI's `face_location`); `detect` asks the builder to find the face and align
    it by its landmarks; `framing` is the source's typical landmark layout (5 (x, y) pairs as
    fractions of the image's width and height, `faces.align_by_framing`) for crops that are
    aligned by it; with none of these, the image is already a face crop in the template framing.
    """

    image: object
    source: str
    file_id: str
    split: str
    labels: dict = field(default_factory=dict)
    box: tuple = None
    detect: bool = False
    framing: tuple = None
    face_found: bool = None  # set by the build's detection: True (framing = its landmarks), False

    def label(self, name):
        return self.labels.get(name, MISSING)


def full_labels(labels):
    """All label fields with `MISSING` where `labels` has none, typed as `LABEL_FIELDS`."""
    unknown = set(labels) - set(LABEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown label fields {sorted(unknown)}; known: {list(LABEL_FIELDS)}")
    return {k: dtype(labels.get(k, MISSING)) for k, dtype in LABEL_FIELDS.items()}


def is_missing(value):
    return value is None or (isinstance(value, float) and np.isnan(value)) or value == MISSING

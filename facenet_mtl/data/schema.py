"""The record schema shared by every dataset, record and pipeline: the label fields a face carries.

Every face record, whatever its source, carries the image and all the label fields; a label the
source does not provide holds `MISSING`. The tasks a model learns from these fields (their
outputs, encodings, losses, figures) are defined once in `facenet_mtl.tasks`; `TASKS`,
`TASK_NAMES` and the class lists are re-exported here for older imports.
"""
from dataclasses import dataclass, field

import numpy as np

from facenet_mtl.tasks import AGE_BINS, EMOTIONS, GENDERS, MAX_AGE, MISSING, SMILES, TASKS, Task  # noqa: F401
from facenet_mtl.tasks import BUILTIN_NAMES as TASK_NAMES  # noqa: F401  (the built-in four)

SCHEMA_VERSION = 2  # 2: age_min/age_max (age groups), race
# The face contract's defaults, spelled here only: the square crop's side in pixels (a build's
# `--image-size`, a model's input size) and the margin added around a bare face box, as a fraction
# of its size on each side (the alignment template is `faces.TEMPLATE`).
DEFAULT_IMAGE_SIZE = 112
FACE_MARGIN = 0.4
# The smallest face detection searches for by default, in pixels of the image (MTCNN's minimum face
# size; `predict --min-face`): each step up skips the finest, costliest levels of its pyramid.
MIN_FACE = 20

# Race groups, for reporting figures per group (never a model output). UTKFace's ids 0-4 keep
# their meaning; FairFace's seven groups use 0, 1 and 3 where they match and 5-8 for the rest.
RACES = ("white", "black", "asian", "indian", "others", "latino_hispanic", "east_asian",
         "southeast_asian", "middle_eastern")
# The class-index label fields that evaluation figures are grouped by, with their value names.
GROUP_NAMES = {"race": RACES, "gender": GENDERS}

# Age bands for figures per group (`evaluate --by age_band`, the model card) and balanced sampling
# (`data.balance_by`): (name, first year, last year); an age group (FairFace) falls in the band of
# its midpoint.
AGE_BANDS = (("0-12", 0, 12), ("13-19", 13, 19), ("20-39", 20, 39), ("40-59", 40, 59), ("60+", 60, 200))

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
# The class-index fields a build counts per value (its manifest's label statistics).
CLASS_FIELDS = tuple(name for name, dtype in LABEL_FIELDS.items() if np.dtype(dtype).kind == "i")


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

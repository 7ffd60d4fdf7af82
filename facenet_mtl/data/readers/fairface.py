"""FairFace (age group, gender, race): face crops balanced over seven race groups, CC BY 4.0.

FairFace's own layout: `train/<n>.jpg` (and `val/<n>.jpg`) with `fairface_label_train.csv` (and
`fairface_label_val.csv`), columns `file,age,gender,race,service_test`, `file` naming the image
relative to the csv. Age is a group (`0-2`, `3-9`, ..., `60-69`, `more than 70`), stored as the
bounds `age_min`/`age_max` with `age` missing: the age head learns it as an interval (the
probability mass inside the group), never as a made-up year. Gender `Male`/`Female`; race one of
seven names (stored as an index into `schema.RACES`). A copy whose csv went through a
spreadsheet (`03-Sep` for `3-9`, `Oct-19` for `10-19`) is repaired.

Splits: the official `val` csv, when present, is the test split (never trained on); the training
csv is split 80/10/10 by a salted hash of the file name otherwise (or 90/10 into train/valid
when the official val csv is there). The crops (padding 0.25 around a detected face, not aligned)
are brought to the template by FairFace's typical landmark layout (`FRAMING`).
Drops: `bad_label` (an unknown age group, gender or race), `missing_file`.
"""
from __future__ import annotations

from pathlib import Path

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult, register
from facenet_mtl.data.readers.common import existing_path, keep_first, read_csv
from facenet_mtl.data.readers.splits import carve_valid, hash_split
from facenet_mtl.data.schema import MAX_AGE, RACES, FaceRecord

LAYOUT = ("the FairFace folder: train/<n>.jpg with fairface_label_train.csv (file,age,gender,race,"
          "service_test), and optionally val/<n>.jpg with fairface_label_val.csv")
COLUMNS = ("file", "age", "gender", "race")
AGE_GROUPS = {"0-2": (0, 2), "3-9": (3, 9), "10-19": (10, 19), "20-29": (20, 29), "30-39": (30, 39),
              "40-49": (40, 49), "50-59": (50, 59), "60-69": (60, 69), "more than 70": (70, MAX_AGE)}
SPREADSHEET_REPAIRS = {"03-Sep": "3-9", "Oct-19": "10-19", "3-Sep": "3-9"}
GENDERS = {"Female": 0, "Male": 1}
RACE_IDS = {"White": "white", "Black": "black", "Indian": "indian", "Latino_Hispanic": "latino_hispanic",
            "East Asian": "east_asian", "Southeast Asian": "southeast_asian", "Middle Eastern": "middle_eastern"}
# Where MTCNN puts the five landmarks in FairFace's crops (fractions of width and height): the
# mean over 235 of 250 shared faces (`benchmarks/framing.py`), made left-right symmetric. The
# per-face spread is larger than in aligned sets (sd 0.04-0.09 of the side), as the crops are not aligned.
FRAMING = ((0.3196, 0.2941), (0.6749, 0.2941), (0.4973, 0.5040), (0.3444, 0.6925), (0.6501, 0.6925))
CITATION = """\
@inproceedings{Karkkainen-WACV-2021,
  author = {Kimmo K{\\"a}rkk{\\"a}inen and Jungseock Joo},
  title = {FairFace: Face Attribute Dataset for Balanced Race, Gender, and Age for Bias Measurement and Mitigation},
  booktitle = {IEEE/CVF Winter Conference on Applications of Computer Vision (WACV)},
  year = {2021}}"""


def age_group_bounds(text: str) -> tuple[int, int] | None:
    """(low, high) years of a FairFace age group, or None; spreadsheet-mangled names repaired.

    >>> age_group_bounds("3-9"), age_group_bounds("03-Sep"), age_group_bounds("more than 70")
    ((3, 9), (3, 9), (70, 100))
    """
    text = str(text).strip()
    return AGE_GROUPS.get(SPREADSHEET_REPAIRS.get(text, text))


def read(source_dir: str | Path, limit: int | None = None) -> ReadResult:
    """Read FairFace's labels from its csv files under `source_dir`."""
    root = existing_path(source_dir, LAYOUT)
    train_csv, val_csv = root / "fairface_label_train.csv", root / "fairface_label_val.csv"
    if not train_csv.is_file() and not val_csv.is_file():
        raise DataError(root, "no fairface_label_train.csv or fairface_label_val.csv", f"point --source at {LAYOUT}")
    result = ReadResult()
    has_val = val_csv.is_file()
    for csv_path, official in ((train_csv, "train"), (val_csv, "val")):
        if not csv_path.is_file():
            continue
        for row in read_csv(csv_path, COLUMNS):
            name = row["file"].strip()
            bounds = age_group_bounds(row["age"])
            gender = GENDERS.get(row["gender"].strip())
            race = RACE_IDS.get(row["race"].strip())
            if bounds is None or gender is None or race is None:
                result.drop("bad_label")
                continue
            path = root / name
            if not path.is_file():
                result.drop("missing_file")
                continue
            if official == "val":
                split = "test"
            else:
                split = carve_valid(name, 0.1) if has_val else hash_split(name)
            labels = {"age_min": float(bounds[0]), "age_max": float(bounds[1]), "gender": gender,
                      "race": RACES.index(race)}
            result.records.append(FaceRecord(image=str(path), source="fairface", file_id=name, split=split,
                                             labels=labels, framing=FRAMING))
    return keep_first(result, limit)


register(DatasetSpec(name="fairface", read=read, layout=LAYOUT, tasks=("age", "gender"), citation=CITATION))

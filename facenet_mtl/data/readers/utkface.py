"""UTKFace (age, gender): aligned and cropped faces whose labels are in the file name.

Names are `[age]_[gender]_[race]_[date&time].jpg.chip.jpg` with UTKFace's gender 0 male,
1 female (ours is the reverse) and race 0-4 (White, Black, Asian, Indian, Others). The release
spells one name `55_0_0_20170116232725357jpg.chip.jpg` (no dot) and one
`24_0_1_20170116220224657 .jpg.chip.jpg` (a space), both accepted; two names
lack the race field (`61_1_20170109150557335.jpg.chip.jpg`): they keep their age and gender, with
race missing. Names that give no age and gender are skipped with a warning (`malformed_name`).
Race is kept for figures per group (`schema.RACES`: UTKFace's ids 0-4 are its first five).
Ages above 100 are dropped (`age_out_of_range`): DEX's age bins stop at 100. The split is by a
hash of the file name, 80/10/10.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult, register
from facenet_mtl.data.readers.common import existing_path, image_files, keep_first
from facenet_mtl.data.readers.splits import hash_split
from facenet_mtl.data.schema import MAX_AGE, FaceRecord

LAYOUT = ("the UTKFace folder of aligned crops: files named "
          "[age]_[gender 0 male/1 female]_[race 0-4]_[date&time].jpg.chip.jpg")
NAME = re.compile(r"^(?P<age>\d+)_(?P<gender>[01])_(?:(?P<race>[0-4])_)?(?P<datetime>\d+) ?\.?jpg(\.chip\.jpg)?$")
CITATION = """\
@inproceedings{Zhang-CVPR-2017,
  author = {Zhifei Zhang and Yang Song and Hairong Qi},
  title = {Age Progression/Regression by Conditional Adversarial Autoencoder},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year = {2017}}"""


def parse_name(name: str) -> tuple[int, int, int | None] | None:
    """(age, our gender 0 female/1 male, race or None) from a UTKFace file name, or None if malformed.

    >>> parse_name("23_1_2_20170116174525125.jpg.chip.jpg"), parse_name("61_1_20170109150557335.jpg.chip.jpg")
    ((23, 0, 2), (61, 0, None))
    """
    match = NAME.match(name)
    if match is None:
        return None
    race = None if match["race"] is None else int(match["race"])
    return int(match["age"]), 1 - int(match["gender"]), race


def read(source_dir: str | Path, limit: int | None = None) -> ReadResult:
    """Read UTKFace's labels from the file names under `source_dir`."""
    root = existing_path(source_dir, LAYOUT)
    if root.is_dir() and not any(root.glob("*.jpg")) and (root / "UTKFace").is_dir():
        root = root / "UTKFace"
    files = image_files(root) if root.is_dir() else []
    if not files:
        raise DataError(root, "no images found", f"point --source at {LAYOUT}")
    result, malformed = ReadResult(), []
    for path in files:
        parsed = parse_name(path.name)
        if parsed is None:
            malformed.append(path.name)
            result.drop("malformed_name")
            continue
        age, gender, race = parsed
        if age > MAX_AGE:
            result.drop("age_out_of_range")
            continue
        result.records.append(FaceRecord(image=str(path), source="utkface", file_id=path.name,
                                         split=hash_split(path.name), labels={"age": age, "gender": gender,
                                                                                  **({} if race is None else {"race": race})}))
    if malformed:
        shown = ", ".join(malformed[:5]) + (", ..." if len(malformed) > 5 else "")
        warnings.warn(f"UTKFace: skipped {len(malformed)} file(s) whose name is not "
                      f"age_gender_race_datetime.jpg.chip.jpg: {shown}", stacklevel=2)
    return keep_first(result, limit)


register(DatasetSpec(name="utkface", read=read, layout=LAYOUT, tasks=("age", "gender"), citation=CITATION))

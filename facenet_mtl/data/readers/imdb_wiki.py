"""IMDB-WIKI (age, gender): `imdb.mat` / `wiki.mat` and the face crops they list.

Each entry has a birth date (MATLAB datenum), the year the photo was taken, a gender, and the
face detector's box and scores on the crop. Age is `photo_taken - birth year`, less one when
the person was born after June: the photo is taken to be from the middle of its year (the
convention of the DEX authors' and most public IMDB-WIKI loaders). The labels are noisy (crawled
birth dates, photos of co-stars), so entries are cleaned as the DEX paper did; the first rule an
entry fails is its drop reason, checked in this order:

    bad_dob          the datenum is not a valid date
    no_face          face_score is -inf (the detector found no face)
    bad_box          face_location is not four finite numbers (a damaged .mat)
    low_face_score   face_score < min_face_score (1.0)
    second_face      a second face was found (second_face_score is not NaN)
    age_out_of_range age outside min_age..max_age (0..100, the DEX bins)
    gender_unknown   gender is NaN (with require_gender=True)
    missing_file     the crop listed in the .mat is not on disk (with check_files=True)

The crops include a margin around the face; `face_location` (x1, y1, x2, y2) is the box in the
crop's pixels, kept as the record's box. The split is by hash of the person id (the file
name's first field), 80/10/10, so no person is in two splits.
"""
from __future__ import annotations

import datetime
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult, register
from facenet_mtl.data.readers.common import existing_path, keep_first
from facenet_mtl.data.readers.splits import hash_split
from facenet_mtl.data.schema import FaceRecord

LAYOUT = ("the {db}_crop folder of IMDB-WIKI (or its parent): {db}_crop/{db}.mat and the crops it "
          "lists, {db}_crop/00/ ... {db}_crop/99/*.jpg")
CITATION = """\
@article{Rothe-IJCV-2018,
  author = {Rasmus Rothe and Radu Timofte and Luc Van Gool},
  title = {Deep expectation of real and apparent age from a single image without facial landmarks},
  journal = {International Journal of Computer Vision},
  volume = {126}, number = {2-4}, pages = {144--157}, year = {2018}}
@inproceedings{Rothe-ICCVW-2015,
  author = {Rasmus Rothe and Radu Timofte and Luc Van Gool},
  title = {DEX: Deep EXpectation of apparent age from a single image},
  booktitle = {IEEE International Conference on Computer Vision Workshops (ICCVW)}, year = {2015}}"""


def read(source_dir: str | Path, db: str = "wiki", min_face_score: float = 1.0, allow_second_face: bool = False,
         min_age: int = 0, max_age: int = 100, require_gender: bool = True, check_files: bool = True,
         split_by: str = "person", limit: int | None = None) -> ReadResult:
    """Read and clean `{db}.mat` under `source_dir` (the `{db}_crop` folder or its parent).

    `split_by="person"` hashes the person id into train/valid/test; "file" hashes the path.
    """
    if db not in ("imdb", "wiki"):
        raise ValueError(f"db must be 'imdb' or 'wiki', got {db!r}")
    if split_by not in ("person", "file"):
        raise ValueError(f"split_by must be 'person' or 'file', got {split_by!r}")
    mat_path = find_mat(source_dir, db)
    crop_dir = mat_path.parent
    entries = load_mat(mat_path, db)
    on_disk = _files_on_disk(crop_dir) if check_files else None
    result = ReadResult()
    for entry in entries:
        reason, age = _check(entry, min_face_score, allow_second_face, min_age, max_age, require_gender)
        if reason is None and on_disk is not None and entry["full_path"] not in on_disk:
            reason = "missing_file"
        if reason:
            result.drop(reason)
            continue
        full_path = entry["full_path"]
        key = _person_id(full_path) if split_by == "person" else full_path
        labels = {"age": age}
        if not math.isnan(entry["gender"]):
            labels["gender"] = int(entry["gender"])
        result.records.append(FaceRecord(
            image=str(crop_dir / full_path), source=db, file_id=full_path, split=hash_split(key),
            labels=labels, box=entry["face_location"]))
    return keep_first(result, limit)


def find_mat(source_dir: str | Path, db: str) -> Path:
    source = existing_path(source_dir, LAYOUT.format(db=db))
    if source.is_file():
        candidates = [source]
    else:
        candidates = [source / f"{db}.mat", source / f"{db}_crop" / f"{db}.mat"]
    for path in candidates:
        if path.is_file() and path.suffix == ".mat":
            return path
    raise DataError(source, f"no {db}.mat found (looked for {', '.join(str(c) for c in candidates)})",
                    f"point --source at {LAYOUT.format(db=db)}; download {db}_crop.tar from the "
                    "IMDB-WIKI page (see datasets/imdb_wiki/README.md)")


# scipy.io.loadmat can crash the interpreter (a segmentation fault, found by
# tests/data/test_readers_fuzz.py with scipy 1.17) on a damaged file, so it runs in a child
# process: a crash there is a DataError here. The child only parses; it sends back the arrays.
_LOADMAT = r"""
import pickle, sys
import scipy.io
try:
    mat = scipy.io.loadmat(sys.argv[1], squeeze_me=False, struct_as_record=True)
    out = ("ok", {k: v for k, v in mat.items() if not k.startswith("__")})
except Exception as exc:  # scipy raises several types for a damaged file
    out = ("error", str(exc) or type(exc).__name__)
sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
"""
LOADMAT_SECONDS = 600


def _loadmat_isolated(mat_path, db):
    import pickle
    import subprocess
    import sys

    fix = f"re-download {db}_crop.tar and extract it again"
    try:
        done = subprocess.run([sys.executable, "-c", _LOADMAT, str(mat_path)], capture_output=True,
                              timeout=LOADMAT_SECONDS)
    except subprocess.TimeoutExpired:
        raise DataError(mat_path, f"reading the MATLAB file took over {LOADMAT_SECONDS} s", fix) from None
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise DataError(mat_path, f"cannot read the MATLAB file (scipy's reader stopped with {how}"
                                  f"{': ' + detail[0] if detail[0] else ''})", fix)
    status, value = pickle.loads(done.stdout)  # noqa: S301 - our own child's output
    if status != "ok":
        raise DataError(mat_path, f"cannot read the MATLAB file ({value})", fix)
    return value


def load_mat(mat_path: str | Path, db: str) -> list[dict[str, Any]]:
    """The entries of `{db}.mat` as dicts of plain Python values, in file order."""
    mat = _loadmat_isolated(mat_path, db)
    if db not in mat:
        found = [k for k in mat if not k.startswith("__")]
        raise DataError(mat_path, f"no struct variable named '{db}' (found {found})",
                        f"use --option db=... matching the file, or the {db}.mat of {db}_crop.tar")
    fields = ("dob", "photo_taken", "full_path", "gender", "face_location", "face_score",
              "second_face_score")
    try:
        struct = mat[db][0, 0]
        names = struct.dtype.names or ()
    except (IndexError, TypeError, AttributeError, ValueError):
        raise DataError(mat_path, f"'{db}' is not a 1x1 MATLAB struct", f"use the original {db}.mat from "
                        f"{db}_crop.tar") from None
    missing = [f for f in fields if f not in names]
    if missing:
        raise DataError(mat_path, f"the '{db}' struct has no field(s) {', '.join(missing)}",
                        f"use the original {db}.mat from {db}_crop.tar")
    try:
        column = {f: np.asarray(struct[f]).reshape(-1) for f in fields}
        count = len(column["dob"])
        return _entries(column, count)
    except (ValueError, TypeError, IndexError, AttributeError) as exc:  # fields of other types or lengths
        raise DataError(mat_path, f"the '{db}' struct's fields are not the expected arrays ({exc})",
                        f"use the original {db}.mat from {db}_crop.tar") from None


def _entries(column, count):
    return [{
        "dob": float(column["dob"][i]),
        "photo_taken": float(column["photo_taken"][i]),
        "full_path": _text(column["full_path"][i]),
        "gender": float(column["gender"][i]),
        "face_location": tuple(float(v) for v in np.asarray(column["face_location"][i]).reshape(-1)[:4]),
        "face_score": float(column["face_score"][i]),
        "second_face_score": float(column["second_face_score"][i]),
    } for i in range(count)]


def birth_year_month(dob: float) -> tuple[int, int] | None:
    """(year, month) of a MATLAB datenum, or None if it is not a valid date."""
    if not math.isfinite(dob):
        return None
    try:
        date = (datetime.datetime.fromordinal(int(dob)) + datetime.timedelta(days=dob % 1)
                - datetime.timedelta(days=366))
    except (ValueError, OverflowError):
        return None
    return date.year, date.month


def age_at_photo(dob: float, photo_taken: float) -> int | None:
    """Age when the photo was taken (taken to be mid-year), or None for a bad birth date."""
    birth = birth_year_month(dob)
    if birth is None or not math.isfinite(photo_taken):
        return None
    year, month = birth
    return int(photo_taken) - year - (1 if month > 6 else 0)


def _check(entry, min_face_score, allow_second_face, min_age, max_age, require_gender):
    age = age_at_photo(entry["dob"], entry["photo_taken"])
    if age is None:
        return "bad_dob", None
    if entry["face_score"] == -np.inf:
        return "no_face", None
    if len(entry["face_location"]) != 4 or not all(map(math.isfinite, entry["face_location"])):
        return "bad_box", None
    if not entry["face_score"] >= min_face_score:
        return "low_face_score", None
    if not allow_second_face and not math.isnan(entry["second_face_score"]):
        return "second_face", None
    if not min_age <= age <= max_age:
        return "age_out_of_range", None
    if require_gender and math.isnan(entry["gender"]):
        return "gender_unknown", None
    return None, age


def _text(cell):
    value = np.asarray(cell).reshape(-1)
    return str(value[0]) if value.size else ""


def _person_id(full_path):
    # wiki: "17/10000217_1981-05-05_2009.jpg" -> "10000217"; imdb: "01/nm0000001_rm..." -> "nm0000001"
    return Path(full_path).name.split("_", 1)[0]


def _files_on_disk(crop_dir):
    # One listing per NN folder is far faster than 460k stat calls on the IMDB crops.
    files = set()
    for folder in os.scandir(crop_dir):
        if folder.is_dir():
            files.update(f"{folder.name}/{name}" for name in os.listdir(folder.path))
    return files


def _reader(db):
    def read_db(source_dir, **options):
        if "db" in options:
            raise TypeError(f"dataset '{db}' reads {db}.mat; choose the dataset name instead of db=")
        return read(source_dir, db=db, **options)

    read_db.__name__ = f"read_{db}"
    read_db.__doc__ = f"Read {db}.mat: `imdb_wiki.read(source_dir, db='{db}', ...)`."
    return read_db


for _db in ("imdb", "wiki"):
    register(DatasetSpec(name=_db, read=_reader(_db), layout=LAYOUT.format(db=_db),
                         tasks=("age", "gender"), citation=CITATION))

"""GENKI-4K (smile), and any smile data set laid out as `<split>/<0|1>/*.jpg` (`smile_folders`).

GENKI-4K: `files/file0001.jpg ...` and `labels.txt`, where line k (`smile yaw pitch roll`, pose
in radians) belongs to `file{k:04d}.jpg`. `labels.txt` is sorted smiles first, so the split is
by a hash of the file name (80/10/10), never by position. The images are loose head-and-shoulders
crops with the face near the centre; by default they are used as they are (centre square, which
frames the face about as our 0.4 margin does); `detect=True` asks the builder to find the face.
Drops: `bad_label` (a line whose smile is not 0 or 1), `missing_file`.
"""
from __future__ import annotations

from pathlib import Path

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult, register
from facenet_mtl.data.readers.common import existing_path, image_files, keep_first, read_text, require_file
from facenet_mtl.data.readers.splits import hash_split
from facenet_mtl.data.schema import FaceRecord

LAYOUT = ("the GENKI-4K folder: files/file0001.jpg ... files/fileNNNN.jpg and labels.txt, one line "
          "'smile yaw pitch roll' per file, line k for file{k:04d}.jpg")
FOLDERS_LAYOUT = ("one folder per split (train/, valid/, test/; val/ is read as valid) holding 0/ "
                  "(no smile) and 1/ (smile) folders of face images (.jpg, .jpeg, .png, .bmp)")
SPLIT_FOLDERS = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}
CITATION = """\
@misc{GENKI-4K,
  author = {{MPLab, University of California, San Diego}},
  title = {The {MPLab GENKI} Database, {GENKI-4K} Subset},
  howpublished = {\\url{http://mplab.ucsd.edu}}, year = {2009}}
@article{Whitehill-TPAMI-2009,
  author = {Jacob Whitehill and Gwen Littlewort and Ian Fasel and Marian Bartlett and Javier Movellan},
  title = {Toward Practical Smile Detection},
  journal = {IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume = {31}, number = {11}, pages = {2106--2111}, year = {2009}}"""


def read(source_dir: str | Path, detect: bool = False, limit: int | None = None) -> ReadResult:
    """Read GENKI-4K under `source_dir` (the folder with files/ and labels.txt)."""
    root = existing_path(source_dir, LAYOUT)
    if not (root / "labels.txt").is_file() and (root / "GENKI4K" / "labels.txt").is_file():
        root = root / "GENKI4K"
    labels_path = require_file(root / "labels.txt", "labels.txt (GENKI-4K's smile labels)",
                               f"point --source at {LAYOUT}")
    files_dir = root / "files"
    if not files_dir.is_dir():
        raise DataError(files_dir, "missing the files/ folder of images", f"point --source at {LAYOUT}")
    lines = [line for line in read_text(labels_path).splitlines() if line.strip()]
    files = image_files(files_dir)
    if len(lines) != len(files):
        raise DataError(labels_path, f"has {len(lines)} label lines but {files_dir} has {len(files)} "
                                     "images; line k must belong to file{k:04d}.jpg",
                        "restore the original labels.txt and files/ folder together")
    on_disk = {p.name for p in files}
    result = ReadResult()
    for k, line in enumerate(lines, start=1):
        name = f"file{k:04d}.jpg"
        smile = line.split()[0]
        if smile not in ("0", "1"):
            result.drop("bad_label")
        elif name not in on_disk:
            result.drop("missing_file")
        else:
            result.records.append(FaceRecord(image=str(files_dir / name), source="genki4k", file_id=f"files/{name}",
                                             split=hash_split(name), labels={"smile": int(smile)}, detect=detect))
    return keep_first(result, limit)


def read_smile_folders(source_dir: str | Path, detect: bool = False, limit: int | None = None) -> ReadResult:
    """Read `<split>/<0|1>/*` under `source_dir`: label from the folder, split from its parent."""
    root = existing_path(source_dir, FOLDERS_LAYOUT)
    children = root.iterdir() if root.is_dir() else ()
    split_dirs = sorted(d for d in children if d.is_dir() and d.name.lower() in SPLIT_FOLDERS)
    if not split_dirs:
        raise DataError(root, "no train/, valid/ or test/ folder found", f"point --source at {FOLDERS_LAYOUT}")
    result = ReadResult()
    for split_dir in split_dirs:
        for smile in (0, 1):
            if (split_dir / str(smile)).is_dir():
                for path in image_files(split_dir / str(smile)):
                    result.records.append(FaceRecord(
                        image=str(path), source="smile_folders", file_id=path.relative_to(root).as_posix(),
                        split=SPLIT_FOLDERS[split_dir.name.lower()], labels={"smile": smile}, detect=detect))
    if not result.records:
        raise DataError(root, "no images in any <split>/0/ or <split>/1/ folder",
                        f"point --source at {FOLDERS_LAYOUT}")
    return keep_first(result, limit)


register(DatasetSpec(name="genki4k", read=read, layout=LAYOUT, tasks=("smile",), citation=CITATION))
register(DatasetSpec(name="smile_folders", read=read_smile_folders, layout=FOLDERS_LAYOUT,
                     tasks=("smile",)))

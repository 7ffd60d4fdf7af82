"""FER2013 (emotion): Kaggle's `fer2013.csv`, its image-folder release (folders or one zip), and
optionally the FER+ relabelling (`fer2013new.csv`).

The three FER2013 usages stay apart: Training -> "train" (with about `valid_fraction` of it
carved out as "valid" by a hash of the file id), PublicTest -> "test", PrivateTest ->
"private_test". Drops: `bad_pixels` (not 2304 values in 0..255), `bad_emotion` (not 0..6),
`bad_usage` (csv), `unknown_split` (folder files without a Training_/PublicTest_/PrivateTest_
prefix outside train/ and test/).

FER+ (Barsoum et al. 2016) has ten crowd votes per fer2013.csv row. The label is the majority
vote: a tie for the most votes drops the row (`fer_plus_tie`); a majority of "unknown" or "NF"
(not a face) drops it as `not_face`; a majority of "contempt", which FER2013 has no class for,
drops it as `contempt`. FER+ rows are matched to fer2013.csv rows by position, so it needs the
csv source.
"""
from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult, register
from facenet_mtl.data.readers.common import existing_path, keep_first, read_csv
from facenet_mtl.data.readers.splits import carve_valid
from facenet_mtl.data.schema import EMOTIONS, FaceRecord

# FER2013's 48-px crops are too small for reliable detection (MTCNN finds ~83 % at that size and
# costs ~90 ms each), but they are registered so the face sits in about the same place: they are
# aligned by this typical layout of the five landmarks (fractions of the side; the mean over 207
# of 250 training faces where MTCNN found one, `benchmarks/framing.py`, made left-right symmetric).
FRAMING = ((0.3093, 0.3673), (0.6749, 0.3673), (0.4921, 0.5848), (0.3396, 0.7668), (0.6447, 0.7668))

LAYOUT = ("fer2013.csv (columns emotion, pixels, Usage) or the folder holding it; or the image-folder "
          "release: train/<emotion>/Training_<id>.jpg and test/<emotion>/PublicTest_<id>.jpg (or "
          "PrivateTest_<id>.jpg), as folders or one .zip of them; emotion folders: " + ", ".join(EMOTIONS))
USAGE_SPLITS = {"Training": "train", "PublicTest": "test", "PrivateTest": "private_test"}
FOLDER_SPLITS = {"train": "train", "test": "test"}
PIXELS = 48 * 48
# FER+ vote columns -> our emotion id (None: no FER2013 class).
FER_PLUS_EMOTIONS = {"neutral": 6, "happiness": 3, "surprise": 5, "sadness": 4, "anger": 0,
                     "disgust": 1, "fear": 2, "contempt": None}
FER_PLUS_NOT_FACE = ("unknown", "NF")
FER_PLUS_VOTES = (*FER_PLUS_EMOTIONS, *FER_PLUS_NOT_FACE)
CITATION = """\
@inproceedings{Goodfellow-ICONIP-2013,
  author = {Ian J. Goodfellow and Dumitru Erhan and Pierre Luc Carrier and Aaron Courville and
            Mehdi Mirza and Ben Hamner and Will Cukierski and Yichuan Tang and David Thaler and
            Dong-Hyun Lee and others},
  title = {Challenges in Representation Learning: A report on three machine learning contests},
  booktitle = {International Conference on Neural Information Processing (ICONIP)},
  pages = {117--124}, year = {2013}}
@inproceedings{Barsoum-ICMI-2016,
  author = {Emad Barsoum and Cha Zhang and Cristian Canton Ferrer and Zhengyou Zhang},
  title = {Training Deep Networks for Facial Expression Recognition with Crowd-Sourced Label
           Distribution},
  booktitle = {ACM International Conference on Multimodal Interaction (ICMI)}, year = {2016}}"""


def read(source_dir: str | Path, fer_plus: str | Path | None = None, valid_fraction: float = 0.1,
         limit: int | None = None) -> ReadResult:
    """Read FER2013 from a csv, a folder of it or of the image folders, or a zip of the folders."""
    source = existing_path(source_dir, LAYOUT)
    kind, path = _find_source(source)
    if fer_plus is not None and kind != "csv":
        raise DataError(fer_plus, "FER+ labels are matched to fer2013.csv rows by position, so they "
                                  f"need the csv source, not {path}", "point --source at fer2013.csv")
    if kind == "csv":
        result = _read_csv(path, valid_fraction, fer_plus)
    elif kind == "zip":
        result = _read_members(path, _zip_members(path), lambda m: (str(path), m), valid_fraction)
    else:
        members = sorted(p.relative_to(path).as_posix() for d in FOLDER_SPLITS if (path / d).is_dir()
                         for p in (path / d).rglob("*") if p.is_file())
        result = _read_members(path, members, lambda m: str(path / m), valid_fraction)
    return keep_first(result, limit)


def _find_source(source):
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return "csv", source
        if source.suffix.lower() == ".zip":
            return "zip", source
        raise DataError(source, "not a .csv or .zip file", f"point --source at {LAYOUT}")
    for csv_path in (source / "fer2013.csv", source / "fer2013" / "fer2013.csv"):
        if csv_path.is_file():
            return "csv", csv_path
    if any((source / d).is_dir() for d in FOLDER_SPLITS):
        return "folders", source
    zips = sorted(source.glob("*.zip"))
    if len(zips) == 1:
        return "zip", zips[0]
    raise DataError(source, "found no fer2013.csv, no train/ or test/ folder and no single .zip",
                    f"point --source at {LAYOUT}")


def _read_csv(path, valid_fraction, fer_plus):
    rows = read_csv(path, ("emotion", "pixels", "Usage"))
    votes = _read_fer_plus(fer_plus, len(rows)) if fer_plus is not None else None
    result = ReadResult()
    for index, row in enumerate(rows):
        split = USAGE_SPLITS.get(row["Usage"].strip())
        pixels = _pixels(row["pixels"])
        emotion = _emotion(row["emotion"])
        if split is None:
            result.drop("bad_usage")
            continue
        if pixels is None:
            result.drop("bad_pixels")
            continue
        if votes is not None:
            emotion, reason = fer_plus_label(votes[index])
            if reason:
                result.drop(reason)
                continue
        elif emotion is None:
            result.drop("bad_emotion")
            continue
        file_id = f"fer{index:07d}"  # FER+'s image name for this row, without ".png"
        if split == "train":
            split = carve_valid(file_id, valid_fraction)
        result.records.append(FaceRecord(image=pixels.reshape(48, 48), source="fer2013", file_id=file_id,
                                         split=split, labels={"emotion": emotion}, framing=FRAMING))
    return result


def _pixels(text):
    try:
        values = np.array(text.split(), dtype=np.int32)
    except ValueError:
        return None
    if values.size != PIXELS or values.min() < 0 or values.max() > 255:
        return None
    return values.astype(np.uint8)


def _emotion(text):
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if 0 <= value < len(EMOTIONS) else None


def _read_fer_plus(path, expected_rows):
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "FER+ file not found", "pass fer_plus=<path to fer2013new.csv>")
    rows = read_csv(path, ("Usage", "Image name", *FER_PLUS_VOTES))
    if len(rows) != expected_rows:
        raise DataError(path, f"has {len(rows)} rows but fer2013.csv has {expected_rows}; FER+ rows "
                              "must match fer2013.csv row by row",
                        "use the fer2013new.csv that goes with this fer2013.csv")
    try:
        return [[int(float(row[c] or 0)) for c in FER_PLUS_VOTES] for row in rows]
    except (ValueError, OverflowError) as exc:
        raise DataError(path, f"a vote count is not a number ({exc})", "use the original fer2013new.csv") from None


def fer_plus_label(votes: Sequence[int]) -> tuple[int | None, str | None]:
    """(emotion id, None) by majority of FER+ `votes` (in FER_PLUS_VOTES order), or (None, reason)."""
    top = max(votes)
    winners = [name for name, count in zip(FER_PLUS_VOTES, votes) if count == top]
    if top <= 0:
        return None, "not_face"
    if len(winners) > 1:
        return None, "fer_plus_tie"
    if winners[0] in FER_PLUS_NOT_FACE:
        return None, "not_face"
    if FER_PLUS_EMOTIONS[winners[0]] is None:
        return None, "contempt"
    return FER_PLUS_EMOTIONS[winners[0]], None


def _zip_members(zip_path):
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return [m for m in archive.namelist() if not m.endswith("/")]
    except zipfile.BadZipFile as exc:
        raise DataError(zip_path, f"not a valid zip file ({exc})", "download the zip again") from None


def _read_members(source, members, image_source, valid_fraction):
    """Records from image paths `<any top folders>/<train|test>/<emotion>/<Usage>_<id>.jpg`."""
    result = ReadResult()
    images = [m for m in members if Path(m).suffix.lower() in (".jpg", ".jpeg", ".png")]
    if not images:
        raise DataError(source, "no images found", f"expected {LAYOUT}")
    for member in sorted(images):
        parts = member.split("/")
        if len(parts) < 3:
            raise DataError(f"{source}:{member}", "image not inside <train|test>/<emotion>/",
                            f"expected {LAYOUT}")
        folder, emotion_name, name = parts[-3].lower(), parts[-2].lower(), parts[-1]
        if emotion_name not in EMOTIONS:
            raise DataError(f"{source}:{member}", f"unknown emotion folder '{parts[-2]}'",
                            f"emotion folders must be named {', '.join(EMOTIONS)}")
        usage = name.split("_", 1)[0]
        split = USAGE_SPLITS.get(usage) or FOLDER_SPLITS.get(folder)
        if split is None:
            result.drop("unknown_split")
            continue
        if split == "train":
            split = carve_valid(member, valid_fraction)
        result.records.append(FaceRecord(image=image_source(member), source="fer2013", file_id=member,
                                         split=split, labels={"emotion": EMOTIONS.index(emotion_name)},
                                         framing=FRAMING))
    return result


register(DatasetSpec(name="fer2013", read=read, layout=LAYOUT, tasks=("emotion",), citation=CITATION))

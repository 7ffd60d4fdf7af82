"""CelebA (smile, gender): the aligned-and-cropped images and their attribute and split lists.

`list_attr_celeba.txt` has the image count on line 1, the 40 attribute names on line 2, then one
line per image with each attribute as 1 or -1; `Smiling` gives smile and `Male` gender
(1 -> 1, -1 -> 0). `list_eval_partition.txt` gives the official split, 0 train, 1 valid,
2 test. The Kaggle copy's csv versions (`list_attr_celeba.csv`, `list_eval_partition.csv`) and
the official Anno/ Eval/ Img/ folders are found too. Without a partition list, the split is
carved 80/10/10 by a salted hash of the file name, and the manifest's `reader_notes` say so
(ids 000001-162770 are all in the official train partition, so such a test split is not the
official one). The aligned images (178x218, or a copy downscaled by two) are centred on the
eyes with more room than our template, so they are aligned by CelebA's typical landmark layout
(`FRAMING`); `detect=True` finds each face instead. Rows whose image is not on disk are counted
(`missing_file`). Drops: `missing_file`, `no_partition` (an image absent from the partition
list), `bad_label` (a value not 1 or -1).
"""
from __future__ import annotations

from pathlib import Path

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult, register
from facenet_mtl.data.readers.common import existing_path, keep_first, read_csv, read_text
from facenet_mtl.data.readers.splits import hash_split
from facenet_mtl.data.schema import FaceRecord

LAYOUT = ("the CelebA folder: img_align_celeba/000001.jpg ..., list_attr_celeba.txt and "
          "list_eval_partition.txt (also found in Img/, Anno/ and Eval/ as in the official "
          "download, or as the Kaggle copy's .csv files)")
PARTITIONS = {"0": "train", "1": "valid", "2": "test"}
ATTRIBUTES = {"Smiling": "smile", "Male": "gender"}
# Where MTCNN puts the five landmarks in CelebA's aligned crops (fractions of width and height):
# the mean over 247 of 250 shared faces (`benchmarks/framing.py`), made left-right symmetric.
FRAMING = ((0.3859, 0.5071), (0.6059, 0.5071), (0.4959, 0.6184), (0.3972, 0.6981), (0.5945, 0.6981))
CITATION = """\
@inproceedings{Liu-ICCV-2015,
  author = {Ziwei Liu and Ping Luo and Xiaogang Wang and Xiaoou Tang},
  title = {Deep Learning Face Attributes in the Wild},
  booktitle = {Proceedings of International Conference on Computer Vision (ICCV)},
  year = {2015}}"""


def read(source_dir: str | Path, detect: bool = False, limit: int | None = None) -> ReadResult:
    """Read CelebA's smile and gender labels with the official partition."""
    root = existing_path(source_dir, LAYOUT)
    attr_path = _find(root, ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt", "list_attr_celeba.csv"))
    try:
        partition_path = _find(root, ("list_eval_partition.txt", "Eval/list_eval_partition.txt",
                                      "list_eval_partition.csv"))
    except DataError:
        partition_path = None
    image_dir = _find(root, ("img_align_celeba/img_align_celeba", "img_align_celeba", "Img/img_align_celeba"),
                      directory=True)
    attributes = _read_attributes(attr_path)
    partitions = _read_partitions(partition_path) if partition_path else None
    on_disk = {p.name for p in image_dir.iterdir()}
    result = ReadResult()
    if partitions is None:
        result.notes["split"] = ("list_eval_partition.txt not found: train/valid/test carved 80/10/10 by a "
                                 "salted hash of the file name (not the official partition)")
    for name, values in attributes:
        labels = {field: {"1": 1, "-1": 0}.get(values[attr]) for attr, field in ATTRIBUTES.items()}
        if None in labels.values():
            result.drop("bad_label")
        elif partitions is not None and name not in partitions:
            result.drop("no_partition")
        elif name not in on_disk:
            result.drop("missing_file")
        else:
            split = partitions[name] if partitions is not None else hash_split(name)
            result.records.append(FaceRecord(image=str(image_dir / name), source="celeba", file_id=name,
                                             split=split, labels=labels, detect=detect,
                                             framing=None if detect else FRAMING))  # type: ignore[arg-type]  # schema: `tuple` = None
        if limit and len(result.records) >= int(limit):
            break
    return keep_first(result, limit)


def _find(root, candidates, directory=False):
    for candidate in candidates:
        path = root / candidate
        if path.is_dir() if directory else path.is_file():
            return path
    raise DataError(root, f"missing {candidates[0]} (looked for {', '.join(candidates)})",
                    f"point --source at {LAYOUT}")


def _read_attributes(path):
    """[(file name, {attribute: "1" | "-1"})] in file order."""
    if path.suffix == ".csv":
        rows = read_csv(path, ("image_id", *ATTRIBUTES))
        return [(row["image_id"].strip(), {a: row[a].strip() for a in ATTRIBUTES}) for row in rows]
    lines = read_text(path).splitlines()
    if len(lines) < 2:
        raise DataError(path, "expected the image count, the attribute names, then one line per image",
                        "use the original list_attr_celeba.txt")
    names = lines[1].split()
    missing = [a for a in ATTRIBUTES if a not in names]
    if missing:
        raise DataError(path, f"attribute column(s) {', '.join(missing)} not in the header line {names[:5]}...",
                        "use the original list_attr_celeba.txt (40 attributes)")
    columns = {a: names.index(a) + 1 for a in ATTRIBUTES}  # + 1: the file name comes first
    out = []
    for line in lines[2:]:
        fields = line.split()
        if len(fields) == len(names) + 1:
            out.append((fields[0], {a: fields[i] for a, i in columns.items()}))
        elif fields:
            out.append((fields[0], {a: "" for a in columns}))  # a short line: bad_label
    return out


def _read_partitions(path):
    if path.suffix == ".csv":
        rows = read_csv(path, ("image_id", "partition"))
        pairs = [(row["image_id"].strip(), row["partition"].strip()) for row in rows]
    else:
        pairs = [tuple(line.split()[:2]) for line in read_text(path).splitlines() if len(line.split()) >= 2]
    return {name: PARTITIONS[p] for name, p in pairs if p in PARTITIONS}


register(DatasetSpec(name="celeba", read=read, layout=LAYOUT, tasks=("smile", "gender"), citation=CITATION))

"""APPA-REAL (apparent and real age, gender) and ChaLearn LAP 2016 (apparent age).

APPA-REAL's 7,591 images (train 4,113, valid 1,500, test 1,978) each have about 38 human
guesses of the age, averaged in `gt_avg_{split}.csv` (`apparent_age_avg`, `apparent_age_std`),
and the real age. The release also has a cropped, aligned face `NNNNNN.jpg_face.jpg` beside each
image: we use it when present, else the full image with face detection. `allcategories_*.csv`
adds gender, race, makeup, time and happiness. ChaLearn LAP 2016's apparent-age track used the
same images with the apparent labels only (`{split}_gt.csv`: image, mean, stdv), full images.

Ages outside 0..100 (the DEX bins) are dropped as `age_out_of_range`; csv rows whose image is
not on disk as `missing_file`; rows with an unreadable or non-finite number (`inf`, `nan`) or a
negative std as `bad_label`.
"""
from __future__ import annotations

from pathlib import Path

from facenet_mtl.errors import DataError
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult, register
from facenet_mtl.data.readers.common import as_float, existing_path, keep_first, read_csv
from facenet_mtl.data.schema import MAX_AGE, FaceRecord

SPLITS = ("train", "valid", "test")
APPA_LAYOUT = ("the extracted appa-real-release folder: train/, valid/, test/ with NNNNNN.jpg and its "
               "NNNNNN.jpg_face.jpg crop, gt_avg_{train,valid,test}.csv (file_name, apparent_age_avg, "
               "apparent_age_std, real_age) and, for gender, allcategories_{train,valid,test}.csv")
CHALEARN_LAYOUT = ("the ChaLearn LAP 2016 apparent-age files, each zip extracted into its own folder: "
                   "train/*.jpg with train_gt.csv, valid/*.jpg with valid_gt.csv, test/*.jpg with "
                   "test_gt.csv (columns image, mean, stdv)")
APPA_CITATION = """\
@inproceedings{Agustsson-FG-2017,
  author = {Eirikur Agustsson and Radu Timofte and Sergio Escalera and Xavier Baro and
            Isabelle Guyon and Rasmus Rothe},
  title = {Apparent and real age estimation in still images with deep residual regressors on
           {APPA-REAL} database},
  booktitle = {12th IEEE International Conference on Automatic Face and Gesture Recognition (FG)},
  year = {2017}}"""
CHALEARN_CITATION = """\
@inproceedings{Escalera-CVPRW-2016,
  author = {Sergio Escalera and Mercedes Torres Torres and Brais Martinez and Xavier Baro and
            Hugo Jair Escalante and Isabelle Guyon and Georgios Tzimiropoulos and Ciprian Corneanu
            and Marc Oliu and Mohammad Ali Bagheri and Michel Valstar},
  title = {ChaLearn Looking at People and Faces of the World: Face Analysis Workshop and
           Challenge 2016},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition Workshops (CVPRW)},
  year = {2016}}"""


def read(source_dir: str | Path, age_target: str = "apparent", limit: int | None = None) -> ReadResult:
    """Read APPA-REAL; `age_target` "apparent" (the mean guess, with its std) or "real"."""
    if age_target not in ("apparent", "real"):
        raise ValueError(f"age_target must be 'apparent' or 'real', got {age_target!r}")
    root = existing_path(source_dir, APPA_LAYOUT)
    if not any((root / f"gt_avg_{s}.csv").is_file() for s in SPLITS) and (root / "appa-real-release").is_dir():
        root = root / "appa-real-release"
    csv_paths = {s: root / f"gt_avg_{s}.csv" for s in SPLITS if (root / f"gt_avg_{s}.csv").is_file()}
    if not csv_paths:
        raise DataError(root, "no gt_avg_{train,valid,test}.csv found",
                        f"point --source at {APPA_LAYOUT}")
    result = ReadResult()
    for split, csv_path in csv_paths.items():
        genders = _genders(root / f"allcategories_{split}.csv")
        on_disk = _listing(root / split)
        for row in read_csv(csv_path, ("file_name", "apparent_age_avg", "apparent_age_std", "real_age")):
            name = row["file_name"].strip()
            apparent, std, real = (as_float(row[c]) for c in ("apparent_age_avg", "apparent_age_std", "real_age"))
            age = apparent if age_target == "apparent" else real
            if age != age or (age_target == "apparent" and not std >= 0):  # NaN: unreadable or inf
                result.drop("bad_label")
                continue
            if not 0 <= age <= MAX_AGE:
                result.drop("age_out_of_range")
                continue
            crop = f"{name}_face.jpg"
            if crop in on_disk:
                image, detect = root / split / crop, False
            elif name in on_disk:
                image, detect = root / split / name, True
            else:
                result.drop("missing_file")
                continue
            labels = {"age": age}
            if age_target == "apparent":
                labels["age_std"] = std
            if genders.get(name) is not None:
                labels["gender"] = genders[name]
            result.records.append(FaceRecord(image=str(image), source="appa_real", file_id=f"{split}/{name}",
                                             split=split, labels=labels, detect=detect))
    return keep_first(result, limit)


def read_chalearn_lap_2016(source_dir: str | Path, limit: int | None = None) -> ReadResult:
    """Read ChaLearn LAP 2016 apparent age: full images (detect=True), age and age_std."""
    root = existing_path(source_dir, CHALEARN_LAYOUT)
    csv_paths = {s: root / f"{s}_gt.csv" for s in SPLITS if (root / f"{s}_gt.csv").is_file()}
    if not csv_paths:
        raise DataError(root, "no {train,valid,test}_gt.csv found", f"point --source at {CHALEARN_LAYOUT}")
    result = ReadResult()
    for split, csv_path in csv_paths.items():
        on_disk = _listing(root / split)
        for row in read_csv(csv_path, ("image", "mean", "stdv")):
            name = row["image"].strip()
            age, std = as_float(row["mean"]), as_float(row["stdv"])
            if age != age or not std >= 0:  # NaN: unreadable or inf
                result.drop("bad_label")
            elif not 0 <= age <= MAX_AGE:
                result.drop("age_out_of_range")
            elif name not in on_disk:
                result.drop("missing_file")
            else:
                result.records.append(FaceRecord(
                    image=str(root / split / name), source="chalearn_lap_2016", file_id=f"{split}/{name}",
                    split=split, labels={"age": age, "age_std": std}, detect=True))
    return keep_first(result, limit)


def _genders(path):
    """file name -> gender (0 female, 1 male) from allcategories_*.csv; {} if it is absent."""
    if not Path(path).is_file():
        return {}
    words = {"female": 0, "male": 1}
    return {row["file"].strip(): words.get(row["gender"].strip().lower())
            for row in read_csv(path, ("file", "gender"))}


def _listing(directory):
    return set(p.name for p in Path(directory).iterdir()) if Path(directory).is_dir() else set()


register(DatasetSpec(name="appa_real", read=read, layout=APPA_LAYOUT,
                     tasks=("age", "gender"), citation=APPA_CITATION))
register(DatasetSpec(name="chalearn_lap_2016", read=read_chalearn_lap_2016, layout=CHALEARN_LAYOUT,
                     tasks=("age",), citation=CHALEARN_CITATION))

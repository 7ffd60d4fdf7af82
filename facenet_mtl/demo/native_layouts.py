"""Writers of each dataset's native on-disk layout, from faces given with OUR label conventions.

The readers' tests write their fixtures with these, and the demo data generator writes its
demo datasets with them, so a reader is always exercised on the format it reads in real use.
A face is a dict: `image` (RGB uint8 array) plus the label keys each writer lists; labels follow
`facenet_mtl.data.schema` (gender 0 female, 1 male; emotion ids of FER2013). Writers create
`root` and return the list of paths (or zip members) of the images they wrote.

>>> import numpy as np, tempfile
>>> root = tempfile.mkdtemp()
>>> face = {"image": np.zeros((40, 40, 3), np.uint8), "smile": 1}
>>> [p.name for p in write_genki4k(root, [face])]
['file0001.jpg']
"""
import csv
import datetime
import zipfile
from pathlib import Path

import cv2
import numpy as np

from facenet_mtl.data.images import encode_jpeg
from facenet_mtl.data.schema import EMOTIONS

FER_USAGE_DIRS = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}
FER_PLUS_COLUMNS = ("Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
                    "disgust", "fear", "contempt", "unknown", "NF")
FER_PLUS_VOTES = FER_PLUS_COLUMNS[2:]
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young")
MATLAB_DATENUM_OFFSET = 366  # datenum(d) = d.toordinal() + 366 (MATLAB counts from year 0)


def _write_jpeg(path, rgb):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(rgb))
    return path


def _grey(image):
    return image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def _cell(values):
    """A MATLAB 1xN cell array for `scipy.io.savemat`."""
    cell = np.empty((1, len(values)), dtype=object)
    for i, value in enumerate(values):
        cell[0, i] = value
    return cell


def _row(values):
    return np.asarray(values, dtype=np.float64).reshape(1, -1)


# --- IMDB-WIKI ----------------------------------------------------------------------------------

def matlab_datenum(date):
    return float(date.toordinal() + MATLAB_DATENUM_OFFSET)


def _birth_date(face, index, photo_taken):
    # Age = photo_taken - birth year, minus one when born after June (the photo is taken to be
    # mid-year): pick a birth month, then the year that gives the face's age.
    month = int(face.get("birth_month", 1 + (5 * index) % 12))
    year = photo_taken - int(face["age"]) - (1 if month > 6 else 0)
    return datetime.date(year, month, 15)


def write_imdb_wiki(root, db, faces):
    """`root/{db}_crop/{db}.mat` (the real struct, via scipy.io.savemat) and its JPEG crops.

    Face keys: image, age (int), gender (0/1, None for NaN), face_box (x1, y1, x2, y2) or None
    (no face: face_score -inf), face_score (3.0), second_face_score (NaN), name, photo_taken
    (2009), birth_month, dob (a raw MATLAB datenum, overriding age), full_path, missing_file
    (list it in the .mat but write no JPEG).
    """
    import scipy.io

    if db not in ("imdb", "wiki"):
        raise ValueError(f"db must be 'imdb' or 'wiki', got {db!r}")
    crop_dir = Path(root) / f"{db}_crop"
    crop_dir.mkdir(parents=True, exist_ok=True)
    columns = {k: [] for k in ("dob", "photo_taken", "full_path", "gender", "name", "face_location",
                               "face_score", "second_face_score")}
    written = []
    for i, face in enumerate(faces):
        photo_taken = int(face.get("photo_taken", 2009))
        birth = _birth_date(face, i, photo_taken) if "age" in face else datetime.date(1980, 1, 1)
        dob = float(face["dob"]) if "dob" in face else matlab_datenum(birth)
        if db == "wiki":  # e.g. 17/10000217_1981-05-05_2009.jpg
            person = 10000000 + i
            stem = f"{person}_{birth.year}-{birth.month:02d}-{birth.day:02d}_{photo_taken}"
        else:  # e.g. 01/nm0000001_rm124825600_1899-5-10_1968.jpg (month and day not zero-padded)
            person = 1 + i
            stem = f"nm{person:07d}_rm{100000000 + i}_{birth.year}-{birth.month}-{birth.day}_{photo_taken}"
        full_path = face.get("full_path", f"{person % 100:02d}/{stem}.jpg")
        box = face.get("face_box")
        gender = face.get("gender")
        columns["dob"].append(dob)
        columns["photo_taken"].append(photo_taken)
        columns["full_path"].append(full_path)
        columns["gender"].append(np.nan if gender is None else float(gender))
        columns["name"].append(face.get("name", f"Person {i}"))
        columns["face_location"].append(
            np.asarray(box if box is not None else (1, 1, 1, 1), np.float64).reshape(1, 4))
        columns["face_score"].append(float(face.get("face_score", 3.0)) if box is not None else -np.inf)
        columns["second_face_score"].append(float(face.get("second_face_score", np.nan)))
        if not face.get("missing_file", False):
            written.append(_write_jpeg(crop_dir / full_path, face["image"]))
    struct = {
        "dob": _row(columns["dob"]),
        "photo_taken": _row(columns["photo_taken"]),
        "full_path": _cell(columns["full_path"]),
        "gender": _row(columns["gender"]),
        "name": _cell(columns["name"]),
        "face_location": _cell(columns["face_location"]),
        "face_score": _row(columns["face_score"]),
        "second_face_score": _row(columns["second_face_score"]),
    }
    if db == "imdb":  # celeb_id is the 1-based index of the person's name in celeb_names
        celeb_names = sorted(set(columns["name"]))
        struct["celeb_names"] = _cell(celeb_names)
        struct["celeb_id"] = _row([celeb_names.index(n) + 1 for n in columns["name"]])
    scipy.io.savemat(crop_dir / f"{db}.mat", {db: struct}, format="5", oned_as="row")
    return written


# --- APPA-REAL and ChaLearn LAP 2016 ------------------------------------------------------------

def _gender_word(gender):
    return "" if gender is None else ("male" if int(gender) == 1 else "female")


def write_appa_real(root, faces):
    """The APPA-REAL release: `{train,valid,test}/NNNNNN.jpg` with `NNNNNN.jpg_face.jpg` crops,
    `gt_avg_{split}.csv` and `allcategories_{split}.csv`.

    Face keys: image, split, apparent_age, apparent_std, real_age, gender (0/1 or None), and
    optional face_image (the crop; default: the image's centre square), no_face_crop (write
    no `_face.jpg`), num_ratings (30). Files are numbered across splits in the given order.
    """
    root = Path(root)
    gt_rows, category_rows, written = {}, {}, []
    for i, face in enumerate(faces):
        split, name = face["split"], f"{i:06d}.jpg"
        written.append(_write_jpeg(root / split / name, face["image"]))
        if not face.get("no_face_crop", False):
            crop = face.get("face_image")
            if crop is None:
                height, width = face["image"].shape[:2]
                side = min(height, width)
                crop = face["image"][(height - side) // 2:(height + side) // 2,
                                     (width - side) // 2:(width + side) // 2]
            _write_jpeg(root / split / f"{name}_face.jpg", crop)
        gt_rows.setdefault(split, []).append(
            (name, int(face.get("num_ratings", 30)), f"{float(face['apparent_age']):.6f}",
             f"{float(face['apparent_std']):.6f}", int(face["real_age"])))
        category_rows.setdefault(split, []).append(
            (name, _gender_word(face.get("gender")), face.get("race", "caucasian"),
             face.get("makeup", "nomakeup"), face.get("time", "modernphoto"),
             face.get("happiness", "neutral")))
    for split, rows in gt_rows.items():
        _write_csv(root / f"gt_avg_{split}.csv",
                   ("file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age"), rows)
        _write_csv(root / f"allcategories_{split}.csv",
                   ("file", "gender", "race", "makeup", "time", "happiness"), category_rows[split])
    return written


def write_chalearn_lap_2016(root, faces):
    """ChaLearn LAP 2016 apparent age as released: `{split}/NNNNNN.jpg` and `{split}_gt.csv`
    (`image,mean,stdv`) for split in train, valid, test. Face keys: image, split, apparent_age,
    apparent_std. Files are numbered across splits in the given order.
    """
    root = Path(root)
    rows, written = {}, []
    for i, face in enumerate(faces):
        split, name = face["split"], f"{i:06d}.jpg"
        written.append(_write_jpeg(root / split / name, face["image"]))
        rows.setdefault(split, []).append(
            (name, f"{float(face['apparent_age']):.6f}", f"{float(face['apparent_std']):.6f}"))
    for split, split_rows in rows.items():
        _write_csv(root / f"{split}_gt.csv", ("image", "mean", "stdv"), split_rows)
    return written


def _write_csv(path, header, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- FER2013 and FER+ ---------------------------------------------------------------------------

def write_fer2013_csv(path, faces):
    """Kaggle's `fer2013.csv`: `emotion,pixels,Usage`, 2304 space-separated grey values a row.

    Face keys: image (48x48 grey or RGB), emotion (0-6), usage (Training / PublicTest /
    PrivateTest); `pixels` (a string) replaces the image's values verbatim, for broken rows.
    """
    rows = []
    for face in faces:
        pixels = face.get("pixels")
        if pixels is None:
            grey = _grey(face["image"])
            if grey.shape != (48, 48):
                grey = cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA)
            pixels = " ".join(map(str, grey.reshape(-1).tolist()))
        rows.append((face["emotion"], pixels, face.get("usage", "Training")))
    return _write_csv(path, ("emotion", "pixels", "Usage"), rows)


def write_fer2013_folders(root, faces, zip_path=None):
    """The image-folder release: `train/<emotion>/Training_<id>.jpg`, `test/<emotion>/
    PublicTest_<id>.jpg` / `PrivateTest_<id>.jpg` (grey JPEGs); with `zip_path`, the same
    members in one uncompressed zip (no folder entries, no top folder), as the shared copy.

    Face keys: image, emotion (0-6), usage (Training), id (default: the face's index).
    Returns the paths, or the zip member names.
    """
    members = []
    for i, face in enumerate(faces):
        usage = face.get("usage", "Training")
        member = f"{FER_USAGE_DIRS[usage]}/{EMOTIONS[int(face['emotion'])]}/{usage}_{face.get('id', i)}.jpg"
        members.append((member, encode_jpeg(_grey(face["image"]))))
    if zip_path is not None:
        Path(zip_path).parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
            for member, data in members:
                archive.writestr(member, data)
        return [m for m, _ in members]
    written = []
    for member, data in members:
        path = Path(root) / member
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def write_fer_plus(path, rows):
    """FER+'s `fer2013new.csv`: Usage, Image name and ten vote counts, one row per fer2013.csv row.

    Each row is a dict of vote counts by FER+ column name (neutral, happiness, surprise, sadness,
    anger, disgust, fear, contempt, unknown, NF; absent = 0), with optional usage (Training) and
    image_name (`fer{row:07d}.png`; FER+ leaves it empty for rows that are not faces).
    """
    out = []
    for i, row in enumerate(rows):
        out.append((row.get("usage", "Training"), row.get("image_name", f"fer{i:07d}.png"),
                    *(int(row.get(name, 0)) for name in FER_PLUS_VOTES)))
    return _write_csv(path, FER_PLUS_COLUMNS, out)


# --- Smile: GENKI-4K and image folders ----------------------------------------------------------

def write_genki4k(root, faces):
    """GENKI-4K: `files/file0001.jpg ...` and `labels.txt`, line k `smile yaw pitch roll` for
    file k. Face keys: image, smile (0/1), yaw, pitch, roll (radians, default 0)."""
    root = Path(root)
    written, lines = [], []
    for k, face in enumerate(faces, start=1):
        written.append(_write_jpeg(root / "files" / f"file{k:04d}.jpg", face["image"]))
        pose = (float(face.get(axis, 0.0)) for axis in ("yaw", "pitch", "roll"))
        lines.append(f"{int(face['smile'])} " + " ".join(f"{v:.6f}" for v in pose))
    (root / "labels.txt").write_text("\n".join(lines) + "\n")
    return written


def write_smile_folders(root, faces):
    """`root/<split>/<0|1>/<name>`. Face keys: image, smile, split (train), name (NNNNNN.jpg)."""
    return [_write_jpeg(Path(root) / face.get("split", "train") / str(int(face["smile"]))
                        / face.get("name", f"{i:06d}.jpg"), face["image"])
            for i, face in enumerate(faces)]


# --- CelebA -------------------------------------------------------------------------------------

def write_celeba(root, faces):
    """CelebA's aligned release: `img_align_celeba/000001.jpg ...`, `list_attr_celeba.txt`
    (count, the 40 attribute names, then `file  1 -1 ...`) and `list_eval_partition.txt`
    (`file 0|1|2`). Face keys: image, smile (0/1), gender (0/1), partition (0 train, 1 valid,
    2 test); other attributes are written as -1.
    """
    root = Path(root)
    written, attr_lines, partition_lines = [], [], []
    for k, face in enumerate(faces, start=1):
        name = f"{k:06d}.jpg"
        written.append(_write_jpeg(root / "img_align_celeba" / name, face["image"]))
        values = {a: -1 for a in CELEBA_ATTRIBUTES}
        values["Smiling"] = 1 if int(face["smile"]) else -1
        values["Male"] = 1 if int(face["gender"]) else -1
        attr_lines.append(name + " " + " ".join(f"{values[a]:2d}" for a in CELEBA_ATTRIBUTES))
        partition_lines.append(f"{name} {int(face.get('partition', 0))}")
    (root / "list_attr_celeba.txt").write_text(
        f"{len(attr_lines)}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n" + "\n".join(attr_lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition_lines) + "\n")
    return written


# --- UTKFace ------------------------------------------------------------------------------------

def write_utkface(root, faces):
    """UTKFace's aligned crops: `root/{age}_{gender}_{race}_{datetime}.jpg.chip.jpg`, where
    UTKFace's gender is 0 male, 1 female (converted from ours). Face keys: image, age, gender,
    race (0-4), datetime (default unique per face), raw_name (write this name instead).
    """
    root = Path(root)
    written = []
    for i, face in enumerate(faces):
        name = face.get("raw_name")
        if name is None:
            utk_gender = 1 - int(face["gender"])
            stamp = face.get("datetime", f"{20170116000000000 + i}")
            name = f"{int(face['age'])}_{utk_gender}_{int(face.get('race', 0))}_{stamp}.jpg.chip.jpg"
        written.append(_write_jpeg(root / name, face["image"]))
    return written


# --- FairFace -----------------------------------------------------------------------------------

def write_fairface(root, faces, split="train"):
    """FairFace's layout: `root/{split}/{n}.jpg` and `root/fairface_label_{split}.csv` with
    `file,age,gender,race,service_test` (`split` is "train" or "val"). Face keys: image, age
    (a group such as "20-29" or "more than 70"), gender ("Male"/"Female"), race (FairFace's name).
    """
    root = Path(root)
    rows = []
    for n, face in enumerate(faces, start=1):
        name = f"{split}/{n}.jpg"
        _write_jpeg(root / name, face["image"])
        rows.append((name, face["age"], face["gender"], face["race"], "True" if n % 2 else "False"))
    _write_csv(root / f"fairface_label_{split}.csv", ("file", "age", "gender", "race", "service_test"), rows)
    return root

"""Fuzz the readers with damaged native files: seeded random truncations and byte flips of each
kind of file a reader opens (csv, mat, jpg, png, zip, txt). Every case must give records (each
of whose images loads, or fails with a CorruptImageError) or a clean DataError: never a hang,
a crash, or any other exception. CASES_PER_FILE cases per file keep it to a few seconds (fewer
for the .mat, whose reader runs scipy in a child process: scipy segfaults on some damaged files)."""
import shutil
import signal
from contextlib import contextmanager

import numpy as np
import pytest

from facenet_mtl.data import images
from facenet_mtl.errors import DataError
from facenet_mtl.data.readers import get_dataset
from facenet_mtl.demo import native_layouts

CASES_PER_FILE = 24
MAT_CASES = 8  # each starts a Python that imports scipy.io (~0.5 s): the last 8 of 18 draws,
#               which include one that crashes scipy 1.17's loadmat (a segmentation fault)
SECONDS_PER_CASE = 10


def faces(n, **labels):
    rng = np.random.default_rng(n)
    out = []
    for i in range(n):
        face = dict(image=rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), age=20 + i, gender=i % 2,
                    emotion=i % 7, smile=i % 2, split=("train", "valid", "test")[i % 3], apparent_age=20.5 + i,
                    apparent_std=2.0, real_age=20 + i, partition=i % 3, face_box=(4, 4, 20, 20),
                    usage=("Training", "PublicTest")[i % 2])
        face.update(labels)
        out.append(face)
    return out


def write_sources(root):
    """{kind: (dataset, source given to the reader, the file to damage)}."""
    native_layouts.write_fer2013_csv(root / "fer" / "fer2013.csv", faces(6))
    native_layouts.write_fer2013_folders(None, faces(6, usage="Training"), zip_path=root / "ferzip" / "fer.zip")
    native_layouts.write_imdb_wiki(root / "wiki", "wiki", faces(6))
    native_layouts.write_genki4k(root / "genki", faces(6))
    native_layouts.write_celeba(root / "celeba", faces(6))
    native_layouts.write_appa_real(root / "appa", faces(6))
    native_layouts.write_fairface(root / "fairface", [
        dict(face, age=("20-29", "3-9", "more than 70")[i % 3], gender=("Male", "Female")[i % 2], race="White")
        for i, face in enumerate(faces(6))])
    utk = native_layouts.write_utkface(root / "utk", faces(3))
    png = root / "png" / "face.png"
    png.parent.mkdir()
    import cv2

    cv2.imwrite(str(png), faces(1)[0]["image"])
    return {
        "fer2013.csv": ("fer2013", root / "fer" / "fer2013.csv", root / "fer" / "fer2013.csv"),
        "fer2013 zip": ("fer2013", root / "ferzip" / "fer.zip", root / "ferzip" / "fer.zip"),
        "wiki.mat": ("wiki", root / "wiki", root / "wiki" / "wiki_crop" / "wiki.mat"),
        "genki4k labels.txt": ("genki4k", root / "genki", root / "genki" / "labels.txt"),
        "celeba list_attr_celeba.txt": ("celeba", root / "celeba", root / "celeba" / "list_attr_celeba.txt"),
        "appa_real gt_avg_train.csv": ("appa_real", root / "appa", root / "appa" / "gt_avg_train.csv"),
        "fairface_label_train.csv": ("fairface", root / "fairface", root / "fairface" / "fairface_label_train.csv"),
        "utkface jpg": ("utkface", root / "utk", utk[0]),
        "png": (None, png, png),
    }


def damaged(data, rng):
    """`data` cut short, or with 1-8 bytes replaced by random ones, or both."""
    data = bytearray(data)
    kind = rng.integers(3)
    if kind in (0, 2):
        data = data[:int(rng.integers(0, len(data)))]
    if kind in (1, 2) and data:
        for at in rng.integers(0, len(data), int(rng.integers(1, 9))):
            data[at] = int(rng.integers(256))
    return bytes(data)


@contextmanager
def time_limit(seconds):
    def hang(signum, frame):
        raise TimeoutError(f"no answer in {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_everything(dataset, source, errors=None):
    """The reader's records, and every record's image loaded; 'error' for a clean DataError
    (its message appended to `errors`)."""
    if dataset is None:
        try:
            images.load_rgb(source)
            return "records"
        except images.CorruptImageError as exc:
            errors is None or errors.append(str(exc))
            return "error"
    try:
        result = get_dataset(dataset).read(source)
    except DataError as exc:
        errors is None or errors.append(str(exc))
        return "error"
    outcome = "records"
    for record in result.records:
        try:
            rgb = images.load_rgb(record.image)
            assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
        except images.CorruptImageError:
            outcome = "records, an image unreadable"
    return outcome


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return write_sources(tmp_path_factory.mktemp("fuzz"))


KINDS = ("fer2013.csv", "fer2013 zip", "wiki.mat", "genki4k labels.txt", "celeba list_attr_celeba.txt",
         "appa_real gt_avg_train.csv", "fairface_label_train.csv", "utkface jpg", "png")


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_files_give_records_or_a_clean_data_error(sources, kind):
    dataset, source, target = sources[kind]
    original = target.read_bytes()
    assert read_everything(dataset, source) == "records"  # the undamaged file reads
    rng = np.random.default_rng(sum(map(ord, kind)))
    cases = MAT_CASES if kind == "wiki.mat" else CASES_PER_FILE
    skipped = 18 - MAT_CASES if kind == "wiki.mat" else 0
    for _ in range(skipped):
        damaged(original, rng)
    outcomes, errors = [], []
    try:
        for case in range(skipped, skipped + cases):
            target.write_bytes(damaged(original, rng))
            images._ZIPS.clear()  # a damaged zip is a new file: no cached handle of the last one
            with time_limit(SECONDS_PER_CASE):
                try:
                    outcomes.append(read_everything(dataset, source, errors))
                except Exception as exc:  # noqa: BLE001 - the point: name the case that escaped
                    raise AssertionError(f"{kind} case {case}: {type(exc).__name__}: {exc}") from exc
    finally:
        target.write_bytes(original)
        images._ZIPS.clear()
    assert len(outcomes) == cases
    assert all(str(target) in message or str(source) in message for message in errors), errors
    # Damage is noticed (a clean error, or an unreadable image) at least once; a damaged label
    # file may also just give other labels or drops, so those may read "records" every time.
    assert set(outcomes) != {"records"} or kind in ("wiki.mat", "appa_real gt_avg_train.csv"), outcomes


def test_the_fuzz_damages_differ_and_are_seeded():
    data = bytes(range(256)) * 4
    first = [damaged(data, np.random.default_rng(1)) for _ in range(3)]
    assert first == [damaged(data, np.random.default_rng(1)) for _ in range(3)]
    rng = np.random.default_rng(2)
    assert len({damaged(data, rng) for _ in range(20)}) == 20


def test_cleanup(sources):
    shutil.rmtree(next(iter(sources.values()))[1].parent.parent, ignore_errors=True)

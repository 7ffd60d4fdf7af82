"""The built-in demo data: generated faces (see `facenet_mtl.demo.faces`) written in each
dataset's NATIVE layout, so the demo and the tests exercise the real readers and the real build.

    python -m facenet_mtl.demo.datasets demo_data/native        # or: facenet-mtl demo-data DIR

Writes `wiki_crop/` (IMDB-WIKI: age + gender, faces placed in larger photos with their box),
`appa_real/` (apparent age with sigma, real age, gender), `fer2013/fer2013.csv` (48x48 grey,
emotion, the three official splits), `genki4k/` (smile) and `utkface/` (age, gender).
"""
import sys
from pathlib import Path

import numpy as np

from facenet_mtl.data.schema import EMOTIONS, GENDERS
from facenet_mtl.demo import native_layouts
from facenet_mtl.demo.faces import HAPPY, draw_face, draw_scene

# GENKI-4K's 1,500 (not 600): its test split is the demo's only smile figure, and at 600 (60 test
# faces, +-6 points of noise) one fresh clone read 52.8 % where another read 67.9 %.
DEFAULT_SIZES = {"wiki": 1500, "appa_real": 600, "fer2013": 1500, "genki4k": 1500, "utkface": 600}


def random_labels(rng):
    """Labels of one face: age 1-90, gender, emotion, smile (a happy face always smiles)."""
    emotion = int(rng.integers(0, len(EMOTIONS)))
    smile = 1 if emotion == HAPPY else int(rng.random() < 0.35)
    return dict(age=int(rng.integers(1, 91)), gender=int(rng.integers(0, len(GENDERS))), emotion=emotion, smile=smile)


def _face(rng, image_size):
    labels = random_labels(rng)
    image = draw_face(labels["age"], labels["gender"], labels["emotion"], labels["smile"], rng, size=image_size)
    return image, labels


def _wiki(n, rng, image_size):
    faces = []
    for _ in range(n):
        labels = random_labels(rng)
        shape = (int(image_size * 1.6), int(image_size * 1.4))
        image, box = draw_scene(labels["age"], labels["gender"], labels["emotion"], labels["smile"], rng,
                                shape, face_size=image_size * 0.6)
        faces.append(dict(image=image, age=labels["age"], gender=labels["gender"], face_box=box,
                          face_score=float(rng.uniform(1.5, 6.0))))
    return faces


def _appa_real(n, rng, image_size):
    faces = []
    for i in range(n):
        image, labels = _face(rng, image_size)
        split = ("train",) * 8 + ("valid", "test")
        faces.append(dict(image=image, split=split[i % 10], apparent_age=float(labels["age"]),
                          apparent_std=float(rng.uniform(2.0, 6.0)),
                          real_age=int(np.clip(labels["age"] + rng.normal(0, 3), 1, 100)), gender=labels["gender"]))
    return faces


def _fer2013(n, rng, image_size):
    faces = []
    for i in range(n):
        image, labels = _face(rng, 72)
        image = image[12:60, 12:60]  # FER2013 crops are tight: the face fills the 48x48 frame
        usage = ("Training",) * 8 + ("PublicTest", "PrivateTest")
        faces.append(dict(image=image, emotion=labels["emotion"], usage=usage[i % 10]))
    return faces


def _genki4k(n, rng, image_size):
    faces = []
    for _ in range(n):
        image, labels = _face(rng, image_size)
        faces.append(dict(image=image, smile=labels["smile"]))
    return faces


def _utkface(n, rng, image_size):
    faces = []
    for _ in range(n):
        image, labels = _face(rng, image_size)
        faces.append(dict(image=image, age=labels["age"], gender=labels["gender"], race=int(rng.integers(0, 5))))
    return faces


_MAKERS = {"wiki": _wiki, "appa_real": _appa_real, "fer2013": _fer2013, "genki4k": _genki4k, "utkface": _utkface}


def make_demo_data(root, seed=0, sizes=None, image_size=96):
    """Write the demo datasets under `root`; returns {dataset name: the --source path}.

    `sizes` overrides the number of faces per dataset (only the named datasets are written when
    it is given); the same seed gives the same files.
    """
    root = Path(root)
    sizes = dict(sizes) if sizes is not None else dict(DEFAULT_SIZES)
    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"unknown demo datasets {sorted(unknown)}; known: {sorted(DEFAULT_SIZES)}")
    paths = {}
    for offset, name in enumerate(DEFAULT_SIZES):
        if name not in sizes:
            continue
        rng = np.random.default_rng([seed, offset])
        faces = _MAKERS[name](sizes[name], rng, image_size)
        if name == "wiki":
            native_layouts.write_imdb_wiki(root, "wiki", faces)
            paths[name] = root / "wiki_crop"
        elif name == "fer2013":
            native_layouts.write_fer2013_csv(root / "fer2013" / "fer2013.csv", faces)
            paths[name] = root / "fer2013" / "fer2013.csv"
        else:
            getattr(native_layouts, f"write_{name}")(root / name, faces)
            paths[name] = root / name
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m facenet_mtl.demo.datasets OUT_DIR")
    for dataset, path in make_demo_data(sys.argv[1]).items():
        print(f"{dataset}: {path}")

"""Tiny learnable face records for trainer tests: generated faces written in UTKFace, FER2013
csv and GENKI-4K native layouts, then built into TFRecords by the real readers and builder."""
import numpy as np
import pytest

from facenet_mtl.data.records import BuildOptions, build_tfrecords
from facenet_mtl.demo import native_layouts
from facenet_mtl.demo.faces import draw_face

IMAGE_SIZE = 32


def _faces(n, rng, **fixed):
    faces = []
    for _ in range(n):
        age = int(rng.integers(5, 80))
        gender = int(rng.integers(0, 2))
        emotion = int(rng.integers(0, 7))
        smile = int(emotion == 3 or rng.random() < 0.3)
        labels = dict(age=age, gender=gender, emotion=emotion, smile=smile)
        labels.update(fixed)
        image = draw_face(labels["age"], labels["gender"], labels["emotion"], labels["smile"], rng, size=64)
        faces.append(dict(image=image, race=0, **labels))
    return faces


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory):
    """Records root with utkface (age, gender), fer2013 (emotion), genki4k (smile)."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    native_layouts.write_utkface(root / "utkface", _faces(240, rng))
    fer = _faces(240, rng)
    for i, face in enumerate(fer):
        face["usage"] = ("Training", "Training", "Training", "PublicTest")[i % 4]
    native_layouts.write_fer2013_csv(root / "fer2013.csv", fer)
    native_layouts.write_genki4k(root / "genki4k", _faces(200, rng, emotion=6))  # smile is the only cue
    options = BuildOptions(image_size=IMAGE_SIZE, workers=1, progress=False)
    out = root / "records"
    build_tfrecords("utkface", root / "utkface", out, options)
    build_tfrecords("fer2013", root / "fer2013.csv", out, options)
    build_tfrecords("genki4k", root / "genki4k", out, options)
    return out


@pytest.fixture
def make_config(tiny_records):
    """make_config(name, **sections) -> ExperimentConfig for a fast run on `tiny_records`."""
    from facenet_mtl.training.config import parse_config

    return lambda name="tiny", **sections: parse_config(tiny_config(tiny_records, name, **sections))


def tiny_config(root, name="tiny", **sections):
    raw = {
        "name": name,
        "model": {"backbone": "compact", "input_size": IMAGE_SIZE, "tasks": ["age", "gender"],
                  "backbone_args": {"widths": [8, 16], "stem_width": 8}},
        "data": {"root": str(root), "datasets": ["utkface"], "batch_size": 16, "epoch_size": 160,
                 "shuffle_buffer": 256},
        "optimizer": {"name": "adam", "lr": 3e-3, "schedule": "constant"},
        "train": {"epochs": 2, "precision": "float32", "seed": 3},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw

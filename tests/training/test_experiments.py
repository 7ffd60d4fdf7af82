"""Every experiment config under experiments/ loads, validates and trains for one step on tiny
generated records of the datasets it names (at a small input size, to keep the suite fast)."""
from pathlib import Path

import keras
import numpy as np
import pytest

from facenet_mtl.data.pipeline import make_dataset
from facenet_mtl.data.records import BuildOptions, build_tfrecords
from facenet_mtl.demo import native_layouts
from facenet_mtl.demo.datasets import make_demo_data, random_labels
from facenet_mtl.demo.faces import draw_scene
from facenet_mtl.models import BACKBONES, build_model
from facenet_mtl.training.config import load_config
from facenet_mtl.training.plan import compile_for_phase
from facenet_mtl.training.trainer import input_spec

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / "experiments").rglob("*.toml") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def every_dataset(tmp_path_factory):
    """Tiny records for every dataset an experiment names (imdb, wiki, appa_real, fer2013, ...)."""
    tmp = tmp_path_factory.mktemp("experiments")
    sources = make_demo_data(tmp / "native", seed=1, sizes={"wiki": 40, "appa_real": 40, "fer2013": 40,
                                                            "genki4k": 30, "utkface": 30}, image_size=48)
    rng = np.random.default_rng(2)
    faces = []
    for _ in range(40):
        labels = random_labels(rng)
        image, box = draw_scene(labels["age"], labels["gender"], labels["emotion"], labels["smile"], rng,
                                (72, 64), face_size=32)
        faces.append(dict(image=image, age=labels["age"], gender=labels["gender"], face_box=box))
    native_layouts.write_imdb_wiki(tmp / "native", "imdb", faces)
    sources["imdb"] = tmp / "native" / "imdb_crop"
    options = BuildOptions(image_size=32, workers=1, progress=False)
    for name, path in sources.items():
        build_tfrecords(name, path, tmp / "records", options)
    return tmp / "records"


def test_there_is_a_config_for_every_experiment_of_the_study():
    names = {p.stem for p in CONFIGS}
    for expected in ("resnet18-pretrain", "alexnet-pretrain", "ssrnet-pretrain", "resnet18-mtl-lowgender",
                     "resnet18-mtl-w111", "resnet18-age", "resnet18-gender", "resnet18-emotion",
                     "densenet121-mtl-w1111-run1", "densenet121-mtl-w1111-run2", "densenet121-age-gender",
                     "dex-vgg16", "real-mtl", "real-pretrain", "demo-pretrain"):
        assert expected in names
    assert sum(name.startswith("alexnet-mtl-partition") for name in names) == 4


def _signature(path):
    cfg = load_config(path)
    return (cfg.model.backbone, cfg.model.input_size, len(cfg.model.tasks) > 1, cfg.loss.balancing,
            bool(cfg.train.freeze_backbone_epochs))


def _distinct(paths):
    """One config per distinct architecture, single- or multi-task: the others differ only in optimiser
    settings, tasks, datasets, loss weights, seeds or partitions; every config is validated above
    and the trainer tests cover those paths, so one step each would only add minutes."""
    seen, chosen = set(), []
    for path in paths:
        if _signature(path) not in seen:
            seen.add(_signature(path))
            chosen.append(path)
    return chosen


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_loads_and_validates(path):
    cfg = load_config(path)
    assert cfg.name == path.stem and cfg.model.tasks


@pytest.mark.parametrize("path", _distinct(CONFIGS), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_trains_one_step(path, every_dataset):
    cfg = load_config(path, [f'data.root="{every_dataset}"', "data.batch_size=4", "data.epoch_size=4",
                             "data.shuffle_buffer=16"])
    size = max(BACKBONES[cfg.model.backbone].min_input_size, 40)
    args = dict(cfg.model.backbone_args)
    if cfg.model.backbone == "alexnet":
        args["fc_units"] = 32  # the real 4096-unit layers are tens of millions of weights
    cfg.model.input_size = size
    keras.utils.set_random_seed(0)
    model = build_model(cfg.model.backbone, cfg.model.tasks, size, backbone_args=args,
                        dropout=cfg.model.dropout, head_units=cfg.model.head_units)
    compile_for_phase(cfg, model, "heads" if cfg.train.freeze_backbone_epochs else "full")
    ds, _ = make_dataset(input_spec(cfg), cfg.data.train_split, model.output_names, training=True)
    history = model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])

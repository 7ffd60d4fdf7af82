"""Experiment configs: every file under experiments/ validates; composition, overrides, errors.

Validation checks dataset and backbone names against the real registries (importing the
backbones imports Keras once). Still to come with the trainer: a test that runs every config
for one step on tiny generated data.
"""
import tomllib
from pathlib import Path

import pytest

from facenet_mtl.training.config import ConfigError, load_config
from facenet_mtl.training.references import STUDY_REFERENCES
from facenet_mtl.training.report import METRIC_KEYS

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
CONFIG_FILES = sorted(p for p in EXPERIMENTS.rglob("*.toml") if not p.name.startswith("_"))
STUDY = EXPERIMENTS / "study"
DEMO = EXPERIMENTS / "demo"


def write(directory, name, text):
    path = directory / name
    path.write_text(text)
    return path


# --- the experiment files ------------------------------------------------------------------------


def test_the_programmes_are_there():
    names = {p.stem for p in CONFIG_FILES}
    assert {"resnet18-pretrain", "alexnet-pretrain", "ssrnet-pretrain", "resnet18-mtl-w111",
            "resnet18-mtl-lowgender", "resnet18-age", "resnet18-gender", "resnet18-emotion",
            "densenet121-mtl-w1111-run1", "densenet121-mtl-w1111-run2", "densenet121-age-gender",
            "dex-vgg16"} <= names
    assert {"demo-pretrain", "demo-mtl-w1111", "demo-mtl-lowgender", "demo-emotion"} <= names
    assert len(names) == len(CONFIG_FILES), "experiment names (file stems) must be unique"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_experiment_loads_and_validates(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.source == str(path)
    if path.parent in (STUDY, DEMO):  # the report's "learning method" column reads these
        assert cfg.description and cfg.learning_method
    for task in cfg.loss.weights:
        assert task in cfg.model.tasks, f"{path.name}: a loss weight for a task the model lacks"


def test_every_finetune_starts_from_a_pretrain_of_its_own_architecture():
    finetunes = [cfg for cfg in map(load_config, CONFIG_FILES) if cfg.stage == "finetune"]
    assert len(finetunes) >= 15
    for cfg in finetunes:
        # A finetune may start from another finetune (a warm restart, release-mtl-more) or from the
        # average of several (release-mtl-soup): every link of its chains has its architecture,
        # and every chain starts from a pretrain.
        def check(link, seen):
            if link.stage == "pretrain":
                return
            for parent in link.parents():
                init = load_config(Path(link.source).parent / f"{parent}.toml")
                assert init.name not in seen, f"{cfg.name}: init cycle through {init.name}"
                assert (init.model.backbone, init.model.input_size, init.model.backbone_args) == (
                    cfg.model.backbone, cfg.model.input_size, cfg.model.backbone_args), cfg.name
                check(init, seen | {init.name})

        check(cfg, {cfg.name})


def test_config_references_are_the_report_references():
    by_experiment = {ref["experiment"]: ref for ref in STUDY_REFERENCES if "experiment" in ref}
    with_reference = {}
    for path in STUDY.glob("[!_]*.toml"):
        cfg = load_config(path)
        if cfg.reference:
            with_reference[cfg.name] = cfg.reference
    assert set(with_reference) == set(by_experiment)
    for name, own in with_reference.items():
        published = by_experiment[name]
        assert {k: published.get(k) for k in ("model", *METRIC_KEYS)} == {
            k: own.get(k) for k in ("model", *METRIC_KEYS)}, name


def test_the_two_alexnet_partitions_differ_only_in_partition_and_lr():
    configs = [load_config(p) for p in sorted(STUDY.glob("alexnet-mtl-partition-*.toml"))]
    assert {(c.data.partition_seed, c.optimizer.lr) for c in configs} == {
        (0, 0.01), (0, 0.001), (1, 0.01), (1, 0.001)}


# --- composition and overrides ------------------------------------------------------------------


def test_a_finetune_inherits_its_base_and_its_own_values_win():
    cfg = load_config(STUDY / "resnet18-mtl-lowgender.toml")
    base = tomllib.loads((STUDY / "_finetune_base.toml").read_text())
    assert cfg.stage == "finetune" and cfg.init == "resnet18-pretrain"
    assert cfg.data.datasets == tuple(base["data"]["datasets"])
    assert cfg.data.mixing == "oversample_to_largest"
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.momentum) == ("sgd", 0.01, 0.9)
    assert cfg.train.epochs == base["train"]["epochs"]
    assert cfg.loss.weights == {"age": 1.0, "gender": 0.1, "emotion": 1.0}


def test_bases_chain_and_tables_of_weights_are_replaced_not_merged():
    cfg = load_config(DEMO / "demo-emotion.toml")  # -> _finetune_base.toml -> _base.toml
    assert cfg.data.root == "demo_data/records" and cfg.model.backbone == "compact"
    assert cfg.init == "demo-pretrain" and cfg.optimizer.name == "adam"
    assert cfg.model.tasks == ("emotion",) and cfg.data.datasets == ("fer2013",)
    assert cfg.loss.weights == {"emotion": 1.0}


def test_a_child_reference_replaces_its_base_reference(tmp_path):
    write(tmp_path, "_base.toml", '[model]\nbackbone = "compact"\n'
          '[reference]\nmodel = "base model"\nage_mae = 5.0\ngender_acc = 90.0\n')
    child = write(tmp_path, "child.toml",
                  'base = "_base.toml"\n[reference]\nmodel = "child"\nage_mae = 4.0\n')
    assert load_config(child).reference == {"model": "child", "age_mae": 4.0}


def test_set_overrides_win_over_the_file():
    cfg = load_config(STUDY / "resnet18-mtl-lowgender.toml",
                      ["train.epochs=2", "loss.weights.age=0.5", "data.root=/tmp/records"])
    assert cfg.train.epochs == 2
    assert cfg.loss.weights == {"age": 0.5, "gender": 0.1, "emotion": 1.0}
    assert cfg.data.root == "/tmp/records"


def test_an_override_of_an_unknown_key_names_the_key_and_the_override():
    with pytest.raises(ConfigError, match=r"--set train\.epoch=2: field 'train\.epoch': unknown key"):
        load_config(STUDY / "resnet18-pretrain.toml", ["train.epoch=2"])


# --- errors name the field and the file ----------------------------------------------------------


def test_an_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path, "typo.toml", '[model]\nbackbone = "compact"\n[train]\nepoch = 3\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "train.epoch" in str(error.value) and str(path) in str(error.value)
    assert error.value.field_name == "train.epoch"


def test_an_unknown_key_in_a_base_names_the_base(tmp_path):
    base = write(tmp_path, "_base.toml", "[optimizer]\nmomentun = 0.9\n")
    child = write(tmp_path, "child.toml", 'base = "_base.toml"\n[model]\nbackbone = "compact"\n')
    with pytest.raises(ConfigError, match="optimizer.momentun") as error:
        load_config(child)
    assert error.value.source == str(base)


def test_a_finetune_without_init_names_init_and_the_file(tmp_path):
    path = write(tmp_path, "orphan.toml", 'stage = "finetune"\n[model]\nbackbone = "compact"\n')
    with pytest.raises(ConfigError, match="'init'") as error:
        load_config(path)
    assert error.value.source == str(path)


@pytest.mark.parametrize("text, field_name", [
    ('[data]\ndatasets = ["imbd"]\n', "data.datasets"),
    ('[model]\nbackbone = "resnet19"\n', "model.backbone"),
    ('[model]\ntasks = ["age", "beauty"]\n', "model.tasks"),
    ('[loss]\nweights = { beauty = 1.0 }\n', "loss.weights"),
    ('[train]\nepochs = "3"\n', "train.epochs"),
    ('[loss]\nweights = 1\n', "loss.weights"),
    ('[data]\naugment = "yes"\n', "data.augment"),
    ('[data]\npartition_seed = -1\n', "data.partition_seed"),
    ('[data]\nerasing = 1.5\n', "data.erasing"),
    ('[model]\ntest_time_crops = 4\n', "model.test_time_crops"),
    ('[model]\ntest_time_crop_scale = 1.0\n', "model.test_time_crop_scale"),
    ('[model]\ntasks = ["age", "emotion"]\n[data]\ndatasets = ["wiki"]\n', "model.tasks"),
    ('[model]\nbackbone = "ssrnet"\ninput_size = 32\n', "model.input_size"),
    ('[reference]\nmodel = "x"\ngender_acc = 0.84\n', "reference.gender_acc"),
    ('[reference]\nmodel = "x"\nage_error = 3.0\n', "reference.age_error"),
])
def test_a_bad_value_names_the_field_and_the_file(tmp_path, text, field_name):
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.field_name == field_name
    assert str(path) in str(error.value) and f"'{field_name}'" in str(error.value)


def test_bad_toml_names_the_file(tmp_path):
    path = write(tmp_path, "broken.toml", "[model\nbackbone = 'compact'\n")
    with pytest.raises(ConfigError, match="not valid TOML") as error:
        load_config(path)
    assert error.value.source == str(path)


def test_a_missing_base_names_the_file_that_asks_for_it(tmp_path):
    path = write(tmp_path, "child.toml", 'base = "_nowhere.toml"\n')
    with pytest.raises(ConfigError, match="_nowhere.toml") as error:
        load_config(path)
    assert error.value.source == str(path.resolve()) and error.value.field_name == "base"

"""The task registry (`facenet_mtl.tasks`): both directions between tasks and outputs, clear errors,
and a task defined here only, in test code, that every layer builds, trains, evaluates, saves,
loads and predicts without a line of it anywhere else."""
import ast
import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl import tasks
from facenet_mtl.data import schema
from facenet_mtl.inference.predictor import FacePredictor, face_label
from facenet_mtl.models import build_model, model_tasks, output_names_for
from facenet_mtl.tasks import MISSING, Task
from facenet_mtl.training import trainer
from facenet_mtl.training.evaluate import evaluate_model, format_table
from tests.training.conftest import IMAGE_SIZE, tiny_config, tiny_records  # noqa: F401  (a fixture)

PACKAGE = Path(tasks.__file__).parent


# --- the registry -------------------------------------------------------------------------------

def test_outputs_in_both_directions():
    assert tasks.names() == ("age", "gender", "emotion", "smile")
    assert tasks.outputs_of("age") == ("age", "age_probs")
    assert tasks.outputs_of("emotion") == ("emotion",)
    for name in tasks.names():
        for output in tasks.outputs_of(name):
            assert tasks.task_of_output(output).name == name
    assert tasks.output_names(("smile", "age", "smile")) == ("age", "age_probs", "smile")
    assert tasks.tasks_of_outputs(["age_probs", "age", "gender"]) == ("age", "gender")
    assert tasks.tasks_of_outputs(["age_probs"]) == ()  # a task needs all its outputs
    assert tasks.task_of_layer("age_probs") == "age" and tasks.task_of_layer("smile_hidden") == "smile"
    assert tasks.task_of_layer("backbone") is None
    assert tasks.output_of_key("age_probs_loss") == "age_probs" and tasks.output_of_key("age_mae") == "age"


def test_unknown_tasks_and_outputs_are_errors_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'hair'; known: age, gender, emotion, smile"):
        tasks.get("hair")
    with pytest.raises(ValueError, match="no task has an output 'hair'"):
        tasks.task_of_output("hair")
    with pytest.raises(ValueError, match="unknown tasks"):
        build_model("compact", ("age", "hair"), 32, backbone_args={"widths": (8,), "stem_width": 8})
    with pytest.raises(ValueError, match="unknown kind"):
        Task("hair", "regression")
    with pytest.raises(ValueError, match="needs 2 classes"):
        Task("hair", "binary", ("short", "long", "none"))


def test_register_and_remove():
    hair = Task("hair", "binary", ("short", "long"))
    with tasks.registered(hair):
        assert tasks.names()[-1] == "hair" and tasks.task_of_output("hair") is hair
        assert schema.TASKS["hair"] is hair  # the schema's name for the registry is the registry
        with pytest.raises(ValueError, match="already registered"):
            tasks.register(hair)
    assert "hair" not in tasks.names()
    with pytest.raises(ValueError, match="output 'age' belongs to task 'age'"):
        tasks.register(Task("years", "age"))  # a second age task would take age's outputs
    with pytest.raises(ValueError, match="built in"):
        tasks.unregister("age")
    tasks.register(hair)
    assert tasks.unregister("hair") is hair and "hair" not in tasks.names()


def test_models_read_tasks_from_the_ground_floor_not_from_data():
    for module in ("models/heads.py", "models/multitask.py", "tasks.py"):
        tree = ast.parse((PACKAGE / module).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not {m for m in imported if m and m.startswith("facenet_mtl.data")}, (module, imported)
    assert package_imports("tasks.py") == {"facenet_mtl.kinds", "facenet_mtl.registry"}
    assert package_imports("kinds.py") == package_imports("registry.py") == set()


def package_imports(module):
    """The package modules `module` imports (`from facenet_mtl import x` counts as facenet_mtl.x)."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / module).read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("facenet_mtl"):
            found |= {f"{node.module}.{a.name}" for a in node.names} if node.module == "facenet_mtl" else {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("facenet_mtl")}
    return found


# --- a new task, defined here only ---------------------------------------------------------------

AGE_CLASSES = ("0-19", "20-39", "40-59", "60+")


def age_class_of(labels):
    """The 20-year class of a known age, MISSING without one (tf or numpy labels alike)."""
    age = tf.convert_to_tensor(labels["age"], tf.float32)
    klass = tf.cast(tf.minimum(tf.math.floordiv(tf.maximum(age, 0.0), 20.0), 3.0), tf.int64)
    return tf.where(age >= 0, klass, tf.constant(MISSING, tf.int64))


AGE_CLASS = Task("age_class", "categorical", AGE_CLASSES, label=age_class_of, fields=("age",))


@pytest.fixture
def age_class():
    with tasks.registered(AGE_CLASS) as task:
        yield task


def test_the_new_tasks_labels_encode_and_mask():
    labels = {"age": np.array([5.0, 25.0, 45.0, 99.0, MISSING], np.float32)}
    assert np.asarray(AGE_CLASS.values(labels)).tolist() == [0, 1, 2, 3, MISSING]
    targets, weights = AGE_CLASS.targets({"age": tf.constant(45.0)})
    assert targets["age_class"].numpy().tolist() == [0, 0, 1, 0] and float(weights["age_class"]) == 1.0
    _, weights = AGE_CLASS.targets({"age": tf.constant(float(MISSING))})
    assert float(weights["age_class"]) == 0.0


def test_a_new_task_builds_trains_evaluates_saves_loads_and_predicts(age_class, tiny_records, tmp_path):
    from facenet_mtl.training.config import parse_config

    cfg = parse_config(tiny_config(tiny_records, "age-class", model={"tasks": ["age", "age_class"], "head_units": 4},
                                   data={"datasets": ["utkface"]}, loss={"weights": {"age_class": 0.5}},
                                   train={"epochs": 1, "steps_per_epoch": 2}))
    assert output_names_for(cfg.model.tasks) == ("age", "age_probs", "age_class")

    run_dir = trainer.train(cfg, tmp_path, verbose=0)  # build, train, export, evaluate, plot

    with open(run_dir / "history.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["age_class_loss"]) > 0 and "age_class_accuracy" in row
    assert not [k for k in row if "labelled_loss" in k]
    assert float(row["val_loss"]) == pytest.approx(float(row["val_age_probs_loss"]) + 0.5 * float(row["val_age_class_loss"]),
                                                   rel=1e-5)  # age_l1 is 0 in the tiny config
    test = json.loads((run_dir / "metrics.json").read_text())["splits"]["test"]["overall"]
    assert test["age_class_n"] == test["age_n"] > 0 and 0.0 <= test["age_class_acc"] <= 1.0
    assert np.asarray(test["age_class_confusion"]).shape == (4, 4)
    for name in ("curves_age_class.png", "age_class_confusion.png", "curves_age_probs.png"):
        assert (run_dir / name).is_file(), name

    model = keras.models.load_model(run_dir / "model.h5", compile=False)  # the portable .h5, plain Keras
    assert model_tasks(model) == ("age", "age_class")
    again = evaluate_model(model, cfg.data.root, ["utkface"], "test")
    assert again["overall"]["age_class_acc"] == pytest.approx(test["age_class_acc"])
    assert "Age class %" in format_table(again, "test")

    predictor = FacePredictor(model)
    assert predictor.tasks() == ("age", "age_class")
    crops = np.random.default_rng(0).uniform(0, 255, (2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    face = predictor.predict_faces(crops)[0]
    assert face["age_class"]["label"] in AGE_CLASSES
    assert sum(face["age_class"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face_label(face).split(" | ")[1] == face["age_class"]["label"]


# --- age_range: the 80 % interval of the age bins' distribution ---------------------------------

def test_age_range_is_the_10th_to_90th_percentile_of_the_bins():
    from facenet_mtl.tasks import AGE_BINS, age_range

    uniform = np.zeros(AGE_BINS)
    uniform[20:30] = 0.1  # ten equal bins, 20..29: the 10th percentile is 20, the 90th 28
    assert age_range(uniform) == [20, 28]
    two = np.zeros(AGE_BINS)
    two[[10, 60]] = (0.05, 0.95)  # 5 % at 10: the 10th percentile is already at 60
    assert age_range(two) == [60, 60]
    skewed = np.zeros(AGE_BINS)
    skewed[[30, 40, 50]] = (0.2, 0.6, 0.2)  # 20 % at 30 covers the 10th; 80 % by 40 falls short of the 90th
    assert age_range(skewed) == [30, 50]
    assert age_range(skewed * 7) == [30, 50]  # unnormalised bins are normalised


def test_the_age_readout_carries_the_range_beside_the_age():
    from facenet_mtl import tasks

    probs = np.zeros(tasks.AGE_BINS, np.float32)
    probs[20:30] = 0.1
    readout = tasks.get("age").readout({"age": np.array([24.5], np.float32), "age_probs": probs})
    assert readout == {"age": 24.5, "age_range": [20, 28]}
    assert tasks.get("age").readout({"age": np.array([24.5], np.float32)}) == {"age": 24.5}

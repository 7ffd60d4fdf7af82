"""Self-distillation: a teacher file written from a model's outputs on the training faces, and
the targets the input pipeline then gives every face for every head."""
import json

import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl.data.pipeline import make_dataset, to_model_inputs
from facenet_mtl.data.teacher import TeacherTargets
from facenet_mtl.models import build_model
from facenet_mtl.tasks import AGE_BINS
from facenet_mtl.training import trainer
from facenet_mtl.training.distillation import teacher_rows, write_teacher
from tests.training.conftest import IMAGE_SIZE, tiny_records  # noqa: F401  (a fixture)

FOUR = ("age", "gender", "emotion", "smile")
OUTPUTS = ("age", "age_probs", "gender", "emotion", "smile")


def test_teacher_rows_hold_the_age_distributions_mean_and_spread():
    probs = np.zeros((2, AGE_BINS), np.float32)
    probs[0, 30] = 1.0
    probs[1, [20, 40]] = 0.5
    rows = teacher_rows({"age_probs": probs, "gender": np.array([[0.2], [0.9]])}, [b"a.jpg", b"b.jpg"], "utkface")
    assert rows["keys"].tolist() == ["utkface/a.jpg", "utkface/b.jpg"]
    np.testing.assert_allclose(rows["age_mean"], [30.0, 30.0], atol=1e-4)
    np.testing.assert_allclose(rows["age_std"], [0.0, 10.0], atol=1e-3)
    np.testing.assert_allclose(rows["gender"], [0.2, 0.9])
    assert "emotion" not in rows


def _example(file_id, age=-1.0, gender=-1, emotion=-1, smile=-1):
    return {"image": tf.zeros((4, 4, 3), tf.uint8), "file_id": tf.constant(file_id),
            "age": tf.constant(age), "age_std": tf.constant(-1.0), "age_min": tf.constant(-1.0),
            "age_max": tf.constant(-1.0), "race": tf.constant(-1, tf.int64), "gender": tf.constant(gender, tf.int64),
            "emotion": tf.constant(emotion, tf.int64), "smile": tf.constant(smile, tf.int64)}


def _teacher(weight=0.4):
    emotion = np.zeros((2, 7), np.float32)
    emotion[:, 3] = 1.0  # happy
    rows = {"keys": np.array(["fer2013/face-a", "utkface/face-b"]), "age_mean": np.array([41.0, 52.0]),
            "age_std": np.array([6.0, 0.2]), "gender": np.array([0.9, 0.3]), "emotion": emotion,
            "smile": np.array([0.8, 0.6])}
    return TeacherTargets(rows, weight)


def _blended(teacher, dataset, example):
    example = teacher.attach(dataset)(example)
    _, labels, weights = to_model_inputs(example, OUTPUTS, age_sigma=2.0)
    labels, weights = teacher.blend(example, labels, weights)
    return ({k: np.asarray(v) for k, v in labels.items()}, {k: float(v) for k, v in weights.items()})


def test_an_emotion_face_gets_age_gender_and_smile_from_the_teacher_and_keeps_its_label_mixed():
    labels, weights = _blended(_teacher(0.4), "fer2013", _example(b"face-a", emotion=0))  # angry
    np.testing.assert_allclose(labels["emotion"], [0.6, 0, 0, 0.4, 0, 0, 0], atol=1e-6)
    assert weights["emotion"] == 1.0
    assert labels["gender"].tolist() == pytest.approx([0.9]) and weights["gender"] == pytest.approx(0.4)
    assert labels["smile"].tolist() == pytest.approx([0.8]) and weights["smile"] == pytest.approx(0.4)
    assert labels["age"].tolist() == [41.0] and weights["age"] == pytest.approx(0.4)
    assert labels["age_probs"].tolist() == [41.0, 6.0, -1.0, -1.0] and weights["age_probs"] == pytest.approx(0.4)


def test_a_labelled_age_is_kept_and_a_narrow_teacher_age_gets_the_floor():
    teacher = _teacher(0.4)
    labels, weights = _blended(teacher, "utkface", _example(b"face-b", age=23.0, gender=0))
    assert labels["age"].tolist() == [23.0] and weights["age"] == 1.0
    assert labels["age_probs"][0] == 23.0 and weights["age_probs"] == 1.0
    assert labels["gender"].tolist() == pytest.approx([0.6 * 0 + 0.4 * 0.3])
    no_age, _ = _blended(teacher, "fer2013", _example(b"face-a"))
    assert no_age["age_probs"][1] == 6.0
    _, other = _blended(teacher, "genki4k", _example(b"face-b"))  # the key is another dataset's
    assert set(other.values()) == {0.0}


def test_a_face_the_teacher_never_saw_keeps_its_labels_and_weights():
    teacher = _teacher(0.4)
    example = _example(b"unseen", emotion=5)
    labels, weights = _blended(teacher, "fer2013", example)
    _, plain_labels, plain_weights = to_model_inputs(example, OUTPUTS, age_sigma=2.0)
    for name in OUTPUTS:
        np.testing.assert_array_equal(labels[name], np.asarray(plain_labels[name]))
        assert weights[name] == float(plain_weights[name])


def test_teach_then_train_a_student_on_every_head(tiny_records, tmp_path):  # noqa: F811
    """A tiny four-head model writes its teacher file; the training stream then gives the
    emotion-only FER2013 faces age and gender targets, and a student stage trains on it."""
    model = build_model("compact", tasks=FOUR, input_size=IMAGE_SIZE,
                        backbone_args={"widths": (8, 16), "stem_width": 8})
    out = tmp_path / "teacher.npz"
    counts = write_teacher(model, "<memory>", tiny_records, ["utkface", "fer2013", "genki4k"], out,
                           progress=lambda line: None)
    with np.load(out) as rows:
        assert len(rows["keys"]) == sum(counts.values()) > 0
        assert set(rows.files) >= {"keys", "age_mean", "age_std", "gender", "emotion", "smile", "meta"}
        assert json.loads(str(rows["meta"]))["split"] == "train"
    spec = trainer.InputSpec(root=str(tiny_records), datasets=("fer2013",), image_size=IMAGE_SIZE, batch_size=16,
                             epoch_size=32, augment=False, teacher=str(out), teacher_weight=0.5)
    (images, labels, weights), = make_dataset(spec, "train", OUTPUTS)[0].take(1)
    assert np.all(np.asarray(weights["age"]) == 0.5) and np.all(np.asarray(weights["gender"]) == 0.5)
    assert np.all(np.asarray(weights["emotion"]) == 1.0)
    assert not np.allclose(np.asarray(labels["emotion"]).max(axis=1), 1.0)  # mixed, no longer one-hot
    plain = trainer.InputSpec(root=str(tiny_records), datasets=("fer2013",), image_size=IMAGE_SIZE, batch_size=16,
                              epoch_size=32, augment=False)
    (_, _, plain_weights), = make_dataset(plain, "train", OUTPUTS)[0].take(1)
    assert np.all(np.asarray(plain_weights["age"]) == 0.0)
    from facenet_mtl.training.config import parse_config
    from tests.training.conftest import tiny_config

    cfg = parse_config(tiny_config(tiny_records, "student", model={"tasks": list(FOUR)},
                                   data={"datasets": ["utkface", "fer2013", "genki4k"], "teacher": str(out),
                                         "teacher_weight": 0.5},
                                   train={"epochs": 1, "precision": "float32", "seed": 3}))
    run = trainer.train(cfg, runs_dir=tmp_path / "runs", verbose=0)
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"age_mae", "gender_acc", "emotion_acc", "smile_acc"} <= set(metrics["splits"]["test"]["overall"])


def test_a_missing_teacher_file_names_the_command_that_writes_it(tmp_path):
    from facenet_mtl.errors import DataError

    with pytest.raises(DataError, match="facenet-mtl teach"):
        TeacherTargets.load(tmp_path / "nope.npz", 0.5)

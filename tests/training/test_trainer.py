"""The staged trainer end to end on tiny generated records: learning, masking, freezing,
pretrain -> finetune transfer, resume after interruption, exports, evaluation."""
import csv
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl.errors import DataError
from facenet_mtl.data.pipeline import make_dataset
from facenet_mtl.models import build_model, output_names_for
from facenet_mtl.training import callbacks as cb
from facenet_mtl.training import plan, trainer
from facenet_mtl.training.config import ConfigError
from facenet_mtl.training.rundir import RunDir


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_training_lowers_every_head_loss(make_config, tmp_path):
    cfg = make_config("four-heads",
                      model={"tasks": ["age", "gender", "emotion", "smile"]},
                      data={"datasets": ["utkface", "fer2013", "genki4k"], "epoch_size": 480},
                      train={"epochs": 6})
    run_dir = trainer.train(cfg, tmp_path, verbose=0)
    rows = history(run_dir)
    assert len(rows) == 6
    for head in ("age_probs", "gender", "emotion", "smile"):
        first, last = float(rows[0][f"{head}_loss"]), float(rows[-1][f"{head}_loss"])
        assert last < first, f"{head} loss did not fall: {first} -> {last}"
    assert float(rows[-1]["lr"]) == pytest.approx(3e-3)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    assert set(test["by_dataset"]) == {"utkface", "fer2013", "genki4k"}
    assert test["by_dataset"]["fer2013"]["emotion_n"] == 60  # every 4th of 240 is PublicTest
    assert "age_mae" in test["by_dataset"]["utkface"] and "age_mae" not in test["by_dataset"]["fer2013"]
    for name in ("model.h5", "model.keras", "saved_model", "config.json", "state.json",
                 "emotion_confusion.png", "curves_emotion.png"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "state.json").read_text())["finished"] is True


def _fixed_batch(cfg, outputs):
    ds, _ = make_dataset(trainer.input_spec(cfg), "train", outputs, training=True)
    return next(iter(ds))


def test_zero_loss_weight_leaves_head_unchanged(make_config):
    cfg = make_config(model={"tasks": ["age", "gender", "smile"]},
                      data={"datasets": ["utkface", "genki4k"]}, loss={"weights": {"smile": 0.0}})
    model = build_model("compact", cfg.model.tasks, 32, backbone_args=dict(cfg.model.backbone_args))
    plan.compile_for_phase(cfg, model, "full")
    before = [w.copy() for w in model.get_layer("smile").get_weights()]
    backbone_before = model.get_layer("backbone").get_weights()[0].copy()
    x, y, w = _fixed_batch(cfg, model.output_names)
    model.fit(x, y, sample_weight=w, epochs=3, verbose=0)
    for a, b in zip(before, model.get_layer("smile").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(backbone_before, model.get_layer("backbone").get_weights()[0])


def test_missing_labels_contribute_nothing(make_config):
    cfg = make_config(model={"tasks": ["age", "gender", "emotion"]}, data={"datasets": ["utkface", "fer2013"]})
    model = build_model("compact", cfg.model.tasks, 32, backbone_args=dict(cfg.model.backbone_args))
    plan.compile_for_phase(cfg, model, "full")
    x, y, w = _fixed_batch(cfg, model.output_names)
    assert 0 < float(tf.reduce_sum(w["emotion"])) < 16  # a real mix: some rows lack emotion
    base = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    garbage = dict(y)
    missing = tf.reshape(w["emotion"] == 0, (-1, 1))
    garbage["emotion"] = tf.where(missing, tf.one_hot(tf.fill([16], 6), 7), y["emotion"])
    missing_age = tf.reshape(w["age"] == 0, (-1, 1))
    garbage["age"] = tf.where(missing_age, 99.0, y["age"])
    changed = model.evaluate(x, garbage, sample_weight=w, verbose=0, return_dict=True)
    for key in ("emotion_loss", "emotion_accuracy", "age_mae", "age_loss"):
        assert changed[key] == pytest.approx(base[key], rel=1e-6), key


def test_finetune_starts_from_the_pretrained_backbone(make_config, tmp_path):
    pre = make_config("pre", train={"epochs": 1})
    trainer.train(pre, tmp_path, verbose=0)
    fine = make_config("fine", stage="finetune", init="pre",
                       model={"tasks": ["age", "gender", "emotion"]}, data={"datasets": ["utkface", "fer2013"]})
    assert trainer.resolve_init(fine, tmp_path) == [tmp_path / "pre" / "model.keras"]
    pretrained = keras.models.load_model(tmp_path / "pre" / "model.keras", compile=False)
    model = build_model("compact", fine.model.tasks, 32, backbone_args=dict(fine.model.backbone_args))
    copied = trainer._load_init(model, [tmp_path / "pre" / "model.keras"])
    assert {"backbone", "age_probs", "gender"} <= set(copied) and "emotion" not in copied
    for a, b in zip(pretrained.get_layer("backbone").get_weights(), model.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pretrained.get_layer("gender").get_weights()[0],
                                  model.get_layer("gender").get_weights()[0])


def test_an_average_stage_finishes_the_mean_of_its_models_weights(make_config, tmp_path):
    """`average` (a model soup): the stage starts from the weight-by-weight mean of the named runs'
    models and, with 0 epochs, finishes it untrained: its exported network holds that mean, its
    metrics are written, and the release's stage list holds each run once, parents first."""
    from facenet_mtl.models import inner_network
    from facenet_mtl.release import training_stages

    for name, seed in (("a", 3), ("b", 4)):
        trainer.train(make_config(name, train={"epochs": 1, "seed": seed}), tmp_path, verbose=0)
    soup = make_config("soup", stage="finetune", average=["a", "b"], train={"epochs": 0})
    run = trainer.train(soup, tmp_path, verbose=0)
    weights = [inner_network(keras.models.load_model(tmp_path / name / "model.keras", compile=False))
               .get_layer("backbone").get_weights() for name in ("a", "b", "soup")]
    assert not np.allclose(weights[0][0], weights[1][0])
    for a, b, mean in zip(*weights):
        np.testing.assert_allclose(mean, (a.astype(np.float64) + b) / 2, rtol=1e-6, atol=1e-7)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 0 and "valid" in metrics["splits"]
    assert [stage["run"] for stage in training_stages(run)] == ["a", "b", "soup"]


def test_an_average_names_its_models_and_only_it_may_train_no_epochs(make_config, tmp_path):
    with pytest.raises(ConfigError, match="init.*not both"):
        make_config("soup", stage="finetune", init="a", average=["a", "b"])
    with pytest.raises(ConfigError, match="average.*two or more"):
        make_config("soup", stage="finetune", average=["a", "a"])
    with pytest.raises(ConfigError, match="train.epochs.*0 epochs trains nothing"):
        make_config("tiny", train={"epochs": 0})
    with pytest.raises(ConfigError, match="average.*never-ran"):
        trainer.train(make_config("soup", stage="finetune", average=["never-ran", "b"], train={"epochs": 0}),
                      tmp_path, verbose=0)


def test_finetune_without_its_pretrain_run_names_init(make_config, tmp_path):
    fine = make_config("fine", stage="finetune", init="never-ran")
    with pytest.raises(ConfigError, match="init.*never-ran"):
        trainer.train(fine, tmp_path, verbose=0)


class StopAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_at_the_next_epoch(make_config, tmp_path, monkeypatch):
    cfg = make_config("resume", train={"epochs": 3, "freeze_backbone_epochs": 1})
    original = cb.run_callbacks
    monkeypatch.setattr(cb, "run_callbacks", lambda *a, **k: original(*a, **k) + [StopAfter(2)])
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, tmp_path, verbose=0)
    state = json.loads((tmp_path / "resume" / "state.json").read_text())
    assert state["epoch"] == 2 and state["phase"] == "full" and not state.get("finished")
    saved_iterations = None
    original_restore = RunDir.restore_checkpoint

    def check_restore(run, model):
        nonlocal saved_iterations
        restored = original_restore(run, model)
        saved_iterations = int(model.optimizer.iterations.numpy())
        return restored

    monkeypatch.setattr(cb, "run_callbacks", original)
    monkeypatch.setattr(RunDir, "restore_checkpoint", check_restore)
    trainer.train(cfg, tmp_path, verbose=0)
    rows = history(tmp_path / "resume")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert saved_iterations == 10  # one full-phase epoch of 160/16 steps, with its optimizer state
    assert json.loads((tmp_path / "resume" / "state.json").read_text())["finished"] is True


def test_saved_models_reload_without_the_package(make_config, tmp_path):
    cfg = make_config("export", model={"tasks": ["age", "gender", "emotion", "smile"]},
                      data={"datasets": ["utkface", "fer2013", "genki4k"]}, train={"epochs": 1})
    run_dir = trainer.train(cfg, tmp_path, verbose=0)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    expected = {k: np.asarray(v) for k, v in model.predict(x, verbose=0).items()}
    np.savez(tmp_path / "expected.npz", **expected)
    script = f"""
import sys, numpy as np, keras, tensorflow as tf
x = np.load(r"{tmp_path / 'x.npy'}"); expected = np.load(r"{tmp_path / 'expected.npz'}")
for name in ("model.h5", "model.keras"):
    out = keras.models.load_model(r"{run_dir}/" + name).predict(x, verbose=0)
    assert sorted(out) == ["age", "age_probs", "emotion", "gender", "smile"], sorted(out)
    for k in out: np.testing.assert_allclose(out[k], expected[k], atol=1e-5)
loaded = tf.saved_model.load(r"{run_dir / 'saved_model'}")  # keep a reference: it owns the variables
served = loaded.serve(tf.constant(x))
for k in expected.files: np.testing.assert_allclose(served[k].numpy(), expected[k], atol=1e-5)
assert "facenet_mtl" not in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-6000:]


def test_test_time_views_are_finish_options_a_finished_run_can_take(make_config, tmp_path):
    cfg = make_config("flip", model={"tasks": ["gender", "emotion"]},
                      data={"datasets": ["utkface", "fer2013"]}, train={"epochs": 1})
    run_dir = trainer.train(cfg, tmp_path, verbose=0)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    plain = keras.models.load_model(run_dir / "model.h5")
    direct, mirrored = plain.predict(x, verbose=0), plain.predict(x[:, :, ::-1], verbose=0)

    flipped_cfg = make_config("flip", model={"tasks": ["gender", "emotion"], "test_time_flip": True},
                              data={"datasets": ["utkface", "fer2013"]}, train={"epochs": 1})
    with pytest.raises(ConfigError, match="model.test_time_flip.*--refinish"):  # finished, config changed
        trainer.train(flipped_cfg, tmp_path, verbose=0)
    assert not keras.models.load_model(run_dir / "model.h5").name.endswith("_flip_average")
    trainer.train(flipped_cfg, tmp_path, verbose=0, refinish=True)  # only the finish differs: no ConfigError
    assert len(history(run_dir)) == 1
    averaged = keras.models.load_model(run_dir / "model.h5")
    assert averaged.name.endswith("_flip_average")
    got = averaged.predict(x, verbose=0)
    for k in ("gender", "emotion"):
        np.testing.assert_allclose(got[k], (direct[k] + mirrored[k]) / 2, atol=1e-5)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "emotion_acc" in metrics["splits"]["test"]["overall"]

    # Multi-crop too: the mean over the face, its four corner crops at 0.75 (24 of 32 px, resized
    # back) and the mirrors of all five.
    cropped_cfg = make_config("flip", model={"tasks": ["gender", "emotion"], "test_time_flip": True,
                                             "test_time_crops": 5, "test_time_crop_scale": 0.75},
                              data={"datasets": ["utkface", "fer2013"]}, train={"epochs": 1})
    trainer.train(cropped_cfg, tmp_path, verbose=0, refinish=True)
    views = [x] + [x[:, r:r + 24, c:c + 24] for r in (0, 8) for c in (0, 8)]
    views = [np.asarray(keras.ops.image.resize(v, (32, 32))) for v in views]
    views += [v[:, :, ::-1] for v in views]
    expected = [plain.predict(v, verbose=0) for v in views]
    got = keras.models.load_model(run_dir / "model.h5").predict(x, verbose=0)
    for k in ("gender", "emotion"):
        np.testing.assert_allclose(got[k], np.mean([e[k] for e in expected], axis=0), atol=1e-5)


def test_missing_records_name_the_build_command(make_config, tmp_path):
    cfg = make_config(data={"root": str(tmp_path / "nothing")})
    with pytest.raises(DataError, match="build-tfrecords utkface"):
        trainer.train(cfg, tmp_path, verbose=0)


def test_learning_rate_schedules(make_config):
    cfg = make_config(optimizer={"lr": 0.1, "schedule": "step", "step_every": 2, "step_gamma": 0.5,
                                 "warmup_epochs": 1})
    assert [round(plan.learning_rate_at(cfg.optimizer, e, 6), 4) for e in range(5)] == [0.05, 0.1, 0.05, 0.05, 0.025]
    cfg = make_config(optimizer={"lr": 0.1, "schedule": "cosine"})
    lrs = [plan.learning_rate_at(cfg.optimizer, e, 4) for e in range(4)]
    assert lrs[0] == pytest.approx(0.1) and lrs == sorted(lrs, reverse=True) and lrs[-1] > 0


def test_output_names_follow_tasks():
    assert output_names_for(("smile", "age")) == ("age", "age_probs", "smile")


def test_partition_seed_draws_another_disjoint_train_valid_split(tiny_records):
    from facenet_mtl.data.built_dataset import BuiltDataset
    from facenet_mtl.data.pipeline import read_split

    def ids(split, seed):
        ds = read_split(BuiltDataset.open(tiny_records, "utkface"), split, 32, cache=False, partition_seed=seed)
        return {bytes(e["file_id"].numpy()) for e in ds}

    original = ids("train", 0) | ids("valid", 0)
    train, valid = ids("train", 7), ids("valid", 7)
    assert not train & valid and train | valid == original
    assert valid != ids("valid", 0) and abs(len(valid) - len(ids("valid", 0))) <= 15

"""RunDir, the one owner of a run directory: state.json round trip, checkpoints saved and
restored (weights and optimizer state; the best epoch before the last), the changed-config check
driven by the one list of finish keys, the lock, --restart."""
import dataclasses
import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from facenet_mtl.cli import main
from facenet_mtl.locks import LOCK_NAME, FolderInUseError
from facenet_mtl.models import build_model
from facenet_mtl.training.config import ConfigError, parse_config
from facenet_mtl.training.rundir import FINISH_KEYS, RESUMABLE_KEYS, RunDir, snapshot

CONFIG = {"name": "r", "model": {"backbone": "compact", "tasks": ["gender"], "input_size": 16,
                                 "backbone_args": {"widths": [4], "stem_width": 4}},
          "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 2, "seed": 1}}


def test_state_round_trip(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.state() == {}
    run.record_epoch(0, "heads", 1.5, monitor="val_loss", best=0.75, checkpoint_seconds=0.25)
    run.record_epoch(1, "full", 2.0, monitor="val_loss", checkpoint_seconds=0.5)
    state = run.state()
    assert state == {"best": 0.75, "best_epoch": 1, "epoch": 2, "phase": "full", "monitor": "val_loss",
                     "train_seconds": 3.5, "epoch_seconds": [1.5, 2.0], "checkpoint_seconds": [0.25, 0.5]}
    assert run.mark_finished() == {**state, "finished": True}
    assert json.loads(run.state_file.read_text())["finished"] is True
    assert run.mark_finished(False)["finished"] is False
    assert not list(run.path.glob("*.tmp"))


def compiled_model(seed):
    keras.utils.set_random_seed(seed)
    model = build_model("compact", ("gender",), 16, backbone_args={"widths": (4,), "stem_width": 4})
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss={"gender": "binary_crossentropy"})
    return model


def test_checkpoint_save_and_restore(tmp_path):
    run = RunDir(tmp_path)
    trained = compiled_model(seed=1)
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    trained.fit(x, {"gender": np.arange(8) % 2}, epochs=2, verbose=0)
    best = snapshot(trained)
    run.record_epoch(0, "full", 1.0, monitor="val_loss", best=0.5, arrays=best)
    trained.fit(x, {"gender": np.arange(8) % 2}, epochs=1, verbose=0)
    last = snapshot(trained)
    run.record_epoch(1, "full", 1.0, monitor="val_loss", arrays=last)  # not the best: the first stays
    assert any(k.startswith("o") for k in last)
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == ["best-0001.npz", "last-0002.npz"]

    fresh = compiled_model(seed=2)
    assert run.restore_checkpoint(fresh)
    restored = snapshot(fresh)
    assert sorted(restored) == sorted(last)
    for key in last:
        np.testing.assert_array_equal(restored[key], last[key])
    assert int(fresh.optimizer.iterations) == 3

    exported = compiled_model(seed=3)
    assert run.restore_weights(exported)  # the best epoch's, before the last's
    for i, w in enumerate(exported.get_weights()):
        np.testing.assert_array_equal(w, best[f"w{i}"])
    assert not RunDir(tmp_path / "empty").restore_checkpoint(fresh)
    assert not RunDir(tmp_path / "empty").restore_weights(fresh)


def test_a_run_killed_between_checkpoint_and_state_resumes_from_the_pair_it_counted(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    first = {"w0": np.zeros(2), "o0": np.zeros(1)}
    run.record_epoch(0, "heads", 1.0, arrays=first)

    def killed(state):
        raise SystemExit("killed before state.json was written")

    monkeypatch.setattr(run, "_write_state", killed)
    with pytest.raises(SystemExit):
        run.record_epoch(1, "full", 1.0, arrays={"w0": np.ones(2), "o0": np.ones(1), "o1": np.ones(1)})
    state = run.state()
    assert (state["epoch"], state["phase"]) == (1, "heads")  # the epoch and the checkpoint agree
    with np.load(run.last_checkpoint) as data:
        np.testing.assert_array_equal(data["w0"], first["w0"])
    monkeypatch.undo()
    run.record_epoch(1, "full", 1.0, arrays={"w0": np.ones(2)})  # the rerun's epoch replaces both
    assert [p.name for p in run.checkpoint_dir.iterdir()] == ["last-0002.npz"]


def test_a_run_from_before_epoch_named_checkpoints_still_resumes_and_exports(tmp_path):
    run = RunDir(tmp_path)
    run.record_epoch(0, "full", 1.0)  # the old writer: state.json names no checkpoint file
    run.checkpoint_dir.mkdir()
    np.savez(run.checkpoint_dir / "last.npz", w0=np.ones(2), o0=np.zeros(1))
    assert run.last_checkpoint == run.checkpoint_dir / "last.npz" and run.best_checkpoint is None
    np.savez(run.checkpoint_dir / "best_weights.npz", w0=np.full(2, 2.0))
    assert run.best_checkpoint == run.checkpoint_dir / "best_weights.npz"
    run.record_epoch(1, "full", 1.0, arrays={"w0": np.zeros(2)})  # the next epoch replaces both
    assert [p.name for p in run.checkpoint_dir.iterdir()] == ["last-0002.npz"]


def changed(cfg, key):
    """`cfg` with the value at dotted `key` changed (a flag flipped, a number increased)."""
    section, name = key.split(".")
    value = getattr(getattr(cfg, section), name)
    new = (not value) if isinstance(value, bool) else value + 1
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: new})})


@pytest.fixture
def run_of_config(tmp_path):
    cfg = parse_config(CONFIG)
    run = RunDir.of(cfg, tmp_path)
    run.write_config(cfg)
    run.record_epoch(0, "full", 1.0)
    return cfg, run


def test_an_unfinished_run_may_change_only_the_resumable_keys(run_of_config):
    cfg, run = run_of_config
    for key in RESUMABLE_KEYS:
        run.check_config(changed(cfg, key), run.state())
    with pytest.raises(ConfigError, match="optimizer.lr.*an unfinished run.*--restart"):
        run.check_config(changed(cfg, "optimizer.lr"), run.state())


@pytest.mark.parametrize("key", FINISH_KEYS)
def test_a_finished_run_takes_a_finish_key_only_with_refinish(run_of_config, key):
    cfg, run = run_of_config
    state = run.mark_finished()
    run.check_config(cfg, state)  # the same config: skipped
    with pytest.raises(ConfigError, match=f"{key}.*--refinish"):
        run.check_config(changed(cfg, key), state)
    run.check_config(changed(cfg, key), state, refinish=True)
    with pytest.raises(ConfigError, match="optimizer.lr.*a finished run"):
        run.check_config(changed(cfg, "optimizer.lr"), state, refinish=True)


def test_a_run_written_before_a_field_existed_holds_its_default(run_of_config):
    """config.json of an older version lacks a field added since: the run is the same config when
    the field is at its default (it trained that way), another one when it is not."""
    cfg, run = run_of_config
    state = run.mark_finished()
    stored = json.loads(run.config_file.read_text())
    del stored["data"]["teacher_weight"], stored["train"]["calibrate"]
    run.config_file.write_text(json.dumps(stored))
    run.check_config(cfg, state)
    with pytest.raises(ConfigError, match="data.teacher_weight"):
        run.check_config(changed(cfg, "data.teacher_weight"), state)


def test_the_train_help_lists_the_finish_keys():
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    for key in FINISH_KEYS:
        assert key in result.output


def test_the_lock_is_exclusive_and_a_failed_first_run_leaves_no_folder(tmp_path):
    run = RunDir(tmp_path / "runs" / "new")
    with run.lock():
        with pytest.raises(FolderInUseError), RunDir(run.path).lock():
            pass
    with pytest.raises(RuntimeError), run.lock():
        raise RuntimeError("before anything is written")
    assert (tmp_path / "runs").exists() and run.path.exists()  # it existed before this second lock

    fresh = RunDir(tmp_path / "other" / "new")
    with pytest.raises(RuntimeError), fresh.lock():
        raise RuntimeError("before anything is written")
    assert not (tmp_path / "other").exists()


def test_clear_keeps_only_the_lock(tmp_path):
    run = RunDir(tmp_path)
    run.record_epoch(0, "full", 1.0, arrays={"w0": np.zeros(2)})
    with run.lock():
        run.clear()
        assert [p.name for p in run.path.iterdir()] == [LOCK_NAME]

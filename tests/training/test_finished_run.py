"""A finished run is skipped only while its config is the one it ran: a changed config is
refused naming the changed fields (its metrics are of the old config), and a change of the
finish options alone points at --refinish."""
import json

import pytest

from facenet_mtl.training import trainer
from facenet_mtl.training.config import ConfigError


@pytest.fixture(scope="module")
def finished(tiny_records, tmp_path_factory):
    """(runs dir, config dict sections) of one finished one-epoch run."""
    from facenet_mtl.training.config import parse_config
    from tests.training.conftest import tiny_config

    runs = tmp_path_factory.mktemp("runs")
    sections = dict(train={"epochs": 1, "precision": "float32", "seed": 3}, data={"epoch_size": 64})
    trainer.train(parse_config(tiny_config(tiny_records, "done", **sections)), runs, verbose=0)
    return runs, (lambda **changed: parse_config(tiny_config(tiny_records, "done", **{**sections, **changed})))


def test_the_same_config_is_skipped_and_says_so(finished, caplog):
    runs, config = finished
    before = (runs / "done" / "metrics.json").read_text()
    with caplog.at_level("INFO", logger="facenet_mtl"):
        assert trainer.train(config(), runs, verbose=0) == runs / "done"
    assert "is finished; skipping" in caplog.text
    assert (runs / "done" / "metrics.json").read_text() == before


def test_a_changed_config_is_refused_naming_the_fields(finished):
    runs, config = finished
    before = {p.name: p.stat().st_mtime_ns for p in (runs / "done").iterdir() if p.name != ".lock"}
    changed = config(optimizer={"name": "adam", "lr": 1e-4, "schedule": "constant"})
    with pytest.raises(ConfigError) as error:
        trainer.train(changed, runs, verbose=0)
    assert "optimizer.lr" in str(error.value) and "finished" in str(error.value) and "--restart" in str(error.value)
    with pytest.raises(ConfigError, match="optimizer.lr"):
        trainer.train(changed, runs, verbose=0, refinish=True)  # --refinish does not retrain either
    assert {p.name: p.stat().st_mtime_ns for p in (runs / "done").iterdir() if p.name != ".lock"} == before


def test_more_epochs_on_a_finished_run_point_at_refinish(finished):
    runs, config = finished
    with pytest.raises(ConfigError) as error:
        trainer.train(config(train={"epochs": 2, "precision": "float32", "seed": 3}), runs, verbose=0)
    assert "train.epochs: 1 -> 2" in str(error.value) and "--refinish" in str(error.value)
    assert json.loads((runs / "done" / "state.json").read_text())["finished"] is True

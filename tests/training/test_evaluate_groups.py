"""Figures per group (`evaluate --by race,gender,age_band`) and age-group accuracy."""
import numpy as np
import pytest

from facenet_mtl.data.schema import MISSING, RACES
from facenet_mtl.training.evaluate import group_keys, metrics_by_group, task_metrics


def labels(**given):
    n = len(next(iter(given.values())))
    base = {k: np.full(n, MISSING, np.float32 if k.startswith("age") else np.int64)
            for k in ("age", "age_std", "age_min", "age_max", "gender", "emotion", "smile", "race")}
    base.update({k: np.asarray(v, base[k].dtype) for k, v in given.items()})
    return base


def test_age_group_accuracy_counts_an_expected_age_inside_the_group():
    truth = labels(age_min=[20, 20, 70, 0], age_max=[29, 29, 100, 2])
    preds = {"age": np.array([[24.6], [30.2], [88.0], [2.4]], np.float32)}
    metrics = task_metrics(preds, truth)
    assert metrics["age_group_acc"] == pytest.approx(3 / 4) and metrics["age_group_n"] == 4
    assert "age_mae" not in metrics  # no year labels: no MAE made up from groups


def test_groups_by_race_gender_and_age_band():
    truth = labels(age=[5, 15, 30, 45, 70, MISSING], age_min=[MISSING] * 5 + [10], age_max=[MISSING] * 5 + [19],
                   gender=[0, 1, 1, 0, 1, 0], race=[0, 1, 1, 0, MISSING, RACES.index("east_asian")])
    assert list(group_keys(truth, "age_band")) == ["0-12", "13-19", "20-39", "40-59", "60+", "13-19"]
    assert list(group_keys(truth, "race")) == ["white", "black", "black", "white", "", "east_asian"]
    preds = {"gender": np.array([[0.1], [0.9], [0.2], [0.4], [0.8], [0.3]], np.float32),
             "age": np.array([[6], [15], [33], [45], [60], [15]], np.float32)}
    groups = metrics_by_group(preds, truth, ("race", "gender", "age_band"))
    assert list(groups["race"]) == ["white", "black", "east_asian"]  # schema order; unknown race left out
    assert groups["race"]["black"]["gender_acc"] == 0.5 and groups["race"]["white"]["gender_acc"] == 1.0
    assert groups["gender"]["male"]["n"] == 3 and groups["gender"]["female"]["gender_acc"] == 1.0
    assert groups["age_band"]["60+"]["age_mae"] == 10.0
    assert groups["age_band"]["13-19"]["n"] == 2 and groups["age_band"]["13-19"]["age_group_acc"] == 1.0


def test_an_unknown_grouping_is_refused():
    with pytest.raises(ValueError, match="unknown grouping 'hair'"):
        group_keys(labels(age=[1]), "hair")


def test_evaluate_by_groups_runs_on_the_datasets_that_label_them(tiny_records, tmp_path):
    """`evaluate --by` without --datasets skips the datasets without the groups' labels (on the
    release records: FER2013, GENKI-4K and CelebA, half the test faces), and says which it used."""
    import json

    from click.testing import CliRunner

    from facenet_mtl.cli import main
    from facenet_mtl.models import build_model

    path = tmp_path / "m.h5"
    build_model("compact", ("age", "gender", "emotion", "smile"), 32,
                backbone_args={"widths": (8,), "stem_width": 8}).save(path)
    runner = CliRunner()
    out = tmp_path / "e.json"
    done = runner.invoke(main, ["evaluate", str(path), "--data", str(tiny_records), "--by", "race,gender,age_band",
                                "--json", str(out)])
    assert done.exit_code == 0, done.output
    assert "per-group figures on utkface (the datasets that label race, gender, age_band)" in done.output
    evaluation = json.loads(out.read_text())
    assert list(evaluation["by_dataset"]) == ["utkface"] and set(evaluation["by_group"]["utkface"]) == {
        "race", "gender", "age_band"}
    named = runner.invoke(main, ["evaluate", str(path), "--data", str(tiny_records), "--by", "gender",
                                 "--datasets", "utkface,fer2013", "--json", str(out)])
    assert named.exit_code == 0, named.output
    assert list(json.loads(out.read_text())["by_dataset"]) == ["utkface", "fer2013"]

"""The results report: fake run directories with known figures -> RESULTS.md, results.csv, PNGs."""
import csv
import json

import pytest

from facenet_mtl.errors import DataError
from facenet_mtl.training.config import ExperimentConfig, LossConfig, ModelConfig, OptimizerConfig
from facenet_mtl.training.report import (
    PEER_REFERENCES,
    STUDY_REFERENCES,
    build_report,
    check_reference,
    find_run_dirs,
    to_markdown,
    write_report,
)


def make_run(runs, name, backbone="resnet18", tasks=("age", "gender", "emotion"), weights=None,
             lr=0.01, overall=None, by_dataset=None, reference=None, metrics=True):
    """A run directory as the trainer leaves it: config.json and (unless told not) metrics.json."""
    cfg = ExperimentConfig(
        name=name, stage="finetune", init="resnet18-pretrain", learning_method="multi-task finetune",
        reference=reference or {}, model=ModelConfig(backbone=backbone, tasks=tasks),
        loss=LossConfig(weights=weights or {}), optimizer=OptimizerConfig(lr=lr))
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    if metrics:
        split = {"overall": overall or {}, "by_dataset": by_dataset or {}}
        (run_dir / "metrics.json").write_text(json.dumps(
            {"name": name, "splits": {"test": split, "valid": split}, "epochs": 2, "train_seconds": 1.0}))
    return run_dir


@pytest.fixture
def runs(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "resnet18-mtl-lowgender", weights={"age": 1.0, "gender": 0.1, "emotion": 1.0},
             overall={"age_mae": 5.1234, "age_eps": 0.41, "gender_acc": 0.9137, "emotion_acc": 0.6234,
                      "n": 1234},
             by_dataset={"fer2013": {"emotion_acc": 0.7, "n": 10}})
    make_run(runs, "resnet18-emotion", tasks=("emotion",), lr=0.001,
             overall={"emotion_acc": 0.5, "n": 3589})
    return runs


def read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_table_holds_each_run_beside_its_published_row(runs, tmp_path):
    report = build_report(find_run_dirs(runs), split="test", date="2024-05-01")
    write_report(report, tmp_path / "out")
    markdown = (tmp_path / "out" / "RESULTS.md").read_text()
    assert "Split `test`" in markdown and "2024-05-01" in markdown
    lines = markdown.splitlines()
    run = lines.index("| ResNet-18 age-gender-emotion | 5.12 | 91.37 | 62.34 |  | age=1, gender=0.1, "
                      "emotion=1 | 0.01 | multi-task finetune | this run | resnet18-mtl-lowgender |")
    assert lines[run + 1].startswith("| ResNet-18 age-gender-emotion | 12.95 | 84.15 | 48.20 |  | "
                                     "age=1, gender=0.1, emotion=1 | 0.01 |")
    assert lines[run + 1].split("|")[-3].strip() == "reference"
    assert "| ResNet-18 emotion |  |  | 50.00 |  | emotion=1 | 0.001 |" in markdown
    assert sum("| reference |" in line for line in lines) == len(STUDY_REFERENCES)
    assert "| 12.48 | 87.00 |" in markdown  # the other public project's row


def test_the_csv_holds_the_same_formatted_figures(runs, tmp_path):
    write_report(build_report(find_run_dirs(runs)), tmp_path)
    rows = read_csv(tmp_path / "results.csv")
    first = next(r for r in rows if r["experiment"] == "resnet18-mtl-lowgender")
    assert (first["model"], first["age_mae"], first["gender_acc_pct"], first["emotion_acc_pct"],
            first["smile_acc_pct"]) == ("ResNet-18 age-gender-emotion", "5.12", "91.37", "62.34", "")
    assert (first["loss_weights"], first["initial_lr"], first["source"]) == (
        "age=1, gender=0.1, emotion=1", "0.01", "this run")
    assert [r["source"] for r in rows].count("this run") == 2
    published = {(r["model"], r["age_mae"], r["gender_acc_pct"], r["emotion_acc_pct"], r["smile_acc_pct"])
                 for r in rows if r["source"] == "reference"}
    assert ("DenseNet-121 age-gender-emotion-smile", "15.46", "76.46", "33.80", "83.98") in published
    assert len(published) == len(STUDY_REFERENCES)


def test_a_chart_per_metric_a_run_reports(runs, tmp_path):
    written = write_report(build_report(find_run_dirs(runs)), tmp_path)
    charts = {p.name for p in written if p.suffix == ".png"}
    assert charts == {"age_mae.png", "gender_acc.png", "emotion_acc.png"}  # no run has smile
    for name in charts:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_peer_references_join_as_a_second_set_and_ranges_print_as_ranges(runs):
    report = build_report(find_run_dirs(runs), references=STUDY_REFERENCES + PEER_REFERENCES)
    markdown = to_markdown(report)
    assert "| mini-Xception emotion |  |  | 66.00 |" in markdown
    assert "| 4.20–5.40 | 95.00–97.70 |" in markdown
    assert len(report.references) == len(STUDY_REFERENCES) + len(PEER_REFERENCES)


def test_a_config_reference_outside_the_set_still_stands_beside_its_run(tmp_path):
    make_run(tmp_path, "mine", overall={"age_mae": 6.0}, reference={"model": "Paper X", "age_mae": 7.5})
    report = build_report([tmp_path / "mine"], references=[])
    assert [(r.source, r.model, r.values) for r in report.rows] == [
        ("this run", "ResNet-18 age-gender-emotion", {"age_mae": 6.0}),
        ("reference", "Paper X", {"age_mae": 7.5})]


def test_one_dataset_of_the_runs_can_be_reported(runs):
    report = build_report(find_run_dirs(runs), references=[], dataset="fer2013")
    assert [r.values for r in report.runs] == [{}, {"emotion_acc": 70.0}]
    assert "dataset `fer2013`" in to_markdown(report)


def test_a_run_without_metrics_is_an_error_naming_it(runs):
    unfinished = make_run(runs, "unfinished", metrics=False)
    with pytest.raises(DataError, match="no metrics.json") as error:
        build_report(find_run_dirs(runs))
    assert error.value.path == str(unfinished)


def test_skip_missing_leaves_the_run_out_with_a_warning(runs):
    make_run(runs, "unfinished", metrics=False)
    with pytest.warns(UserWarning, match="unfinished"):
        report = build_report(find_run_dirs(runs), skip_missing=True)
    assert [r.experiment for r in report.runs] == ["resnet18-emotion", "resnet18-mtl-lowgender"]


def test_a_missing_split_is_an_error_naming_the_split(runs):
    with pytest.raises(DataError, match="no figures for split 'train'"):
        build_report(find_run_dirs(runs), split="train")


def test_a_folder_that_is_no_run_is_left_out_with_a_warning(runs):
    (runs / "demo-report").mkdir()
    with pytest.warns(UserWarning, match="not a run directory"):
        report = build_report(sorted(runs.iterdir()))
    assert len(report.runs) == 2
    with pytest.raises(DataError, match="no such run directory"):
        build_report([runs / "nowhere"])


@pytest.mark.parametrize("ref, problem", [
    ({"model": "x", "gender_acc": 0.87}, "gender_acc: must be a percentage"),
    ({"model": "x", "age_mae": (5, 4, 3)}, "age_mae: must be a number or a"),
    ({"model": "x", "age_rmse": 4.0}, "age_rmse: unknown key"),
    ({"age_mae": 4.0}, "model: every reference row names its model"),
])
def test_a_bad_reference_row_is_refused(ref, problem):
    with pytest.raises(ValueError, match=problem):
        check_reference(ref)
    with pytest.raises(ValueError, match="reference row"):
        build_report([], references=[ref])


def test_the_published_sets_are_valid():
    for ref in STUDY_REFERENCES + PEER_REFERENCES:
        check_reference(ref)


def test_a_renamed_run_finds_its_published_row_by_its_config_reference(tmp_path):
    published = STUDY_REFERENCES[1]
    reference = {k: v for k, v in published.items() if k in ("model", "age_mae", "gender_acc", "emotion_acc")}
    make_run(tmp_path, "resnet18-mtl-w111-seed2", overall={"age_mae": 6.0}, reference=reference)
    report = build_report([tmp_path / "resnet18-mtl-w111-seed2"])
    assert report.rows[1].experiment == published["experiment"]
    assert len(report.references) == len(STUDY_REFERENCES)


def test_runs_on_demo_faces_are_marked_in_the_table_csv_and_charts(tmp_path):
    run = make_run(tmp_path, "demo-mtl-w1111", overall={"smile_acc": 0.7, "gender_acc": 0.8})
    real = make_run(tmp_path, "real-mtl", overall={"smile_acc": 0.93})
    report = build_report([run, real])
    assert {r.experiment: r.data for r in report.runs} == {"demo-mtl-w1111": "demo", "real-mtl": "real"}
    markdown = to_markdown(report)
    assert "*demo data*" in markdown and "not comparable with the published" in markdown
    (demo_line,) = [line for line in markdown.splitlines() if "demo-mtl-w1111" in line]
    assert "this run (*demo data*)" in demo_line
    (real_line,) = [line for line in markdown.splitlines() if "| real-mtl |" in line]
    assert "demo" not in real_line
    write_report(report, tmp_path / "out")
    rows = {r["experiment"]: r["data"] for r in read_csv(tmp_path / "out" / "results.csv") if r["source"] == "this run"}
    assert rows == {"demo-mtl-w1111": "demo", "real-mtl": "real"}
    assert "demo data" not in to_markdown(build_report([real]))


def test_the_chart_legend_sits_outside_the_bars(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from facenet_mtl.training import report as report_module

    made = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: made.append(self))
    run = make_run(tmp_path, "demo-mtl", overall={"smile_acc": 0.7})
    report_module.plot_metric(build_report([run]), report_module.METRICS[3], tmp_path / "smile_acc.png")
    (fig,) = made
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    legend, = fig.legends
    box = legend.get_window_extent(renderer)
    for other in (ax.get_tightbbox(renderer), ax.title.get_window_extent(renderer)):
        assert not box.overlaps(other)  # covers no bar, value, axis label or the title
    # Only the kinds of bar drawn: a demo run and the published rows, no "this run" without bars.
    assert {t.get_text() for t in legend.get_texts()} == {"this run, demo data", "reference"}


def test_backbone_table_names_come_from_the_backbone_registry():
    from facenet_mtl.models.backbones import BACKBONES
    from facenet_mtl.training.report import backbone_title

    assert {name: backbone_title(name) for name in BACKBONES} == {n: s.title for n, s in BACKBONES.items()}
    assert backbone_title("resnet18") == "ResNet-18" and backbone_title("not_registered") == "not_registered"

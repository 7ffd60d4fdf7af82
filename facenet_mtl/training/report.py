"""The study's results table, regenerated from run directories.

Every `runs/<name>/` holds `config.json` (the resolved experiment) and `metrics.json` (the
evaluator's figures, accuracies as fractions). `build_report` turns them into table rows, each
run followed by the published row it reproduces; `write_report` writes `RESULTS.md`,
`results.csv` and one bar chart per metric.

>>> report = build_report([], references=STUDY_REFERENCES[:1], date="2024-01-01")
>>> row = report.rows[0]
>>> row.source, format_value(row.values["gender_acc"])
('reference', '84.15')
"""
import csv
import datetime
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from facenet_mtl.artifact.spec import data_kind
from facenet_mtl.errors import DataError
from facenet_mtl.training.references import (METRIC_KEYS, METRICS, PEER_REFERENCES, STUDY_REFERENCES,
                                             check_reference)

RUN, REFERENCE = "this run", "reference"


def backbone_title(name):
    """A backbone's table name, its registry's `title` ("ResNet-18"); an unregistered one shows
    `name`. (Imported here, not above: the registry loads Keras, which a report needs only now.)"""
    from facenet_mtl.models.backbones import BACKBONES

    spec = BACKBONES.get(name)
    return spec.title if spec else name


@dataclass
class ReportRow:
    """One table row: a run's figures or a published one, in display units (MAE years, %)."""

    model: str
    source: str  # RUN or REFERENCE
    values: dict = field(default_factory=dict)  # metric key -> float, or (low, high) for a range
    loss_weights: dict = field(default_factory=dict)
    lr: float = None
    learning_method: str = ""
    experiment: str = ""  # the run's name, or the experiment a published row belongs to
    origin: str = ""  # where a published figure comes from; a run's directory
    data: str = ""  # a run's data: "demo" (generated faces) or "real"; "" for a published row


@dataclass
class Report:
    split: str
    date: str
    rows: list
    dataset: str = None  # figures from metrics.json's `by_dataset[dataset]`; None: overall

    @property
    def runs(self):
        return [r for r in self.rows if r.source == RUN]

    @property
    def references(self):
        return [r for r in self.rows if r.source == REFERENCE]

    def metrics_present(self):
        """The metrics worth a chart: those a run reports (any row's, when there are no runs)."""
        rows = self.runs or self.rows
        return [m for m in METRICS if any(m.key in r.values for r in rows)]


def find_run_dirs(root="runs"):
    """The run directories under `root` (those holding a config.json), sorted by name."""
    return sorted(p.parent for p in Path(root).glob("*/config.json"))


def build_report(run_dirs, split="test", references=STUDY_REFERENCES, skip_missing=False,
                 dataset=None, date=None):
    """Rows for every run in `run_dirs` and every published row in `references`.

    Each run is followed by the published rows it reproduces (matched by experiment name, or by
    the figures in the run's config `reference`); the other published rows come last. A run
    without `metrics.json` (or without `split` in it) raises DataError naming the run, or is
    left out with a warning when `skip_missing`; a folder with neither config.json nor
    metrics.json is no run (say, a report folder matched by `runs/demo-*`) and is left out with a
    warning. `dataset` reads `by_dataset[dataset]` instead of the overall figures.
    """
    for ref in references:
        try:
            check_reference(ref)
        except ValueError as exc:
            raise ValueError(f"reference row {ref.get('model', ref)!r}: {exc}") from None
    rows, used = [], set()
    for run_dir in map(Path, run_dirs):
        run = _read_run(run_dir, split, skip_missing)
        if run is None:
            continue
        config, figures = run
        rows.append(_run_row(run_dir, config, figures, dataset))
        matched = [i for i, ref in enumerate(references) if _reproduces(config, ref)]
        rows += [_reference_row(references[i]) for i in matched if i not in used]
        used.update(matched)
        own = config.get("reference") or {}
        if own and not matched:  # a config's own published row, not in `references`
            rows.append(_reference_row({"experiment": config["name"], **own}))
    rows += [_reference_row(ref) for i, ref in enumerate(references) if i not in used]
    return Report(split=split, date=date or datetime.date.today().isoformat(), rows=rows,
                  dataset=dataset)


def _read_run(run_dir, split, skip_missing):
    metrics_path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise DataError(run_dir, "no such run directory", "give runs/<experiment name>/ directories")
    if not (run_dir / "config.json").is_file() and not metrics_path.is_file():
        # Not a run at all (a report or predictions folder caught by a glob like runs/demo-*).
        warnings.warn(f"{run_dir}: not a run directory (no config.json); left out", stacklevel=3)
        return None
    if not metrics_path.is_file():
        return _missing(run_dir, "no metrics.json in this run directory",
                        "evaluate the run first (it writes metrics.json)", skip_missing)
    metrics = _read_json(metrics_path)
    config = _read_json(run_dir / "config.json")
    splits = metrics.get("splits", {})
    if split not in splits:
        return _missing(metrics_path, f"no figures for split '{split}'",
                        f"evaluate on '{split}'; this file has: {', '.join(splits) or 'no split'}",
                        skip_missing)
    return config, metrics["splits"][split]


def _missing(path, problem, fix, skip_missing):
    error = DataError(path, problem, fix + "; or build the report with skip_missing=True")
    if not skip_missing:
        raise error
    warnings.warn(f"{path}: {problem}; left out of the report", stacklevel=4)
    return None


def _read_json(path):
    if not path.is_file():
        raise DataError(path, "file not found", "a run directory holds config.json and metrics.json")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON: {exc}") from None


def _run_row(run_dir, config, figures, dataset):
    model = config.get("model", {})
    tasks = tuple(model.get("tasks", ()))
    if dataset is not None:
        figures = figures.get("by_dataset", {}).get(dataset, {})
    else:
        figures = figures.get("overall", {})
    values = {m.key: figures[m.key] * (100 if m.percent else 1) for m in METRICS
              if figures.get(m.key) is not None}
    weights = config.get("loss", {}).get("weights", {})
    backbone = model.get("backbone", "")
    return ReportRow(
        model=f"{backbone_title(backbone)} {'-'.join(tasks)}".strip(),
        source=RUN,
        values=values,
        loss_weights={t: weights.get(t, 1.0) for t in tasks},  # missing tasks weigh 1
        lr=config.get("optimizer", {}).get("lr"),
        learning_method=config.get("learning_method") or config.get("stage", ""),
        experiment=config.get("name", run_dir.name),
        origin=str(run_dir),
        data=data_kind(config),
    )


def _reproduces(config, ref):
    if ref.get("experiment") and ref["experiment"] == config.get("name"):
        return True
    own = config.get("reference") or {}  # a renamed run still carries its published row
    return bool(own) and all(_same(own.get(k), ref.get(k)) for k in ("model", *METRIC_KEYS))


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _reference_row(ref):
    values = {k: tuple(v) if isinstance(v, (list, tuple)) else float(v)
              for k, v in ref.items() if k in METRIC_KEYS}
    return ReportRow(
        model=ref["model"],
        source=REFERENCE,
        values=values,
        loss_weights=dict(ref.get("loss_weights", {})),
        lr=ref.get("lr"),
        learning_method=ref.get("learning_method", ""),
        experiment=ref.get("experiment", ""),
        origin=ref.get("origin", ""),
    )


# --- formatting -------------------------------------------------------------------------------


def format_value(value):
    """MAE and percentages alike: 2 decimals; a range as `low–high`; missing as ''."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "–".join(f"{v:.2f}" for v in value)
    return f"{value:.2f}"


def format_weights(weights):
    return ", ".join(f"{task}={weight:g}" for task, weight in weights.items())


def format_lr(lr):
    return "" if lr is None else f"{lr:g}"


CSV_COLUMNS = ("model", "age_mae", "gender_acc_pct", "emotion_acc_pct", "smile_acc_pct",
               "loss_weights", "initial_lr", "learning_method", "source", "experiment", "origin", "data")
DEMO_NOTE = ("Rows marked *demo data* were trained and tested on the generated demo faces: they show "
             "that the programme runs, and are not comparable with the published real-data rows.")


def _cells(row):
    return [
        row.model,
        *(format_value(row.values.get(m.key)) for m in METRICS),
        format_weights(row.loss_weights),
        format_lr(row.lr),
        row.learning_method,
        row.source,
        row.experiment,
        row.origin,
        row.data,
    ]


def to_markdown(report):
    scope = f"dataset `{report.dataset}`" if report.dataset else "all test datasets together"
    lines = [
        "# Results",
        "",
        f"Split `{report.split}` ({scope}), generated {report.date}: {len(report.runs)} run(s), "
        f"{len(report.references)} published reference row(s).",
        "Age MAE in years; accuracies in %. Each run is followed by the published row it "
        "reproduces; rows with source *reference* are published figures, not our runs.",
        *([DEMO_NOTE] if any(r.data == "demo" for r in report.runs) else []),
        "",
    ]
    headers = ["model", *(m.header for m in METRICS), "loss weights", "initial lr",
               "learning method", "source", "experiment / origin"]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---:" if h in {m.header for m in METRICS} else "---" for h in headers) + "|")
    for row in report.rows:
        where = [row.experiment] if row.source == RUN else [row.origin, row.experiment]
        cells = _cells(row)[:-3] + [" · ".join(filter(None, where))]
        if row.data == "demo":
            cells[-2] += " (*demo data*)"
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


# --- charts -----------------------------------------------------------------------------------


COLOURS = {RUN: "tab:blue", REFERENCE: "tab:gray"}
DEMO_RUN, DEMO_COLOUR = "this run, demo data", "tab:orange"
LEGEND_PX = 26  # the strip below the chart that holds its legend


def _colour(row):
    return DEMO_COLOUR if row.data == "demo" else COLOURS[row.source]


def plot_metric(report, metric, path):
    """A horizontal bar chart of one metric: runs and published rows, ranges as error bars."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg
    from matplotlib.patches import Patch

    rows = [r for r in report.rows if metric.key in r.values]
    labels, centres, spans, colours = [], [], [], []
    for row in rows:
        value = row.values[metric.key]
        low, high = value if isinstance(value, tuple) else (value, value)
        centres.append((low + high) / 2)
        spans.append((high - low) / 2)
        label = f"{row.model} [{row.experiment}]" if row.experiment else row.model
        labels.append(label if row.source == RUN else f"{label} (ref.)")
        colours.append(_colour(row))
    fig = Figure(figsize=(11, 1.5 + 0.35 * len(rows)))
    ax = fig.add_subplot()
    positions = range(len(rows))
    ax.barh(positions, centres, color=colours)
    for y, row in zip(positions, rows):
        if spans[y]:
            ax.errorbar(centres[y], y, xerr=spans[y], fmt="none", ecolor="black", capsize=3)
        ax.annotate(format_value(row.values[metric.key]), (centres[y] + spans[y], y),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(list(positions), labels, fontsize=8)
    ax.invert_yaxis()
    better = "lower is better" if metric.lower_is_better else "higher is better"
    ax.set_title(f"{metric.header}, split {report.split} ({better})")
    ax.set_xlabel(metric.header)
    ax.margins(x=0.15)
    # The legend has its own strip at the bottom of the figure: inside the axes it covered the
    # last bar's value, above them the title. It lists only the kinds of bar the chart has.
    shown = {}
    for row in rows:
        shown.setdefault(DEMO_RUN if row.data == "demo" else row.source, _colour(row))
    fig.legend(handles=[Patch(color=c, label=s) for s, c in shown.items()], loc="lower left",
               bbox_to_anchor=(0.01, 0.0), ncol=len(shown), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, LEGEND_PX / (fig.get_figheight() * fig.dpi), 1, 1))
    fig.savefig(path, dpi=100)
    return path


def write_report(report, out_dir):
    """Write RESULTS.md, results.csv and `<metric>.png` per reported metric; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "RESULTS.md"
    markdown.write_text(to_markdown(report))
    table = out_dir / "results.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_cells(row) for row in report.rows)
    charts = [plot_metric(report, m, out_dir / f"{m.key}.png") for m in report.metrics_present()]
    return [markdown, table, *charts]


__all__ = [
    "METRICS", "PEER_REFERENCES", "REFERENCE", "RUN", "STUDY_REFERENCES", "Report", "ReportRow",
    "build_report", "check_reference", "find_run_dirs", "format_value", "plot_metric",
    "to_markdown", "write_report",
]

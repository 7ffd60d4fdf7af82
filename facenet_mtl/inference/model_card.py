"""What every prediction says about the model behind it: an id, and a warning when it is no real model.

The shipped model (`facenet_mtl.weights`) is described by its `release.json`; any other model by
its file: `<run>/<file>-<sha256[:8]>` as its id, and "demo" when its `ModelSpec` says it was
trained on the generated demo faces. Its heads and their labels are the spec's. A model that was not trained on real faces carries a
`warning`, printed by `predict` and `serve`, so nobody mistakes its outputs for a real model's.

>>> card = ModelCard(id="m.h5-0123abcd", trained_on="demo")
>>> card.warning.startswith("model m.h5-0123abcd was trained on generated demo faces")
True
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facenet_mtl import weights
from facenet_mtl.artifact.spec import ModelSpec, read_json

WARNINGS = {
    "untrained": "is an UNTRAINED placeholder: its predictions are random, not estimates",
    "demo": "was trained on generated demo faces, not real photos: its predictions mean nothing on real faces",
}


@dataclass
class ModelCard:
    """The facts `GET /v1/model` and every prediction record report about a model."""

    id: str
    trained_on: str = "unknown"  # "real", "demo", "untrained" or "unknown" (a model of your own)
    version: str = ""
    description: str = ""
    input_size: int = 0
    tasks: tuple = ()
    figures: dict = field(default_factory=dict)
    path: str = ""
    labels: dict = field(default_factory=dict)  # {task: label names}, from the model's spec
    heads: list = field(default_factory=list)  # [{"name", "kind", "labels", "line"}]: how to read each

    def set_spec(self, spec: ModelSpec) -> None:
        """Take the tasks, their labels and kinds from the model file's `spec`."""
        self.tasks = spec.task_names
        self.labels = spec.labels()
        self.heads = [{"name": t.name, "kind": t.kind, "labels": list(t.labels), "line": t.line or t.name}
                      for t in spec.tasks]

    @property
    def warning(self) -> str | None:
        problem = WARNINGS.get(self.trained_on)
        return f"model {self.id} {problem}" if problem else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, each task's label names, and the warning when there is one."""
        card = asdict(self)
        card["tasks"] = list(self.tasks)
        if self.warning:
            card["warning"] = self.warning
        return card


def describe(path: str | Path, spec: ModelSpec | None = None) -> ModelCard:
    """The card of the model at `path` with its `spec` (the shipped model is recognised by its
    location)."""
    path = Path(path)
    if path.resolve() == weights.RELEASE_MODEL.resolve():
        info = weights.release_info()
        card = ModelCard(id=weights.model_id(info), trained_on=info.get("trained_on", "unknown"),
                         version=str(info.get("version", "")), description=info.get("description", ""),
                         input_size=int(info.get("input_size", 0)), tasks=tuple(info.get("tasks", ())),
                         figures=dict(info.get("figures", {})), path=str(path))
    else:
        run_dir = path.parent
        name = f"{run_dir.name}/{path.name}" if (run_dir / "config.json").is_file() else path.name
        # "real" stays "unknown": a file alone cannot prove its data were real.
        trained_on = "demo" if spec is not None and spec.trained_on == "demo" else "unknown"
        card = ModelCard(id=f"{name}-{_content_digest(path)[:8]}", trained_on=trained_on,
                         figures=_test_figures(run_dir), path=str(path))
    if spec is not None:
        card.input_size = spec.input_size
        card.set_spec(spec)
    return card


def _content_digest(path):
    """sha256 of a model file, or of every file of a SavedModel directory (names included)."""
    if path.is_file():
        return weights.sha256_of(path)
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(member.relative_to(path)).encode())
        digest.update(weights.sha256_of(member).encode())
    return digest.hexdigest()


def _test_figures(run_dir):
    """The run's overall test metrics (metrics.json's `splits.test.overall`), if it was evaluated."""
    overall = ((read_json(run_dir / "metrics.json").get("splits") or {}).get("test") or {}).get("overall") or {}
    return {k: v for k, v in overall.items() if isinstance(v, (int, float))}

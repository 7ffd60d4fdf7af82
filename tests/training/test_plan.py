"""The training plan both trainers share, and the import circle it removed: `distributed` imports
nothing from `trainer` (the trainer imports `distributed` for multi-worker runs)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import facenet_mtl.training.distributed as distributed
from facenet_mtl.training import plan
from facenet_mtl.training.config import parse_config


def imported_modules(path):
    """Every module an import statement of the file names, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_distributed_imports_nothing_from_the_trainer():
    assert not {n for n in imported_modules(distributed.__file__) if n.startswith("facenet_mtl.training.trainer")}
    check = ("import sys, facenet_mtl.training.distributed; "
             "assert 'facenet_mtl.training.trainer' not in sys.modules, 'trainer imported'; print('ok')")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


def test_the_plan_imports_neither_trainer():
    names = imported_modules(plan.__file__)
    assert not {n for n in names if n.startswith(("facenet_mtl.training.trainer", "facenet_mtl.training.distributed"))}


@pytest.mark.parametrize("freeze, expected", [(0, [("full", 0, 3)]), (1, [("heads", 0, 1), ("full", 1, 3)]),
                                              (5, [("heads", 0, 3)])])
def test_phases(freeze, expected):
    cfg = parse_config({"name": "x", "model": {"backbone": "compact", "tasks": ["age"]},
                        "train": {"epochs": 3, "freeze_backbone_epochs": freeze}})
    assert plan.phases(cfg) == expected

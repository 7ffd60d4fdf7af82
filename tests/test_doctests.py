"""Every `>>>` example in the package's docstrings runs in the suite, and says what it shows.

The modules are found by walking the package, so a module added or moved is collected with no
edit here. Models modules must each carry an example (they document the layers a saved model is
made of)."""
import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import facenet_mtl

MODULES = ["facenet_mtl"] + sorted(
    info.name for info in pkgutil.walk_packages(facenet_mtl.__path__, "facenet_mtl.")
    if not info.name.endswith("__main__"))
WITH_EXAMPLES = [name for name in MODULES
                 if ">>>" in Path(importlib.util.find_spec(name).origin).read_text(encoding="utf-8")]


def test_the_walk_finds_examples():
    assert len(WITH_EXAMPLES) >= 20, WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name}: its '>>>' lines are not in a docstring doctest finds"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("facenet_mtl.models.")
                                  and not n.rsplit(".", 1)[1].startswith("_")])
def test_models_modules_carry_an_example(name):
    assert name in WITH_EXAMPLES, f"{name} has no runnable example"

"""The docstring examples of every models module run and say what they show."""
import doctest
import importlib
import pkgutil

import pytest

import facenet_mtl.models
import facenet_mtl.models.backbones

MODULES = ["facenet_mtl.models"] + [
    f"{package.__name__}.{info.name}"
    for package in (facenet_mtl.models, facenet_mtl.models.backbones)
    for info in pkgutil.iter_modules(package.__path__)
    if not info.name.startswith("_") and not info.ispkg
] + ["facenet_mtl.models.backbones"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    assert module.__doc__ and ">>>" in module.__doc__, f"{name} has no runnable example"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

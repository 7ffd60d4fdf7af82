"""Type hints on the public API (issue 13): in each module below, every public function and every
public method of a public class defined there (the constructor included) annotates each parameter
but `self` / `cls`, and its return value. Names a module imports from elsewhere are not its own.
The package ships `py.typed`, so these hints are what a type checker shows a user."""
import importlib
import inspect
from pathlib import Path

import pytest

import facenet_mtl

ANNOTATED = (
    "facenet_mtl",
    "facenet_mtl.locks",
    "facenet_mtl.quiet",
    "facenet_mtl.weights",
    "facenet_mtl.errors",
    "facenet_mtl.data.faces",
    "facenet_mtl.data.images",
    "facenet_mtl.data.process",
    "facenet_mtl.data.readers.appa_real",
    "facenet_mtl.data.readers.base",
    "facenet_mtl.data.readers.celeba",
    "facenet_mtl.data.readers.common",
    "facenet_mtl.data.readers.fairface",
    "facenet_mtl.data.readers.fer2013",
    "facenet_mtl.data.readers.genki4k",
    "facenet_mtl.data.readers.imdb_wiki",
    "facenet_mtl.data.readers.splits",
    "facenet_mtl.data.readers.utkface",
    "facenet_mtl.models.preprocessing",
    "facenet_mtl.models.backbones._blocks",
    "facenet_mtl.models.backbones._pretrained",
    "facenet_mtl.models.backbones.alexnet",
    "facenet_mtl.models.backbones.compact",
    "facenet_mtl.models.backbones.densenet121",
    "facenet_mtl.models.backbones.mobilenet",
    "facenet_mtl.models.backbones.resnet18",
    "facenet_mtl.models.backbones.ssrnet",
    "facenet_mtl.models.backbones.vgg16",
    "facenet_mtl.inference.batch",
    "facenet_mtl.artifact.exporting",
    "facenet_mtl.inference.inputs",
    "facenet_mtl.artifact.loading",
    "facenet_mtl.inference.model_card",
    "facenet_mtl.inference.records",
    "facenet_mtl.inference.tracks",
    "facenet_mtl.inference.video",
    "facenet_mtl.serve.app",
    "facenet_mtl.serve.batching",
    "facenet_mtl.training.balancing",
    "facenet_mtl.training.bn_recalibration",
    "facenet_mtl.artifact.portable",
    "facenet_mtl.artifact.spec",
    "facenet_mtl.registry",
    "facenet_mtl.training.precision",
    "facenet_mtl.training.references",
    "facenet_mtl.release",
)
OPTIONAL = {"facenet_mtl.serve.app": "starlette"}  # the `serve` extra


def public_functions(module):
    """(qualified name, function) for the module's own public functions, and the public methods,
    properties and constructors of its own public classes (decorators unwrapped)."""
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(obj):
            if obj.__module__ != module.__name__:
                continue
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(member, property):
                    member = member.fget
                elif isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                member = inspect.unwrap(member) if callable(member) else member
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member
            continue
        function = inspect.unwrap(obj) if callable(obj) else obj  # lru_cache, contextmanager
        if inspect.isfunction(function) and function.__module__ == module.__name__:
            yield name, function


def missing_hints(function):
    """The parameters (and "return") of `function` that have no annotation."""
    signature = inspect.signature(function, follow_wrapped=False)
    missing = [name for name, parameter in signature.parameters.items()
               if name not in ("self", "cls") and parameter.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


@pytest.mark.parametrize("module_name", ANNOTATED)
def test_public_functions_are_annotated(module_name):
    if module_name in OPTIONAL:
        pytest.importorskip(OPTIONAL[module_name])
    module = importlib.import_module(module_name)
    unannotated = {name: missing for name, function in public_functions(module)
                   if (missing := missing_hints(function))}
    assert unannotated == {}, f"{module_name}: add type hints to {unannotated}"


def test_the_check_sees_what_it_should():
    module = importlib.import_module("facenet_mtl.data.images")
    names = dict(public_functions(module))
    assert {"load_rgb", "CorruptImageError.__init__", "crop_box_with_margin"} <= set(names)
    assert "DataError.__init__" not in names and "Path" not in names  # imported, not its own
    assert "release_info" in dict(public_functions(importlib.import_module("facenet_mtl.weights")))  # lru_cache
    assert "exclusive" in dict(public_functions(importlib.import_module("facenet_mtl.locks")))  # contextmanager

    def half_typed(a: int, b, *, c=1) -> None: ...

    def untyped_return(self, a: int): ...

    assert missing_hints(half_typed) == ["b", "c"]
    assert missing_hints(untyped_return) == ["return"]


def test_the_package_is_marked_typed():
    assert (Path(facenet_mtl.__file__).parent / "py.typed").is_file()

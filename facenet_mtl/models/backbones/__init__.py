"""The backbone registry: every architecture by name, built through one function.

A backbone is features only: a `keras.Model` from a preprocessed `(input_size, input_size, 3)`
float image to a pooled feature vector `(batch, features)`. It knows nothing of ages or emotions;
the heads go on top (`facenet_mtl.models.heads`). Each architecture lives in its own module here
and registers itself with the preprocessing it expects (see `facenet_mtl.models.preprocessing`);
`build_model` puts that preprocessing in front of it.

>>> from facenet_mtl.models.backbones import BACKBONES, create_backbone
>>> sorted(BACKBONES)
['alexnet', 'compact', 'densenet121', 'mobilenet', 'resnet18', 'ssrnet', 'vgg16']
>>> create_backbone("compact", 48, widths=(8, 16), stem_width=8).output_shape
(None, 16)
>>> BACKBONES["compact"].preprocessing, BACKBONES["resnet18"].title
('symmetric', 'ResNet-18')
"""
from dataclasses import dataclass
from typing import Callable

from facenet_mtl.models.preprocessing import PREPROCESSING_MODES


@dataclass(frozen=True)
class BackboneSpec:
    """One registered architecture: its builder, its input preprocessing, its smallest input and
    its name in tables (the results report)."""

    name: str
    build: Callable  # build(input_size, name=..., **architecture_args) -> keras.Model
    preprocessing: str
    min_input_size: int
    title: str


BACKBONES = {}


def register_backbone(name, preprocessing, min_input_size=32, title=None):
    """Decorator: register `build(input_size, name=..., **kwargs)` as backbone `name`; `title`
    (default: `name`) is how tables name it, e.g. "ResNet-18"."""
    if preprocessing not in PREPROCESSING_MODES:
        raise ValueError(f"backbone '{name}': unknown preprocessing '{preprocessing}'; "
                         f"known: {', '.join(PREPROCESSING_MODES)}")

    def decorator(build):
        if name in BACKBONES:
            raise ValueError(f"backbone '{name}' is already registered")
        BACKBONES[name] = BackboneSpec(name, build, preprocessing, min_input_size, title or name)
        return build

    return decorator


def get_backbone_spec(name):
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone '{name}'; known: {', '.join(sorted(BACKBONES))}") from None


def create_backbone(name, input_size, /, **kwargs):
    """Build the registered backbone `name` for square `input_size` images.

    `kwargs` are the architecture's own arguments (see its module), plus `name`: the name of the
    returned model (e.g. "backbone" inside `build_model`).
    """
    spec = get_backbone_spec(name)
    if input_size < spec.min_input_size:
        raise ValueError(f"backbone '{name}' needs input_size >= {spec.min_input_size}, got {input_size}")
    return spec.build(input_size, **kwargs)


# Importing the modules registers them; they import the names above, so these come last.
from facenet_mtl.models.backbones import (  # noqa: E402,F401
    alexnet,
    compact,
    densenet121,
    mobilenet,
    resnet18,
    ssrnet,
    vgg16,
)

__all__ = ["BACKBONES", "BackboneSpec", "register_backbone", "get_backbone_spec", "create_backbone"]

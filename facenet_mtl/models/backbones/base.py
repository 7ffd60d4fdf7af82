"""The backbone registry's entry type and the functions over it (`facenet_mtl.models.backbones`
imports every architecture module, each of which registers itself here).

>>> from facenet_mtl.models.backbones.base import get_backbone_spec
>>> get_backbone_spec("vgg16").preprocessing, get_backbone_spec("vgg16").min_input_size
('imagenet_caffe', 32)
"""
from dataclasses import dataclass
from typing import Callable

from facenet_mtl.models.preprocessing import PREPROCESSING_MODES
from facenet_mtl.registry import Registry


@dataclass(frozen=True)
class BackboneSpec:
    """One registered architecture: its builder, its input preprocessing, its smallest input and
    its name in tables (the results report)."""

    name: str
    build: Callable  # build(input_size, name=..., **architecture_args) -> keras.Model
    preprocessing: str
    min_input_size: int
    title: str


BACKBONES = Registry("backbone")


def register_backbone(name, preprocessing, min_input_size=32, title=None):
    """Decorator: register `build(input_size, name=..., **kwargs)` as backbone `name`; `title`
    (default: `name`) is how tables name it, e.g. "ResNet-18"."""
    if preprocessing not in PREPROCESSING_MODES:
        raise ValueError(f"backbone '{name}': unknown preprocessing '{preprocessing}'; "
                         f"known: {', '.join(PREPROCESSING_MODES)}")

    def decorator(build):
        BACKBONES.add(name, BackboneSpec(name, build, preprocessing, min_input_size, title or name))
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

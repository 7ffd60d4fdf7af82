"""MobileNetV3-Small (Howard et al. 2019) from keras.applications, average-pooled, from scratch.

`minimalistic=True` drops squeeze-and-excite, hard-swish and 5x5 kernels (faster on CPUs);
`alpha` scales the width. Features: 576 values at alpha 1 (432 at 0.75). Built with
`include_preprocessing=False`, so it expects [-1, 1] input: the "symmetric" preprocessing that
`build_model` puts in front of it. Needs input_size >= 32.

>>> from facenet_mtl.models.backbones import create_backbone
>>> model = create_backbone("mobilenet", 32, minimalistic=True)
>>> model.output_shape
(None, 576)
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
from keras.src.applications import mobilenet_v3

from facenet_mtl.models.backbones.base import register_backbone


@register_backbone("mobilenet", preprocessing="symmetric", min_input_size=32, title="MobileNet")
def mobilenet(input_size: int, alpha: float = 1.0, minimalistic: bool = False, name: str = "mobilenet") -> keras.Model:
    with _hard_sigmoid_as_layer():
        return keras.applications.MobileNetV3Small(
            input_shape=(input_size, input_size, 3), alpha=alpha, minimalistic=minimalistic, include_top=False,
            weights=None, pooling="avg", include_preprocessing=False, name=name)


@contextlib.contextmanager
def _hard_sigmoid_as_layer() -> Iterator[None]:
    """Build the squeeze-and-excite gates with `Activation("hard_sigmoid")`.

    keras.applications writes that gate as `ReLU(6)(x + 3) * (1 / 6)`: the `+` and `*` become bare
    ops in the graph, which a `.h5` file cannot load back. Keras 3's "hard_sigmoid" activation is
    the same function, relu6(x + 3) / 6, as one built-in layer; no weights are involved.
    """
    original = mobilenet_v3.hard_sigmoid
    mobilenet_v3.hard_sigmoid = lambda x: keras.layers.Activation("hard_sigmoid")(x)
    try:
        yield
    finally:
        mobilenet_v3.hard_sigmoid = original

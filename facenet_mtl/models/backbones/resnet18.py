"""ResNet-18 (He et al. 2016): basic residual blocks, written here (keras.applications has none).

`stem_stride=2` is the usual ImageNet stem, a 7x7/2 conv and a 3x3/2 max-pool (input / 32 at the
end: 112 px -> 4x4). `stem_stride=1` is a 3x3/1 conv and no pool, for small faces: it keeps 16x
the resolution through the net, so it costs ~16x the compute. `width` scales every stage
(64, 128, 256, 512 at width 64); the feature vector has `8 * width` values.

>>> from facenet_mtl.models.backbones import create_backbone
>>> model = create_backbone("resnet18", 64, width=8)
>>> model.output_shape
(None, 64)
>>> model.get_layer("stage4_block2_add").output.shape
(None, 2, 2, 64)
"""
from __future__ import annotations

from collections.abc import Sequence

import keras

from facenet_mtl.models.backbones.base import register_backbone
from facenet_mtl.models.backbones._blocks import batch_norm, conv_bn_relu


@register_backbone("resnet18", preprocessing="symmetric", title="ResNet-18")
def resnet18(input_size: int, width: int = 64, stem_stride: int = 2, blocks: Sequence[int] = (2, 2, 2, 2),
             name: str = "resnet18") -> keras.Model:
    if stem_stride not in (1, 2):
        raise ValueError(f"resnet18: stem_stride must be 1 or 2, got {stem_stride}")
    inputs = keras.Input((input_size, input_size, 3), name="resnet18_input")
    if stem_stride == 2:
        x = conv_bn_relu(inputs, width, 7, strides=2, name="stem_conv")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = conv_bn_relu(inputs, width, 3, name="stem_conv")
    for stage, num_blocks in enumerate(blocks, start=1):
        filters = width * 2 ** (stage - 1)
        for block in range(1, num_blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = basic_block(x, filters, strides, name=f"stage{stage}_block{block}")
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, features, name=name)


def basic_block(x: keras.KerasTensor, filters: int, strides: int, name: str) -> keras.KerasTensor:
    """Two 3x3 convs and a shortcut (a 1x1 projection when the shape changes)."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_shortcut")(x)
        shortcut = batch_norm(f"{name}_shortcut_bn")(shortcut)
    y = conv_bn_relu(x, filters, 3, strides=strides, name=f"{name}_conv1")
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    # Zero-init the last BN of each block: every block starts as the identity (Goyal et al. 2017).
    y = batch_norm(f"{name}_conv2_bn", gamma_initializer="zeros")(y)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(y)

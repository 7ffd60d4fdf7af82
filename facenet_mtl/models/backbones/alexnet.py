"""AlexNet (Krizhevsky et al. 2012) adapted to face crops of 48-224 px.

Five convs (64, 192, 384, 256, 256 channels at `width=1`, torchvision's single-GPU variant) with
three 3x3/2 max-pools, then two fully connected layers of `fc_units` (fc6, fc7) as the features.
The first conv is 11x11/4 from 112 px, as published; 7x7/2 from 64 px; 5x5/1 below, so the
last pool is 4x4 to 7x7 at any size from 32 to 224 px (6x6 in the published net) instead of
collapsing on small faces; "same" pooling never goes below 1x1. Local response normalisation
is left out; `batch_norm=True` puts BatchNorm after every conv instead. `fc_units=0` replaces
fc6/fc7 by global average pooling (features: the last conv's channels). With the defaults,
fc6 and fc7 dominate the size: ~36M parameters at 112 px (57M at 48 px).

>>> from facenet_mtl.models.backbones import create_backbone
>>> model = create_backbone("alexnet", 48, width=0.25, fc_units=64)
>>> model.output_shape
(None, 64)
>>> model.get_layer("pool5").output.shape
(None, 6, 6, 64)
"""
from __future__ import annotations

import keras

from facenet_mtl.models.backbones.base import register_backbone
from facenet_mtl.models.backbones._blocks import batch_norm as batch_norm_layer

CONV_CHANNELS = (64, 192, 384, 256, 256)
POOL_AFTER = (1, 2, 5)  # convs followed by a 3x3/2 max-pool


def first_conv(input_size: int) -> tuple[int, int]:
    """(kernel, stride) of conv1: the published 11x11/4 only where the input is large enough."""
    if input_size >= 112:
        return 11, 4
    if input_size >= 64:
        return 7, 2
    return 5, 1


@register_backbone("alexnet", preprocessing="symmetric", title="AlexNet")
def alexnet(input_size: int, width: float = 1.0, batch_norm: bool = False, fc_units: int = 4096, dropout: float = 0.5,
            name: str = "alexnet") -> keras.Model:
    inputs = keras.Input((input_size, input_size, 3), name="alexnet_input")
    kernel1, stride1 = first_conv(input_size)
    kernels, strides = (kernel1, 5, 3, 3, 3), (stride1, 1, 1, 1, 1)
    x = inputs
    for index, (channels, kernel, stride) in enumerate(zip(CONV_CHANNELS, kernels, strides), start=1):
        x = keras.layers.Conv2D(max(8, int(channels * width)), kernel, strides=stride, padding="same",
                                use_bias=not batch_norm, name=f"conv{index}")(x)
        if batch_norm:
            x = batch_norm_layer(f"conv{index}_bn")(x)
        x = keras.layers.ReLU(name=f"conv{index}_relu")(x)
        if index in POOL_AFTER:
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{index}")(x)
    if not fc_units:
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="avg_pool")(x), name=name)
    x = keras.layers.Flatten(name="flatten")(x)
    for fc in ("fc6", "fc7"):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{fc}_dropout")(x)
        x = keras.layers.Dense(fc_units, activation="relu", name=fc)(x)
    return keras.Model(inputs, x, name=name)


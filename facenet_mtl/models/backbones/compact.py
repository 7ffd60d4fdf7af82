"""A mini-Xception-style net (Arriaga et al. 2017): the practical choice for CPU training at 48-64 px.

A stem of two 3x3 convs (the first with stride `stem_stride`), then one residual block per entry
of `widths`: two 3x3 separable convs with BatchNorm/ReLU and a 3x3/2 max-pool, added to a
strided 1x1 projection of the block input; then global average pooling (and `dropout`). The
feature vector has `widths[-1]` values; ~0.2M parameters with the default widths.
`depth` adds capacity where it is cheap: `depth[i]` extra identity-residual blocks (two 3x3
separable convs at unchanged resolution, Xception's "middle flow") after block i+1; one int
applies to every block. At 64 px blocks 3-4 run at 8x8 and 4x4, so depth there costs little.
`bn_momentum` (default 0.9, see `_blocks`) sets every BatchNorm's moving-average momentum: long
runs whose batches mix datasets want 0.99, else the moving statistics follow the last ~10 batches
and validation scores jump from epoch to epoch even at a near-zero learning rate.

`conv="dense"` makes every separable 3x3 conv a full 3x3 conv (~8x the FLOPs at these widths):
on matrix-unit CPUs a dense conv can reach more of the peak than a depthwise one does, so the
faster net per unit of accuracy is a measurement (benchmarks/bench_arch.py), not a FLOP count.

The stem stride is 2 by default: mini-Xception's stride 1 keeps the first block at full
resolution, which on our 2-core CPU trains ~3.5x slower (float32, batch 64, 64 px: ~135 img/s
against ~400-550; 48 px: ~800 img/s with the defaults). `stem_stride=1` is there for 48 px
crops when the time is available. A 64 px input ends at 2x2 with the defaults.

>>> from facenet_mtl.models.backbones import create_backbone
>>> model = create_backbone("compact", 48, widths=(8, 16, 32), stem_width=8)
>>> model.output_shape
(None, 32)
>>> model.get_layer("block3_add").output.shape
(None, 3, 3, 32)
>>> deeper = create_backbone("compact", 48, widths=(8, 16), stem_width=8, depth=(0, 2))
>>> [layer.name for layer in deeper.layers if layer.name.endswith("_add")]
['block1_add', 'block2_add', 'block2_extra1_add', 'block2_extra2_add']
>>> dense = create_backbone("compact", 48, widths=(8, 16), stem_width=8, conv="dense")
>>> type(dense.get_layer("block2_sepconv1")).__name__
'Conv2D'
"""
from __future__ import annotations

from collections.abc import Sequence

import keras

from facenet_mtl.models.backbones.base import register_backbone
from facenet_mtl.models.backbones._blocks import BN_MOMENTUM, batch_norm, conv_bn_relu


@register_backbone("compact", preprocessing="symmetric", min_input_size=16, title="compact CNN")
def compact(input_size: int, widths: Sequence[int] = (32, 64, 128, 256), stem_width: int = 32, stem_stride: int = 2,
            depth: int | Sequence[int] = 0, dropout: float = 0.0, bn_momentum: float = BN_MOMENTUM,
            conv: str = "separable", name: str = "compact") -> keras.Model:
    if conv not in CONVS:
        raise ValueError(f"compact: conv must be one of {', '.join(CONVS)}, got {conv!r}")
    depths = [int(depth)] * len(widths) if isinstance(depth, (int, float)) else [int(d) for d in depth]
    if len(depths) != len(widths) or min(depths, default=0) < 0:
        raise ValueError(f"compact: depth must be one int >= 0 or one per block ({len(widths)} widths), got {depth!r}")
    inputs = keras.Input((input_size, input_size, 3), name="compact_input")
    x = conv_bn_relu(inputs, stem_width, 3, strides=stem_stride, name="stem_conv1", bn_momentum=bn_momentum)
    x = conv_bn_relu(x, stem_width, 3, name="stem_conv2", bn_momentum=bn_momentum)
    for block, filters in enumerate(widths, start=1):
        x = separable_block(x, filters, name=f"block{block}", bn_momentum=bn_momentum, conv=conv)
        for extra in range(1, depths[block - 1] + 1):
            x = identity_block(x, filters, name=f"block{block}_extra{extra}", bn_momentum=bn_momentum, conv=conv)
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        features = keras.layers.Dropout(dropout, name="dropout")(features)
    return keras.Model(inputs, features, name=name)


CONVS = ("separable", "dense")


def _conv3x3(filters: int, name: str, conv: str) -> keras.layers.Layer:
    layer = keras.layers.SeparableConv2D if conv == "separable" else keras.layers.Conv2D
    return layer(filters, 3, padding="same", use_bias=False, name=name)


def separable_block(x: keras.KerasTensor, filters: int, name: str,
                    bn_momentum: float = BN_MOMENTUM, conv: str = "separable") -> keras.KerasTensor:
    shortcut = keras.layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=f"{name}_shortcut")(x)
    shortcut = batch_norm(f"{name}_shortcut_bn", bn_momentum)(shortcut)
    y = _conv3x3(filters, f"{name}_sepconv1", conv)(x)
    y = batch_norm(f"{name}_sepconv1_bn", bn_momentum)(y)
    y = keras.layers.ReLU(name=f"{name}_sepconv1_relu")(y)
    y = _conv3x3(filters, f"{name}_sepconv2", conv)(y)
    y = batch_norm(f"{name}_sepconv2_bn", bn_momentum)(y)
    y = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(y)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def identity_block(x: keras.KerasTensor, filters: int, name: str,
                   bn_momentum: float = BN_MOMENTUM, conv: str = "separable") -> keras.KerasTensor:
    """Two 3x3 separable convs at unchanged resolution, added to the input (Xception middle flow)."""
    y = _conv3x3(filters, f"{name}_sepconv1", conv)(x)
    y = batch_norm(f"{name}_sepconv1_bn", bn_momentum)(y)
    y = keras.layers.ReLU(name=f"{name}_sepconv1_relu")(y)
    y = _conv3x3(filters, f"{name}_sepconv2", conv)(y)
    y = batch_norm(f"{name}_sepconv2_bn", bn_momentum)(y)
    y = keras.layers.Add(name=f"{name}_add")([y, x])
    return keras.layers.ReLU(name=f"{name}_relu")(y)

"""A mini-Xception-style net (Arriaga et al. 2017): the practical choice for CPU training at 48-64 px.

A stem of two 3x3 convs (the first with stride `stem_stride`), then one residual block per entry
of `widths`: two 3x3 separable convs with BatchNorm/ReLU and a 3x3/2 max-pool, added to a
strided 1x1 projection of the block input; then global average pooling (and `dropout`). The
feature vector has `widths[-1]` values; ~0.2M parameters with the default widths.

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
"""
import keras

from facenet_mtl.models.backbones import register_backbone
from facenet_mtl.models.backbones._blocks import batch_norm, conv_bn_relu


@register_backbone("compact", preprocessing="symmetric", min_input_size=16)
def compact(input_size, widths=(32, 64, 128, 256), stem_width=32, stem_stride=2, dropout=0.0, name="compact"):
    inputs = keras.Input((input_size, input_size, 3), name="compact_input")
    x = conv_bn_relu(inputs, stem_width, 3, strides=stem_stride, name="stem_conv1")
    x = conv_bn_relu(x, stem_width, 3, name="stem_conv2")
    for block, filters in enumerate(widths, start=1):
        x = separable_block(x, filters, name=f"block{block}")
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        features = keras.layers.Dropout(dropout, name="dropout")(features)
    return keras.Model(inputs, features, name=name)


def separable_block(x, filters, name):
    shortcut = keras.layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=f"{name}_shortcut")(x)
    shortcut = batch_norm(f"{name}_shortcut_bn")(shortcut)
    y = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv1")(x)
    y = batch_norm(f"{name}_sepconv1_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_sepconv1_relu")(y)
    y = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv2")(y)
    y = batch_norm(f"{name}_sepconv2_bn")(y)
    y = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(y)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(y)

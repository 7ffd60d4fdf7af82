"""SSR-Net's two-stream feature extractor (Yang et al. 2018), the study's reference model.

Two streams of four 3x3 "valid" convs with BatchNorm: one of 32 channels with ReLU and
average pooling, one of 16 with tanh and max pooling. At three depths (after the 4th, 2nd and
1st conv) each stream goes through a 1x1 conv of 10 ReLU units, pooled to about the size of the
deepest map (pools of 1, 4 and 8, as published for 64 px), and the two are fused by an
element-wise product: SSR-Net's per-stage features. Their concatenation is the feature vector
(340 values at 64 px). About 40k parameters.

SSR-Net's own head, soft stagewise regression, is not built: our DEX head (101 age bins and
their expectation, `facenet_mtl.models.heads`) goes on top like on every backbone. Needs
input_size >= 40 (the "valid" convs shrink the maps).

>>> from facenet_mtl.models.backbones import create_backbone
>>> model = create_backbone("ssrnet", 64)
>>> model.output_shape
(None, 340)
>>> model.count_params() < 100_000
True
"""
from __future__ import annotations

import keras

from facenet_mtl.models.backbones.base import register_backbone
from facenet_mtl.models.backbones._blocks import batch_norm

# (channels, activation, pooling layer) of each stream.
STREAMS = {
    "stream1": (32, "relu", keras.layers.AveragePooling2D),
    "stream2": (16, "tanh", keras.layers.MaxPooling2D),
}
# (conv whose output a stage fuses, pool size before fusion): stage 1 is the deepest.
STAGES = ((4, 1), (2, 4), (1, 8))


@register_backbone("ssrnet", preprocessing="unit", min_input_size=40, title="SSR-Net")
def ssrnet(input_size: int, stage_units: int = 10, name: str = "ssrnet") -> keras.Model:
    inputs = keras.Input((input_size, input_size, 3), name="ssrnet_input")
    maps = {stream: _stream(inputs, stream, *spec) for stream, spec in STREAMS.items()}
    stage_features = []
    for stage, (depth, pool_size) in enumerate(STAGES, start=1):
        fused = []
        for stream, (_, _, pooling) in STREAMS.items():
            x = keras.layers.Conv2D(stage_units, 1, activation="relu", name=f"stage{stage}_{stream}_conv")(
                maps[stream][depth])
            if pool_size > 1:
                x = pooling(pool_size, name=f"stage{stage}_{stream}_pool")(x)
            fused.append(keras.layers.Flatten(name=f"stage{stage}_{stream}_flatten")(x))
        stage_features.append(keras.layers.Multiply(name=f"stage{stage}_fusion")(fused))
    features = keras.layers.Concatenate(name="stage_features")(stage_features)
    return keras.Model(inputs, features, name=name)


def _stream(inputs, stream, channels, activation, pooling):
    """The stream's feature maps after each of its four convs (pooled after the first three)."""
    maps, x = {}, inputs
    for depth in range(1, 5):
        x = keras.layers.Conv2D(channels, 3, name=f"{stream}_conv{depth}")(x)
        x = batch_norm(f"{stream}_conv{depth}_bn")(x)
        x = keras.layers.Activation(activation, name=f"{stream}_conv{depth}_{activation}")(x)
        if depth < 4:
            x = pooling(2, name=f"{stream}_pool{depth}")(x)
        maps[depth] = x
    return maps

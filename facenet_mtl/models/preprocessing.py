"""Input preprocessing as built-in Keras layers, so a saved model takes raw RGB 0-255 pixels.

Every mode is a fixed transform with no custom code in it, so `.h5` and `.keras` files load with
plain `keras.models.load_model` and no `custom_objects`:

- "unit": x / 255, in [0, 1];
- "symmetric": x / 127.5 - 1, in [-1, 1];
- "imagenet_torch": x / 255, then per channel (x - mean) / std with ImageNet's RGB statistics
  (what keras.applications' DenseNet weights expect);
- "imagenet_caffe": RGB -> BGR, then minus ImageNet's BGR mean, no scaling (VGG16's weights).

>>> import numpy as np
>>> x = np.full((1, 2, 2, 3), 255.0, dtype="float32")
>>> for layer in preprocessing_layers("symmetric"):
...     x = layer(x)
>>> float(x[0, 0, 0, 0])
1.0
"""
from __future__ import annotations

import keras
import numpy as np

IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)  # torch-mode statistics, on 0-1 pixels
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # caffe-mode mean, on 0-255 BGR pixels

PREPROCESSING_MODES = ("unit", "symmetric", "imagenet_torch", "imagenet_caffe")

# Preprocessing runs in float32 even under a mixed policy: the backbone casts its own input.
DTYPE = "float32"


def preprocessing_layers(mode: str) -> list[keras.layers.Layer]:
    """The built-in layers, in order, that turn RGB 0-255 into what a backbone expects."""
    if mode == "unit":
        return [keras.layers.Rescaling(1.0 / 255, name="preprocess_scale", dtype=DTYPE)]
    if mode == "symmetric":
        return [keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_scale", dtype=DTYPE)]
    if mode == "imagenet_torch":
        return [
            keras.layers.Rescaling(1.0 / 255, name="preprocess_scale", dtype=DTYPE),
            keras.layers.Normalization(
                mean=list(IMAGENET_RGB_MEAN),
                variance=[s * s for s in IMAGENET_RGB_STD],
                name="preprocess_normalize",
                dtype=DTYPE,
            ),
        ]
    if mode == "imagenet_caffe":
        return [_rgb_to_bgr_minus_mean()]
    raise ValueError(f"unknown preprocessing mode '{mode}'; known: {', '.join(PREPROCESSING_MODES)}")


def _rgb_to_bgr_minus_mean():
    """A frozen 1x1 convolution that swaps R and B and subtracts the BGR mean.

    Keras has no built-in channel-reordering layer; a permutation kernel does it exactly. The
    weights are set here, after building, rather than through an initializer, because an
    initializer holding an array would not survive the `.h5` JSON config; as weights they are
    saved and loaded like any other.
    """
    layer = keras.layers.Conv2D(3, 1, trainable=False, name="preprocess_rgb_to_bgr", dtype=DTYPE)
    layer.build((None, None, None, 3))
    permutation = np.zeros((1, 1, 3, 3), dtype="float32")
    for bgr_channel, rgb_channel in enumerate((2, 1, 0)):
        permutation[0, 0, rgb_channel, bgr_channel] = 1.0
    layer.set_weights([permutation, -np.asarray(IMAGENET_BGR_MEAN, dtype="float32")])
    return layer

"""Layer helpers shared by the backbones written here (not the keras.applications ones)."""
from __future__ import annotations

from typing import Any

import keras

# PyTorch's BatchNorm settings (Keras' default momentum 0.99 makes the moving statistics lag for
# thousands of steps, which misleads validation in the short runs we do on a CPU).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name: str, momentum: float = BN_MOMENTUM, **kwargs: Any) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=BN_EPSILON, name=name, **kwargs)


def conv_bn_relu(x: keras.KerasTensor, filters: int, kernel_size: int, strides: int = 1, name: str = "conv",
                 bn_momentum: float = BN_MOMENTUM) -> keras.KerasTensor:
    """Conv (no bias) -> BatchNorm -> ReLU, named `<name>`, `<name>_bn`, `<name>_relu`."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = batch_norm(f"{name}_bn", momentum=bn_momentum)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)

"""Layer helpers shared by the backbones written here (not the keras.applications ones)."""
import keras

# PyTorch's BatchNorm settings (Keras' default momentum 0.99 makes the moving statistics lag for
# thousands of steps, which misleads validation in the short runs we do on a CPU).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name, momentum=BN_MOMENTUM, **kwargs):
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=BN_EPSILON, name=name, **kwargs)


def conv_bn_relu(x, filters, kernel_size, strides=1, name="conv", bn_momentum=BN_MOMENTUM):
    """Conv (no bias) -> BatchNorm -> ReLU, named `<name>`, `<name>_bn`, `<name>_relu`."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = batch_norm(f"{name}_bn", momentum=bn_momentum)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)

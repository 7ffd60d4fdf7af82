"""Test-time flip averaging, from built-in layers: the model's outputs averaged over the image and
its mirror image.

Faces are close to left-right symmetric and every recipe trains with random horizontal flips, so
a trained model's predictions on an image and on its mirror are two views of the same face;
averaging them is the standard, free test-time augmentation (on the real recipe's finished models:
FER2013 valid +1.2 points, GENKI-4K test +2.4, UTKFace gender +1.5, age MAE -0.23).

The mirror is exact and built-in: the width axis is moved last (`Permute`), multiplied by a frozen
anti-identity matrix (`Dense` without bias, weights set after building so the `.h5` config holds
no arrays), and moved back. The result is a plain functional model: same input (RGB 0-255 at the
same size), same output names, loadable with `keras.models.load_model` and no custom objects.

>>> import numpy as np
>>> from facenet_mtl.models.multitask import build_model
>>> net = build_model("compact", tasks=("emotion",), input_size=16,
...                   backbone_args={"widths": (4,), "stem_width": 4})
>>> model = with_flip_average(net)
>>> x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
>>> bool(np.allclose(model(x)["emotion"], model(x[:, :, ::-1])["emotion"], atol=1e-6))
True
"""
import keras
import numpy as np

from facenet_mtl.models.multitask import INPUT_NAME

SUFFIX = "_flip_average"


def mirror(x, size, name="mirror"):
    """`x` (batch, size, size, channels) flipped left-right, exactly, with built-in layers.

    Every layer is float32 whatever the global policy: the mirror is exact only in float32, and a
    model finished under `mixed_bfloat16` must not ship bfloat16 transposes (LiteRT refuses them,
    and older Keras computed them differently)."""
    x = keras.layers.Permute((1, 3, 2), name=f"{name}_width_last", dtype="float32")(x)
    flip = keras.layers.Dense(size, use_bias=False, trainable=False, name=f"{name}_reverse", dtype="float32")
    x = flip(x)
    flip.set_weights([np.eye(size, dtype="float32")[::-1]])
    return keras.layers.Permute((1, 3, 2), name=f"{name}_width_back", dtype="float32")(x)


def with_flip_average(network):
    """A model named "<network's name>_flip_average" that returns the average of `network`'s
    outputs on an image and on its mirror; `network` (one image input, a dict of outputs) is
    nested inside it, shared by both views, and `multitask.inner_network` gets it back."""
    size = int(network.input_shape[1])
    image = keras.Input(network.input_shape[1:], name=INPUT_NAME)
    direct, mirrored = network(image), network(mirror(image, size))
    outputs = {name: keras.layers.Average(name=name, dtype="float32")([direct[name], mirrored[name]])
               for name in direct}
    return keras.Model(image, outputs, name=network.name + SUFFIX)

"""DenseNet-121 (Huang et al. 2017) from keras.applications, average-pooled: 1024 features.

`weights=None` (the default) trains from scratch; `weights="imagenet"` loads the published
ImageNet weights (downloaded once into Keras' cache, ~/.keras/models/; offline, a RuntimeError
says which file to place there by hand); a path loads a weights file of the same architecture.
Those weights expect torch-mode input, RGB / 255 normalised by ImageNet's mean and std: the
"imagenet_torch" preprocessing that `build_model` puts in front of it. Needs input_size >= 32.

>>> from facenet_mtl.models.backbones import create_backbone
>>> model = create_backbone("densenet121", 32)
>>> model.output_shape
(None, 1024)
"""
from __future__ import annotations

import keras

from facenet_mtl.models.backbones.base import register_backbone
from facenet_mtl.models.backbones._pretrained import imagenet_weights_path

WEIGHTS_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/densenet/{WEIGHTS_FILE}"
WEIGHTS_HASH = "30ee3e1110167f948a6b9946edeeb738"


@register_backbone("densenet121", preprocessing="imagenet_torch", min_input_size=32, title="DenseNet-121")
def densenet121(input_size: int, weights: str | None = None, name: str = "densenet121") -> keras.Model:
    if weights == "imagenet":
        weights = imagenet_weights_path("densenet121", WEIGHTS_URL, WEIGHTS_FILE, WEIGHTS_HASH)
    return keras.applications.DenseNet121(
        include_top=False, weights=weights, input_shape=(input_size, input_size, 3), pooling="avg", name=name)

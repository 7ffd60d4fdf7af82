"""VGG-16 (Simonyan & Zisserman 2015) from keras.applications, average-pooled: 512 features.

The architecture of DEX (Rothe et al. 2015), whose 101-bin age head we use. `weights` as for
densenet121: None (default) from scratch, "imagenet" (downloaded once into ~/.keras/models/;
offline, a RuntimeError says which file to place there by hand), or a weights file path. The
ImageNet weights expect caffe-mode input, BGR with the ImageNet mean subtracted: the
"imagenet_caffe" preprocessing that `build_model` puts in front of it. Needs input_size >= 32.

>>> from facenet_mtl.models.backbones import create_backbone
>>> model = create_backbone("vgg16", 32)
>>> model.output_shape
(None, 512)
"""
from __future__ import annotations

import keras

from facenet_mtl.models.backbones.base import register_backbone
from facenet_mtl.models.backbones._pretrained import imagenet_weights_path

WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/{WEIGHTS_FILE}"
WEIGHTS_HASH = "6d6bbae143d832006294945121d1f1fc"


@register_backbone("vgg16", preprocessing="imagenet_caffe", min_input_size=32, title="VGG-16")
def vgg16(input_size: int, weights: str | None = None, name: str = "vgg16") -> keras.Model:
    if weights == "imagenet":
        weights = imagenet_weights_path("vgg16", WEIGHTS_URL, WEIGHTS_FILE, WEIGHTS_HASH)
    return keras.applications.VGG16(
        include_top=False, weights=weights, input_shape=(input_size, input_size, 3), pooling="avg", name=name)

"""The backbone registry: every architecture by name, built through one function.

A backbone is features only: a `keras.Model` from a preprocessed `(input_size, input_size, 3)`
float image to a pooled feature vector `(batch, features)`. It knows nothing of ages or emotions;
the heads go on top (`facenet_mtl.models.heads`). Each architecture lives in its own module here
and registers itself with the preprocessing it expects (see `facenet_mtl.models.preprocessing`);
`build_model` puts that preprocessing in front of it.

>>> from facenet_mtl.models.backbones import BACKBONES, create_backbone
>>> sorted(BACKBONES)
['alexnet', 'compact', 'densenet121', 'mobilenet', 'resnet18', 'ssrnet', 'vgg16']
>>> create_backbone("compact", 48, widths=(8, 16), stem_width=8).output_shape
(None, 16)
>>> BACKBONES["compact"].preprocessing, BACKBONES["resnet18"].title
('symmetric', 'ResNet-18')
"""
from facenet_mtl.models.backbones.base import (BACKBONES, BackboneSpec, create_backbone, get_backbone_spec,
                                               register_backbone)

# Importing the modules registers them (each calls `base.register_backbone`).
from facenet_mtl.models.backbones import (  # noqa: F401
    alexnet,
    compact,
    densenet121,
    mobilenet,
    resnet18,
    ssrnet,
    vgg16,
)

__all__ = ["BACKBONES", "BackboneSpec", "register_backbone", "get_backbone_spec", "create_backbone"]

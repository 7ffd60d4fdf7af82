"""Models: backbones (features only), task heads, and the multi-task assembly.

>>> from facenet_mtl.models import build_model
>>> model = build_model("compact", tasks=("gender", "smile"), input_size=48,
...                     backbone_args={"widths": (8,), "stem_width": 8})
>>> list(model.output_names)  # a ListWrapper in Keras 3.7
['gender', 'smile']
"""
from facenet_mtl.models.backbones import BACKBONES, create_backbone, register_backbone
from facenet_mtl.models.heads import set_age_expectation_kernel
from facenet_mtl.models.multitask import (
    build_model,
    inner_network,
    model_tasks,
    output_names_for,
    set_backbone_trainable,
    transfer_weights,
)
from facenet_mtl.models.preprocessing import PREPROCESSING_MODES, preprocessing_layers
from facenet_mtl.models.flip_average import with_flip_average, with_test_time_views

__all__ = [
    "BACKBONES",
    "PREPROCESSING_MODES",
    "build_model",
    "create_backbone",
    "inner_network",
    "model_tasks",
    "output_names_for",
    "preprocessing_layers",
    "register_backbone",
    "set_age_expectation_kernel",
    "set_backbone_trainable",
    "transfer_weights",
    "with_flip_average",
    "with_test_time_views",
]

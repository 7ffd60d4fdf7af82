"""facenet-mtl: one Keras 3 face model for age, gender, emotion and smile.

>>> import facenet_mtl
>>> facenet_mtl.TASK_NAMES
('age', 'gender', 'emotion', 'smile')
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the output

from facenet_mtl.data.schema import MIN_FACE, TASK_NAMES  # noqa: E402

if TYPE_CHECKING:
    from facenet_mtl.inference.predictor import FacePredictor

__version__ = "0.1.0"


def load(path: str | Path | None = None, trust_saved_model: bool = False, min_face: int = MIN_FACE) -> FacePredictor:
    """Load a saved model (.h5, .keras or SavedModel dir) as a `FacePredictor`; no path: the
    model shipped in the package (`facenet_mtl.weights`).

    `facenet_mtl.load().predict("photo.jpg")` labels every face in one image;
    `facenet_mtl.load("runs/x/model.h5").predict([a, b])` gives one list of faces per image.
    A SavedModel not written by facenet-mtl is refused unless `trust_saved_model=True` (it runs
    its own graph). `min_face`: the smallest face searched for, in pixels (`predict --min-face`).
    """
    from facenet_mtl.data.faces import FaceDetector
    from facenet_mtl.inference.predictor import FacePredictor

    return FacePredictor.from_path(path, trust_saved_model=trust_saved_model, detector=FaceDetector(min_size=min_face))


__all__ = ["TASK_NAMES", "load", "__version__"]

"""Using a trained model: load it, find faces, predict, annotate."""
from facenet_mtl.inference.model_card import ModelCard
from facenet_mtl.inference.predictor import FacePredictor, NoFaceWarning, annotate, face_label, write_annotated

__all__ = ["FacePredictor", "ModelCard", "NoFaceWarning", "annotate", "face_label", "load_keras_model",
           "write_annotated"]


def __getattr__(name):
    """`load_keras_model` on first use (it imports Keras; `facenet-mtl predict --help` must not)."""
    if name == "load_keras_model":
        from facenet_mtl.artifact.loading import load_keras_model

        return load_keras_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

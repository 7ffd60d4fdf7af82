"""Using a trained model: load it, find faces, predict, annotate."""
from facenet_mtl.inference.model_card import ModelCard
from facenet_mtl.inference.predictor import (FacePredictor, NoFaceWarning, annotate, face_label, load_keras_model,
                                             write_annotated)

__all__ = ["FacePredictor", "ModelCard", "NoFaceWarning", "annotate", "face_label", "load_keras_model",
           "write_annotated"]

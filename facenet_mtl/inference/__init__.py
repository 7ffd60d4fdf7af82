"""Using a trained model: load it, find faces, predict, annotate."""
from facenet_mtl.inference.predictor import FacePredictor, NoFaceWarning, annotate, face_label, load_keras_model

__all__ = ["FacePredictor", "NoFaceWarning", "annotate", "face_label", "load_keras_model"]

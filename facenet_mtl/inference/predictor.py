"""`FacePredictor`: a saved model + face detection -> age, gender, emotion and smile per face.

    predictor = facenet_mtl.load("runs/real-mtl/model.h5")
    for face in predictor.predict(["group.jpg"])[0]:
        print(face["box"], face["age"], face["emotion"]["label"])
"""
import warnings
from pathlib import Path

import numpy as np

from facenet_mtl.data import images
from facenet_mtl.data.errors import DataError
from facenet_mtl.data.faces import FaceDetector, crop_face
from facenet_mtl.data.schema import EMOTIONS, GENDERS

MODEL_SUFFIXES = (".h5", ".keras")


def load_keras_model(path):
    """A `.h5` / `.keras` file or a SavedModel directory; a clear DataError for anything else."""
    import keras

    path = Path(path)
    if not path.exists():
        raise DataError(path, "model not found", "give the model.h5, model.keras or saved_model/ of a run")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise DataError(path, "is a directory without saved_model.pb",
                            "give a SavedModel directory, or a model.h5 / model.keras file")
        return _SavedModelAdapter(path)
    if path.suffix not in MODEL_SUFFIXES:
        raise DataError(path, f"is not a Keras model file (suffix '{path.suffix}')",
                        "give a model.h5 or model.keras written by facenet-mtl train")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise DataError(path, f"cannot be read as a Keras model ({type(exc).__name__}: {str(exc)[:200]})",
                        "give a model.h5 or model.keras written by facenet-mtl train") from None


class _SavedModelAdapter:
    """Makes a SavedModel's `serve` signature look like a Keras model for prediction."""

    def __init__(self, path):
        import tensorflow as tf

        self._loaded = tf.saved_model.load(str(path))  # keep a reference: it owns the variables
        self._serve = self._loaded.serve
        spec = self._serve.input_signature[0] if self._serve.input_signature else None
        self.input_shape = tuple(spec.shape) if spec is not None else (None, None, None, 3)

    def __call__(self, x, training=False):
        import tensorflow as tf

        return self._serve(tf.convert_to_tensor(x, tf.float32))

    def predict(self, x, verbose=0, batch_size=64):
        outs = [self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}


class FacePredictor:
    def __init__(self, model, detector=None, margin=0.4, batch_size=64):
        self.model = model
        self.input_size = int(model.input_shape[1])
        self.detector = detector
        self.margin = margin
        self.batch_size = batch_size

    @classmethod
    def from_path(cls, path, **kwargs):
        return cls(load_keras_model(path), **kwargs)

    def predict_faces(self, crops):
        """Face crops (N, S, S, 3), RGB 0-255 -> one result dict per face (no box)."""
        crops = np.asarray(crops, np.float32)
        if crops.ndim != 4 or crops.shape[1:3] != (self.input_size, self.input_size):
            raise ValueError(f"expected crops of shape (N, {self.input_size}, {self.input_size}, 3), got {crops.shape}")
        outputs = {}
        for start in range(0, len(crops), self.batch_size):
            batch = self.model(crops[start:start + self.batch_size], training=False)
            for name, value in dict(batch).items():
                outputs.setdefault(name, []).append(np.asarray(value, np.float32))
        outputs = {k: np.concatenate(v) for k, v in outputs.items()}
        return [_describe({k: v[i] for k, v in outputs.items()}) for i in range(len(crops))]

    def predict(self, images_or_paths, detect=True):
        """For each image (path or RGB array): a list of faces, each {box, age, gender, ...}.

        detect=False treats every image as one face crop. An image with no face gives an empty
        list and a warning; an unreadable file raises DataError naming it.
        """
        crops, owners, boxes = [], [], []
        for index, item in enumerate(images_or_paths):
            rgb = images.load_rgb(str(item)) if isinstance(item, (str, Path)) else images.load_rgb(item)
            if detect:
                faces = self._detector().detect(rgb)
                if not faces:
                    warnings.warn(f"{item if isinstance(item, (str, Path)) else f'image {index}'}: no face found")
                for face in faces:
                    crops.append(crop_face(rgb, face, self.input_size, self.margin))
                    owners.append(index)
                    boxes.append([int(v) for v in face.box])
            else:
                crops.append(images.square_resize(rgb, self.input_size))
                owners.append(index)
                boxes.append([0, 0, int(rgb.shape[1]), int(rgb.shape[0])])
        results = [[] for _ in images_or_paths]
        if crops:
            for owner, box, described in zip(owners, boxes, self.predict_faces(np.stack(crops))):
                results[owner].append({"box": box, **described})
        return results

    def _detector(self):
        if self.detector is None:
            self.detector = FaceDetector()
        return self.detector

    def write_annotated(self, paths, results, out_dir):
        import cv2

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for path, faces in zip(paths, results):
            rgb = annotate(images.load_rgb(str(path)), faces)
            target = out_dir / f"{Path(path).stem}_annotated.jpg"
            cv2.imwrite(str(target), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            written.append(target)
        return written


def _describe(out):
    result = {}
    if "age" in out:
        result["age"] = round(float(out["age"].reshape(-1)[0]), 1)
    if "gender" in out:
        p = float(out["gender"].reshape(-1)[0])
        result["gender"] = {"label": GENDERS[int(p >= 0.5)], "probability": round(p if p >= 0.5 else 1 - p, 4)}
    if "emotion" in out:
        probs = out["emotion"].reshape(-1)
        result["emotion"] = {"label": EMOTIONS[int(probs.argmax())],
                             "probabilities": {name: round(float(p), 4) for name, p in zip(EMOTIONS, probs)}}
    if "smile" in out:
        p = float(out["smile"].reshape(-1)[0])
        result["smile"] = {"label": "smile" if p >= 0.5 else "no_smile", "probability": round(p, 4)}
    return result


def annotate(rgb, faces):
    """Boxes and a short label per face, e.g. "34y M | happy | smile"."""
    import cv2

    canvas = np.ascontiguousarray(rgb.copy())
    scale = max(0.35, min(canvas.shape[:2]) / 500)
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        parts = []
        if "age" in face:
            parts.append(f"{face['age']:.0f}y" + (f" {face['gender']['label'][0].upper()}" if "gender" in face else ""))
        elif "gender" in face:
            parts.append(face["gender"]["label"])
        if "emotion" in face:
            parts.append(face["emotion"]["label"])
        if "smile" in face and face["smile"]["label"] == "smile":
            parts.append("smile")
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (40, 220, 40), max(1, int(2 * scale)))
        cv2.putText(canvas, " | ".join(parts), (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                    (255, 255, 0), max(1, int(scale)), cv2.LINE_AA)
    return canvas

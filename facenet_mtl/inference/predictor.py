"""`FacePredictor`: a saved model + face detection -> age, gender, emotion and smile per face.

    predictor = facenet_mtl.load("runs/real-mtl/model.h5")
    for face in predictor.predict(["group.jpg"])[0]:
        print(face["box"], face["age"], face["emotion"]["label"])
"""
import warnings
from pathlib import Path

import numpy as np

from facenet_mtl.data import images
from facenet_mtl.data.faces import FaceDetector, crop_face
from facenet_mtl.data.schema import AGE_BINS, DEFAULT_IMAGE_SIZE, EMOTIONS, GENDERS, SMILES
from facenet_mtl.inference.loading import MODEL_SUFFIXES, load_keras_model  # noqa: F401  (re-exported)

class NoFaceWarning(UserWarning):
    """An image in which the detector found no face (its result is an empty list)."""


def _compiled_forward(model):
    """The model's forward pass as one traced graph: eager calls of a deep functional model on a
    CPU spend more time dispatching ops than computing (ResNet-18, one face: ~87 ms eager)."""
    import keras
    import tensorflow as tf

    if not isinstance(model, keras.Model):
        return lambda x: model(x, training=False)
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True)


class FacePredictor:
    """A face model plus the detector and crop that feed it.

    Each face's result holds only the heads the model has:
    `{"box": [x1, y1, x2, y2], "age": 34.2,
      "gender": {"label": "male", "probability": 0.97},      # probability of that label
      "emotion": {"label": "happy", "probabilities": {"angry": 0.01, ...}},  # all 7, sum 1
      "smile": {"label": "smile", "probability": 0.88}}`     # probability of that label
    """

    def __init__(self, model, detector=None, margin=0.4, batch_size=64):
        self.model = model
        size = model.input_shape[1]
        self.input_size = int(size) if size is not None else DEFAULT_IMAGE_SIZE
        self.detector = detector
        self.margin = margin
        self.batch_size = batch_size
        self._forward = _compiled_forward(model)

    @classmethod
    def from_path(cls, path, trust_saved_model=False, **kwargs):
        """Load a `.h5` / `.keras` / SavedModel (see `facenet_mtl.inference.loading`)."""
        return cls(load_keras_model(path, trust_saved_model=trust_saved_model), **kwargs)

    def predict_faces(self, crops):
        """Face crops (N, S, S, 3), RGB 0-255 -> one result dict per face (no box)."""
        crops = np.asarray(crops, np.float32)
        if crops.ndim != 4 or crops.shape[1:3] != (self.input_size, self.input_size):
            raise ValueError(f"expected crops of shape (N, {self.input_size}, {self.input_size}, 3), got {crops.shape}")
        outputs = {}
        for start in range(0, len(crops), self.batch_size):
            batch = self._forward(crops[start:start + self.batch_size])
            for name, value in dict(batch).items():
                outputs.setdefault(name, []).append(np.asarray(value, np.float32))
        outputs = {k: np.concatenate(v) for k, v in outputs.items()}
        return [_describe({k: v[i] for k, v in outputs.items()}) for i in range(len(crops))]

    def predict(self, images_or_paths, detect=True):
        """For each image (path or RGB array): a list of faces, each {box, age, gender, ...}.

        detect=False treats every image as one face crop (box = the whole image). An image with
        no face gives an empty list and a `NoFaceWarning`; an unreadable file raises DataError
        naming it.
        """
        crops, owners, boxes = [], [], []
        for index, item in enumerate(images_or_paths):
            is_path = isinstance(item, (str, Path))
            rgb = images.load_rgb(str(item) if is_path else item)
            if detect:
                faces = self._detector().detect(rgb)
                if not faces:
                    name = item if is_path else f"image {index}"
                    warnings.warn(f"{name}: no face found", NoFaceWarning, stacklevel=2)
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
    """One face's head outputs -> its result dict (see `FacePredictor`)."""
    result = {}
    if "age" in out:
        result["age"] = round(float(out["age"].reshape(-1)[0]), 1)
    elif "age_probs" in out:  # DEX: the expected age under the 101 one-year bins
        result["age"] = round(float(out["age_probs"].reshape(-1) @ np.arange(AGE_BINS)), 1)
    if "gender" in out:
        result["gender"] = _binary(out["gender"], GENDERS)
    if "emotion" in out:
        probs = out["emotion"].reshape(-1)
        result["emotion"] = {"label": EMOTIONS[int(probs.argmax())],
                             "probabilities": {name: round(float(p), 4) for name, p in zip(EMOTIONS, probs)}}
    if "smile" in out:
        result["smile"] = _binary(out["smile"], SMILES)
    return result


def _binary(sigmoid, classes):
    p = float(sigmoid.reshape(-1)[0])  # P(classes[1])
    label = int(p >= 0.5)
    return {"label": classes[label], "probability": round(p if label else 1 - p, 4)}


def face_label(face):
    """The short text for one face result, e.g. "34y M 0.97 | happy | smile"."""
    parts, head = [], []
    if "age" in face:
        head.append(f"{max(face['age'], 0):.0f}y")
    if "gender" in face:
        head.append(f"{face['gender']['label'][0].upper()} {face['gender']['probability']:.2f}")
    if head:
        parts.append(" ".join(head))
    if "emotion" in face:
        parts.append(face["emotion"]["label"])
    if "smile" in face:
        parts.append(face["smile"]["label"].replace("_", " "))
    return " | ".join(parts)


def annotate(rgb, faces):
    """A copy of `rgb` with each face's box and `face_label` drawn on it."""
    import cv2

    canvas = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    scale = max(0.35, min(canvas.shape[:2]) / 500)
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(1, int(round(scale)))
    for face in faces:
        x1, y1, x2, y2 = (int(v) for v in face["box"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (40, 220, 40), max(1, int(2 * scale)))
        text = face_label(face)
        (width, height), baseline = cv2.getTextSize(text, font, 0.5 * scale, thickness)
        label_height = height + baseline + 2
        top = y1 - label_height if y1 >= label_height else y2 + 1  # above the box, else below it
        cv2.rectangle(canvas, (x1, top), (x1 + width + 2, top + label_height), (40, 220, 40), -1)
        cv2.putText(canvas, text, (x1 + 1, top + height + 1), font, 0.5 * scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return canvas

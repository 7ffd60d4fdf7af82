"""`FacePredictor`: a saved model + face detection -> age, gender, emotion and smile per face.

    predictor = facenet_mtl.load()                 # the shipped model; or load("runs/x/model.h5")
    for face in predictor.predict("group.jpg"):    # one image -> its faces
        print(face["box"], face["confidence"], face["age"], face["emotion"]["label"])
    predictor.predict(["a.jpg", "b.jpg"])          # several -> one list of faces per image

Each image is searched for faces once (`FaceDetector.detect_many`: images of one size are
detected together), every face is cropped the way the model file's `ModelSpec` says its training
crops were (`crop_face` at its input size and margin), and all the crops of a batch of images go
through the model together. The heads read, their labels and their text are the spec's, not the
running process's task registry. `load_in_background` starts the loading on a thread, so a
command can read its inputs meanwhile.
"""
import functools
import os
import threading
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from facenet_mtl import tasks as task_registry
from facenet_mtl.artifact.forward import compiled_forward
from facenet_mtl.data import images
from facenet_mtl.data.faces import FaceDetector, crop_face
from facenet_mtl.data.schema import MIN_FACE
from facenet_mtl.errors import DataError
from facenet_mtl.inference.model_card import ModelCard, describe
from facenet_mtl.inference.records import in_original_pixels

_LAZY = ("MODEL_SUFFIXES", "load_keras_model")  # re-exported from `loading`, which imports Keras


def __getattr__(name):
    """`load_keras_model` and `MODEL_SUFFIXES` on first use: importing this module (the CLI does,
    on its way to a thread that loads the model) must not import TensorFlow."""
    if name in _LAZY:
        from facenet_mtl.artifact import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class LocatedFaces:
    """What detection found in a batch of `images` images: the model's input `crops` (N, S, S, 3)
    (None: no face), each crop's image index (`owners`) and its (box, detector score) (`found`)."""

    images: int
    crops: Optional[np.ndarray]
    owners: list
    found: list


# Batches of images a caller runs through the predictor at once, on as many threads (`predict`
# over files and video): one batch's Python and NumPy steps (decoding, NMS, cropping) run beside
# the other's TensorFlow ones, so both cores of a 2-core CPU stay busy (100 photos: 1.55 -> 1.85
# cores, 20.6-21.7 -> 25.0-27.0 photos/s; three at once: no more).
BATCHES_AHEAD = 2


class NoFaceWarning(UserWarning):
    """An image in which the detector found no face (its result is an empty list)."""


class FacePredictor:
    """A face model plus the detector and crop that feed it.

    Each face's result holds the box, the detector's confidence (None without detection) and
    only the heads the model has:
    `{"box": [x1, y1, x2, y2], "confidence": 0.998, "age": 34.2,
      "gender": {"label": "male", "probability": 0.97},      # probability of that label
      "emotion": {"label": "happy", "probabilities": {"angry": 0.01, ...}},  # all 7, sum 1
      "smile": {"label": "smile", "probability": 0.88}}`     # probability of that label

    An age head with its bins also gives `"age_range": [low, high]`, the 80 % interval of its
    distribution (`tasks.age_range`). `spec` (a `ModelSpec`; None: derived from the model's
    outputs) says which heads there are, their labels, the input size and the crop's margin.
    `card` (a `ModelCard`) names the model in every output: `model_id`, and `warning` when the
    model was not trained on real faces. `trace_whole`: for a model with nested networks that is not a
    test-time-views model, trace it whole (`compiled_forward`): seconds more at start, less per
    call after.
    """

    def __init__(self, model, detector=None, margin=None, batch_size=64, card=None, spec=None, trace_whole=False):
        from facenet_mtl.artifact.spec import derive_spec

        self.model = model
        self.spec = spec or derive_spec(model)
        self.heads = self.spec.task_objects()
        self.input_size = self.spec.input_size
        self.detector = detector
        self.margin = self.spec.margin if margin is None else margin
        self.batch_size = batch_size
        self.card = card or ModelCard(id=getattr(model, "name", "model"))
        self.card.input_size = self.input_size
        self.card.set_spec(self.spec)
        self._forward = compiled_forward(model, whole=trace_whole)
        self._making_detector = threading.Lock()

    @classmethod
    def from_path(cls, path=None, trust_saved_model=False, **kwargs):
        """The model at `path` (.h5, .keras, SavedModel dir); None: the shipped model."""
        shipped = path is None
        if shipped:
            from facenet_mtl.weights import release_model_path

            path = release_model_path()  # its sha256 checked against release.json
        from facenet_mtl.artifact.loading import load_keras_model
        from facenet_mtl.artifact.spec import spec_of_file

        model = load_keras_model(path, trust_saved_model=trust_saved_model, verified=shipped)
        spec = spec_of_file(path, model)
        return cls(model, card=describe(path, spec), spec=spec, **kwargs)

    @property
    def model_id(self):
        return self.card.id

    @property
    def warning(self):
        return self.card.warning

    def describe(self):
        """The model card as a dict: its tasks, heads and labels as the model's spec states them."""
        return self.card.as_dict()

    def tasks(self):
        """The tasks this model's heads predict, as its spec lists them."""
        return self.spec.task_names

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
        return [_describe({k: v[i] for k, v in outputs.items()}, self.heads) for i in range(len(crops))]

    def predict(self, images_or_paths, detect=True):
        """Faces in one image (a path or an RGB array) or, for a list of them, one list per image.

        `predict("x.jpg")` -> [face, ...]; `predict(["a.jpg", b_array])` -> [[face, ...], [...]].
        detect=False treats every image as one face crop (box = the whole image). An image with
        no face gives an empty list and a `NoFaceWarning`; an unreadable file raises DataError
        naming it.
        """
        single = _is_one_image(images_or_paths)
        items = [images_or_paths] if single else list(images_or_paths)
        decoded = [images.load_rgb_scaled(os.fspath(item) if isinstance(item, (str, Path)) else item)
                   for item in items]
        results = [in_original_pixels(faces, scale)  # a large photo is decoded reduced; boxes are not
                   for faces, (_, scale) in zip(self.predict_arrays([rgb for rgb, _ in decoded], detect=detect), decoded)]
        for index, (item, faces) in enumerate(zip(items, results)):
            if not faces:
                name = item if isinstance(item, (str, Path)) else f"image {index}"
                warnings.warn(f"{name}: no face found", NoFaceWarning, stacklevel=2)
        return results[0] if single else results

    def predict_arrays(self, rgbs, detect=True):
        """Decoded RGB uint8 images -> one list of faces per image, no warnings.

        Detection runs once per image, images of one size together (`detect_many`: the same
        faces as one by one); the crops of all the images go through the model together.
        `locate_faces` and `describe_faces` are its two halves, for a caller that runs them on
        two threads (detecting the next images while the model reads these).
        """
        return self.describe_faces(self.locate_faces(rgbs, detect=detect))

    def locate_faces(self, rgbs, detect=True):
        """The detection half of `predict_arrays`: the faces found in each image and their crops
        for the model, as a `LocatedFaces` for `describe_faces`."""
        rgbs = [images.load_rgb(rgb) for rgb in rgbs]
        detected = self.detect_many(rgbs) if detect else [[None] for _ in rgbs]
        crops, owners, found = [], [], []
        for index, (rgb, faces) in enumerate(zip(rgbs, detected)):
            for face in faces:
                if face is None:
                    crops.append(images.square_resize(rgb, self.input_size))
                    found.append(([0, 0, int(rgb.shape[1]), int(rgb.shape[0])], None))
                else:
                    crops.append(self._crop(rgb, face))
                    found.append(([int(v) for v in face.box], round(float(face.score), 4)))
                owners.append(index)
        return LocatedFaces(len(rgbs), np.stack(crops) if crops else None, owners, found)

    def describe_faces(self, located):
        """The model half of `predict_arrays`: a `LocatedFaces` -> one list of faces per image."""
        results = [[] for _ in range(located.images)]
        if located.crops is not None:
            described = self.predict_faces(located.crops)
            for owner, (box, score), face in zip(located.owners, located.found, described):
                results[owner].append({"box": box, "confidence": score, **face})
        return results

    def detect(self, rgb):
        """The detector's faces in one RGB image (the detector is made on first use)."""
        return self.detect_many([rgb])[0]

    def detect_many(self, rgbs):
        """The detector's faces in each RGB image, in order (`FaceDetector.detect_many`; a
        detector of one's own with only `detect` is called image by image)."""
        with self._making_detector:  # `predict_files` detects on two threads at once
            if self.detector is None:
                self.detector = FaceDetector()
        if not hasattr(self.detector, "detect_many"):
            return [self.detector.detect(rgb) for rgb in rgbs]
        return self.detector.detect_many(rgbs)

    def warm_up(self):
        """Build the detector's networks and trace the model's forward pass, so the first
        images do not pay for it."""
        self.detect(np.full((64, 64, 3), 128, np.uint8))
        self.predict_faces(np.zeros((1, self.input_size, self.input_size, 3), np.float32))
        return self

    def _crop(self, rgb, face):
        return crop_face(rgb, face, self.input_size, self.margin)

    def write_annotated(self, paths, results, out_dir):
        """Annotated copies of `paths` under `out_dir`, one distinct name per input (see
        `annotated_names`); returns the paths written. `out_dir` must not be a file."""
        return write_annotated(paths, results, out_dir, heads=self.heads)


def load_in_background(path=None, trust_saved_model=False, search_side=None, min_face=MIN_FACE, **kwargs):
    """A Future of `FacePredictor.from_path(path, ...)`, warmed up (`warm_up`), made on a daemon
    thread: the caller reads its inputs meanwhile and calls `.result()` when it needs the model
    (an error loading it is raised there). Import TensorFlow on the calling thread first: imported
    on this one while the caller imports too, TensorFlow 2.16's `import distutils` (setuptools'
    import hook) can deadlock. The model and the detector load side by side; `search_side` and
    `min_face` (its `min_size`): the detector's (`FaceDetector`)."""
    future = Future()

    def load():
        built = None
        try:
            detector = FaceDetector(search_side=search_side, min_size=min_face)
            built = threading.Thread(target=detector.warm_up, daemon=True)
            built.start()  # MTCNN's networks build while the model file loads
            predictor = FacePredictor.from_path(path, trust_saved_model=trust_saved_model, detector=detector,
                                                **kwargs)
            predictor.predict_faces(np.zeros((1, predictor.input_size, predictor.input_size, 3), np.float32))
            built.join()
            future.set_result(predictor)
        except BaseException as exc:  # noqa: BLE001  (handed to whoever asks for the result)
            if built is not None:  # a process that exits while TensorFlow builds a network aborts
                built.join()
            future.set_exception(exc)

    threading.Thread(target=load, name="load-model", daemon=True).start()
    return future


def loaded(predictor):
    """`predictor` itself, or the FacePredictor a `load_in_background` Future gives (waiting for it)."""
    return predictor.result() if isinstance(predictor, Future) else predictor


def _is_one_image(item):
    """A path or one decoded image (HxW or HxWxC array), not a collection of them."""
    if isinstance(item, (str, bytes, os.PathLike)):
        return True
    return isinstance(item, np.ndarray) and item.ndim in (2, 3)


def _describe(out, heads):
    """One face's head outputs -> its result dict (see `FacePredictor`): each head's readout."""
    result = {}
    for task in heads:
        result.update(task.readout(out))
    return result


# --- drawing --------------------------------------------------------------------------------------

LABEL_MIN_PX = 12  # the smallest label text drawn, in pixels of the output image
LABEL_MAX_PX = 40
BOX_COLOUR = (40, 220, 40)


def face_label(face, heads=None):
    """The short text for one face result, e.g. "34y M 0.97 | happy | smile"."""
    return " | ".join(label_lines(face, probabilities=False, heads=heads))


def label_lines(face, probabilities=True, heads=None):
    """The label as lines, one per head group (`Task.line`): ["34y M 0.97", "happy 0.81", "smile 0.88"];
    `heads` a model's tasks (`ModelSpec.task_objects()`), None: the registered ones."""
    lines = {}
    for task in task_registry.TASKS.values() if heads is None else heads:
        if task.name in face:
            lines.setdefault(task.line or task.name, []).append(task.text(face[task.name], probabilities))
    return [" ".join(parts) for parts in lines.values()]


def label_text_px(box):
    """Label text height for a face box: a tenth of the box, between 12 and 40 px."""
    side = max(box[2] - box[0], box[3] - box[1])
    return int(np.clip(round(0.1 * side), LABEL_MIN_PX, LABEL_MAX_PX))


def annotate(rgb, faces, heads=None):
    """A copy of `rgb` with each face's box and its label lines (`label_lines`) drawn on it.

    The text scales with the face box and is never under 12 px tall; the label sits above the
    box, else below it, else inside its top, and is shifted left to stay inside the image.
    """
    import cv2

    canvas = np.ascontiguousarray(images.load_rgb(np.asarray(rgb, np.uint8))).copy()
    height, width = canvas.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    unit_px = _digit_height_at_scale_1(font)
    for face in faces:
        x1, y1, x2, y2 = (int(v) for v in face["box"])
        text_px = label_text_px((x1, y1, x2, y2))
        scale, thickness = (text_px + 0.5) / unit_px, max(1, round(text_px / 12))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR, max(2, round(text_px / 6)))
        lines = label_lines(face, heads=heads)
        if not lines:
            continue
        sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
        pad = max(2, text_px // 4)
        line_h = text_px + 2 * pad
        block_w = max(w for (w, _), _ in sizes) + 2 * pad
        block_h = line_h * len(lines)
        if y1 >= block_h:
            top = y1 - block_h
        elif y2 + block_h <= height:
            top = y2
        else:
            top = max(0, y1)
        left = max(0, min(x1, width - block_w))
        cv2.rectangle(canvas, (left, top), (left + block_w, top + block_h), BOX_COLOUR, -1)
        for i, line in enumerate(lines):
            baseline_y = top + i * line_h + pad + text_px
            cv2.putText(canvas, line, (left + pad, baseline_y), font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return canvas


@functools.lru_cache(maxsize=None)
def _digit_height_at_scale_1(font):
    """How tall a digit is drawn at font scale 1, measured (getTextSize's height includes the
    font's ascent, not the glyph: a digit drawn at its "12 px" is ~9 px)."""
    import cv2

    canvas = np.zeros((200, 120), np.uint8)
    cv2.putText(canvas, "0", (10, 150), font, 4.0, 255, 1, cv2.LINE_AA)
    rows = np.where((canvas >= 128).any(axis=1))[0]
    return (rows.max() - rows.min() + 1) / 4.0


# --- annotated files --------------------------------------------------------------------------------

def annotated_names(paths):
    """Distinct relative output names for input paths: `<stem>_annotated.jpg` under the inputs'
    relative folders (mirroring them below their common parent), with the source suffix added
    (`face_png_annotated.jpg`), then a number, where two would still collide."""
    resolved = [Path(os.path.abspath(p)) for p in paths]
    if not resolved:
        return []
    common = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    names, taken = [], set()
    for path in resolved:
        folder = path.parent.relative_to(common)
        candidates = [f"{path.stem}_annotated.jpg", f"{path.stem}_{path.suffix.lstrip('.')}_annotated.jpg"]
        candidates += [f"{path.stem}_{path.suffix.lstrip('.')}_{n}_annotated.jpg" for n in range(2, len(paths) + 2)]
        name = next(folder / c for c in candidates if str(folder / c).lower() not in taken)
        taken.add(str(name).lower())
        names.append(name)
    return names


def check_out_dir(out_dir):
    """`out_dir` as a Path, or DataError when it exists and is not a directory."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, "exists and is a file, not a folder for the annotated output",
                        "give a folder (new or existing) to --out, or move the file away")
    return out_dir


def write_annotated(paths, results, out_dir, names=None, heads=None):
    """Annotated copies of image `paths` (their `results` drawn) under `out_dir`; the paths
    written, one per input, never two inputs on one file (`annotated_names`)."""
    out_dir = check_out_dir(out_dir)
    names = names if names is not None else annotated_names(paths)
    return [save_annotated(images.load_rgb(os.fspath(path)), faces, out_dir / name, heads)
            for path, faces, name in zip(paths, results, names)]


def save_annotated(rgb, faces, target, heads=None):
    """`annotate(rgb, faces)` written to `target` (its folder made); returns `target`."""
    import cv2

    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(target.parent, f"cannot be made as a folder ({exc.strerror})",
                        "give --out a folder path that can be created") from None
    # Encoded in memory and written by Python: OpenCV's path functions crash on a name that is not UTF-8.
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(annotate(rgb, faces, heads), cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(target, "could not be encoded as JPEG", "report this image as a bug")
    target.write_bytes(encoded.tobytes())
    return target

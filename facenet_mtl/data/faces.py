"""Face detection and the training crop, for sources that are not tight crops and for photos.

OpenCV 5 ships no Haar cascade and its YuNet detector needs a model file, so detection uses
MTCNN (the `mtcnn` package: TensorFlow, weights inside the wheel, works offline, 5 landmarks).
One face normalisation for training records and prediction alike: a similarity transform
(rotation, scale, shift) that puts the five landmarks on `TEMPLATE` at the model's input size
(`align_face`). Sources already cropped and aligned (UTKFace chips) are in the template; sources
cropped another way whose faces are too small or too many to detect (FER2013's 48-px crops,
CelebA, FairFace) are aligned by the source's typical landmark layout (`align_by_framing`),
measured once per dataset by `benchmarks/framing.py`; photos are detected and aligned face by face.

MTCNN finds real faces; it finds only some of the drawn demo faces (`facenet_mtl.demo.faces`), so
predict on those with `detect=False`.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from facenet_mtl.data import images
from facenet_mtl.data.schema import FACE_MARGIN, MIN_FACE

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass
class Face:
    """One detected face: `box` (x1, y1, x2, y2) in whole pixels, the detector's `score`, and
    `landmarks` {left_eye, right_eye, nose, mouth_left, mouth_right: (x, y)}, "left" meaning the
    image's left."""

    box: tuple
    score: float
    landmarks: dict = field(default_factory=dict)

    @property
    def area(self) -> int:
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])


STAGE_INPUT_SIDES = (None, 24, 48)  # P-Net: any size; R-Net and O-Net: their patches
PAD_BELOW = 640  # pixels: images up to this side are padded before detection
BATCH_CANVAS = 256  # pixels: the square each image is scaled onto for batched detection


def _border(shape) -> int:
    """A face that fills a small image (a face crop given as a photo) is missed unless the image
    has some room around it: images up to `PAD_BELOW` px get a black border of a quarter of their
    longer side (this many pixels on each side)."""
    return int(0.25 * max(shape[:2])) if max(shape[:2]) <= PAD_BELOW else 0


def _padded(rgb):
    """`rgb` with its black border (`_border`), and the border's width."""
    import cv2

    pad = _border(rgb.shape)
    if not pad:
        return rgb, 0
    return cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)), pad


class FaceDetector:
    """`FaceDetector().detect(rgb)` -> faces sorted by area, largest first."""

    def __init__(self, min_confidence: float = 0.9, min_size: int = MIN_FACE, search_side: int | None = None) -> None:
        self.min_confidence = min_confidence
        self.min_size = min_size
        self.search_side = search_side  # None: propose at full resolution; N: on a copy N px long (`_run`)
        self._mtcnn = None
        self._building = threading.Lock()  # threads detecting at once build MTCNN once

    def _detector(self):
        with self._building:
            return self._mtcnn or self._build()

    def _build(self):
        try:
            from mtcnn import MTCNN
        except ImportError as exc:
            raise RuntimeError("face detection needs the `mtcnn` package: pip install 'mtcnn>=1,<2'") from exc
        import tensorflow as tf

        logging.getLogger("mtcnn").setLevel(logging.ERROR)
        mtcnn = MTCNN()
        # Its three networks as traced graphs: the same numbers as their eager Keras calls,
        # without a Python dispatch per layer (P-Net 1.3-1.7x faster)
        for stage, side in zip(mtcnn.stages, STAGE_INPUT_SIDES):
            stage._model = tf.function(stage._model.call, autograph=False,
                                       input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)])
        self._mtcnn = mtcnn
        return mtcnn

    def warm_up(self) -> None:
        """Build MTCNN's three networks and their traces now (one search of a grey image, which
        proposes nothing, and one patch through R-Net and O-Net)."""
        self.detect(np.full((64, 64, 3), 128, np.uint8))
        for stage, side in zip(self._detector().stages[1:], STAGE_INPUT_SIDES[1:]):
            stage._model(np.zeros((1, side, side, 3), np.float32))

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an HxWx3 (or HxW, HxWx4) uint8 image with score >= min_confidence
        (`detect_many` with a batch of one: the same faces)."""
        return self.detect_many([rgb])[0]

    def detect_many(self, rgbs: Sequence[np.ndarray], batch_size: int = 16) -> list[list[Face]]:
        """`detect` for each image, at its own resolution: images of one shape (each in its `_border`)
        go through MTCNN together, `batch_size` at a time, so each finds what it finds alone
        (same pyramid, same pixels) at a fraction of the cost. Results in input order."""
        prepared = [images.load_rgb(rgb) for rgb in rgbs]  # grey and RGBA -> RGB: MTCNN takes 3 channels
        by_shape: dict[tuple, list[int]] = {}
        for index, rgb in enumerate(prepared):
            by_shape.setdefault(rgb.shape, []).append(index)
        results: list[list[Face]] = [[] for _ in prepared]
        for shape, members in by_shape.items():
            pad = _border(shape)
            scale = min(1.0, self.search_side / (max(shape[:2]) + 2 * pad)) if self.search_side else 1.0
            for start in range(0, len(members), batch_size):
                chunk = members[start:start + batch_size]
                found = self._run(np.stack([prepared[i] for i in chunk]), self.min_size, scale, pad=pad)
                for i, faces in zip(chunk, found):
                    results[i] = self._faces(faces, shape, pad, 1.0)
        return results

    def _run(self, batch: np.ndarray, min_face_size: int, search_scale: float = 1.0,
             pad: int = 0) -> list[list[dict]]:
        """MTCNN's three stages over a batch of same-shape uint8 images, each searched inside a
        black border `pad` px wide (`_border`), one list of detections (mtcnn's JSON, xyxy, in the
        bordered image's pixels) per image. The bordered batch is normalised once, in float32
        (`_normalised`; `MTCNN.detect_faces` converted a float64 copy for every pyramid level,
        which cost more than the networks), and the proposal network skips the windows that see
        only the border (`_proposals`).

        `search_scale` < 1: the proposal network (P-Net, most of the cost) searches a copy
        scaled by it, and R-Net and O-Net refine its proposals on the full-resolution image, so
        boxes and landmarks keep the image's own precision; faces under `min_face_size /
        search_scale` pixels are not proposed."""
        import tensorflow as tf
        from mtcnn.utils.bboxes import limit_bboxes, to_json

        pnet, *refiners = self._detector().stages
        height, width = batch.shape[1:3]
        shape = np.array([height + 2 * pad, width + 2 * pad, 3])
        bordered = _normalised(batch, pad)
        search, search_shape = bordered, shape
        if search_scale < 1:
            import cv2

            search_shape = np.array([max(12, round(side * search_scale)) for side in shape[:2]] + [3])
            size = (int(search_shape[1]), int(search_shape[0]))
            search = _normalised(np.stack([
                cv2.resize(cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)),
                           size, interpolation=cv2.INTER_AREA) for rgb in batch]))
        content = (pad, pad, shape[0] - pad, shape[1] - pad)  # top, left, bottom, right in `bordered`
        ratio = search_shape[:2] / shape[:2]
        try:
            boxes = _proposals(pnet._model, search, min_face_size,
                               content=tuple(np.array(content) * np.tile(ratio, 2)) if pad else None)
            boxes[:, 1:5] *= [shape[1] / search_shape[1], shape[0] / search_shape[0]] * 2
            for stage in refiners:
                boxes = stage(images_normalized=bordered, bboxes_batch=boxes)
        except (tf.errors.InvalidArgumentError, ValueError):  # no proposal at all; or a pyramid
            return [[] for _ in batch]                        # shrunk below MTCNN's kernels
        boxes = limit_bboxes(boxes, images_shapes=np.array([shape] * len(batch)), limit_landmarks=False)
        return to_json(boxes, len(batch), output_as_width_height=False)

    def detect_batch(self, rgbs: Iterable[np.ndarray], canvas: int = BATCH_CANVAS,
                     batch_size: int = 32) -> list[list[Face]]:
        """`detect` for many images at once, each scaled onto one `canvas`-pixel square so that
        MTCNN runs them as a batch whatever their sizes (GENKI-4K: 237 vs 1,542 ms). For images
        with one main face, such as a dataset's photos; faces under about 20 / canvas of the
        image's longer side are not found, and boxes are only as fine as the canvas (prediction
        uses `detect_many`, at each image's own resolution)."""
        import cv2

        prepared, shapes = [], []
        for rgb in rgbs:
            rgb = images.load_rgb(rgb)
            padded, pad = _padded(rgb)
            scale = canvas / max(padded.shape[:2])
            size = (max(1, round(padded.shape[1] * scale)), max(1, round(padded.shape[0] * scale)))
            resized = cv2.resize(padded, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            square = np.zeros((canvas, canvas, 3), np.uint8)
            square[:resized.shape[0], :resized.shape[1]] = resized
            prepared.append(square)
            shapes.append((rgb.shape, pad, scale))
        results = []
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start:start + batch_size]
            found = self._run(np.stack(chunk), self.min_size) if chunk else []  # bordered already
            for faces, (shape, pad, scale) in zip(found, shapes[start:start + batch_size]):
                results.append(self._faces(faces, shape, pad, scale))
        return results

    def _faces(self, found, shape, pad, scale):
        """MTCNN's detections in a padded (by `pad`) and scaled (by `scale`) copy -> our Faces in
        the original image's pixels, largest first."""
        height, width = shape[:2]
        faces = []
        for f in found:
            if f["confidence"] < self.min_confidence:
                continue
            x1, y1, x2, y2 = (float(v) / scale - pad for v in f["box"])
            box = (max(0, round(x1)), max(0, round(y1)), min(width, round(x2)), min(height, round(y2)))
            landmarks = {name: (float(x) / scale - pad, float(y) / scale - pad)
                         for name, (x, y) in f.get("keypoints", {}).items()}
            faces.append(Face(tuple(int(v) for v in box), float(f["confidence"]), landmarks))
        return sorted((f for f in faces if f.area > 0), key=lambda f: f.area, reverse=True)


NORMALISED = (np.arange(256, dtype=np.float32) - 127.5) / 128  # MTCNN's input for each uint8 value


def _normalised(batch: np.ndarray, pad: int = 0):
    """A batch of uint8 images as MTCNN's input, `NORMALISED[batch]` inside a black border `pad`
    px wide, as one float32 tensor: k / 128 - 0.99609375 is exact in float32 for every k, so
    these are `NORMALISED`'s values to the bit (and mtcnn's own float64 values, rounded), computed
    by TensorFlow on every core (a third of numpy's lookup, fill and copy)."""
    import tensorflow as tf

    scaled = tf.cast(tf.convert_to_tensor(batch), tf.float32) * (1 / 128) - 0.99609375
    if not pad:
        return scaled
    return tf.pad(scaled, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=float(NORMALISED[0]))


PNET_WINDOW = 12  # pixels of a pyramid level that one P-Net output sees (stride 2)


def _proposals(pnet, images, min_face_size: int, content=None, scale_factor: float = 0.709,
               threshold: float = 0.6, nms_level: float = 0.5, nms_all: float = 0.7) -> np.ndarray:
    """MTCNN's P-Net stage (`mtcnn.stages.stage_pnet.StagePNet`: the same pyramid, the same pixels
    at every level, the same thresholds and NMS) over a batch of normalised same-shape images,
    where the network runs at each level only over the windows that can touch `content` (top,
    left, bottom, right of the image inside its black border, in `images`' pixels): P-Net's
    convolutions are unpadded and its output stride is 2, so a crop at an even offset gives the
    same outputs for every window it holds, and the skipped windows see the border alone. On a
    640x480 photo padded to 960x800 that is half the network's work at the finest levels.
    Returns the proposals (batch index, x1, y1, x2, y2, score, ...) made square, for R-Net."""
    import tensorflow as tf
    from mtcnn.utils.bboxes import generate_bounding_box, resize_to_square, smart_nms_from_bboxes, upscale_bboxes
    from mtcnn.utils.images import build_scale_pyramid

    images = tf.convert_to_tensor(images)
    count, height, width = (int(v) for v in images.shape[:3])
    found = []
    for scale in build_scale_pyramid(width, height, min_face_size=min_face_size, scale_factor=scale_factor):
        level = tf.image.resize(images, np.array([height, width]) * scale, method=tf.image.ResizeMethod.AREA)
        offset = [0, 0]
        if content is not None:
            size = level.shape[1:3]
            keep = []
            for axis, (low, high, side) in enumerate(zip(content[:2], content[2:], (height, width))):
                ratio = size[axis] / side
                start = max(0, int(np.floor((low * ratio - PNET_WINDOW) / 2)) * 2 - 2)  # even: the stride
                stop = min(size[axis], int(np.ceil(high * ratio)) + PNET_WINDOW + 2)
                stop -= (stop - start) % 2 if stop < size[axis] else 0  # no half pooling cell inside
                keep.append(slice(start, stop))
                offset[axis] = start
            level = level[:, keep[0], keep[1]]
        if min(level.shape[1:3]) < PNET_WINDOW:
            continue
        regression, scores = pnet(level)
        boxes = generate_bounding_box(regression, scores, threshold)
        boxes[:, [1, 3]] += offset[1]
        boxes[:, [2, 4]] += offset[0]
        boxes = upscale_bboxes(boxes, np.asarray([scale] * count))
        found.append(smart_nms_from_bboxes(boxes, threshold=nms_level, method="union", initial_sort=False))
    boxes = np.concatenate(found, axis=0) if found else np.empty((0, 6))
    return resize_to_square(smart_nms_from_bboxes(boxes, threshold=nms_all, method="union", initial_sort=True))


# The canonical framing every face is brought to, for training records and for prediction alike:
# where MTCNN's five landmarks (left eye, right eye, nose, left and right mouth corner; "left" is
# the image's left) sit in the model's square input, as fractions of its side. It is the mean
# landmark layout of 241 UTKFace chips (`benchmarks/framing.py`; per-point sd 0.016-0.035 of the
# side), made left-right symmetric (a shift of 0.009 of the side) so that a mirrored face is also
# in the template: the aligned UTKFace chips are already in this framing and need no re-detection.
TEMPLATE = np.array([(0.3076, 0.2885), (0.6924, 0.2885), (0.5000, 0.5160),
                     (0.3311, 0.6868), (0.6689, 0.6868)], np.float32)
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def landmark_array(face_or_landmarks: Face | Mapping[str, Sequence[float]] | ArrayLike) -> np.ndarray | None:
    """The five landmarks as a (5, 2) float array, from a `Face` or its landmarks dict."""
    landmarks = face_or_landmarks.landmarks if isinstance(face_or_landmarks, Face) else face_or_landmarks
    if isinstance(landmarks, dict):
        if not all(name in landmarks for name in LANDMARKS):
            return None
        landmarks = [landmarks[name] for name in LANDMARKS]
    points = np.asarray(landmarks, np.float32).reshape(-1, 2)
    return points if points.shape == (5, 2) else None


def alignment_matrix(points: ArrayLike, size: int) -> np.ndarray:
    """The 2x3 least-squares similarity (rotation, uniform scale, shift) taking `points` onto
    TEMPLATE * size (Umeyama's closed form: every landmark counts, none is fitted exactly)."""
    src = np.asarray(points, np.float64)
    dst = TEMPLATE.astype(np.float64) * size
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    variance = (src_c ** 2).sum() / len(src)
    if variance < 1e-9:  # degenerate landmarks (all in one place): keep the image as it is
        return np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    u, singular, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / variance
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]]).astype(np.float32)


def align_face(rgb: np.ndarray, points: ArrayLike, size: int) -> np.ndarray:
    """The `size` x `size` face whose landmarks `points` (5x2, pixels of `rgb`) land on TEMPLATE.

    A large downscale first shrinks the image with area averaging (a warp samples pixels and
    would alias), so a 2,000-px photo and a 200-px chip of the same face give the same crop.
    Borders outside the image repeat its edge pixels, as the records' box crops do."""
    import cv2

    rgb = images.load_rgb(rgb)
    points = np.asarray(points, np.float32)
    matrix = alignment_matrix(points, size)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    if scale < 0.5:  # shrink with INTER_AREA to about the output's scale, then warp at ~1:1
        factor = 1.0 / scale
        small = cv2.resize(rgb, (max(1, round(rgb.shape[1] / factor)), max(1, round(rgb.shape[0] / factor))),
                           interpolation=cv2.INTER_AREA)
        points = points * np.array([small.shape[1] / rgb.shape[1], small.shape[0] / rgb.shape[0]], np.float32)
        rgb, matrix = small, alignment_matrix(points, size)
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def align_by_framing(rgb: np.ndarray, framing: ArrayLike, size: int) -> np.ndarray:
    """Align a dataset's pre-cropped face by the source's typical landmark layout `framing`
    (5x2, fractions of the image's width and height), for crops too small or too many to detect."""
    rgb = images.load_rgb(rgb)
    points = np.asarray(framing, np.float32) * np.array([rgb.shape[1], rgb.shape[0]], np.float32)
    return align_face(rgb, points, size)


def crop_face(rgb: np.ndarray, face_or_box: Face | Sequence[float], size: int, margin: float = FACE_MARGIN) -> np.ndarray:
    """The model's input for one detected face: aligned by its landmarks when it has them (what
    training records get); a bare box (no landmarks) gets the box crop with `margin`."""
    if isinstance(face_or_box, Face):
        points = landmark_array(face_or_box)
        if points is not None:
            return align_face(rgb, points, size)
        face_or_box = face_or_box.box
    return images.square_resize(images.crop_box_with_margin(rgb, face_or_box, margin), size)

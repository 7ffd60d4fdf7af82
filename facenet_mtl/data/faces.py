"""Face detection and the training crop, for sources that are not tight crops and for photos.

OpenCV 5 ships no Haar cascade and its YuNet detector needs a model file, so detection uses
MTCNN (the `mtcnn` package: TensorFlow, weights inside the wheel, works offline, 5 landmarks).
The crop is the same one training records get: `images.crop_box_with_margin` + `square_resize`.
Faces are not rotated upright by their landmarks: the training crops are not either, and a
predictor must see what the model was trained on.

MTCNN finds real faces; it finds only some of the drawn demo faces (`demo_faces`), so predict on
those with `detect=False`.
"""
import logging
from dataclasses import dataclass, field

from facenet_mtl.data import images


@dataclass
class Face:
    """One detected face: `box` (x1, y1, x2, y2) in whole pixels, the detector's `score`, and
    `landmarks` {left_eye, right_eye, nose, mouth_left, mouth_right: (x, y)}, "left" meaning the
    image's left."""

    box: tuple
    score: float
    landmarks: dict = field(default_factory=dict)

    @property
    def area(self):
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])


class FaceDetector:
    """`FaceDetector().detect(rgb)` -> faces sorted by area, largest first."""

    def __init__(self, min_confidence=0.9, min_size=20):
        self.min_confidence = min_confidence
        self.min_size = min_size
        self._mtcnn = None

    def _detector(self):
        if self._mtcnn is None:
            try:
                from mtcnn import MTCNN
            except ImportError as exc:
                raise RuntimeError("face detection needs the `mtcnn` package: pip install 'mtcnn>=1,<2'") from exc
            logging.getLogger("mtcnn").setLevel(logging.ERROR)
            self._mtcnn = MTCNN()
        return self._mtcnn

    def detect(self, rgb):
        """Faces in an HxWx3 (or HxW, HxWx4) uint8 image with score >= min_confidence."""
        rgb = images.load_rgb(rgb)  # grey and RGBA -> RGB; MTCNN takes 3 channels only
        found = self._detector().detect_faces(rgb, box_format="xyxy", min_face_size=self.min_size)
        faces = [Face(tuple(int(round(float(v))) for v in f["box"]), float(f["confidence"]),
                      {name: (int(x), int(y)) for name, (x, y) in f.get("keypoints", {}).items()})
                 for f in found if f["confidence"] >= self.min_confidence]
        return sorted((f for f in faces if f.area > 0), key=lambda f: f.area, reverse=True)


def crop_face(rgb, face_or_box, size, margin=0.4):
    """The square face crop of side `size`, framed as in training (margin on each side)."""
    box = face_or_box.box if isinstance(face_or_box, Face) else face_or_box
    return images.square_resize(images.crop_box_with_margin(rgb, box, margin), size)

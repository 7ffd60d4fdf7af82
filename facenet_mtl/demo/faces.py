"""Procedurally drawn faces whose pixels encode age, gender, emotion and smile.

The demo data set is made of these: every label is drawn as a visible, learnable cue, and
everything else (pose, scale, skin tone, background, lighting, noise) varies at random.

- age (0-100), several overlapping continuous ramps: childhood (big low eyes, round face, pink
  cheeks) fades by 18; adult features (thicker brows, longer nose) grow from 12 to 32; hair
  greys from 25 to 70; wrinkles darken from 35 to 95.
- gender: female = long hair down to the shoulders, narrow pointed chin, coloured lips;
  male = short hair, square jaw, some with stubble.
- emotion (FER2013's 7): brow height and tilt, eye openness, mouth width and opening, nose
  wrinkles (see `EXPRESSIONS`).
- smile: mouth corners turned up and the mouth widened, on top of any emotion; happy always
  smiles.

>>> import numpy as np
>>> draw_face(age=30, gender=1, emotion=3, smile=1, rng=np.random.default_rng(0)).shape
(96, 96, 3)
"""
from dataclasses import dataclass

import cv2
import numpy as np

from facenet_mtl.data.schema import EMOTIONS, FACE_MARGIN

FACE_BOX_MARGIN = FACE_MARGIN  # draw_face frames the face box as crop_box_with_margin(box, 0.4) would
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel precision for small faces
_SCALE = 1 << _SHIFT
# The face box in face units (1 unit = half the face width), centred a little below the eyes.
_BOX_HALF = 1.15
_BOX_CENTRE_Y = 0.1
_SMILE_CURVE = 0.36  # how far the mouth corners rise when smiling
_SMILE_WIDEN = 1.3


def _arc(start, end, n):
    angles = np.radians(np.linspace(start, end, n))
    return np.stack([np.cos(angles), np.sin(angles)], 1)


_CIRCLE = _arc(0, 360, 40)
_UPPER_HALF_CIRCLE = _arc(180, 360, 25)  # y up is negative: the top of the head
_MOUTH_T = np.linspace(-1, 1, 21)


@dataclass(frozen=True)
class Expression:
    """How one emotion is drawn, in face units; `brow_tilt` > 0 lowers the inner brow ends."""

    brow_raise: float
    brow_tilt: float
    eye_open: float
    mouth_width: float
    mouth_curve: float  # > 0 turns the corners up
    mouth_open: float
    mouth_skew: float = 0.0  # > 0 lifts the left corner (image left)
    nose_wrinkle: bool = False


EXPRESSIONS = {
    "angry": Expression(-0.06, 0.18, 0.55, 0.30, -0.04, 0.0),
    "disgust": Expression(-0.04, 0.06, 0.45, 0.34, -0.02, 0.0, 0.10, nose_wrinkle=True),
    "fear": Expression(0.10, -0.10, 1.30, 0.46, -0.04, 0.14),
    "happy": Expression(0.03, 0.0, 0.50, 0.40, 0.0, 0.12),
    "sad": Expression(0.02, -0.14, 0.60, 0.32, -0.14, 0.0),
    "surprise": Expression(0.20, -0.02, 1.40, 0.20, 0.0, 0.36),
    "neutral": Expression(0.0, 0.0, 0.85, 0.34, 0.0, 0.0),
}
assert tuple(EXPRESSIONS) == EMOTIONS
HAPPY = EMOTIONS.index("happy")


@dataclass(frozen=True)
class Look:
    """The label-free nuisance of one drawing; sampled first so labels never change it."""

    skin: np.ndarray
    hair: np.ndarray
    background: np.ndarray
    angle: float  # degrees
    scale: float
    shift: np.ndarray  # face centre offset, in fractions of the image size
    hair_length: float
    stubble: bool
    gain: float
    gradient: np.ndarray  # (amplitude, direction in radians)
    blur: float
    noise: float


def sample_look(rng):
    light, dark = np.array([235, 200, 175]), np.array([105, 70, 50])
    hair_colours = np.array([[25, 20, 18], [70, 45, 25], [120, 80, 40], [190, 150, 90], [130, 50, 25]])
    return Look(
        skin=light + (dark - light) * rng.uniform() + rng.normal(0, 6, 3),
        hair=hair_colours[rng.integers(len(hair_colours))] + rng.normal(0, 8, 3),
        background=rng.uniform(20, 235, 3),
        angle=rng.uniform(-12, 12),
        scale=rng.uniform(0.88, 1.12),
        shift=rng.uniform(-0.06, 0.06, 2),
        hair_length=rng.uniform(1.4, 2.2),
        stubble=rng.uniform() < 0.35,
        gain=rng.uniform(0.75, 1.2),
        gradient=np.array([rng.uniform(0, 40), rng.uniform(0, 2 * np.pi)]),
        blur=rng.uniform(0, 0.9) if rng.uniform() < 0.3 else 0.0,
        noise=rng.uniform(2, 8),
    )


def draw_face(age, gender, emotion, smile, rng, size=96):
    """One face crop, `size` x `size` RGB uint8, framed like a training crop (margin 0.4)."""
    face_size = size / (1 + 2 * FACE_BOX_MARGIN)
    image, _ = draw_scene(age, gender, emotion, smile, rng, (size, size), face_size)
    return image


def draw_scene(age, gender, emotion, smile, rng, shape, face_size, centre=None):
    """A face with its box `(x1, y1, x2, y2)` side ~`face_size` in an image of `shape` (h, w).

    `centre` (x, y) places the face box centre; by default the image centre plus jitter.
    """
    if int(emotion) == HAPPY and not smile:
        raise ValueError("a happy face always smiles: pass smile=1 with emotion 3 (happy)")
    look = sample_look(rng)
    height, width = shape
    unit = face_size * look.scale / (2 * _BOX_HALF)
    if centre is None:
        centre = (width / 2 + look.shift[0] * width, height / 2 + look.shift[1] * height)
    box_centre = np.asarray(centre, np.float64)
    face_centre = box_centre - (0, _BOX_CENTRE_Y * unit)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.clip(look.background, 0, 255)
    _Painter(image, face_centre, unit, look).paint(float(age), int(gender), int(emotion), bool(smile))
    rotation = cv2.getRotationMatrix2D(tuple(box_centre), look.angle, 1.0)
    image = cv2.warpAffine(image, rotation, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(look.background.tolist()))
    half = _BOX_HALF * unit
    box = tuple(int(round(v)) for v in (*(box_centre - half), *(box_centre + half)))
    return _light_and_noise(image, look, rng), box


def _light_and_noise(image, look, rng):
    height, width = image.shape[:2]
    amplitude, direction = look.gradient
    ramp_x = (np.arange(width, dtype=np.float32) / width - 0.5) * (amplitude * np.cos(direction))
    ramp_y = (np.arange(height, dtype=np.float32) / height - 0.5) * (amplitude * np.sin(direction))
    out = image.astype(np.float32) * np.float32(look.gain) + (ramp_y[:, None] + ramp_x[None, :])[..., None]
    if look.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), look.blur)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(look.noise)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _ramp(value, start, end):
    return min(1.0, max(0.0, (value - start) / (end - start)))


class _Painter:
    """Draws one upright face in face units: x right, y down, (0, 0) the face centre."""

    def __init__(self, image, centre, unit, look):
        self.image, self.centre, self.unit, self.look = image, np.asarray(centre), unit, look
        self.line = max(1, int(round(0.07 * unit)))

    def px(self, points):
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return np.round((self.centre + points * self.unit) * _SCALE).astype(np.int32)

    def poly(self, points, colour, filled=True, thickness=None):
        pts = [self.px(points)]
        colour = tuple(min(255.0, max(0.0, float(c))) for c in colour)
        if filled:
            cv2.fillPoly(self.image, pts, colour, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(self.image, pts, False, colour, thickness or self.line, cv2.LINE_AA, _SHIFT)

    def ellipse(self, centre, axes, colour, half=None):
        """A filled ellipse; half="top" keeps only the upper half."""
        circle = _UPPER_HALF_CIRCLE if half == "top" else _CIRCLE
        self.poly(np.asarray(centre) + circle * np.asarray(axes), colour)

    def paint(self, age, gender, emotion, smile):
        child, adult = _ramp(age, 18, 0), _ramp(age, 12, 32)
        grey, wrinkle = _ramp(age, 25, 70), _ramp(age, 35, 95)
        hair = self.look.hair * (1 - grey) + np.array([205, 205, 200]) * grey
        skin = self.look.skin
        chin = 1.32 - 0.16 * child
        self._back_hair(gender, hair)
        for side in (-1, 1):
            self.ellipse((side * 1.0, 0.12), (0.17, 0.24), skin * 0.9)
        self._face(gender, skin, chin, child, wrinkle)
        self._front_hair(gender, hair)
        expression = EXPRESSIONS[EMOTIONS[emotion]]
        eye_y = -0.08 + 0.26 * child
        self._eyes(eye_y, 0.12 + 0.07 * child, expression, wrinkle)
        self._brows(eye_y, expression, hair * 0.7, 1 + adult + gender)
        self._nose(eye_y, 0.42 + 0.08 * adult - 0.1 * child, skin, expression)
        self._mouth(0.82 - 0.02 * child, expression, smile, gender, skin)

    def _back_hair(self, gender, hair):
        if gender == 1:
            self.ellipse((0, -0.32), (1.1, 1.18), hair)
            return
        length = self.look.hair_length
        self.ellipse((0, -0.3), (1.32, 1.26), hair)
        self.poly([(-1.32, -0.3), (1.32, -0.3), (1.25, length), (-1.25, length)], hair)

    def _face(self, gender, skin, chin, child, wrinkle):
        top = _UPPER_HALF_CIRCLE * (1.0, 1.22)
        jaw_w, jaw_y, chin_w = (0.92, 1.0, 0.42) if gender == 1 else (0.7, 0.92, 0.16)
        jaw_w = jaw_w * (1 - 0.2 * child) + 0.05 * wrinkle  # round child faces, old jowls
        jaw = [(1.0, 0.35), (jaw_w, jaw_y * chin / 1.32), (chin_w, chin), (-chin_w, chin),
               (-jaw_w, jaw_y * chin / 1.32), (-1.0, 0.35)]
        self.poly(np.concatenate([top, jaw]), skin)
        if gender == 1 and self.look.stubble:
            self.poly([(-0.9, 0.55), (-0.45, 1.0), (0.45, 1.0), (0.9, 0.55), (chin_w, chin),
                       (-chin_w, chin)], skin * 0.78)
        if child > 0:
            for side in (-1, 1):
                blush = skin * (1 - 0.5 * child) + np.array([240, 110, 120]) * 0.5 * child
                self.ellipse((side * 0.55, 0.45), (0.2, 0.14), blush)
        if wrinkle > 0:
            line = skin * (1 - 0.55 * wrinkle)
            for y in (-0.78, -0.64, -0.5):
                self.poly([(-0.45, y + 0.03), (0, y), (0.45, y + 0.03)], line, filled=False, thickness=1)
            for side in (-1, 1):
                self.poly([(side * 0.24, 0.42), (side * 0.4, 0.62), (side * 0.48, 0.88)], line, filled=False, thickness=1)

    def _front_hair(self, gender, hair):
        if gender == 1:
            self.ellipse((0, -1.0), (0.98, 0.32), hair, half="top")
            self.poly([(-0.98, -1.0), (0.98, -1.0), (0.9, -0.82), (-0.9, -0.82)], hair)
        else:
            self.poly([(-1.02, -0.6), (-0.9, -1.05), (-0.2, -1.25), (0.7, -1.15), (1.02, -0.6),
                       (0.55, -0.9), (-0.1, -0.85)], hair)

    def _eyes(self, eye_y, radius, expression, wrinkle):
        openness = radius * expression.eye_open
        for side in (-1, 1):
            x = side * 0.4
            self.ellipse((x, eye_y), (radius * 1.4, openness), (245, 245, 240))
            iris = min(radius * 0.75, openness)
            self.ellipse((x, eye_y), (iris, iris), (40, 30, 25))
            if wrinkle > 0:
                line = self.look.skin * (1 - 0.55 * wrinkle)
                for dy in (-0.06, 0.06):
                    self.poly([(x + side * radius * 1.5, eye_y), (x + side * (radius * 1.5 + 0.14), eye_y + dy * 1.5)],
                              line, filled=False, thickness=1)

    def _brows(self, eye_y, expression, colour, weight):
        y = eye_y - 0.3 - expression.brow_raise
        thickness = max(1, int(round(0.045 * self.unit * weight)))
        for side in (-1, 1):
            inner = (side * 0.16, y + expression.brow_tilt)
            mid = (side * 0.42, y - 0.05 - (0.06 if expression.brow_raise > 0.15 else 0))
            outer = (side * 0.66, y + 0.02 - 0.3 * expression.brow_tilt)
            self.poly([inner, mid, outer], colour, filled=False, thickness=thickness)

    def _nose(self, eye_y, length, skin, expression):
        shade = skin * 0.7
        self.poly([(0.02, eye_y + 0.1), (0.1, eye_y + 0.1 + length), (-0.06, eye_y + 0.14 + length)], shade,
                  filled=False)
        if expression.nose_wrinkle:
            for side in (-1, 1):
                self.poly([(side * 0.08, eye_y + 0.05), (side * 0.2, eye_y + 0.18)], shade * 0.85, filled=False)

    def _mouth(self, y, expression, smile, gender, skin):
        width = expression.mouth_width * (_SMILE_WIDEN if smile else 1.0)
        curve = expression.mouth_curve + (_SMILE_CURVE if smile else 0.0)
        t = _MOUTH_T
        base = y - curve * t**2 + expression.mouth_skew * -t
        lips = np.array([175, 70, 85]) * 0.6 + skin * 0.4 if gender == 0 else skin * 0.55
        if expression.mouth_open > 0:
            upper = base - expression.mouth_open * 0.35 * (1 - t**2)
            lower = base + expression.mouth_open * 0.65 * (1 - t**2)
            inside = (235, 235, 230) if EXPRESSIONS["happy"] is expression else (70, 25, 30)
            outline = np.concatenate([np.stack([t * width, upper], 1), np.stack([t[::-1] * width, lower[::-1]], 1)])
            self.poly(outline, inside)
            self.poly(np.concatenate([outline, outline[:1]]), lips, filled=False)
        else:
            self.poly(np.stack([t * width, base], 1), lips, filled=False, thickness=self.line + 1)


def sample_faces(size: int, count: int = 8) -> np.ndarray:
    """Drawn faces (RGB 0-255, float32) at a model's size: what `facenet-mtl export` checks an
    exported file on."""
    rng = np.random.default_rng(0)
    faces = []
    for index in range(count):
        emotion = index % 7
        smile = 1 if emotion == 3 else index % 2  # a happy face always smiles
        faces.append(draw_face(age=int(rng.integers(1, 90)), gender=index % 2, emotion=emotion, smile=smile, rng=rng))
    return np.stack([cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA) for face in faces]).astype(np.float32)

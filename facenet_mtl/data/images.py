"""Image loading and the crop/resize/encode steps every dataset shares.

An image source is what a `FaceRecord.image` holds: a file path, a `(zip_path, member)` pair
(read straight from the zip, never extracted) or an HxW / HxWx3 uint8 array (FER2013's csv).

Size is bounded before decoding: a file above `MAX_FILE_BYTES` is refused unread, the pixel
size is read from the header (Pillow reads only the header) and an image above
`MAX_IMAGE_PIXELS` is refused; one above `DECODE_PIXELS` is decoded reduced by 2, 4 or 8
(OpenCV's IMREAD_REDUCED_COLOR_*; libjpeg decodes a JPEG at the reduced size directly), so no
image costs more than a few hundred MB, and every loaded image has at most `DECODE_PIXELS`.

>>> import numpy as np
>>> rgb = load_rgb(np.zeros((48, 48), np.uint8))
>>> rgb.shape, rgb.dtype
((48, 48, 3), dtype('uint8'))
>>> crop_box_with_margin(np.zeros((100, 200, 3), np.uint8), (50, 20, 90, 60), margin=0.4).shape
(72, 72, 3)
>>> square_resize(np.zeros((100, 200, 3), np.uint8), 64).shape
(64, 64, 3)
"""
from __future__ import annotations

import io
import os
import stat
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facenet_mtl.data.schema import FACE_MARGIN
from facenet_mtl.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TypeAlias

    # What a `FaceRecord.image` holds: a path, a (zip path, member) pair, or the pixels themselves.
    ImageSource: TypeAlias = "str | os.PathLike[str] | tuple[str | os.PathLike[str], str] | np.ndarray"

MAX_IMAGE_PIXELS = 150_000_000  # refused beyond this (e.g. 12,000 x 12,500); a face photo is far smaller
DECODE_PIXELS = 4096 * 4096  # larger images are decoded reduced, to at most this many pixels
MAX_FILE_BYTES = 1 << 30  # an image file larger than 1 GiB is refused without reading it
REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}

# Open zip files of this process, by (pid, path): a forked worker must not share its parent's
# file offset, so each process opens its own handle.
_ZIPS: dict[tuple[int, str], zipfile.ZipFile] = {}


class CorruptImageError(DataError):
    """An image that is missing, truncated or cannot be decoded."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.reason = reason
        super().__init__(path, f"unreadable image: {reason}",
                         "re-extract or re-download the file, or delete it to skip it")


def load_rgb(image_source: ImageSource) -> np.ndarray:
    """The pixels of `image_source` as an HxWx3 uint8 RGB array (grayscale replicated)."""
    return load_rgb_scaled(image_source)[0]


def load_rgb_scaled(image_source: ImageSource) -> tuple[np.ndarray, float]:
    """`(rgb, scale)`: the pixels, and the factor (1, or 1/2, 1/4, 1/8 for a large image reduced
    on decode) by which pixel coordinates in the original image (a face box) map onto them."""
    if isinstance(image_source, np.ndarray):
        return _array_to_rgb(image_source), 1.0
    if isinstance(image_source, tuple):
        zip_path, member = image_source
        name = f"{zip_path}:{member}"
        data = _read_zip_member(zip_path, member)
    else:
        name = str(image_source)
        data = _read_file(image_source, name)
    return _decode(data, name)


def _read_file(path, name):
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CorruptImageError(name, "file not found") from None
    except NotADirectoryError:
        raise CorruptImageError(name, "file not found (a parent is not a folder)") from None
    except OSError as exc:  # a symbolic link loop, a name too long, permission denied on a folder
        raise CorruptImageError(name, f"cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise CorruptImageError(name, "is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):  # a pipe or a device would block or never end
        raise CorruptImageError(name, "not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageTooLargeError(name, f"{info.st_size / 2**20:.0f} MiB file (the limit is "
                                       f"{MAX_FILE_BYTES >> 20} MiB)")
    try:
        return Path(path).read_bytes()
    except OSError as exc:  # permission denied, an I/O error
        raise CorruptImageError(name, f"cannot be read ({exc.strerror})") from None


class ImageTooLargeError(CorruptImageError):
    """An image beyond the documented limits (`MAX_IMAGE_PIXELS`, `MAX_FILE_BYTES`)."""

    def __init__(self, path: str | os.PathLike[str], size: str) -> None:
        DataError.__init__(self, path, f"image too large: {size}",
                           f"downscale it below {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels first, e.g. "
                           "`convert big.png -resize 4096x4096 small.png`")
        self.reason = "image too large"


def decode_bytes(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """The pixels of an encoded image (JPEG, PNG, ...) as HxWx3 uint8 RGB; CorruptImageError
    naming `name` when `data` is no image or a truncated one."""
    return _decode(bytes(data), name)[0]


def decode_bytes_scaled(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> tuple[np.ndarray, float]:
    """`(rgb, scale)` of an encoded image, as `load_rgb_scaled` gives them for a file."""
    return _decode(bytes(data), name)


def bounded(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """`(rgb, scale)`: an already decoded image (a video frame) shrunk to at most `DECODE_PIXELS`,
    as a large file is decoded reduced, and the factor from original pixels onto it (1: as is)."""
    height, width = rgb.shape[:2]
    if height * width <= DECODE_PIXELS:
        return rgb, 1.0
    scale = (DECODE_PIXELS / (height * width)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), size[0] / width


def _read_zip_member(zip_path, member):
    name = f"{zip_path}:{member}"
    key = (os.getpid(), str(zip_path))
    archive = _ZIPS.get(key)
    if archive is None:
        try:
            archive = zipfile.ZipFile(zip_path)
        except FileNotFoundError:
            raise CorruptImageError(zip_path, "zip file not found") from None
        except Exception as exc:  # zipfile raises many types on a damaged archive
            raise CorruptImageError(zip_path, f"not a valid zip file ({exc})") from None
        _ZIPS[key] = archive
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise CorruptImageError(name, "no such member in the zip") from None
    if info.file_size > MAX_FILE_BYTES:
        raise ImageTooLargeError(name, f"{info.file_size / 2**20:.0f} MiB zip member (the limit is "
                                       f"{MAX_FILE_BYTES >> 20} MiB)")
    try:
        return archive.read(info)
    except Exception as exc:  # bad CRC, bad compression data or method, encrypted member, ...
        raise CorruptImageError(name, f"damaged zip member ({type(exc).__name__}: {exc})") from None


def header_size(data: bytes, name: str = "<image>") -> tuple[int, int] | None:
    """(width, height) from an image's header without decoding it, or None if unreadable;
    `ImageTooLargeError` beyond `MAX_IMAGE_PIXELS`."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: the limit is ours
            with Image.open(io.BytesIO(data)) as image:
                width, height = (int(v) for v in image.size)
    except Image.DecompressionBombError:  # twice Pillow's own limit: beyond ours too
        raise ImageTooLargeError(name, f"more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, "  # type: ignore[operator]  # Pillow: int | None
                                       f"the limit is {MAX_IMAGE_PIXELS / 1e6:.0f}") from None
    except Exception:  # not an image Pillow knows, or a damaged header
        return None
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(name, f"{width} x {height} pixels, more than the limit of "
                                       f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels")
    return width, height


def _decode(data, name):
    if not data:
        raise CorruptImageError(name, "empty file")
    size = header_size(data, name)
    if size is None:
        raise CorruptImageError(name, "cannot decode (not an image, or truncated)")
    pixels = size[0] * size[1]
    factor = next((f for f in (1, 2, 4, 8) if pixels / (f * f) <= DECODE_PIXELS), 8)
    flags = cv2.IMREAD_COLOR if factor == 1 else REDUCED[factor]
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if bgr is None or bgr.size == 0:
        raise CorruptImageError(name, "cannot decode (not an image, or truncated)")
    if bgr.shape[0] * bgr.shape[1] > DECODE_PIXELS * 1.01:  # the header lied about the size
        raise CorruptImageError(name, f"decodes to {bgr.shape[1]} x {bgr.shape[0]} pixels, not the "
                                      f"{size[0]} x {size[1]} its header says")
    if _is_truncated_jpeg(data):
        raise CorruptImageError(name, "truncated JPEG (no end-of-image marker after the last scan)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 1.0 / factor


def _is_truncated_jpeg(data):
    # libjpeg fills a cut-off scan with grey and still "succeeds"; a complete JPEG has its EOI
    # marker (FFD9) after the last start-of-scan (FFDA). An EXIF thumbnail's own EOI comes
    # before the main image's scans, so it does not hide a truncation.
    if data[:2] != b"\xff\xd8":
        return False
    return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


def _array_to_rgb(array):
    if array.dtype != np.uint8:
        raise CorruptImageError("<array>", f"expected a uint8 array, got {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[:, :, :3])
    raise CorruptImageError("<array>", f"expected an HxW or HxWx3 array, got shape {array.shape}")


def crop_box_with_margin(rgb: np.ndarray, box: Sequence[float], margin: float = FACE_MARGIN,
                         border: str = "edge") -> np.ndarray:
    """The square around `box`'s centre, `margin` of the box size added on each side.

    `box` is `(x1, y1, x2, y2)` in pixels; the square's side is `max(w, h) * (1 + 2 * margin)`
    (margin 0.4: the face fills 1/1.8 of the crop, as in the IMDB-WIKI crops). Parts outside the
    image are filled by repeating the edge pixels (`border="edge"`) or with black ("black").
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    side_px = max(1, int(round(side)))
    left = int(round((x1 + x2) / 2.0 - side / 2.0))
    top = int(round((y1 + y2) / 2.0 - side / 2.0))
    right, bottom = left + side_px, top + side_px
    height, width = rgb.shape[:2]
    inner = rgb[max(top, 0):min(bottom, height), max(left, 0):min(right, width)]
    if inner.size == 0:  # the box lies wholly outside the image
        return np.zeros((side_px, side_px, 3), np.uint8)
    pads = (max(-top, 0), max(bottom - height, 0), max(-left, 0), max(right - width, 0))
    if not any(pads):
        return np.ascontiguousarray(inner)
    if border == "edge":
        return cv2.copyMakeBorder(inner, *pads, cv2.BORDER_REPLICATE)
    if border == "black":
        return cv2.copyMakeBorder(inner, *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    raise ValueError(f"border must be 'edge' or 'black', got {border!r}")


def square_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop `rgb` to a square, then resize it to `size` x `size` (INTER_AREA)."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = rgb[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of an RGB (or 2-D grayscale) uint8 array."""
    pixels = rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cv2 could not encode an image of shape {rgb.shape} as JPEG")
    return buffer.tobytes()

"""Huge images are bounded (facenet_mtl.data.images): the header's pixel size is read first,
an image above DECODE_PIXELS is decoded reduced (at most DECODE_PIXELS come back), one above
MAX_IMAGE_PIXELS is refused with a DataError before it is decoded, and a build counts it as a
drop. The test images are large but plain, so they compress to a few kB."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from facenet_mtl.data import images, process
from facenet_mtl.errors import DataError
from facenet_mtl.data.schema import FaceRecord


def png_header_only(width, height):
    """A PNG whose header claims width x height, with (almost) no pixel data: never decodable,
    so refusing it proves the limit is checked before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(12_500, 12_500), (60_000, 60_000), (1, 200_000_000)])
def test_an_image_beyond_the_limit_is_refused_before_decoding(tmp_path, width, height):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(width, height))
    with pytest.raises(images.ImageTooLargeError) as error:
        images.load_rgb(path)
    assert isinstance(error.value, DataError) and error.value.path == str(path)
    assert "too large" in str(error.value) and "fix:" in str(error.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_large_image_is_decoded_reduced(tmp_path, suffix):
    big = np.zeros((4800, 4400), np.uint8)  # 21 megapixels: above DECODE_PIXELS (16.8)
    big[1200:2400, 2200:3300] = 255  # a white block, to check where the pixels land
    path = tmp_path / f"big{suffix}"
    assert cv2.imwrite(str(path), big)
    rgb, scale = images.load_rgb_scaled(path)
    assert scale == 0.5 and rgb.shape == (2400, 2200, 3)
    assert rgb.shape[0] * rgb.shape[1] <= images.DECODE_PIXELS
    assert rgb[900, 1400].min() > 200 and rgb[300, 300].max() < 50  # the block, halved
    assert images.load_rgb(path).shape == rgb.shape


def test_a_face_box_on_a_reduced_image_still_crops_the_face(tmp_path):
    big = np.zeros((4800, 4400, 3), np.uint8)
    big[3000:3400, 1000:1400] = 200  # the "face", a 400 px square
    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), big)
    record = FaceRecord(image=str(path), source="test", file_id="big", split="train", labels={},
                        box=(1000, 3000, 1400, 3400))
    _, jpeg, problem = process.encode_record((record, 32, 0.0, "skip", 95))
    assert problem is None
    crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape == (32, 32, 3) and crop.min() > 150  # all face, no background


def test_a_build_counts_a_too_large_image_as_dropped(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(20_000, 20_000))
    record = FaceRecord(image=str(path), source="test", file_id="huge", split="train", labels={})
    _, jpeg, (reason, detail) = process.encode_record((record, 32, 0.4, "skip", 95))
    assert jpeg is None and reason == "image_too_large" and str(path) in detail


def test_a_pipe_is_refused_not_waited_on(tmp_path):
    import os

    fifo = tmp_path / "face.jpg"
    os.mkfifo(fifo)
    with pytest.raises(images.CorruptImageError, match="not a regular file"):
        images.load_rgb(fifo)

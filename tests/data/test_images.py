import zipfile

import cv2
import numpy as np
import pytest

from facenet_mtl.data import images
from facenet_mtl.errors import DataError
from facenet_mtl.data.images import CorruptImageError, crop_box_with_margin, encode_jpeg, load_rgb, square_resize


def test_load_rgb_path_is_rgb_not_bgr(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 250  # pure red
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), rgb[..., ::-1])
    out = load_rgb(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert out[..., 0].min() == 250 and out[..., 1:].max() == 0
    assert np.array_equal(load_rgb(str(path)), out)


def test_load_rgb_grayscale_jpeg_gives_three_channels(tmp_path, image):
    path = tmp_path / "grey.jpg"
    path.write_bytes(encode_jpeg(image(48, 48)[..., 0]))
    out = load_rgb(path)
    assert out.shape == (48, 48, 3)
    assert np.array_equal(out[..., 0], out[..., 2])


def test_load_rgb_arrays(image):
    grey = image(48, 48)[..., 1]
    out = load_rgb(grey)
    assert out.shape == (48, 48, 3) and np.array_equal(out[..., 2], grey)
    rgb = image(10, 12)
    assert np.array_equal(load_rgb(rgb), rgb)
    with pytest.raises(CorruptImageError, match="uint8"):
        load_rgb(grey.astype(np.float32))
    with pytest.raises(CorruptImageError, match="shape"):
        load_rgb(np.zeros((4, 4, 2), np.uint8))


def test_load_rgb_from_zip_member_caches_the_handle(tmp_path, image):
    zip_path = tmp_path / "faces.zip"
    rgb = image(24, 24, seed=3)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("train/happy/Training_1.png", cv2.imencode(".png", rgb[..., ::-1])[1].tobytes())
    out = load_rgb((str(zip_path), "train/happy/Training_1.png"))
    assert np.array_equal(out, rgb)
    cached = [z for (_, p), z in images._ZIPS.items() if p == str(zip_path)]
    assert len(cached) == 1
    load_rgb((str(zip_path), "train/happy/Training_1.png"))
    assert [z for (_, p), z in images._ZIPS.items() if p == str(zip_path)] == cached
    with pytest.raises(CorruptImageError, match="no such member") as error:
        load_rgb((str(zip_path), "train/sad/nothing.jpg"))
    assert "train/sad/nothing.jpg" in str(error.value)


@pytest.mark.parametrize("content, reason", [
    (None, "file not found"),
    (b"", "empty file"),
    (b"this is not an image", "cannot decode"),
])
def test_load_rgb_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "face.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CorruptImageError, match=reason) as error:
        load_rgb(path)
    assert isinstance(error.value, DataError)
    assert error.value.path == str(path)


def test_load_rgb_truncated_jpeg(tmp_path, image):
    data = encode_jpeg(image(64, 64))
    path = tmp_path / "cut.jpg"
    for cut in (len(data) // 2, len(data) - 2):  # mid-scan, and only the end marker missing
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptImageError, match="truncated"):
            load_rgb(path)


def test_crop_inside_the_image_is_a_plain_slice(image):
    rgb = image(100, 120)
    # box 40x40 centred at (60, 50): side 40 * 1.8 = 72, from (24, 14)
    out = crop_box_with_margin(rgb, (40, 30, 80, 70), margin=0.4)
    assert np.array_equal(out, rgb[14:86, 24:96])
    assert np.array_equal(crop_box_with_margin(rgb, (40, 30, 80, 70), margin=0.0), rgb[30:70, 40:80])


def test_crop_is_square_around_a_long_box(image):
    out = crop_box_with_margin(image(100, 120), (50, 20, 70, 80), margin=0.25)  # 20x60 box
    assert out.shape == (90, 90, 3)


def test_crop_pads_outside_the_image(image):
    rgb = image(50, 50)
    edge = crop_box_with_margin(rgb, (-10, -10, 30, 30), margin=0.0)
    black = crop_box_with_margin(rgb, (-10, -10, 30, 30), margin=0.0, border="black")
    assert edge.shape == black.shape == (40, 40, 3)
    assert np.array_equal(black[10:, 10:], rgb[:30, :30]) and black[:10].max() == 0
    assert np.array_equal(edge[:10, 10], np.repeat(rgb[0:1, 0], 10, axis=0))
    assert crop_box_with_margin(rgb, (100, 100, 120, 120), margin=0.0).shape == (20, 20, 3)


def test_square_resize_crops_the_centre(image):
    rgb = image(40, 80)
    out = square_resize(rgb, 40)
    assert np.array_equal(out, rgb[:, 20:60])
    assert square_resize(rgb, 16).shape == (16, 16, 3)
    assert square_resize(image(30, 20), 64).shape == (64, 64, 3)


def test_encode_jpeg_round_trips(image):
    rgb = image(64, 64)
    data = encode_jpeg(rgb, quality=95)
    assert data[:2] == b"\xff\xd8"
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.abs(decoded.astype(int) - rgb).mean() < 4
    assert len(encode_jpeg(rgb, quality=30)) < len(data)

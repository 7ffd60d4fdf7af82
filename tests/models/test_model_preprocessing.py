import keras
import numpy as np
import pytest

from facenet_mtl.models.preprocessing import PREPROCESSING_MODES, preprocessing_layers

# One pixel, RGB 0-255: ImageNet's mean colour.
MEAN_RGB = np.array([0.485, 0.456, 0.406]) * 255


def preprocess(mode, pixel):
    x = np.asarray(pixel, dtype="float32").reshape(1, 1, 1, 3)
    for layer in preprocessing_layers(mode):
        x = layer(x)
    return keras.ops.convert_to_numpy(x).reshape(3)


def test_modes():
    np.testing.assert_allclose(preprocess("unit", [0, 127.5, 255]), [0, 0.5, 1], atol=1e-6)
    np.testing.assert_allclose(preprocess("symmetric", [0, 127.5, 255]), [-1, 0, 1], atol=1e-6)
    np.testing.assert_allclose(preprocess("imagenet_torch", MEAN_RGB), [0, 0, 0], atol=1e-5)
    np.testing.assert_allclose(preprocess("imagenet_torch", [255, 255, 255]),
                               (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), atol=1e-4)
    # caffe: BGR order, minus the BGR mean, no scaling (keras.applications.vgg16.preprocess_input)
    np.testing.assert_allclose(preprocess("imagenet_caffe", [10, 20, 30]),
                               [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-4)
    expected = keras.applications.vgg16.preprocess_input(np.array([[[[10.0, 20.0, 30.0]]]]))
    np.testing.assert_allclose(preprocess("imagenet_caffe", [10, 20, 30]), expected.reshape(3), atol=1e-4)


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown preprocessing mode 'bgr'; known: unit"):
        preprocessing_layers("bgr")


@pytest.mark.parametrize("mode", PREPROCESSING_MODES)
def test_every_mode_survives_h5(mode, tmp_path):
    image = keras.Input((4, 4, 3), name="image")
    x = image
    for layer in preprocessing_layers(mode):
        x = layer(x)
    model = keras.Model(image, x)
    path = str(tmp_path / f"{mode}.h5")
    model.save(path)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(keras.models.load_model(path).predict(pixels, verbose=0),
                               model.predict(pixels, verbose=0), atol=1e-5)

import keras
import numpy as np
import pytest

from facenet_mtl.models.backbones import BACKBONES, create_backbone, register_backbone
from facenet_mtl.models.backbones import densenet121 as densenet_module
from facenet_mtl.models.backbones import vgg16 as vgg16_module

# name -> (input size, small architecture args, expected feature size). Every registered
# backbone must appear here, so a new one is built and run at least once.
TINY = {
    "resnet18": (48, {"width": 8, "blocks": (1, 1, 1, 1)}, 64),
    "alexnet": (48, {"width": 0.125, "fc_units": 32}, 32),
    "compact": (48, {"widths": (8, 16), "stem_width": 8}, 16),
    "ssrnet": (48, {}, 3 * 10 * 2 * 2),  # three stages of 2x2 maps at 48 px
    "mobilenet": (32, {"alpha": 0.75}, 432),
    "densenet121": (32, {}, 1024),
    "vgg16": (32, {}, 512),
}


def test_every_backbone_has_a_tiny_config():
    assert sorted(TINY) == sorted(BACKBONES)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_builds_and_runs(name, assert_builtin_only):
    size, args, features = TINY[name]
    model = create_backbone(name, size, **args)
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(model(images, training=False))
    assert model.output_shape == (None, features)
    assert out.shape == (2, features)
    assert np.isfinite(out).all()
    assert_builtin_only(model)


def test_resnet18_stems():
    small = create_backbone("resnet18", 32, width=4, blocks=(1, 1, 1, 1), stem_stride=1)
    assert small.get_layer("stage4_block1_add").output.shape == (None, 4, 4, 32)
    assert "stem_pool" not in [layer.name for layer in small.layers]
    imagenet = create_backbone("resnet18", 64, width=4)
    assert imagenet.get_layer("stage4_block2_add").output.shape == (None, 2, 2, 32)
    with pytest.raises(ValueError, match="stem_stride"):
        create_backbone("resnet18", 32, stem_stride=4)


def test_compact_depth_and_bn_momentum():
    model = create_backbone("compact", 32, widths=(8, 16), stem_width=8, depth=(1, 2), bn_momentum=0.99)
    adds = [layer.name for layer in model.layers if layer.name.endswith("_add")]
    assert adds == ["block1_add", "block1_extra1_add", "block2_add", "block2_extra1_add", "block2_extra2_add"]
    assert model.get_layer("block2_extra2_add").output.shape == (None, 4, 4, 16)
    momenta = {layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.99}
    same_depth = create_backbone("compact", 32, widths=(8, 16), stem_width=8, depth=1)
    assert len(same_depth.layers) == len(model.layers) - 7  # one identity block = 7 layers
    with pytest.raises(ValueError, match="depth must be one int >= 0 or one per block"):
        create_backbone("compact", 32, widths=(8, 16), depth=(1, 1, 1))


@pytest.mark.parametrize("size, pool5", [(48, 6), (64, 4), (96, 6), (112, 4), (224, 7)])
def test_alexnet_never_collapses(size, pool5):
    model = create_backbone("alexnet", size, width=0.125, fc_units=0, batch_norm=True)
    assert model.get_layer("pool5").output.shape[1:3] == (pool5, pool5)
    assert model.output_shape == (None, 32)


def test_mobilenet_saves_to_h5_without_custom_objects(tmp_path):
    # The squeeze-and-excite gates must be layers, not bare ops (which a .h5 cannot load).
    model = create_backbone("mobilenet", 32, alpha=0.75)
    path = str(tmp_path / "mobilenet.h5")
    model.save(path)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(keras.models.load_model(path).predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-5)


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown backbone 'resnet19'; known: .*compact.*resnet18"):
        create_backbone("resnet19", 64)


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="ssrnet.*>= 40"):
        create_backbone("ssrnet", 32)


def test_register_refuses_duplicates_and_unknown_preprocessing():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("compact", preprocessing="unit")(lambda input_size: None)
    with pytest.raises(ValueError, match="unknown preprocessing 'bgr'"):
        register_backbone("other", preprocessing="bgr")


@pytest.mark.parametrize("name, module", [("densenet121", densenet_module), ("vgg16", vgg16_module)])
def test_imagenet_weights_offline_says_where_to_put_the_file(name, module, monkeypatch):
    def no_network(*args, **kwargs):
        raise Exception(f"URL fetch failure on {args[1]}: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(RuntimeError) as error:
        create_backbone(name, 32, weights="imagenet")
    message = str(error.value)
    assert module.WEIGHTS_URL in message
    assert f".keras/models/{module.WEIGHTS_FILE}" in message
    assert "weights=None" in message

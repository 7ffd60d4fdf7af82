"""The compiled forward pass of a model file (`facenet_mtl.artifact.forward`)."""
import keras
import numpy as np

from facenet_mtl.artifact.forward import compiled_forward, view_parts
from facenet_mtl.models.flip_average import with_test_time_views
from facenet_mtl.models.multitask import build_model


def test_view_parts_reads_the_views_and_the_order_of_each_average():
    """`view_parts` finds the views in the order of the network's calls and, per output, the
    network's output of that name; a model of another shape (an output that is not an average
    of the network's calls) is run as it is."""
    network = build_model("compact", ("gender", "smile"), 32, backbone_args={"widths": (8,), "stem_width": 8})
    model = with_test_time_views(network, flip=True)
    views, found, averaged = view_parts(model)
    assert found is network and averaged == {"gender": ("gender", [0, 1]), "smile": ("smile", [0, 1])}
    crops = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    plain, mirrored = (np.asarray(v) for v in views(crops))
    np.testing.assert_array_equal(plain, crops)
    np.testing.assert_allclose(mirrored, crops[:, :, ::-1], atol=1e-4)

    image = keras.Input((32, 32, 3))
    first, second = network(image), network(keras.layers.Rescaling(0.5)(image))
    mixed = keras.Model(image, {"gender": keras.layers.Average(name="gender")([first["gender"], second["gender"]]),
                                "smile": keras.layers.Maximum(name="smile")([first["smile"], second["smile"]])})
    assert view_parts(mixed) is None and view_parts(network) is None
    for whole in (True, False):
        np.testing.assert_allclose(np.asarray(compiled_forward(mixed, whole=whole)(crops)["smile"]),
                                   np.asarray(mixed(crops, training=False)["smile"]), atol=1e-5)

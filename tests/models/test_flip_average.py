"""Test-time flip averaging: exact mirror, the mean of two views, plain-Keras reload, weight transfer."""
import keras
import numpy as np
import pytest

from facenet_mtl.models import build_model, inner_network, model_tasks, transfer_weights, with_flip_average
from facenet_mtl.models.flip_average import mirror

SIZE = 24
TINY = {"widths": (4, 8), "stem_width": 4}
TASKS = ("age", "gender", "emotion", "smile")


def network(tasks=TASKS):
    return build_model("compact", tasks=tasks, input_size=SIZE, backbone_args=TINY)


def images(n=3):
    return np.random.default_rng(2).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def as_numpy(outputs):
    return {k: np.asarray(v) for k, v in dict(outputs).items()}


def test_mirror_reverses_the_width_axis_exactly():
    x = images()
    image = keras.Input((SIZE, SIZE, 3))
    flipped = keras.Model(image, mirror(image, SIZE))(x)
    np.testing.assert_array_equal(np.asarray(flipped), x[:, :, ::-1])


def test_outputs_are_the_mean_of_the_image_and_its_mirror():
    net = network()
    model = with_flip_average(net)
    x = images()
    got, direct, mirrored = as_numpy(model(x)), as_numpy(net(x)), as_numpy(net(x[:, :, ::-1]))
    assert sorted(got) == sorted(direct) and model_tasks(model) == TASKS
    assert model.input_shape == net.input_shape and model.inputs[0].name == "image"
    for k in got:
        np.testing.assert_allclose(got[k], (direct[k] + mirrored[k]) / 2, atol=1e-5)
        np.testing.assert_allclose(got[k], as_numpy(model(x[:, :, ::-1]))[k], atol=1e-5)
    assert not np.allclose(direct["emotion"], mirrored["emotion"], atol=1e-4)  # the views differ


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_reloads_with_plain_keras_to_the_same_predictions(tmp_path, suffix):
    model = with_flip_average(network())
    x = images()
    expected = as_numpy(model(x))
    model.save(tmp_path / f"m{suffix}")
    loaded = keras.models.load_model(tmp_path / f"m{suffix}")
    got = as_numpy(loaded(x))
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], atol=1e-6)
    assert inner_network(loaded).get_layer("backbone") is not None


def test_a_finetune_copies_weights_through_a_flip_averaged_model(tmp_path):
    source = network(("age", "gender"))
    with_flip_average(source).save(tmp_path / "pre.keras")
    target = network(("gender", "emotion"))
    copied = transfer_weights(keras.models.load_model(tmp_path / "pre.keras"), target)
    assert set(copied) == {"backbone", "gender"}
    for a, b in zip(source.get_layer("backbone").get_weights(), target.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_inner_network_of_a_plain_model_is_itself():
    net = network(("smile",))
    assert inner_network(net) is net and inner_network(with_flip_average(net)) is net


def test_the_mirror_stays_float32_under_a_mixed_policy():
    import keras

    from facenet_mtl.models.flip_average import mirror

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        image = keras.Input((8, 8, 3))
        model = keras.Model(image, mirror(image, 8))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert {layer.dtype_policy.name for layer in model.layers[1:]} == {"float32"}
    x = np.arange(2 * 8 * 8 * 3, dtype="float32").reshape(2, 8, 8, 3)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x[:, :, ::-1])


@pytest.mark.parametrize("side, top, left", [(21, 0, 3), (21, 3, 3), (17, 7, 0)])
def test_crop_resize_is_tf_image_resize_of_the_crop(side, top, left):
    import tensorflow as tf

    from facenet_mtl.models.flip_average import crop_resize

    x = images()
    image = keras.Input((SIZE, SIZE, 3))
    got = np.asarray(keras.Model(image, crop_resize(image, SIZE, top, left, side, "c"))(x))
    expected = tf.image.resize(x[:, top:top + side, left:left + side], (SIZE, SIZE), method="bilinear").numpy()
    np.testing.assert_allclose(got, expected, atol=1e-3)  # of 0-255


def test_ten_views_mean_the_same_eager_traced_predicted_and_exported(tmp_path):
    """The multi-crop model is the mean of its ten views in every way it is run. (With `Cropping2D`
    + `Resizing`, `model.export` ran the network's BatchNormalization on batch statistics, so the
    SavedModel and LiteRT exports were wrong.)"""
    import tensorflow as tf

    from facenet_mtl.models.flip_average import with_test_time_views

    net = network()
    model = with_test_time_views(net, flip=True, crops=5, crop_scale=0.9)
    x = images(4)
    side = round(SIZE * 0.9)
    views = [x] + [tf.image.resize(x[:, t:t + side, c:c + side], (SIZE, SIZE)).numpy()
                   for t in (0, SIZE - side) for c in (0, SIZE - side)]
    views += [v[:, :, ::-1] for v in views]
    expected = {k: np.mean([as_numpy(net(v, training=False))[k] for v in views], axis=0) for k in TASKS}
    model.save(tmp_path / "m.h5")
    loaded = keras.models.load_model(tmp_path / "m.h5")
    runs = {"eager": as_numpy(model(x, training=False)),
            "traced": as_numpy(tf.function(lambda a: model(a, training=False))(tf.constant(x))),
            "predict": as_numpy(model.predict(x, verbose=0)),
            "reloaded, predict": as_numpy(loaded.predict(x, verbose=0))}
    model.export(tmp_path / "saved", format="tf_saved_model", verbose=False)
    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    runs["exported (tf_saved_model)"] = as_numpy(serve(image=tf.constant(x)))
    for how, got in runs.items():
        for k in TASKS:
            np.testing.assert_allclose(got[k], expected[k], atol=2e-4, err_msg=f"{how}: {k}")

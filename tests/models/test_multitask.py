import keras
import numpy as np
import pytest

from facenet_mtl.data.schema import AGE_BINS, TASKS
from facenet_mtl.models import (
    build_model,
    model_tasks,
    output_names_for,
    set_backbone_trainable,
    transfer_weights,
)

SIZE = 32
TINY_COMPACT = {"widths": (8, 16), "stem_width": 8}
OUTPUT_SHAPES = {"age": 1, "age_probs": AGE_BINS, "gender": 1, "smile": 1, "emotion": TASKS["emotion"].num_classes}


def tiny_model(tasks, **kwargs):
    kwargs.setdefault("backbone_args", TINY_COMPACT)
    return build_model(kwargs.pop("backbone", "compact"), tasks=tasks, input_size=SIZE, **kwargs)


def images(n=4, size=SIZE):
    return np.random.default_rng(1).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("tasks, names", [
    (("age",), ("age", "age_probs")),
    (("smile", "gender"), ("gender", "smile")),
    (("emotion",), ("emotion",)),
    (("smile", "emotion", "age", "gender"), ("age", "age_probs", "gender", "emotion", "smile")),
])
def test_outputs_are_named_per_task_in_a_fixed_order(tasks, names):
    assert output_names_for(tasks) == names
    model = tiny_model(tasks)
    assert sorted(model.output_names) == sorted(names)
    assert model_tasks(model) == tuple(t for t in ("age", "gender", "emotion", "smile") if t in tasks)
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.inputs[0].name == "image"
    predictions = model.predict(images(), verbose=0)
    assert sorted(predictions) == sorted(names)
    for name in names:
        assert predictions[name].shape == (4, OUTPUT_SHAPES[name])


def test_unknown_or_no_tasks_are_refused():
    with pytest.raises(ValueError, match="unknown tasks \\['race'\\]; known: age, gender"):
        output_names_for(("age", "race"))
    with pytest.raises(ValueError, match="at least one task"):
        build_model("compact", tasks=(), input_size=SIZE)


def test_age_is_the_expectation_of_the_bins_with_a_frozen_kernel():
    model = tiny_model(("age",))
    predictions = model.predict(images(), verbose=0)
    expected = (predictions["age_probs"] * np.arange(AGE_BINS)).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(predictions["age"], expected, rtol=1e-5, atol=1e-4)
    age_layer = model.get_layer("age")
    assert not age_layer.trainable and age_layer.trainable_weights == []
    np.testing.assert_array_equal(age_layer.get_weights()[0][:, 0], np.arange(AGE_BINS))
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.get_layer("age").get_weights()[0][:, 0], np.arange(AGE_BINS))


def test_head_units_add_named_hidden_layers(assert_builtin_only):
    model = tiny_model(("age", "emotion"), head_units=8, dropout=0.25)
    names = {layer.name for layer in model.layers}
    assert {"features_dropout", "age_hidden", "age_hidden_dropout", "emotion_hidden",
            "emotion_hidden_dropout"} <= names
    assert model.get_layer("age_hidden").units == 8
    assert_builtin_only(model)


@pytest.mark.parametrize("backbone, args", [
    ("resnet18", {"width": 4, "blocks": (1, 1, 1, 1)}),
    ("compact", TINY_COMPACT),
    ("vgg16", {}),  # "imagenet_caffe" preprocessing: a frozen 1x1 conv
])
def test_models_hold_only_builtin_layers(backbone, args, assert_builtin_only):
    assert_builtin_only(tiny_model(("age", "gender", "emotion", "smile"), backbone=backbone, backbone_args=args))


def test_heads_stay_float32_under_mixed_precision(mixed_bfloat16):
    model = tiny_model(("age", "gender", "emotion", "smile"), head_units=4)
    assert model.get_layer("backbone").get_layer("stem_conv1").compute_dtype == "bfloat16"
    assert {t.dtype for t in model.outputs} == {"float32"}
    predictions = model.predict(images(), verbose=0)
    assert {p.dtype for p in predictions.values()} == {np.dtype("float32")}
    np.testing.assert_array_equal(model.get_layer("age").get_weights()[0][:, 0], np.arange(AGE_BINS))


def test_transfer_weights_copies_backbone_and_shared_heads_only():
    source = tiny_model(("age", "gender"))
    target = tiny_model(("age", "emotion"))
    emotion_before = target.get_layer("emotion").get_weights()
    copied = transfer_weights(source, target)
    assert sorted(copied) == ["age", "age_probs", "backbone"]
    for a, b in zip(source.get_layer("backbone").get_weights(), target.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(source.get_layer("age_probs").get_weights(), target.get_layer("age_probs").get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(emotion_before, target.get_layer("emotion").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_transfer_weights_names_the_layer_that_does_not_fit():
    source = tiny_model(("gender",))
    wider = tiny_model(("gender",), backbone_args={"widths": (8, 32), "stem_width": 8})
    with pytest.raises(ValueError, match="cannot copy layer 'backbone/block2_"):
        transfer_weights(source, wider)
    other = tiny_model(("gender",), backbone="resnet18", backbone_args={"width": 4, "blocks": (1, 1, 1, 1)})
    with pytest.raises(ValueError, match="cannot copy layer 'backbone': different architectures"):
        transfer_weights(source, other)


def test_set_backbone_trainable_freezes_only_the_backbone():
    model = tiny_model(("age", "gender"))
    all_trainable = len(model.trainable_weights)
    head_weights = 2 + 2  # age_probs and gender kernels and biases; "age" is always frozen
    set_backbone_trainable(model, False)
    assert len(model.trainable_weights) == head_weights
    assert not model.get_layer("backbone").trainable
    set_backbone_trainable(model, True)
    assert len(model.trainable_weights) == all_trainable
    assert model.get_layer("age").trainable_weights == []


def test_a_frozen_backbone_does_not_move_in_fit_not_even_its_batchnorm_statistics():
    model = tiny_model(("gender",))
    set_backbone_trainable(model, False)
    model.compile("sgd", {"gender": "binary_crossentropy"})
    backbone_before = model.get_layer("backbone").get_weights()  # includes BN moving mean/variance
    head_before = model.get_layer("gender").get_weights()[0]
    model.fit(images(8), {"gender": np.ones((8, 1), "float32")}, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(backbone_before, model.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(head_before, model.get_layer("gender").get_weights()[0])

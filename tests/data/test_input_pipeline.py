"""The tf.data input: exact evaluation pass, masks, mixing proportions, augmentation, sigma."""
import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl.data import native_layouts
from facenet_mtl.data.errors import DataError
from facenet_mtl.data.pipeline import InputSpec, augment_batch, make_dataset, mixing_weights
from facenet_mtl.data.records import BuildOptions, build_tfrecords

OUTPUTS = ("age", "age_probs", "gender", "emotion")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe")
    rng = np.random.default_rng(0)
    utk = [dict(image=rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), age=int(a), gender=int(a) % 2, race=0)
           for a in rng.integers(1, 90, 60)]
    native_layouts.write_utkface(tmp / "utk", utk)
    fer = [dict(image=rng.integers(0, 255, (48, 48), dtype=np.uint8), emotion=i % 7,
                usage="Training" if i % 5 else "PublicTest") for i in range(100)]
    native_layouts.write_fer2013_csv(tmp / "fer2013.csv", fer)
    opts = BuildOptions(image_size=24, workers=1, progress=False)
    build_tfrecords("utkface", tmp / "utk", tmp / "rec", opts)
    build_tfrecords("fer2013", tmp / "fer2013.csv", tmp / "rec", opts)
    return str(tmp / "rec")


def spec(root, **kw):
    return InputSpec(**{"root": root, "datasets": ("utkface", "fer2013"), "image_size": 24, "batch_size": 8,
                        "shuffle_buffer": 64, **kw})


def test_evaluation_pass_yields_every_example_once_with_masks(records):
    ds, n = make_dataset(spec(records), "test", OUTPUTS, training=False)
    images, ages, w_age, w_emotion, emotions = [], [], [], [], []
    for x, y, w in ds:
        images.append(x.numpy())
        ages.append(y["age"].numpy())
        w_age.append(w["age"].numpy())
        w_emotion.append(w["emotion"].numpy())
        emotions.append(y["emotion"].numpy())
    images, w_age, w_emotion = np.concatenate(images), np.concatenate(w_age), np.concatenate(w_emotion)
    assert len(images) == n and images.shape[1:] == (24, 24, 3)
    assert np.array_equal(w_age + w_emotion, np.ones(n))  # every row labels exactly one of the two
    emotions = np.concatenate(emotions)
    assert np.allclose(emotions.sum(1), 1)  # missing labels hold a valid placeholder (weight 0)
    assert np.all(np.concatenate(ages)[w_age == 0] == 0)  # placeholder labels are valid numbers
    fer_rows = images[w_emotion == 1]
    assert np.array_equal(fer_rows[..., 0], fer_rows[..., 1])  # grey FER faces: 3 equal channels


@pytest.mark.parametrize("mixing,weights,expected", [
    ("oversample_to_largest", (), 0.5), ("weights", (("fer2013", 1.0), ("utkface", 3.0)), 0.75)])
def test_mixing_proportions(records, mixing, weights, expected):
    ds, steps = make_dataset(spec(records, mixing=mixing, sampling_weights=weights, augment=False),
                             "train", OUTPUTS, training=True)
    share = np.mean([w["age"].numpy().mean() for _, _, w in ds.take(250)])
    assert share == pytest.approx(expected, abs=0.05)


def test_steps_per_epoch_follow_the_mixing(records):
    probs, epoch = mixing_weights(spec(records), {"utkface": 48, "fer2013": 80})
    assert probs == {"utkface": 0.5, "fer2013": 0.5} and epoch == 160
    _, epoch = mixing_weights(spec(records, mixing="natural"), {"utkface": 48, "fer2013": 80})
    assert epoch == 128
    _, epoch = mixing_weights(spec(records, epoch_size=1000), {"utkface": 48, "fer2013": 80})
    assert epoch == 1000


def test_age_sigma_from_the_record_or_fixed(records):
    ds, _ = make_dataset(spec(records, datasets=("utkface",), age_sigma=2.5), "train", OUTPUTS, training=True)
    _, y, _ = next(iter(ds))
    assert np.allclose(y["age_probs"].numpy()[:, 1], 2.5)
    assert np.allclose(y["age_probs"].numpy()[:, 0], y["age"].numpy()[:, 0])


def test_augmentation_changes_pixels_but_keeps_shape_and_range():
    images = tf.random.uniform((6, 24, 24, 3), 0, 255, seed=1)
    out = augment_batch(images)
    assert out.shape == images.shape
    assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 255
    assert float(tf.reduce_mean(tf.abs(out - images))) > 1


def test_limit_caps_and_missing_split_lists_the_built_ones(records):
    ds, n = make_dataset(spec(records, datasets=("utkface",), limit=5), "train", OUTPUTS, training=False)
    assert n == 5 and sum(int(x.shape[0]) for x, _, _ in ds) == 5
    with pytest.raises(DataError, match="built splits"):
        make_dataset(spec(records, datasets=("utkface",)), "nonexistent", OUTPUTS, training=False)

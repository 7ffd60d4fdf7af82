"""The tf.data input: exact evaluation pass, label masks, mixing proportions, steps per epoch,
augmentation, grey faces, age-sigma targets, limit and missing splits.

One module fixture builds three tiny datasets with the real builder: UTKFace (age, gender; a
unique integer age per face), FER2013 csv (emotion; each face one flat grey level, unique) and
APPA-REAL (apparent age with its std; unique fractional ages).
"""
import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl.data.built_dataset import BuiltDataset
from facenet_mtl.errors import DataError
from facenet_mtl.data.pipeline import InputSpec, augment_batch, make_dataset
from facenet_mtl.data.records import BuildOptions, build_tfrecords
from facenet_mtl.data.schema import EMOTIONS
from facenet_mtl.demo import native_layouts

SIZE = 24
OUTPUTS = ("age", "age_probs", "gender", "emotion", "smile")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    rng = np.random.default_rng(0)
    utk = [dict(image=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), age=3 + 2 * i, gender=i % 2, race=0)
           for i in range(40)]
    native_layouts.write_utkface(tmp / "utk", utk)
    fer = [dict(image=np.full((48, 48), 20 + 3 * i, np.uint8), emotion=i % 7,
                usage="PublicTest" if i % 6 == 0 else "Training") for i in range(60)]
    native_layouts.write_fer2013_csv(tmp / "fer2013.csv", fer)
    appa = [dict(image=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), split=("train", "train", "valid")[i % 3],
                 apparent_age=20.25 + i, apparent_std=1.5 + 0.25 * i, real_age=20 + i, gender=i % 2)
            for i in range(12)]
    native_layouts.write_appa_real(tmp / "appa", appa)
    out = tmp / "records"
    opts = BuildOptions(image_size=SIZE, workers=1, progress=False)
    build_tfrecords("utkface", tmp / "utk", out, opts)
    build_tfrecords("fer2013", tmp / "fer2013.csv", out, opts)
    build_tfrecords("appa_real", tmp / "appa", out, opts)
    return str(out)


def spec(root, **kw):
    return InputSpec(**{"root": root, "datasets": ("utkface", "fer2013"), "image_size": SIZE, "batch_size": 8,
                        "shuffle_buffer": 64, **kw})


def count(root, dataset, split):
    return BuiltDataset.open(root, dataset).splits[split]["count"]


def collect(ds, limit_batches=None):
    """Concatenate a (images, labels, weights) dataset into numpy arrays."""
    xs, ys, ws = [], {}, {}
    for i, (x, y, w) in enumerate(ds):
        if limit_batches is not None and i == limit_batches:
            break
        xs.append(x.numpy())
        for name in y:
            ys.setdefault(name, []).append(y[name].numpy())
            ws.setdefault(name, []).append(w[name].numpy())
    return (np.concatenate(xs), {k: np.concatenate(v) for k, v in ys.items()},
            {k: np.concatenate(v) for k, v in ws.items()})


def test_evaluation_pass_yields_every_example_once_with_labels_and_masks(root):
    ds, n = make_dataset(spec(root), "train", OUTPUTS, training=False)
    images, labels, weights = collect(ds)
    n_utk, n_fer = count(root, "utkface", "train"), count(root, "fer2013", "train")
    assert n == n_utk + n_fer == len(images)
    assert images.dtype == np.float32 and images.shape[1:] == (SIZE, SIZE, 3)

    utk = weights["age"] == 1
    fer = weights["emotion"] == 1
    assert utk.sum() == n_utk and fer.sum() == n_fer and np.all(utk ^ fer)
    assert np.array_equal(weights["gender"], weights["age"])
    assert np.all(weights["smile"] == 0)  # no dataset here labels smiles
    # UTKFace rows: unique ages, each once, with the gender its file name gives (age 3 + 2i, i % 2).
    ages = labels["age"][utk, 0]
    assert len(set(ages.tolist())) == n_utk and set(ages.tolist()) <= {3.0 + 2 * i for i in range(40)}
    assert np.array_equal(labels["gender"][utk, 0], ((ages - 3) / 2) % 2)
    # FER rows: the flat grey level names the csv row (20 + 3i), so each row is there once with its emotion.
    rows = np.round((images[fer].mean(axis=(1, 2, 3)) - 20) / 3).astype(int)
    assert len(set(rows.tolist())) == n_fer
    assert np.array_equal(labels["emotion"][fer].argmax(1), rows % 7)
    # A missing label has weight 0 and a valid placeholder: no NaN, in range, one-hot for classes.
    for name, value in labels.items():
        assert np.all(np.isfinite(value)), name
    assert np.all(labels["age"][~utk] == 0) and np.all(labels["age_probs"][~utk, 0] == 0)
    assert set(np.unique(labels["gender"][~utk])) <= {0.0, 1.0}
    assert set(np.unique(labels["smile"])) <= {0.0, 1.0}
    assert labels["emotion"].shape == (n, len(EMOTIONS)) and np.all(labels["emotion"].sum(1) == 1)


def test_grey_fer_faces_have_three_equal_channels(root):
    ds, _ = make_dataset(spec(root, datasets=("fer2013",)), "test", ("emotion",), training=False)
    images, _, _ = collect(ds)
    assert len(images) == count(root, "fer2013", "test")
    assert np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 1], images[..., 2])


@pytest.mark.parametrize("mixing,weights,utk_share", [
    ("oversample_to_largest", (), 0.5),
    ("weights", (("utkface", 3.0), ("fer2013", 1.0)), 0.75),
    ("natural", (), None),  # None: utkface's share of the records
])
def test_training_mix_follows_the_mixing(root, mixing, weights, utk_share):
    if utk_share is None:
        n_utk, n_fer = count(root, "utkface", "train"), count(root, "fer2013", "train")
        utk_share = n_utk / (n_utk + n_fer)
    ds, _ = make_dataset(spec(root, mixing=mixing, sampling_weights=weights, augment=False, batch_size=50),
                         "train", ("age", "emotion"), training=True)
    _, _, w = collect(ds, limit_batches=60)  # 3000 examples: the share's std is below 0.01
    assert len(w["age"]) == 3000 and np.all(w["age"] + w["emotion"] == 1)
    assert w["age"].mean() == pytest.approx(utk_share, abs=0.035)


def test_steps_per_epoch_follow_the_mixing(root):
    n_utk, n_fer = count(root, "utkface", "train"), count(root, "fer2013", "train")
    assert n_fer > n_utk
    steps = lambda **kw: make_dataset(spec(root, **kw), "train", ("age",), training=True)[1]  # noqa: E731
    assert steps() == n_fer * 2 // 8  # oversample: the largest, once per dataset
    assert steps(mixing="weights", sampling_weights=(("utkface", 3.0),)) == (n_utk + n_fer) // 8
    assert steps(mixing="natural") == (n_utk + n_fer) // 8
    assert steps(epoch_size=100) == 100 // 8
    assert steps(batch_size=4) == n_fer * 2 // 4


def test_training_batches_are_augmented_but_keep_labels_shape_and_range(root):
    plain, _ = make_dataset(spec(root, augment=False), "train", OUTPUTS, training=True)
    augmented, _ = make_dataset(spec(root, augment=True), "train", OUTPUTS, training=True)
    x0, y0, w0 = collect(plain, limit_batches=4)
    x1, y1, w1 = collect(augmented, limit_batches=4)
    assert x1.shape == x0.shape == (32, SIZE, SIZE, 3) and x1.dtype == np.float32
    for name in OUTPUTS:  # same examples in the same order: only the pixels change
        assert np.array_equal(y0[name], y1[name]) and np.array_equal(w0[name], w1[name])
    assert x1.min() >= 0 and x1.max() <= 255
    assert np.abs(x1 - x0).mean(axis=(1, 2, 3)).min() > 0.5  # every image changed


def test_augment_batch_keeps_shape_and_range_and_changes_pixels():
    images = tf.random.stateless_uniform((16, 20, 20, 3), seed=(1, 2), minval=0, maxval=255)
    images = tf.concat([images, tf.zeros((2, 20, 20, 3)), tf.fill((2, 20, 20, 3), 255.0)], axis=0)
    out = augment_batch(images)
    assert out.shape == images.shape and out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 255
    assert float(tf.reduce_mean(tf.abs(out[:16] - images[:16]))) > 5


def test_augment_batch_seed_decides_the_draws():
    images = tf.random.stateless_uniform((8, 20, 20, 3), seed=(3, 4), minval=0, maxval=255)

    def augmented(seed):
        tf.random.set_seed(7)
        return augment_batch(images, seed=seed).numpy()

    np.testing.assert_array_equal(augmented(1), augmented(1))
    assert np.abs(augmented(1) - augmented(2)).mean() > 1
    # In a tf.data map a seeded draw still advances from batch to batch.
    first, second = tf.data.Dataset.from_tensors(images).repeat(2).map(lambda x: augment_batch(x, seed=1))
    assert np.abs(first.numpy() - second.numpy()).mean() > 1


def test_random_erasing_fills_one_box_in_the_share_of_images_it_names():
    images = tf.fill((400, 24, 24, 3), 100.0)
    out = augment_batch(images, seed=3, max_zoom=0.0, max_shift=0.0, brightness=0.0, contrast=0.0,
                        erasing=0.25).numpy()
    changed = out != 100.0
    erased = changed.any(axis=(1, 2, 3))
    assert 0.18 < erased.mean() < 0.32
    for mask in changed[erased].any(axis=3)[:20]:  # one axis-aligned box: its bounding box is all noise
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].mean() > 0.95
        assert 0.01 < mask.mean() < 0.4
    untouched = augment_batch(images, seed=3, max_zoom=0.0, max_shift=0.0, brightness=0.0, contrast=0.0)
    np.testing.assert_array_equal(untouched.numpy(), 100.0)


@pytest.mark.parametrize("age_sigma", [0.0, 2.5, -1.0])
def test_age_probs_label_is_age_and_sigma(root, age_sigma):
    ds, n = make_dataset(spec(root, datasets=("appa_real", "utkface"), task_options=(("age", (("sigma", age_sigma),)),)), "train",
                         ("age", "age_probs"), training=False)
    _, labels, weights = collect(ds)
    assert len(labels["age_probs"]) == n and labels["age_probs"].shape[1:] == (4,)
    ages, sigmas = labels["age_probs"][:, 0], labels["age_probs"][:, 1]
    assert np.all(labels["age_probs"][:, 2:] == -1)  # years, not age groups: no bounds
    assert np.array_equal(ages, labels["age"][:, 0]) and np.all(weights["age_probs"] == 1)
    appa = ages % 1 == 0.25  # APPA-REAL's apparent ages are 20.25 + i, its std 1.5 + 0.25 i
    assert appa.sum() == count(root, "appa_real", "train") and (~appa).sum() == count(root, "utkface", "train")
    if age_sigma >= 0:
        assert np.all(sigmas == age_sigma)
    else:
        np.testing.assert_allclose(sigmas[appa], 1.5 + 0.25 * (ages[appa] - 20.25), rtol=1e-5)
        assert np.all(sigmas[~appa] == 1.0)  # UTKFace has no std: one year


def test_limit_caps_examples_per_dataset(root):
    ds, n = make_dataset(spec(root, limit=5), "train", OUTPUTS, training=False)
    _, _, weights = collect(ds)
    assert n == 10 == len(weights["age"])
    assert weights["age"].sum() == 5 and weights["emotion"].sum() == 5


def test_missing_split_lists_the_built_splits(root):
    with pytest.raises(DataError, match="private_test") as error:
        make_dataset(spec(root), "private_test", OUTPUTS, training=False)
    message = str(error.value)
    assert root in message and "utkface: test, train, valid" in message and "fer2013: test, train, valid" in message
    with pytest.raises(DataError, match="build-tfrecords celeba"):  # never built
        make_dataset(spec(root, datasets=("celeba",)), "train", OUTPUTS)


def test_make_dataset_reads_each_manifest_once(root, manifest_reads):
    make_dataset(spec(root, datasets=("utkface", "fer2013", "appa_real")), "train", OUTPUTS, training=True)
    assert sorted(manifest_reads) == ["appa_real", "fer2013", "utkface"]

"""The tf.data input: read shards, parse, decode, cache, mix datasets, augment, batch, prefetch.

Yields `(images, labels, sample_weights)` keyed by the model's output names; images are float32
RGB 0-255 (the model normalises inside), and a missing label has weight 0 so it costs nothing.

    ds = make_dataset(InputSpec(root="data_out", datasets=("utkface", "fer2013")),
                      split="train", outputs=("age", "age_probs", "gender", "emotion"))
"""
from dataclasses import dataclass

import logging
import math

import numpy as np
import tensorflow as tf

from facenet_mtl.data import balance, record_format
from facenet_mtl.data.teacher import TeacherTargets
from facenet_mtl.data.built_dataset import BuiltDataset
from facenet_mtl.errors import DataError
from facenet_mtl import tasks
from facenet_mtl.data.schema import LABEL_FIELDS, MAX_AGE, MISSING, TASKS

AUTOTUNE = tf.data.AUTOTUNE
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSpec:
    root: str
    datasets: tuple
    image_size: int = 112  # model input size; records are resized to it when they differ
    batch_size: int = 64
    mixing: str = "oversample_to_largest"  # | "weights" | "natural"
    sampling_weights: tuple = ()  # ((dataset, weight), ...), for mixing="weights"
    epoch_size: int = 0
    augment: bool = True
    erasing: float = 0.0  # with augment: the share of training images given a random erased box
    cache: bool = True
    shuffle_buffer: int = 4096
    age_sigma: float = 0.0  # width of the Gaussian age-bin target; <0: the record's age_std
    limit: int = 0
    seed: int = 1
    partition_seed: int = 0  # >0: pool train+valid and redraw the valid split with this seed
    # Group-balanced sampling (data/balance.py) of the datasets that label every grouping named:
    # each grouping's shares move to natural ** balance_power (0: equal), repeats capped.
    balance_by: tuple = ()
    balance_power: float = 0.0
    balance_max_repeat: float = 3.0
    # Self-distillation (data/teacher.py): a teacher file's outputs mixed into every training
    # face's targets at teacher_weight; "" trains on the labels alone.
    teacher: str = ""
    teacher_weight: float = 0.5


def read_split(built, split, image_size, limit=0, cache=True, deterministic=True, partition_seed=0):
    """One split of `built` (a `BuiltDataset`) as decoded examples: dict(image=uint8 HxWx3, labels...).

    partition_seed > 0 (train/valid only): another train/valid partition of the same sizes,
    drawn from the pooled train+valid records by a seeded hash of the file id.
    """
    repartition = bool(partition_seed) and split in ("train", "valid")
    files = built.shard_files(split)
    if repartition:
        files = built.shard_files("train") + built.shard_files("valid")
    if not files:
        raise DataError(built.directory, f"has no finished shards for split '{split}' "
                        f"(built splits: {built.built_splits()})",
                        "choose a built split, or rebuild with facenet-mtl build-tfrecords")
    files = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                          num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    spec = record_format.parse_spec()
    if repartition:
        ds = ds.filter(_partition_filter(built, split, partition_seed, spec))
    if limit:
        ds = ds.take(limit)

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, spec)
        image = tf.io.decode_jpeg(example["image"], channels=3)
        if image_size:
            image = tf.image.resize(image, (image_size, image_size), method="area", antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        example["image"] = image
        return example

    ds = ds.map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.cache() if cache else ds


def read_labels(built, split, limit=0):
    """Every label field of `split` of `built` as numpy arrays, images left undecoded."""
    spec = {name: feature for name, feature in record_format.parse_spec().items() if name in LABEL_FIELDS}
    files = [str(f) for f in built.shard_files(split)]
    ds = tf.data.TFRecordDataset(files)
    if limit:
        ds = ds.take(limit)
    ds = ds.batch(4096).map(lambda serialized: tf.io.parse_example(serialized, spec))
    parts = list(ds.as_numpy_iterator())
    return {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0) for name in LABEL_FIELDS}


def balancing_filter(spec, built, split, seed):
    """The `tf.data` filter that balances `built`'s stream by `spec.balance_by`, or None when
    balancing is off or the dataset does not label every grouping; logs the shares it gives."""
    if not spec.balance_by or not all(balance.labels_grouping(built, split, g) for g in spec.balance_by):
        return None
    counts = balance.cell_counts(read_labels(built, split, spec.limit), spec.balance_by)
    shares = balance.balanced_shares(counts, spec.balance_power, spec.balance_max_repeat)
    for line in balance.describe(counts, shares, spec.balance_by):
        log.info(f"balance {built.name}: {line}")
    return balance.keep_filter(spec.balance_by, balance.acceptance(counts, shares), seed)


def _partition_filter(built, split, seed, spec):
    total = built.size("train") + built.size("valid")
    threshold = int(10000 * built.size("valid") / max(total, 1))

    def keep(serialized):
        file_id = tf.io.parse_single_example(serialized, {"file_id": spec["file_id"]})["file_id"]
        bucket = tf.strings.to_hash_bucket_fast(tf.strings.join([file_id, f"#partition{seed}"]), 10000)
        return bucket < threshold if split == "valid" else bucket >= threshold

    return keep


def to_model_inputs(example, outputs, age_sigma=0.0):
    """Example dict -> (image float32, labels by output name, sample weights by output name);
    each output's task encodes its targets and masks (`facenet_mtl.tasks.Task.targets`)."""
    image = tf.cast(example["image"], tf.float32)
    labels, weights = {}, {}
    for task in {tasks.task_of_output(output).name: None for output in outputs}:
        targets, masks = tasks.get(task).targets(example, age_sigma)
        labels.update({k: v for k, v in targets.items() if k in outputs})
        weights.update({k: v for k, v in masks.items() if k in outputs})
    return image, {o: labels[o] for o in outputs}, {o: weights[o] for o in outputs}


def mixing_weights(spec, sizes):
    """Sampling probability per dataset and the examples per epoch the mixing implies."""
    names = list(spec.datasets)
    if spec.mixing == "oversample_to_largest":
        # Every dataset is drawn equally often, so each contributes as many examples per epoch as
        # the largest has (the study: ~4.5k ChaLearn images sampled up to FER2013's 28,709).
        probs = [1.0 / len(names)] * len(names)
        epoch = max(sizes.values()) * len(names)
    elif spec.mixing == "weights":
        given = dict(spec.sampling_weights)
        raw = [float(given.get(n, 1.0)) for n in names]
        probs = [w / sum(raw) for w in raw]
        epoch = sum(sizes.values())
    else:
        total = sum(sizes.values())
        probs = [sizes[n] / total for n in names]
        epoch = total
    return dict(zip(names, probs)), int(spec.epoch_size or epoch)


def make_dataset(spec, split, outputs, training=True):
    """The batched input for `model.fit` / `evaluate`.

    training=True: every dataset repeats forever, shuffled, mixed by `spec.mixing`, augmented;
    returns (dataset, steps_per_epoch). training=False: each dataset once, in order, no
    augmentation; returns (dataset, number of examples).
    """
    if not spec.datasets:
        raise DataError(spec.root, "no datasets named for the input", "list them in the config's data.datasets")
    built = {name: BuiltDataset.open(spec.root, name) for name in spec.datasets}
    sizes = {name: dataset.size(split) for name, dataset in built.items()}
    if spec.limit:
        sizes = {n: min(s, spec.limit) for n, s in sizes.items()}
    parts = [read_split(built[name], split, spec.image_size, spec.limit, spec.cache, deterministic=True,
                        partition_seed=spec.partition_seed)
             for name in spec.datasets if sizes[name]]
    names = [name for name in spec.datasets if sizes[name]]
    if not parts:
        listed = "; ".join(f"{n}: {dataset.built_splits()}" for n, dataset in built.items())
        if any(split in dataset.splits for dataset in built.values()):  # listed with 0 records: an older build
            raise DataError(spec.root, f"split '{split}' of {', '.join(spec.datasets)} was built with 0 records "
                            f"(built splits: {listed})", "rebuild it with facenet-mtl build-tfrecords ... --force: "
                            "it now stops on a split whose images are all dropped, naming why")
        raise DataError(spec.root, f"split '{split}' is empty for {', '.join(spec.datasets)} "
                        f"(built splits: {listed})",
                        "choose a built split in the config (data.train_split / valid_split / test_split)")

    def prepare(example):
        return to_model_inputs(example, outputs, spec.age_sigma)

    if not training:
        ds = parts[0]
        for part in parts[1:]:
            ds = ds.concatenate(part)
        ds = ds.map(prepare, num_parallel_calls=AUTOTUNE).batch(spec.batch_size)
        return ds.prefetch(AUTOTUNE), sum(sizes[n] for n in names)

    probs, epoch_size = mixing_weights(spec, {n: sizes[n] for n in names})
    teacher = TeacherTargets.load(spec.teacher, spec.teacher_weight) if spec.teacher else None
    if teacher is not None:
        parts = [part.map(teacher.attach(n), num_parallel_calls=AUTOTUNE) for n, part in zip(names, parts)]

        def prepare(example):
            image, labels, weights = to_model_inputs(example, outputs, spec.age_sigma)
            return (image, *teacher.blend(example, labels, weights))

    streams = []
    for i, (n, part) in enumerate(zip(names, parts)):
        stream = part.shuffle(min(spec.shuffle_buffer, max(sizes[n], 1)), seed=spec.seed + i,
                              reshuffle_each_iteration=True).repeat()
        keep = balancing_filter(spec, built[n], split, seed=spec.seed + 100 + i)
        streams.append(stream.filter(keep) if keep is not None else stream)
    if len(streams) == 1:
        ds = streams[0]
    else:
        ds = tf.data.Dataset.sample_from_datasets(streams, weights=[probs[n] for n in names], seed=spec.seed)
    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE).batch(spec.batch_size, drop_remainder=True)
    if spec.augment:
        ds = ds.map(lambda x, y, w: (augment_batch(x, spec.seed, erasing=spec.erasing), y, w),
                    num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE), max(1, epoch_size // spec.batch_size)


def augment_batch(images, seed=None, max_zoom=0.15, max_shift=0.08, brightness=0.2, contrast=0.2, erasing=0.0):
    """Vectorised per-image augmentation of a batch (float32 0-255): flip, scale/shift crop,
    brightness and contrast, and with `erasing` > 0 that share of the images given one box of
    uniform noise (random erasing, Zhong et al. 2020: 2-33 % of the image, aspect 0.3-3.3). Faces
    stay upright; all our labels are flip-invariant. `seed` gives each random draw its op-level
    seed (with TensorFlow's global seed, which `train` sets, the sequence of augmentations is then
    reproducible); None leaves them to the global seed alone.

    >>> x = tf.fill([256, 16, 16, 3], 128.0)
    >>> erased = augment_batch(x, 1, max_zoom=0, max_shift=0, brightness=0, contrast=0, erasing=0.5)
    >>> changed = tf.reduce_any(tf.not_equal(erased, 128.0), axis=[1, 2, 3])
    >>> 0.35 < float(tf.reduce_mean(tf.cast(changed, tf.float32))) < 0.65
    True
    """
    def uniform(shape, low, high, draw):
        return tf.random.uniform(shape, low, high, seed=None if seed is None else seed * 16 + draw)

    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    flip = uniform([batch, 1, 1, 1], 0.0, 1.0, 0) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    scale = 1.0 - uniform([batch], 0.0, max_zoom, 1)
    cy = 0.5 + uniform([batch], -max_shift, max_shift, 2)
    cx = 0.5 + uniform([batch], -max_shift, max_shift, 3)
    boxes = tf.stack([cy - scale / 2, cx - scale / 2, cy + scale / 2, cx + scale / 2], axis=1)
    images = tf.image.crop_and_resize(images, boxes, tf.range(batch), tf.stack([height, width]))
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    c = 1.0 + uniform([batch, 1, 1, 1], -contrast, contrast, 4)
    b = uniform([batch, 1, 1, 1], -brightness, brightness, 5) * 255.0
    images = tf.clip_by_value((images - mean) * c + mean + b, 0.0, 255.0)
    if erasing > 0:
        images = _erase_boxes(images, erasing, uniform)
    return images


def _erase_boxes(images, share, uniform):
    """`images` with one box of uniform noise in about `share` of them (`uniform` as in
    `augment_batch`, draws 6-11)."""
    shape = tf.shape(images)
    batch = shape[0]
    area = uniform([batch, 1, 1], 0.02, 0.33, 6)
    log_aspect = uniform([batch, 1, 1], math.log(0.3), math.log(1 / 0.3), 7)
    h = tf.minimum(tf.sqrt(area * tf.exp(log_aspect)), 1.0)
    w = tf.minimum(tf.sqrt(area / tf.exp(log_aspect)), 1.0)
    top = uniform([batch, 1, 1], 0.0, 1.0, 8) * (1.0 - h)
    left = uniform([batch, 1, 1], 0.0, 1.0, 9) * (1.0 - w)
    rows = (tf.cast(tf.range(shape[1]), tf.float32)[None, :, None] + 0.5) / tf.cast(shape[1], tf.float32)
    cols = (tf.cast(tf.range(shape[2]), tf.float32)[None, None, :] + 0.5) / tf.cast(shape[2], tf.float32)
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    chosen = uniform([batch, 1, 1], 0.0, 1.0, 10) < share
    noise = uniform(shape, 0.0, 255.0, 11)
    return tf.where((inside & chosen)[..., None], noise, images)

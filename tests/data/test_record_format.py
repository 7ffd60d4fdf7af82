"""The one record format: the writer, the parse spec and the tfds metadata all follow RECORD_FEATURES."""
import numpy as np
import pytest
import tensorflow as tf

from facenet_mtl.data import record_format
from facenet_mtl.data.images import encode_jpeg
from facenet_mtl.data.record_format import RECORD_FEATURES, parse_spec, serialize
from facenet_mtl.data.schema import LABEL_FIELDS, MISSING, full_labels


def test_every_label_field_and_the_image_and_ids_are_features():
    assert list(RECORD_FEATURES) == ["image", "source", "file_id", *LABEL_FIELDS]
    for name, dtype in LABEL_FIELDS.items():
        assert RECORD_FEATURES[name] == ("float" if np.dtype(dtype).kind == "f" else "int")


def test_serialize_then_parse_gives_back_every_feature():
    jpeg = encode_jpeg(np.full((16, 16, 3), 128, np.uint8))
    labels = full_labels({"age": 31.5, "age_std": 2.25, "gender": 1, "race": 3})
    example = tf.io.parse_single_example(serialize(jpeg, labels, "utkface", "part1/31_1_3_x.jpg"), parse_spec())
    assert set(example) == set(RECORD_FEATURES)
    assert example["image"].numpy() == jpeg
    assert (example["source"].numpy(), example["file_id"].numpy()) == (b"utkface", b"part1/31_1_3_x.jpg")
    for name, value in labels.items():
        assert example[name].numpy() == value and example[name].dtype == tf.as_dtype(np.dtype(LABEL_FIELDS[name]))
    assert example["emotion"].numpy() == MISSING


def test_an_absent_feature_parses_as_its_default_and_the_image_is_required():
    only_image = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpeg"]))})).SerializeToString()
    example = tf.io.parse_single_example(only_image, parse_spec())
    assert example["source"].numpy() == b"" and example["file_id"].numpy() == b""
    assert all(example[name].numpy() == MISSING for name in LABEL_FIELDS)
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.parse_single_example(tf.train.Example().SerializeToString(), parse_spec())


def test_the_tfds_features_match_the_table_and_read_what_serialize_wrote():
    pytest.importorskip("tensorflow_datasets", reason="the [tfds] extra is not installed")
    features = record_format.tfds_features(16)
    assert list(features.keys()) == list(RECORD_FEATURES)
    spec = parse_spec()
    stored = features.get_serialized_info()
    assert {name: stored[name].dtype for name in stored} == {name: spec[name].dtype for name in spec}
    image = np.full((16, 16, 3), 200, np.uint8)
    decoded = features.deserialize_example(serialize(encode_jpeg(image), full_labels({"smile": 1}), "genki4k", "f.jpg"))
    assert decoded["image"].shape == (16, 16, 3) and int(decoded["smile"]) == 1 and int(decoded["gender"]) == MISSING
    assert decoded["file_id"].numpy() == b"f.jpg"

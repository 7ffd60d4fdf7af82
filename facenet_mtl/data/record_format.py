"""The one description of a face record: every feature of a `tf.train.Example` in the TFRecords.

`RECORD_FEATURES` names each feature and its kind; the writer (`serialize`), the reader's parse
spec (`parse_spec`) and the tensorflow-datasets metadata (`tfds_features`) are all derived from
it, so a label field added to `schema.LABEL_FIELDS` reaches all three at once.

>>> RECORD_FEATURES["image"], RECORD_FEATURES["file_id"], RECORD_FEATURES["age"], RECORD_FEATURES["smile"]
('jpeg', 'text', 'float', 'int')
>>> list(RECORD_FEATURES)[:4]
['image', 'source', 'file_id', 'age']
"""
import numpy as np

from facenet_mtl.data.schema import LABEL_FIELDS, MISSING

# name -> kind: "jpeg" (the encoded face, required), "text" (utf-8, "" when absent) or a label's
# "float" / "int" (MISSING when absent).
RECORD_FEATURES = {
    "image": "jpeg",
    "source": "text",  # the dataset the face came from
    "file_id": "text",  # the source's own name for the image (its path, zip member or row)
    **{name: "float" if np.dtype(dtype).kind == "f" else "int" for name, dtype in LABEL_FIELDS.items()},
}


def serialize(jpeg, labels, source, file_id):
    """One record as a serialised `tf.train.Example`; `labels` holds every label field
    (`schema.full_labels`)."""
    import tensorflow as tf

    values = {"image": jpeg, "source": source, "file_id": file_id, **labels}
    encode = {
        "jpeg": lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])),
        "text": lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode()])),
        "float": lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)])),
        "int": lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)])),
    }
    feature = {name: encode[kind](values[name]) for name, kind in RECORD_FEATURES.items()}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_spec():
    """`tf.io.parse_single_example`'s features: an absent text is "", an absent label MISSING."""
    import tensorflow as tf

    def feature(kind):
        if kind == "jpeg":
            return tf.io.FixedLenFeature([], tf.string)
        if kind == "text":
            return tf.io.FixedLenFeature([], tf.string, default_value="")
        dtype = tf.float32 if kind == "float" else tf.int64
        return tf.io.FixedLenFeature([], dtype, default_value=tf.constant(MISSING, dtype))

    return {name: feature(kind) for name, kind in RECORD_FEATURES.items()}


def tfds_features(image_size):
    """The `tfds.features.FeaturesDict` of a build with `image_size` faces (needs the `tfds` extra)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def feature(kind):
        if kind == "jpeg":
            return tfds.features.Image(shape=(image_size, image_size, 3), encoding_format="jpeg")
        if kind == "text":
            return tfds.features.Text()
        return tfds.features.Scalar(tf.float32 if kind == "float" else tf.int64)

    return tfds.features.FeaturesDict({name: feature(kind) for name, kind in RECORD_FEATURES.items()})

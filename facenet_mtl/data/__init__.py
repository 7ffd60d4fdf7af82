"""Data layer: the example schema, native-format readers, TFRecords and the tf.data input."""

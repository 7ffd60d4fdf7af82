"""Fetching published ImageNet weights, with an error that says what to do when offline."""
from __future__ import annotations

import os

import keras


def imagenet_weights_path(backbone: str, url: str, file_name: str, file_hash: str) -> str:
    """The local path of a weights file, downloaded into Keras' cache on first use.

    Raises RuntimeError, naming the URL and the cache path to place the file at by hand, when
    the download fails (no internet, proxy, bad hash).
    """
    try:
        return keras.utils.get_file(file_name, url, cache_subdir="models", file_hash=file_hash)
    except Exception as error:  # get_file raises a bare Exception on network failures
        keras_home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
        cache_path = os.path.join(keras_home, "models", file_name)
        raise RuntimeError(
            f"could not download the ImageNet weights of backbone '{backbone}' ({error}). "
            f"Download {url} by hand and place it at {cache_path} (Keras' cache; "
            f"$KERAS_HOME/models/ if KERAS_HOME is set), or pass weights=None to train from scratch."
        ) from error

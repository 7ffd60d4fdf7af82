"""Deterministic train/valid/test assignment for datasets that ship without an official split.

A file's split depends only on a hash of its id, so it is the same on every run and machine and
does not move when other files are added or removed.

>>> hash_split("files/file0001.jpg") in ("train", "valid", "test")
True
>>> hash_split("a.jpg") == hash_split("a.jpg")
True
"""
from __future__ import annotations

import hashlib

DEFAULT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
# The salt keeps our split independent of any unsalted hash someone used to subsample a data set
# (the shared UTKFace subset holds exactly the names whose plain SHA-1 is low: an unsalted SHA-1
# split put every one of them in "train").
SALT = b"facenet-mtl/split/v1:"


def hash_unit(key: str) -> float:
    """A number in [0, 1) fixed by `key` (the first 8 bytes of the salted SHA-256)."""
    digest = hashlib.sha256(SALT + str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def hash_split(file_id: str, fractions: dict[str, float] | None = None) -> str:
    """The split of `file_id`: `fractions` (split -> fraction, summing to 1) taken in order."""
    fractions = DEFAULT_FRACTIONS if fractions is None else fractions
    total = sum(fractions.values())
    if not fractions or abs(total - 1.0) > 1e-6 or min(fractions.values()) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    point = hash_unit(file_id)
    cumulative = 0.0
    for split, fraction in fractions.items():
        cumulative += fraction
        if point < cumulative:
            return split
    return next(s for s, f in reversed(fractions.items()) if f > 0)  # rounding at the top end


def carve_valid(file_id: str, valid_fraction: float) -> str:
    """'valid' for about `valid_fraction` of training files (by hash), else 'train'."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    return "valid" if hash_unit(file_id) < valid_fraction else "train"

import doctest
import hashlib
from collections import Counter

import pytest

from facenet_mtl.data import images
from facenet_mtl.data.readers import splits
from facenet_mtl.data.readers.splits import carve_valid, hash_split, hash_unit
from facenet_mtl.demo import native_layouts


def test_hash_split_is_pinned_across_runs_and_machines():
    # The salted SHA-256 of the id, nothing process- or machine-dependent (unlike hash()).
    expected = int.from_bytes(hashlib.sha256(b"facenet-mtl/split/v1:a.jpg").digest()[:8], "big") / 2 ** 64
    assert hash_unit("a.jpg") == expected
    assert [hash_split(k) for k in ("a.jpg", "files/file0001.jpg", "17/10000217_1981-05-05_2009.jpg")] == \
        ["train", "test", "train"]


def test_hash_split_follows_the_fractions():
    counts = Counter(hash_split(f"file{i}.jpg") for i in range(5000))
    assert set(counts) == {"train", "valid", "test"}
    assert abs(counts["train"] / 5000 - 0.8) < 0.03 and abs(counts["test"] / 5000 - 0.1) < 0.02
    assert {hash_split(f"f{i}", {"a": 0.5, "b": 0.5}) for i in range(100)} == {"a", "b"}
    assert {hash_split(f"f{i}", {"train": 1.0, "test": 0.0}) for i in range(100)} == {"train"}


@pytest.mark.parametrize("fractions", [{"train": 0.8, "test": 0.1}, {"train": 1.2, "test": -0.2}, {}])
def test_hash_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="sum to 1"):
        hash_split("a.jpg", fractions)


def test_carve_valid():
    counts = Counter(carve_valid(f"Training_{i}", 0.1) for i in range(5000))
    assert abs(counts["valid"] / 5000 - 0.1) < 0.02 and counts["valid"] + counts["train"] == 5000
    assert {carve_valid(f"Training_{i}", 0.0) for i in range(100)} == {"train"}
    with pytest.raises(ValueError):
        carve_valid("x", 1.0)


@pytest.mark.parametrize("module", [images, splits, native_layouts])
def test_docstring_examples(module):
    assert ">>>" in module.__doc__
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0

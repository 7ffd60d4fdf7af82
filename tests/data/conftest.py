"""Shared bits for the data tests: small synthetic images and the real data folder."""
from pathlib import Path

import numpy as np
import pytest

from tests.photos import SHARED_DATA  # noqa: F401  (one place says where the real data is)


def gradient_image(height=32, width=32, seed=0):
    """A small RGB uint8 image: a colour gradient plus noise, different for each seed."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1),
                     np.full_like(xs, (seed * 37) % 256)], axis=-1)
    return np.clip(base + rng.integers(-10, 10, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def image():
    """`image(height=32, width=32, seed=0)` -> a small RGB uint8 test image."""
    return gradient_image


@pytest.fixture
def shared_data():
    return SHARED_DATA


@pytest.fixture
def manifest_reads(monkeypatch):
    """The list of dataset names whose `manifest.json` is read from now on, one entry a read."""
    reads = []
    read_text = Path.read_text

    def counting(self, *args, **kwargs):
        if self.name == "manifest.json":
            reads.append(self.parent.name)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    return reads

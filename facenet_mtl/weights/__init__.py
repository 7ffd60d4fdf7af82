"""The release model that ships inside the package, and its checked metadata.

`release.h5` (built-in layers only, RGB 0-255 in) is package data, with `release.json` beside it:
its sha256, what it was trained on (`trained_on`: "real" or "demo"), its tasks, input size and
headline test figures. `release_model_path()` checks the sha256 before anything loads the file.

>>> from facenet_mtl import weights
>>> {"description", "figures", "input_size", "sha256"} <= set(weights.release_info())
True
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facenet_mtl.errors import DataError

WEIGHTS_DIR = Path(__file__).resolve().parent
RELEASE_MODEL = WEIGHTS_DIR / "release.h5"
RELEASE_INFO = WEIGHTS_DIR / "release.json"
REINSTALL = ("reinstall facenet-mtl from its source (pip install --force-reinstall . in the source folder), "
             "or give a model path")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def release_info() -> dict[str, Any]:
    """The shipped model's metadata (release.json) as a dict."""
    if not RELEASE_INFO.is_file():
        raise DataError(RELEASE_INFO, "the release model's metadata is missing", REINSTALL)
    return json.loads(RELEASE_INFO.read_text())


def release_model_path() -> Path:
    """The path of the shipped model, after checking its sha256 against release.json."""
    info = release_info()
    if not RELEASE_MODEL.is_file():
        raise DataError(RELEASE_MODEL, "the release model file is missing", REINSTALL)
    actual = sha256_of(RELEASE_MODEL)
    if actual != info["sha256"]:
        raise DataError(RELEASE_MODEL, f"sha256 {actual[:12]}... does not match release.json's "
                        f"{info['sha256'][:12]}... (the file is damaged or was replaced)", REINSTALL)
    return RELEASE_MODEL


def model_id(info: Mapping[str, Any] | None = None) -> str:
    """A short id for outputs: 'facenet-mtl-release-<version>-<sha256[:8]>' (demo models say so)."""
    info = info or release_info()
    kind = "release" if info.get("trained_on") == "real" else "demo"
    return f"facenet-mtl-{kind}-{info.get('version', '0')}-{info['sha256'][:8]}"

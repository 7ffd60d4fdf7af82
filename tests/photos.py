"""Real face photos for the inference and serve tests, made from the faces in ../shared/data.

`FACENET_MTL_SHARED_DATA` points elsewhere (a git worktree beside the main checkout, say); the
tests that need the photos skip when the data is absent.
"""
import glob
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACENET_MTL_SHARED_DATA", ROOT.parent / "shared" / "data"))
UTKFACE = SHARED_DATA / "utkface" / "UTKFace"
GENKI = SHARED_DATA / "genki4k" / "files"


def missing_data(path, what="the real data"):
    """The skip reason of a test that needs `path` from the real data: where it was looked for,
    and the variable that points elsewhere."""
    return (f"needs {what} in {path} (the real data is looked for in ../shared/data beside the clone; "
            f"set FACENET_MTL_SHARED_DATA=/path/to/data to point elsewhere)")


def utkface_files():
    """The UTKFace face files, sorted; the calling test skips when there are none."""
    files = sorted(glob.glob(str(UTKFACE / "*.jpg")))
    if not files:
        pytest.skip(missing_data(UTKFACE, "the UTKFace faces"))
    return files


def face_photo(path, index=100, shape=(480, 640), at=(300, 100), side=200):
    """A real UTKFace face (side x side) pasted at `at` (x, y) into a grey photo of `shape`,
    written to `path`; returns the pasted box (x1, y1, x2, y2)."""
    import cv2

    face = cv2.resize(cv2.imread(utkface_files()[index]), (side, side))
    canvas = np.full((*shape, 3), 90, np.uint8)
    x, y = at
    canvas[y:y + side, x:x + side] = face
    cv2.imwrite(str(path), canvas)
    return (x, y, x + side, y + side)


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

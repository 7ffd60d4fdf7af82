"""What `predict` was asked to read: files, folders (walked), globs and `-` (paths on stdin).

>>> is_model_path("runs/x/model.h5"), is_model_path("photo.jpg")
(True, False)
"""
from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from facenet_mtl.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
MODEL_SUFFIXES = (".h5", ".keras")
_GLOB_CHARS = set("*?[")


@dataclass
class Inputs:
    """The images and videos to predict on, in the order given, and what folders held besides."""

    images: list = field(default_factory=list)
    videos: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)  # folder -> files in it that are neither image nor video
    unreadable: dict = field(default_factory=dict)  # path -> why it could not be listed (a record with `error` each)

    def __len__(self) -> int:
        return len(self.images) + len(self.videos)


def is_model_path(arg: str | Path) -> bool:
    """A `.h5` / `.keras` name or a SavedModel directory: the old `predict MODEL IMAGES...` form."""
    path = Path(arg)
    return path.suffix.lower() in MODEL_SUFFIXES or (path.is_dir() and (path / "saved_model.pb").is_file())


def expand_inputs(args: Iterable[str | Path], stdin: IO[str] | None = None,
                  exclude: str | Path | None = None) -> Inputs:
    """Each argument: an image or video file, a folder (walked recursively for images; other files
    counted in `skipped`), a glob (`photos/**/*.jpg`), or `-` for one path per line on `stdin`.

    An argument that is none of these raises DataError naming it; so does a folder or glob with
    no image in it. A file named twice is read once. A subfolder that cannot be listed goes into
    `unreadable` (the others go on). Folders and globs never yield files under `exclude` (the
    `--out` folder: a run does not read its own outputs).
    """
    found = Inputs()
    seen = set()
    excluded = os.path.abspath(exclude) if exclude is not None else None

    def add(path, listed_by_name):
        key = os.path.abspath(path)
        if key in seen:
            return
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES and listed_by_name:
            found.videos.append(path)
        elif suffix in IMAGE_SUFFIXES or listed_by_name:  # a file named by the user is tried as an image
            found.images.append(path)
        else:
            return
        seen.add(key)

    for arg in args:
        arg = str(arg)
        if arg == "-":
            if stdin is None:
                raise DataError("-", "means paths on standard input, but there is none", "pipe a list of paths in")
            listed = expand_inputs([line.strip() for line in stdin.read().splitlines() if line.strip()], exclude=exclude)
            for path in listed.images + listed.videos:
                add(path, True)
            for folder, count in listed.skipped.items():
                found.skipped[folder] = found.skipped.get(folder, 0) + count
            found.unreadable.update(listed.unreadable)
            continue
        path = Path(arg)
        if path.is_dir():
            members = list(_walk(path, excluded, found.unreadable))
            for member, is_image in members:
                if is_image:
                    add(member, False)
                else:
                    found.skipped[str(path)] = found.skipped.get(str(path), 0) + 1
            if not any(is_image for _, is_image in members) and not found.unreadable:
                raise DataError(path, f"is a folder with no image in it (looked for {', '.join(IMAGE_SUFFIXES)})",
                                "give a folder of photos, or the image files themselves")
        elif path.exists() or not (_GLOB_CHARS & set(arg)):
            if not path.exists():
                raise DataError(path, "no such file or folder", "check the path (a glob needs quotes: 'photos/*.jpg')")
            add(path, True)
        else:
            matches = sorted(glob.glob(arg, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file() and not _inside(m, excluded)]
            kept = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES]
            if not kept:
                raise DataError(arg, f"the pattern matches no image or video ({len(matches)} other paths)",
                                "check the pattern, e.g. 'photos/**/*.jpg'")
            for member in kept:
                add(member, True)
    return found


def _inside(path, folder):
    """Whether `path` is `folder` or lies under it (both made absolute; None: nothing is)."""
    if folder is None:
        return False
    path = os.path.abspath(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _walk(folder, excluded=None, unreadable=None):
    """(path, is_image) for every file under `folder` in path order, hidden files and folders and
    the `excluded` folder left out; a subfolder that cannot be listed is put in `unreadable`."""
    members = []

    def cannot_list(error):
        if unreadable is not None:
            unreadable[str(error.filename)] = str(DataError(error.filename, f"folder cannot be read ({error.strerror}); "
                                                            "its photos were not predicted", "check its permissions"))

    for root, dirs, files in os.walk(folder, onerror=cannot_list):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not _inside(os.path.join(root, d), excluded)]
        members += [Path(root) / name for name in files if not name.startswith(".")]
    return [(path, path.suffix.lower() in IMAGE_SUFFIXES) for path in sorted(members)]

"""One writer per folder: an exclusive lock on a run directory or a built dataset's folder.

The lock is `fcntl.flock` on `<folder>/.lock`, which also holds the holder's pid and command
line for the message another process gets. The kernel drops a flock when its holder exits, even
by `kill -9`, so a crashed run never leaves a stale lock behind. The file itself stays (deleting
it would let two processes lock two different files of the same name).

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with exclusive(folder, "run directory"):
...     pass
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from facenet_mtl.errors import DataError

LOCK_NAME = ".lock"


class FolderInUseError(DataError):
    """Another process holds the folder's lock; `pid` is its process id (None if unknown)."""

    def __init__(self, folder: str | Path, what: str, pid: int | None, command: str) -> None:
        self.pid = pid
        holder = f"pid {pid}" if pid else "a process that has not written its pid yet"
        super().__init__(folder, f"this {what} is in use by another facenet-mtl process ({holder}"
                                 f"{': ' + command if command else ''})",
                         "wait for it to finish, or stop it (kill " + (str(pid) if pid else "<pid>") + "); "
                         "a stopped process releases the lock by itself")


@contextlib.contextmanager
def exclusive(folder: str | Path, what: str = "folder") -> Iterator[Path]:
    """Hold the exclusive lock of `folder` (created if needed) for the `with` block, or raise
    `FolderInUseError` at once naming the holder's pid."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, command = _holder(fd)
            raise FolderInUseError(folder, what, pid, command) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{' '.join(sys.argv)}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the flock


def _holder(fd):
    text = os.pread(fd, 4096, 0).decode(errors="replace").splitlines()
    pid = int(text[0]) if text and text[0].strip().isdigit() else None
    return pid, (text[1].strip() if len(text) > 1 else "")

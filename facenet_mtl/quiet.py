"""Keep TensorFlow's and Keras's start-up chatter out of a command's output.

TensorFlow writes 4-7 lines to stderr before its logging is set up (oneDNN, "Could not find cuda
drivers", `cuInit` failing on a machine with no GPU), whatever `TF_CPP_MIN_LOG_LEVEL` says, and
Keras warns about things a user of facenet-mtl cannot act on. `import_tensorflow()` imports
TensorFlow (and enumerates its devices, which is where `cuInit` speaks) with stderr captured at the
file-descriptor level, then writes back every captured line that is not known noise, so a real
error still shows. The CLI calls it before any command; `-v` keeps everything.

>>> is_noise("I0000 00:00:1796191264.066807    5431 port.cc:153] oneDNN custom operations are on.")
True
>>> is_noise("E0000 00:00:1796191283.683818 5431 cuda_platform.cc:52] failed call to cuInit: INTERNAL")
True
>>> is_noise("Traceback (most recent call last):")
False
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from types import ModuleType

log = logging.getLogger("facenet_mtl")

# Lines TensorFlow prints while starting up that say nothing the user can act on.
NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"^[IW]\d{4} [\d:. ]+\s*\d+ \S+\.cc:\d+\]"),  # absl info/warning lines from C++
    re.compile(r"^E\d{4} [\d:. ]+\s*\d+ cuda_\w+\.cc:\d+\] failed call to cuInit"),
    re.compile(r"^To enable the following instructions: .* in other operations, rebuild TensorFlow"),
)

# Keras/absl warnings on every run that the user cannot act on (the trainer sizes its epochs).
QUIET_WARNINGS = (
    r".*[Yy]our input ran out of data.*",
    r".*`shuffle=True` .*ignored.*",
    r".*You are saving your model as an HDF5 file.*",
    r".*The structure of `inputs` doesn't match the expected structure.*",
)


def is_noise(line: str) -> bool:
    return any(pattern.match(line) for pattern in NOISE)


def import_tensorflow(verbose: bool = False) -> ModuleType:
    """Import TensorFlow with its start-up noise filtered (nothing filtered when `verbose`)."""
    if verbose or "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    captured = _capture_stderr()
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # where cuInit reports a machine with no GPU
    finally:
        text = captured.restore()
    for line in text.splitlines():
        if line.strip() and not is_noise(line):
            sys.stderr.write(line + "\n")
    quiet_python_warnings()
    return tf


def quiet_python_warnings() -> None:
    """Silence the Keras/absl warnings in `QUIET_WARNINGS` and TensorFlow's Python logger below ERROR."""
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in ("tensorflow", "absl", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("absl").addFilter(_MessageFilter())


class _MessageFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(re.match(message, text, re.S) for message in QUIET_WARNINGS)


def setup_logging(verbose: bool = False) -> None:
    """The library logs to `facenet_mtl.*`; a command shows INFO (-v: DEBUG) on stderr, bare.

    The handler sits on the root logger (showing facenet_mtl's lines, and other loggers' warnings
    as Python's last-resort handler would): with a handler there, a later `logging.basicConfig()`
    (which any bare `logging.info(...)` in a library calls) adds none, so no line is printed twice
    (`INFO:facenet_mtl.training.trainer:...` after the bare one)."""
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(lambda record: record.name == log.name or record.name.startswith(log.name + ".")
                      or record.levelno >= logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _CurrentStderr)] + [handler]
    log.handlers[:] = []
    log.setLevel(logging.DEBUG if verbose else logging.INFO)


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever `sys.stderr` is at the time (a test runner swaps it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _capture_stderr:
    """Point file descriptor 2 at a temporary file until `restore()`, which returns what was written."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self._file.fileno(), 2)

    def restore(self) -> str:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return text

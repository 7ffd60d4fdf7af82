"""Errors for bad input that a user can fix: each names the path, what was expected, and the fix."""
from __future__ import annotations

import os


class DataError(Exception):
    """Bad or missing input data. The CLI prints the message and exits with code 2."""

    def __init__(self, path: str | os.PathLike[str], problem: str, fix: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)

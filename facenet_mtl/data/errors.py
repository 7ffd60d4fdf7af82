"""Errors for bad input that a user can fix: each names the path, what was expected, and the fix."""


class DataError(Exception):
    """Bad or missing input data. The CLI prints the message and exits with code 2."""

    def __init__(self, path, problem, fix=None):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)

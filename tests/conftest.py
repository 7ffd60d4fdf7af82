"""Fixtures the whole suite shares."""
import pytest
from click.testing import CliRunner


@pytest.fixture
def cli():
    """cli(*args) -> click Result of the facenet-mtl command line; stderr is part of `result.output`."""
    from facenet_mtl.cli import main

    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


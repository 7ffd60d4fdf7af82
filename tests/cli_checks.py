"""Checks shared by the command-line tests."""


def assert_user_error(result, *named):
    """Exit code 2, an `error:` line naming each of `named`, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for text in named:
        assert str(text) in result.output, (text, result.output)

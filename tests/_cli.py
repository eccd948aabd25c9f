"""Running the CLI in-process in tests, and the one check every bad-input test makes of its output."""

from __future__ import annotations

from click.testing import CliRunner, Result

from invkit.cli import build_cli


def cli(args: list[str]) -> Result:
    """``invkit ARGS`` in this process (click's runner), its output captured."""
    return CliRunner().invoke(build_cli(), args)


def one_line_error(result: Result, *expected: str, status: int | None = None) -> str:
    """The command failed (exit status ``status``, or any non-zero one) and ends in one 'Error:' line holding every
    ``expected`` text: no traceback, no usage block. Returns that line."""
    assert result.exit_code != 0 if status is None else result.exit_code == status, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "Usage:" not in result.output, result.output
    error = result.output[result.output.rindex("Error:") :].strip()  # after any table, warning or live display
    assert "\n" not in error, result.output
    for text in expected:
        assert text in error, error
    return error

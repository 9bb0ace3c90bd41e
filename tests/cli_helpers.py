"""Running the ``automix`` app in-process and checking its one-line user errors (shared by CLI tests)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from automix import cli

runner = CliRunner()


def run(*args: str | Path):
    """``automix ARGS…`` through Typer's CliRunner (stdout and stderr kept apart)."""
    return runner.invoke(cli.app, [str(a) for a in args])


def assert_user_error(result, *fragments: str, only_line: bool = False) -> str:
    """Exit 2, nothing on stdout, one line ``error: …`` last on stderr (after any notes, or alone
    with ``only_line``), no traceback, and each fragment in that line. Returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    line = lines[-1]
    assert line.startswith("error: "), result.stderr
    assert sum(x.startswith(("error", "Error", "Usage")) for x in lines) == 1, result.stderr
    assert not only_line or len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line

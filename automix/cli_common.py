"""Pieces every ``automix`` command shares: option types, error handling, output.

Kept apart from :mod:`automix.cli` (which registers the commands) so that command modules
beside the engine (style transfer, evaluation) can import them without a circular import.
"""

from __future__ import annotations

import errno
import functools
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors click; older typer uses click itself
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException, UsageError

from automix.errors import AutomixError, one_line

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1

_debug = {"on": False}

# ---- shared option types ------------------------------------------------------------------
StemsDir = Annotated[Path, typer.Argument(help="Folder of stems (wav, flac, aiff, ogg, mp3).", show_default=False)]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output mix (.wav or .flac).", show_default=False)]
StemsOut = Annotated[
    Path | None,
    typer.Option("--stems-out", help="Also write each processed stem (post-fader, panned, stereo, float WAV) and the reverb return here."),
]
SampleRate = Annotated[
    int | None, typer.Option("--sample-rate", help="Render rate in Hz [default: the most common stem rate].")
]
BitDepth = Annotated[str, typer.Option("--bit-depth", help="Output sample format: 16, 24 or 32f.")]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No notes or progress on stderr.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print one JSON summary to stdout.")]
ParamsOut = Annotated[
    Path | None, typer.Option("--params", help="Where to write the settings [default: OUT.json].")
]
TargetLufs = Annotated[float, typer.Option("--target-lufs", help="Integrated loudness of the mix.")]
Ceiling = Annotated[float, typer.Option("--ceiling", help="True-peak ceiling in dBTP.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda (trained models).")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for mixers with randomness.", min=0)]
Daw = Annotated[str | None, typer.Option(
    "--daw", help="Also write a session for this DAW beside the mix (reaper: mix.rpp; with --stems-out it "
    "plays the processed stems, i.e. the mix before its master stage).", show_default=False)]
Strict = Annotated[bool, typer.Option(
    "--strict", help="Refuse stems with NaN/Inf samples instead of silencing damaged samples "
    "(NaN/Inf or beyond +60 dBFS) with a note.")]


# ---- error handling ------------------------------------------------------------------------
F = TypeVar("F", bound=Callable[..., Any])


_USER_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENOTDIR, errno.EISDIR,
                          errno.ENAMETOOLONG, errno.ELOOP, errno.ENOSPC, errno.EROFS, errno.EDQUOT,
                          errno.EMFILE, errno.ENFILE})  # too many open files: `ulimit -n` fixes it
"""Errors of the operating system about a named path that the user can fix."""


def _internal_error(e: Exception) -> NoReturn:
    if _debug["on"]:
        traceback.print_exc()
    hint = "" if _debug["on"] else " (run with --debug or AUTOMIX_DEBUG=1 for the traceback)"
    typer.echo(f"internal error: {type(e).__name__}: {one_line(str(e))}{hint}", err=True)
    raise typer.Exit(EXIT_INTERNAL_ERROR) from None


def handles_errors(fn: F) -> F:
    """User errors → ``error: …`` + exit 2; bugs → one line + exit 1 (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except AutomixError as e:
            if _debug["on"]:
                traceback.print_exc()
            typer.echo(f"error: {one_line(str(e))}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as e:
            if e.filename is None or e.errno not in _USER_ERRNOS:
                _internal_error(e)
            # A path the user gave that the system refuses (too long, not writable, disk full...):
            # a safety net for the checks each command makes before its work.
            if _debug["on"]:
                traceback.print_exc()
            typer.echo(f"error: {one_line(e.filename)}: {one_line(e.strerror or str(e))}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except Exception as e:  # noqa: BLE001 - the one place that turns bugs into exit 1
            _internal_error(e)

    return wrapper  # type: ignore[return-value]


class _OneLineUsageError(ClickException):
    """A usage error shown like every other user error: one line ``error: …``, exit 2."""

    exit_code = EXIT_USER_ERROR

    def show(self, file: Any = None) -> None:
        typer.echo(f"error: {self.format_message()}", err=True)


@contextmanager
def _usage_errors_onone_line() -> Iterator[None]:
    try:
        yield
    except UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `automix` alone prints the help: keep it
            raise
        where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        raise _OneLineUsageError(f"{one_line(e.format_message())}{where}") from None


class OneLineUsageErrors(TyperGroup):
    """The root command group: Click's usage errors (missing option, bad value, unknown option
    or command) print one line ``error: …`` and exit 2, as the README promises for every user
    error, instead of Click's four-line usage block. Sub-commands and sub-groups are parsed
    inside the root's ``invoke``, so this one class covers them all."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors_onone_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_onone_line():
            return super().invoke(ctx)


# ---- output ---------------------------------------------------------------------------------
class Reporter:
    """Notes and progress to stderr (rich), results to stdout as JSON when asked."""

    def __init__(self, quiet: bool = False, as_json: bool = False) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.as_json = as_json
        self.console = Console(stderr=True, highlight=False)

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, soft_wrap=True)

    @contextmanager
    def progress(self) -> Iterator[Callable[[str, float], None] | None]:
        """A ``(step, fraction)`` callback drawing one bar, or None when quiet or not a terminal."""
        if self.quiet or not self.console.is_terminal:
            yield None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description:>8}"), BarColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as bar:
            task = bar.add_task("load", total=1.0)
            yield lambda step, fraction: bar.update(task, description=step, completed=fraction)

    def emit(self, data: dict[str, Any], summary: str) -> None:
        """The command's result: JSON on stdout with ``--json``, else a summary line on stderr."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            self.log(summary)


def mix_summary(result: Any, verb: str) -> str:
    params = f" and {result.params_path}" if result.params_path else ""
    stems = f"; {len(result.stem_files)} stems in {result.stems_out}" if result.stem_files else ""
    stems += f"; session {result.project}" if getattr(result, "project", None) else ""  # results without a session
    count = f"{len(result.tracks)} stem{'' if len(result.tracks) == 1 else 's'}"
    line = (f"{verb} {count} with {result.mixer} → {result.mix_path}{params} "
            f"({result.loudness_lufs:.1f} LUFS, {result.true_peak_dbtp:.1f} dBTP, "
            f"{result.duration_s:.1f} s of audio in {result.seconds:.1f} s){stems}")
    from automix.console.finalize import shortfall_note

    note = shortfall_note(result.target_lufs, result.loudness_lufs, result.limiter_max_reduction_db,
                          result.ceiling_dbtp)
    if note is not None:
        line += f"\nnote: {note}"
    return line

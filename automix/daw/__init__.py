"""Sessions for a DAW: the automix mix as a project an engineer can open and keep working on.

Only REAPER is written (:mod:`automix.daw.reaper`); ``docs/daw.md`` says what to do in others.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

from automix.console.settings import MixSettings
from automix.daw.reaper import reaper_project, write_reaper_project
from automix.errors import AutomixError

PROJECT_SUFFIXES: dict[str, str] = {"reaper": ".rpp"}
"""Values ``--daw`` accepts, with the file ending of the project each writes."""


def check_daw(daw: str | None) -> str | None:
    """``--daw`` validated (None = no project); an :class:`AutomixError` naming the choices otherwise."""
    if daw is None or daw in PROJECT_SUFFIXES:
        return daw
    choices = ", ".join(PROJECT_SUFFIXES)
    raise AutomixError(f"--daw {daw!r}: unknown DAW (supported: {choices}; for others see docs/daw.md)")


def project_path(out: str | Path, daw: str) -> Path:
    """Where the project for the mix ``out`` goes: beside it, ``mix.wav`` → ``mix.rpp``."""
    return Path(out).with_suffix(PROJECT_SUFFIXES[daw])


def write_session(
    daw: str,
    path: Path,
    settings: MixSettings,
    stems: Mapping[str, Path],
    *,
    duration_s: float,
    processed: Mapping[str, Path] | None = None,
    reverb_return: Path | None = None,
    skipped: Sequence[Path] = (),
    mono: Collection[str] = (),
    force: bool = False,
    protect: Iterable[Path] = (),
) -> Path:
    """Write the session for ``daw`` at ``path`` atomically; arguments as for :func:`reaper_project`
    (REAPER is the only DAW so far: :func:`check_daw` refuses any other)."""
    check_daw(daw)
    text = reaper_project(settings, stems, path, duration_s=duration_s, processed=processed,
                          reverb_return=reverb_return, skipped=skipped, mono=mono)
    return write_reaper_project(path, text, force=force, protect=protect)


__all__ = ["PROJECT_SUFFIXES", "check_daw", "project_path", "reaper_project", "write_reaper_project",
           "write_session"]

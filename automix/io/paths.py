"""Paths as the file system sees them: where a path leads, and which new names are too long to create."""

from __future__ import annotations

import os
from pathlib import Path


def _resolved(path: Path) -> Path:
    """Where ``path`` leads (absolute, through links); its absolute form when it cannot be resolved."""
    try:
        return Path(path).resolve()
    except OSError:
        return Path(os.path.abspath(path))


NAME_MAX_FALLBACK = 255
"""Longest file name in bytes when the file system does not say (most Linux and macOS ones)."""


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. the name itself is too long: it is not there
        return False


def name_too_long(path: str | Path) -> tuple[str, int, int] | None:
    """The first name in ``path`` that does not exist yet and is longer than the file system
    of its nearest existing ancestor allows, as ``(name, bytes, limit)``; None if all fit.

    Checked up front because the system only refuses such a name when the file or folder is
    created, after the folders before it have been made. Bytes are counted in the file
    system encoding (``os.fsencode``); the limit is ``PC_NAME_MAX`` (255 when unknown).
    """
    path = Path(path)
    new: list[str] = []
    probe = path
    while str(probe) not in ("", ".", probe.anchor) and not _exists(probe):
        new.append(probe.name)
        probe = probe.parent
    if not new:
        return None
    try:
        limit = os.pathconf(probe if str(probe) else ".", "PC_NAME_MAX")
    except (OSError, ValueError):  # no such setting on this platform or file system
        limit = NAME_MAX_FALLBACK
    if limit is None or limit <= 0:
        limit = NAME_MAX_FALLBACK
    for name in reversed(new):
        size = len(os.fsencode(name))
        if size > limit:
            return name, size, int(limit)
    return None


def short_name(name: str, keep: int = 48) -> str:
    """``name`` for a message: names longer than ``keep`` characters are cut in the middle."""
    return name if len(name) <= keep else f"{name[: keep - 16]}…{name[-15:]}"

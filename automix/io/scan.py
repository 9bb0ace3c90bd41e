"""Which files of a stems folder are stems: the audio files, in name order, each file once.

Every audio file in the folder (wav, flac, aiff, ogg, mp3 where libsndfile reads it) is a stem, in
name order; hidden files, sub-folders, pipes and other files are skipped with a note, and so is a
symbolic link to another stem of the folder (it would be mixed twice). The files are not opened
here: :mod:`automix.io.decode` reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from automix.errors import AutomixError
from automix.io.paths import _resolved

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3"})
"""File name endings loaded as stems (case-insensitive)."""


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def scan_folder(folder: str | Path, exclude: Iterable[Path] = ()) -> tuple[list[Path], list[str]]:
    """List the audio files of a stems folder in name order, with notes about what was skipped
    (hidden files, sub-folders, non-audio files, and a symbolic link to another stem of the
    folder, which would otherwise be mixed twice).

    Args:
        folder: the stems folder.
        exclude: paths never treated as stems (e.g. this run's own output inside the folder).

    Raises:
        AutomixError: the folder does not exist, is not a folder, or holds no audio files.
    """
    folder = Path(folder)
    try:
        exists = folder.exists()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise AutomixError(f"{folder}: cannot read the stems folder ({e.strerror or e})") from None
    if not exists:
        raise AutomixError(f"{folder}: stems folder not found")
    if not folder.is_dir():
        raise AutomixError(f"{folder}: not a folder (give the folder that holds the stems)")
    excluded = {_resolved(p) for p in exclude}
    files: list[Path] = []
    notes: list[str] = []
    try:
        entries = sorted(folder.iterdir(), key=lambda p: (p.name.casefold(), p.name))
    except OSError as e:
        raise AutomixError(f"{folder}: cannot read the stems folder ({e.strerror or e})") from None
    for entry in entries:
        if entry.name.startswith("."):
            notes.append(f"skipped hidden file {entry.name}")
        elif entry.is_dir():
            notes.append(f"skipped sub-folder {entry.name}/")
        elif entry.exists() and not entry.is_file():  # a named pipe would block every read forever
            notes.append(f"skipped {entry.name} (not a regular file)")
        elif _resolved(entry) in excluded:
            notes.append(f"skipped {entry.name} (an output of this run)")
        elif not is_audio_file(entry):
            notes.append(f"skipped {entry.name} (not an audio file)")
        else:
            files.append(entry)
    files = _without_duplicates(files, notes)
    if not files:
        what = "is empty" if not notes else f"holds no audio files ({notes[0]}{', …' if len(notes) > 1 else ''})"
        raise AutomixError(f"{folder}: stems folder {what}; expected wav, flac, aiff, ogg or mp3 files")
    return files, notes


def _file_identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of the file a path leads to (through links), None if it cannot be read."""
    try:
        st = path.stat()
    except OSError:  # a dangling link or an unreadable entry: the loader reports it
        return None
    return st.st_dev, st.st_ino


def _without_duplicates(files: list[Path], notes: list[str]) -> list[Path]:
    """``files`` (name order) without symbolic links that lead to another listed stem: an alias
    of a stem would mix the same audio twice. Appends a note per file skipped.

    Only symbolic links are dropped: a copy, or a hard link (which the file system presents as
    an ordinary file), is a stem the user put there, so it is kept like any other.
    """
    by_identity: dict[tuple[int, int], list[Path]] = {}
    for path in files:
        identity = _file_identity(path)
        if identity is not None:
            by_identity.setdefault(identity, []).append(path)
    skipped: dict[Path, Path] = {}
    for paths in by_identity.values():
        keep = next((p for p in paths if not p.is_symlink()), paths[0])
        skipped.update({p: keep for p in paths if p != keep and p.is_symlink()})
    for path in files:
        if path in skipped:
            notes.append(f"skipped {path.name} (the same file as {skipped[path].name})")
    return [p for p in files if p not in skipped]

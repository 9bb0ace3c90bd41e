"""Errors the user can fix. The CLI prints their message on one line and exits with code 2."""


class AutomixError(Exception):
    """Bad input from the user (files, folders, options, params JSON). Exit code 2."""


class AudioLoadError(AutomixError):
    """An audio file could not be read or is unusable (corrupt, NaN samples, too many channels)."""


class ParamsError(AutomixError):
    """A params JSON file is malformed or names an unknown/out-of-range setting."""


class OutputExistsError(AutomixError):
    """An output file exists and ``--force`` was not given."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) made one space: how messages are shown."""
    return " ".join(str(text).split())

"""Loading a C library through ctypes: found by name, every function given its signature.

The data sources that drive native renderers (fluidsynth for MIDI, libopenmpt for tracker
modules) load them lazily here, so importing automix never needs them installed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from automix.errors import AutomixError

Signatures = dict[str, tuple[list[Any], Any]]
"""``{function name: (argument types, result type)}``."""


def open_library(name: str, soname: str, package: str, signatures: Signatures) -> ctypes.CDLL:
    """The C library ``name`` (e.g. ``"openmpt"``; ``soname`` when the linker cache lacks it)
    with ``signatures`` bound, so ctypes converts arguments instead of guessing.

    Raises:
        AutomixError: the library is not installed (naming the Debian ``package`` to install).
    """
    try:
        lib = ctypes.CDLL(ctypes.util.find_library(name) or soname)
    except OSError as exc:
        raise AutomixError(f"lib{name} not found ({exc}); install it: apt-get install {package}") from exc
    for function, (args, result) in signatures.items():
        bound = getattr(lib, function)
        bound.argtypes, bound.restype = args, result
    return lib

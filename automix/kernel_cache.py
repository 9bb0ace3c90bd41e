"""Where the compiled audio kernels are cached, and whether they are compiled yet.

The console, loudness meter, compressor and WAV decoder are numba kernels compiled on first use
(≈ 12 s here) and cached on disk (`cache=True`). numba caches beside the source (`__pycache__`)
or in the user's cache folder; when neither is writable (a read-only install run by a user
without a home) it refuses to import the module at all. :func:`ensure_writable_cache` runs
before numba is imported (from ``automix/__init__.py``) and points numba at a private temporary
folder in that case, so automix still runs, compiling once per temporary folder.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

KERNEL_MODULES = (
    "automix.io.wav", "automix.console.loudness", "automix.console.compressor", "automix.console.render_kernels",
    "automix.console.limiter_gain", "automix.mixers.descriptors", "automix.mixers.stem_analysis",
)
"""Modules that define cached numba kernels."""

PACKAGE_DIR = Path(__file__).resolve().parent


def _writable(folder: Path) -> bool:
    """``folder`` exists and can be written, or can be created (its nearest existing parent is writable)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return os.access(candidate, os.W_OK | os.X_OK)
    return False


def _user_cache_dir() -> Path:
    # numba's user-wide locator: $XDG_CACHE_HOME/numba, else ~/.cache/numba (Linux), ~/Library/Caches on macOS.
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "numba"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "numba"


def ensure_writable_cache(environ: dict[str, str] | None = None) -> str | None:
    """Set ``NUMBA_CACHE_DIR`` to a private temporary folder when numba could not cache anywhere.

    Returns the folder it chose, or None when the package folder, the user's cache folder or an
    explicit ``NUMBA_CACHE_DIR`` will do. Must run before numba is imported.
    """
    environ = os.environ if environ is None else environ
    if environ.get("NUMBA_CACHE_DIR"):
        return None
    if _writable(PACKAGE_DIR / "console" / "__pycache__") or _writable(_user_cache_dir()):
        return None
    folder = Path(tempfile.gettempdir()) / f"automix-numba-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    environ["NUMBA_CACHE_DIR"] = str(folder)
    return str(folder)


def cached_kernels() -> dict[str, object]:
    """``"module.function"`` → numba dispatcher, for every disk-cached kernel automix defines."""
    kernels: dict[str, object] = {}
    for module_name in KERNEL_MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            cache = getattr(value, "_cache", None)
            if getattr(cache, "_cache_file", None) is not None and getattr(value, "py_func", None) is not None:
                kernels[f"{module_name}.{name}"] = value
    return kernels


def cold_kernels() -> list[str]:
    """Names of the kernels with nothing cached on disk yet (each will compile on first use)."""
    cold = []
    for name, kernel in cached_kernels().items():
        index = Path(kernel._cache._cache_file._index_path)  # type: ignore[attr-defined]
        if not index.is_file():
            cold.append(name)
    return cold


def cache_folders() -> list[str]:
    """The folders the kernels are cached in (one per kernel module, or ``NUMBA_CACHE_DIR``)."""
    return sorted({str(kernel._cache._cache_path) for kernel in cached_kernels().values()})  # type: ignore[attr-defined]

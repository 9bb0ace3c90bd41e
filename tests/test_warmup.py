"""Compiling the audio kernels ahead of the first mix, and caching them when the install is read-only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from automix import kernel_cache

NOTE_CODE = "from automix.engine import note_cold_kernels; note_cold_kernels(print)"
COLD_CODE = "from automix.kernel_cache import cold_kernels, cached_kernels; print(len(cold_kernels()), len(cached_kernels()))"


def _python(code_or_module: list[str], cache_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, *code_or_module], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def test_warmup_compiles_every_kernel_and_silences_the_note(tmp_path: Path):
    cache = tmp_path / "numba-cache"
    cold, total = map(int, _python(["-c", COLD_CODE], cache).stdout.split())
    assert total >= 15 and cold == total  # a fresh cache: everything would compile in the first mix
    assert "note: compiling" in _python(["-c", NOTE_CODE], cache).stdout

    warm = _python(["-m", "automix.warmup"], cache)
    assert warm.returncode == 0, warm.stderr
    assert f"compiled {total} audio kernels" in warm.stderr and str(cache) in warm.stderr

    assert _python(["-c", COLD_CODE], cache).stdout.split() == ["0", str(total)]
    assert _python(["-c", NOTE_CODE], cache).stdout == ""


def test_read_only_install_caches_in_a_private_temporary_folder(monkeypatch):
    monkeypatch.setattr(kernel_cache, "_writable", lambda folder: False)
    environ: dict[str, str] = {}
    folder = kernel_cache.ensure_writable_cache(environ)
    assert folder is not None and environ["NUMBA_CACHE_DIR"] == folder
    assert Path(folder).parent == Path(__import__("tempfile").gettempdir())


def test_a_writable_place_or_an_explicit_cache_dir_is_left_alone(monkeypatch, tmp_path: Path):
    assert kernel_cache.ensure_writable_cache({"NUMBA_CACHE_DIR": str(tmp_path)}) is None
    monkeypatch.setattr(kernel_cache, "_writable", lambda folder: folder == kernel_cache._user_cache_dir())
    environ: dict[str, str] = {}
    assert kernel_cache.ensure_writable_cache(environ) is None and environ == {}


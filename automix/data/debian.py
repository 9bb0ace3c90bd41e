"""Files from Debian packages: each package fetched and unpacked once into a cache, never installed.

``apt-get download`` fetches the ``.deb`` and ``dpkg-deb -x`` unpacks it. Every real source
(tracker modules, MIDI songs, Hydrogen songs) and the reference corpus take their files this way.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from automix.errors import AutomixError, one_line

Log = Callable[[str], None]
UNPACKED_MARKER = ".unpacked"
"""Written into an unpacked tree last (it holds the deb's name): a tree without it is unfinished."""


def download(package: str, deb_dir: Path, log: Log) -> Path:
    """The package's ``.deb`` in ``deb_dir``: one already there (the last by name), else fetched.

    Raises:
        AutomixError: ``apt-get download`` failed (the message ends with apt's last words).
    """
    debs = sorted(deb_dir.glob(f"{package}_*.deb"))
    if not debs:
        log(f"  apt-get download {package}")
        proc = subprocess.run(["apt-get", "download", package], cwd=deb_dir, capture_output=True, text=True,
                              check=False)
        debs = sorted(deb_dir.glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            raise AutomixError(one_line(f"apt-get download {package} failed: {proc.stderr.strip()[-300:]}"))
    return debs[-1]


def unpack(deb: Path, root: Path) -> None:
    """``dpkg-deb -x`` into ``root`` once (a half-unpacked tree from a killed run is redone)."""
    if (root / UNPACKED_MARKER).is_file():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / UNPACKED_MARKER).write_text(deb.name + "\n")


def unpacked(package: str, cache_dir: Path, log: Log) -> Path:
    """``cache_dir/unpacked/<package>``: the package's files, downloaded (into ``cache_dir/debs``)
    and unpacked only when no finished tree is there, so a second call needs no network.

    Raises:
        AutomixError: the package had to be downloaded and could not be.
    """
    root = Path(cache_dir) / "unpacked" / package
    if not (root / UNPACKED_MARKER).is_file():
        deb_dir = Path(cache_dir) / "debs"
        deb_dir.mkdir(parents=True, exist_ok=True)
        unpack(download(package, deb_dir, log), root)
    return root

"""``automix data ...`` commands: synthetic multitracks, the reference-song corpus, the real-balance corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from automix.cli_common import handles_errors

app = typer.Typer(help="Build training data: synthetic multitracks and real reference songs.",
                  no_args_is_help=True)


@app.command()
@handles_errors
def synth(
    out: Annotated[Path, typer.Option(help="output folder (train/val/test inside)")] = Path("data/synth"),
    songs: Annotated[int, typer.Option(help="number of songs")] = 320,
    seconds: Annotated[float, typer.Option(help="length of each song in seconds")] = 30.0,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same dataset")] = 1,
    jobs: Annotated[int, typer.Option(help="parallel processes")] = 2,
) -> None:
    """Render synthetic multitracks (dry stems + arranger mix + song.json per song)."""
    from automix.data.synth import synth_dataset

    synth_dataset(out, songs, seconds, seed, jobs)


@app.command()
@handles_errors
def refs(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("data/refs"),
    packages: Annotated[list[str] | None, typer.Option(help="Debian music packages (default: all)")] = None,
    max_seconds: Annotated[float, typer.Option(help="cap on each track's length in seconds")] = 120.0,
    max_tracks: Annotated[int, typer.Option(help="stop after this many tracks")] = 400,
) -> None:
    """Download Debian game-music packages and decode them to 44.1 kHz stereo FLAC + manifest.csv."""
    from automix.data.refs import DEFAULT_PACKAGES, build_refs

    build_refs(out, packages or list(DEFAULT_PACKAGES), max_seconds, max_tracks)


@app.command()
@handles_errors
def real(
    out: Annotated[Path, typer.Option(help="output folder (train/val/test inside)")] = Path("data/real"),
    family: Annotated[list[str] | None, typer.Option(help="source family: tracker, midi, hydrogen (default: all)")]
    = None,
    max_seconds: Annotated[float, typer.Option(help="cap on each song's excerpt in seconds")] = 30.0,
    max_songs: Annotated[int | None, typer.Option(help="stop after this many songs (default: all found)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the package/author split")] = 0,
    jobs: Annotated[int, typer.Option(help="parallel processes")] = 2,
) -> None:
    """Songs whose authors set every level and pan (tracker modules, MIDI, Hydrogen) from Debian packages:
    loudness-normalised mono stems + the author's mix + per-track truth in song.json."""
    from automix.data.human_mix import FAMILIES
    from automix.data.real import build_real

    build_real(out, family or list(FAMILIES), max_seconds, jobs, seed, max_songs)


if __name__ == "__main__":
    app()

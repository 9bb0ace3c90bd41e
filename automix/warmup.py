"""Compile every audio kernel ahead of the first real mix: ``python -m automix.warmup``.

The kernels compile on first use and are cached on disk (:mod:`automix.kernel_cache`); without
this step a fresh install's first ``automix mix`` spends ≈ 12 s compiling. The set-up
(``make venv``) runs it once. It mixes a few seconds of generated stems in every input format the
decoder has a kernel for (16-/24-bit and float WAV, mono and stereo, FLAC, a second sample rate),
in memory and streamed, with the default mixer and ``rules``, with processed stems out, and
renders the written settings again, all in a temporary folder.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

WARMUP_SECONDS = 3.0
WARMUP_RATE_HZ = 44100


@dataclass(frozen=True)
class WarmupReport:
    """What a warm-up did: kernels cold before and after, wall time (s), cache folders."""

    cold_before: int
    cold_after: list[str]
    seconds: float
    cache_folders: list[str]


def _tone(freq_hz: float, seconds: float, rate_hz: int, seed: int) -> np.ndarray:
    """A decaying tone with a little noise, ``(samples,)`` float32 at about −12 dBFS."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    envelope = np.exp(-3.0 * (t % 0.5))
    noise = np.random.default_rng(seed).normal(0.0, 0.02, t.size)
    return (0.25 * envelope * np.sin(2 * np.pi * freq_hz * t) + noise).astype(np.float32)


def write_warmup_stems(folder: Path, seconds: float = WARMUP_SECONDS) -> Path:
    """Generated stems, one per decoder path; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = (  # (file, channels, subtype, rate): each decoder kernel and the resampler once
        ("kick.wav", 1, "PCM_16", WARMUP_RATE_HZ), ("bass.wav", 2, "PCM_24", WARMUP_RATE_HZ),
        ("pad.wav", 2, "FLOAT", WARMUP_RATE_HZ), ("lead.flac", 1, "PCM_24", WARMUP_RATE_HZ),
        ("hats.wav", 2, "PCM_16", 48000),
    )
    for k, (name, channels, subtype, rate) in enumerate(kinds):
        mono = _tone(55.0 * 2 ** k, seconds, rate, seed=k)
        audio = np.stack([mono, 0.8 * mono], axis=1) if channels == 2 else mono
        sf.write(folder / name, audio, rate, subtype=subtype)
    return folder


def _analysis_kernels() -> None:
    """Kernels the mix path does not reach (reverse, eval, style transfer measure with them;
    ``render`` of a mix.json with EQ-band lanes runs the time-varying section)."""
    from automix.console.compressor import detector_power, smoothed_gain
    from automix.console.eq_ride import EQ_UPDATE_SAMPLES
    from automix.console.render_kernels import _varying_section
    from automix.mixers.descriptors import frame_power

    identity = np.tile(np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), (4, 1))
    y = np.zeros((2, 4 * EQ_UPDATE_SAMPLES))
    _varying_section(y, identity, 0, EQ_UPDATE_SAMPLES, np.zeros((2, 2)), 0.0, np.zeros(1), np.zeros(y.shape[1]), 1e-12)

    x = np.stack([_tone(220.0, 1.0, WARMUP_RATE_HZ, 0)] * 2)
    power = detector_power(x, WARMUP_RATE_HZ)
    smoothed_gain(np.minimum(1.0, 1e-2 / power), 10.0, 100.0, WARMUP_RATE_HZ)
    for audio in (x, x.astype(np.float64)):  # both dtypes the callers pass
        frame_power(audio, WARMUP_RATE_HZ)


def warm_up(log: Callable[[str], None] | None = None) -> WarmupReport:
    """Run the mix paths once so every kernel is compiled and cached."""
    from automix import engine
    from automix.kernel_cache import cache_folders, cold_kernels
    from automix.mixers import DEFAULT_MIXER

    started = time.perf_counter()
    cold_before = len(cold_kernels())
    with tempfile.TemporaryDirectory(prefix="automix-warmup-") as tmp:
        stems = write_warmup_stems(Path(tmp) / "stems")
        for k, (model, stream) in enumerate(((DEFAULT_MIXER, False), ("rules", True))):
            out = Path(tmp) / f"mix{k}.wav"
            engine.mix(stems, out, model=model, stream=stream, stems_out=Path(tmp) / f"tracks{k}", log=None)
            engine.render(stems, out.with_suffix(".json"), Path(tmp) / f"again{k}.wav", log=None)
        _analysis_kernels()
    report = WarmupReport(cold_before, cold_kernels(), time.perf_counter() - started, cache_folders())
    if log is not None:
        log(f"compiled {report.cold_before - len(report.cold_after)} audio kernels in {report.seconds:.1f} s "
            f"(cached in {', '.join(report.cache_folders)})")
        if report.cold_after:
            log(f"not compiled by the warm-up (they compile on first use): {', '.join(report.cold_after)}")
    return report


def main() -> None:
    """``python -m automix.warmup``: warm up and say what it compiled. A kernel left cold is reported,
    not fatal: it only costs time on first use, and the set-up must not fail over it."""
    warm_up(lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    main()

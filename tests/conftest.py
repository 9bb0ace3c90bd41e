"""Shared fixtures: deterministic generated stems (no audio files are checked in for tests).

``synth`` offers generators returning float32 ``(channels, samples)``; ``song_dir`` writes a
small five-stem song (kick, bass, pad, lead vocal, hats) with mixed rates and channel counts.
"""

from __future__ import annotations

import os

# Before torch loads: idle OpenMP threads spin on a busy 2-core machine and slow small ops 2-50x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

SR = 44100


def _t(duration_s: float, sr: int) -> np.ndarray:
    return np.arange(round(duration_s * sr)) / sr


def kick(duration_s: float = 2.0, sr: int = SR, period_s: float = 0.5) -> np.ndarray:
    """Mono kick drum: a 120 → 50 Hz pitch drop with a fast decay, every ``period_s``."""
    out = np.zeros(round(duration_s * sr))
    hit = _t(0.3, sr)
    freq = 50.0 + 70.0 * np.exp(-hit / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    one = 0.9 * np.exp(-hit / 0.06) * np.sin(phase)
    for start in range(0, out.size, int(period_s * sr)):
        end = min(out.size, start + one.size)
        out[start:end] += one[: end - start]
    return out[None].astype(np.float32)


def bass(duration_s: float = 2.0, sr: int = SR) -> np.ndarray:
    """Mono sustained bass line: sines at 55 and 73.4 Hz with a little second harmonic."""
    t = _t(duration_s, sr)
    freq = np.where((t % 1.0) < 0.5, 55.0, 73.42)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return (0.5 * np.sin(phase) + 0.1 * np.sin(2 * phase))[None].astype(np.float32)


def pad(duration_s: float = 2.0, sr: int = SR, seed: int = 1) -> np.ndarray:
    """Wide stereo pad: a detuned A-minor chord with different phases per channel."""
    rng = np.random.default_rng(seed)
    t = _t(duration_s, sr)
    chans = []
    for ch in range(2):
        x = np.zeros_like(t)
        for f in (220.0, 261.6, 329.6, 440.0):
            detune = 1.0 + (0.003 if ch else -0.003)
            x += np.sin(2 * np.pi * f * detune * t + rng.uniform(0, 2 * np.pi))
        chans.append(0.1 * x * np.minimum(1.0, t / 0.3))
    return np.stack(chans).astype(np.float32)


def lead(duration_s: float = 2.0, sr: int = SR) -> np.ndarray:
    """Mono vocal-like lead: a melody with vibrato and harmonics, notes with gaps."""
    t = _t(duration_s, sr)
    notes = np.array([440.0, 494.0, 523.3, 587.3, 659.3, 587.3, 523.3, 494.0])
    freq = notes[(t / 0.25).astype(int) % notes.size] * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    gate = ((t % 0.25) < 0.21).astype(float)
    return (0.25 * tone * gate)[None].astype(np.float32)


def hats(duration_s: float = 2.0, sr: int = SR, seed: int = 2) -> np.ndarray:
    """Mono hi-hat: high-passed noise bursts with a 25 ms decay every 125 ms."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(round(duration_s * sr))
    bright = np.diff(np.diff(noise, prepend=0.0), prepend=0.0)  # two differentiators ≈ 12 dB/oct tilt up
    t = _t(duration_s, sr)
    env = np.exp(-(t % 0.125) / 0.025)
    return (0.15 * bright * env)[None].astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int = SR) -> Path:
    """Write float32 ``(channels, samples)`` to ``path`` (format from the extension)."""
    sf.write(str(path), audio.T, sr, subtype="FLOAT" if path.suffix == ".wav" else None)
    return path


def write_song(folder: Path, duration_s: float = 2.0, names: dict[str, str] | None = None) -> Path:
    """The five-stem test song: kick, bass (48 kHz), pad (stereo FLAC), lead vocal, hats."""
    names = names or {}
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / names.get("kick", "kick.wav"), kick(duration_s))
    write(folder / names.get("bass", "bass.wav"), bass(duration_s, 48000), 48000)
    write(folder / names.get("pad", "pad.flac"), pad(duration_s))
    write(folder / names.get("lead", "lead_vocal.wav"), lead(duration_s))
    write(folder / names.get("hats", "hats.wav"), hats(duration_s))
    return folder


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """Stem generators and writers for tests."""
    return SimpleNamespace(kick=kick, bass=bass, pad=pad, lead=lead, hats=hats, write=write,
                           write_song=write_song, SR=SR)


@pytest.fixture
def song_dir(tmp_path: Path) -> Path:
    """A folder with the five-stem test song (2 s)."""
    return write_song(tmp_path / "stems")


# ---- training configs for tests that must fail before any data work ---------------------------

SMOKE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The smoke training config with its data and output inside ``tmp_path`` (the data do not exist)."""
    text = (SMOKE_CONFIG.read_text(encoding="utf-8")
            .replace("songs_root: data/synth", f"songs_root: {tmp_path / 'synth'}")
            .replace("cache_dir: data/cache", f"cache_dir: {tmp_path / 'cache'}")
            .replace("out_dir: runs/smoke", f"out_dir: {tmp_path / 'run'}"))
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def no_data_work(monkeypatch):
    """Fail the test if training gets as far as preparing data (the slow cache)."""
    from automix.train import loop

    def forbidden(*args, **kwargs):
        raise AssertionError("reached the training data before validating the input")

    monkeypatch.setattr(loop, "make_dataset", forbidden)
    monkeypatch.setattr(loop.samplers, "cache_song", forbidden)

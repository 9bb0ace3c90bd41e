"""Rendering a tracker module per channel with libopenmpt: each channel soloed, and all as the author's mix.

A module stores its author's whole balance: per-channel volume and pan, sample/instrument
volumes and pans, global volume. Rendering the song once with every channel and once per
channel with all the others muted gives the author's mix and each track at the author's level;
the soloed renders must sum to the mix (:data:`MAX_SUM_ERROR`).

Render settings are libopenmpt's defaults, read back into the notes: stereo separation 100 %,
interpolation filter 0 (the library's default, an 8-tap windowed sinc in 0.6), volume ramping
-1 (default strength); repeat count 0 and ``play.at_end=stop`` so a song that loops ends
instead of playing again (:class:`~automix.data.openmpt.Module`).
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from pathlib import Path

import numpy as np

from automix.data.human_mix import HumanMix, SourceFile, audible
from automix.data.openmpt import (
    RENDER_INTERPOLATION_FILTER,
    RENDER_STEREO_SEPARATION,
    RENDER_VOLUME_RAMPING,
    opened,
)
from automix.errors import AutomixError, one_line

BLOCK_FRAMES = 512  # frames per read: rows are >= ~20 ms, so a block this short sees almost every row
MAX_INTRO_SKIP_S = 20.0
INTRO_SKIP_FRACTION = 0.1
MAX_SUM_ERROR = 1e-3
"""Largest relative RMS of (mix − Σ soloed channels) accepted; libopenmpt mixes linearly, ~1e-7."""


def excerpt_offset_s(duration_s: float, max_seconds: float) -> float:
    """Where the excerpt starts: 0 for a song no longer than ``max_seconds``, else 10 % of its
    duration (skips a quiet intro), at most 20 s and never so late that the excerpt is cut short."""
    if not np.isfinite(duration_s):
        return MAX_INTRO_SKIP_S
    if duration_s <= max_seconds:
        return 0.0
    return max(0.0, min(INTRO_SKIP_FRACTION * duration_s, MAX_INTRO_SKIP_S, duration_s - max_seconds))


def _render_pass(data: bytes, label: str, sample_rate: int, offset_s: float, n_frames: int,
                 solo: int | None, watch: bool = False) -> tuple[np.ndarray, dict]:
    """One render of the excerpt, all channels or one soloed: ``(2, n_frames)`` float32 (zero after
    the song's end). With ``watch``, also returns the (pattern, row)s played and each channel's peak VU."""
    audio = np.zeros((2, n_frames), dtype=np.float32)
    seen: dict = {"rows": [], "vu": None, "offset_s": offset_s}
    with opened(data, label) as module:
        if solo is not None:
            module.solo(solo)
        seen["offset_s"] = module.seek(offset_s) if offset_s > 0 else 0.0
        if solo is not None:
            module.solo(solo)  # again after the seek, in case seeking reset channel flags
        vu = np.zeros(module.n_channels)
        block = np.zeros((2, BLOCK_FRAMES), dtype=np.float32)
        done = 0
        while done < n_frames:
            want = min(BLOCK_FRAMES, n_frames - done)
            got = module.read(sample_rate, block[:, :want] if want < BLOCK_FRAMES else block)
            if got == 0:
                break
            audio[:, done:done + got] = block[:, :got]
            done += got
            if watch:
                seen["rows"].append(module.position())
                vu = np.maximum(vu, [module.channel_vu(ch) for ch in range(len(vu))])
        seen["vu"], seen["frames"] = vu, done
    return audio, seen


def _clean_name(name: str, song_words: str = "") -> str:
    """A readable track name from an instrument/sample name; ``""`` if it says nothing.

    Many modules spell their song message in the instrument names ("Arranged by", the
    author's address): a name that looks like that, or that is part of ``song_words`` (the
    title and author), is not a track name.
    """
    low = name.strip().lower()
    if re.search(r"\bby\b|@|https?:|www\.|\(c\)|©|\.(com|net|org)\b", low):
        return ""
    name = name.split(":")[0] if sum(ch.isalpha() for ch in name.split(":")[0]) >= 2 else name  # "bass:elwood"
    name = re.sub(r"\.(wav|smp|iff|aif|aiff|raw|8svx)\b", "", name.strip(), flags=re.IGNORECASE)
    name = re.sub(r"[^\w.+#&' -]+", " ", name)
    name = " ".join(name.split())[:32]
    if name.lower() in song_words.lower() or sum(ch.isalpha() for ch in name) < 2:
        return ""
    return name


def _track_names(data: bytes, label: str, rows: list[tuple[int, int]], n_channels: int, author: str) -> list[str]:
    """Per channel, the name of the instrument (or sample) it triggers most in the played rows."""
    names = []
    with opened(data, label) as module:
        song_words = f"{module.metadata('title')}\n{module.metadata('artist')}\n{author}"
        unique_rows = list(dict.fromkeys(rows))
        for channel in range(n_channels):
            counts = Counter(module.instrument_at(p, r, channel) for p, r in unique_rows)
            counts.pop(0, None)
            name = ""
            for number, _count in counts.most_common():
                name = _clean_name(module.instrument_name(number), song_words)
                if name:
                    break
            names.append(name or f"ch{channel + 1}")
    return names


def without_random_swing(data: bytes) -> bytes:
    """An Impulse Tracker module with its instruments' random volume/pan swing set to 0.

    libopenmpt seeds its random generator from the system on every load, so an instrument with
    swing sounds different in every render and soloed renders cannot sum to the full one. With
    the swing at 0 every note plays at the instrument's set volume and pan: the centre of the
    author's random range. Other files are returned unchanged.
    """
    if data[:4] != b"IMPM" or len(data) < 0xC0:
        return data
    n_orders, n_instruments = struct.unpack_from("<2H", data, 0x20)
    compatible_version = struct.unpack_from("<H", data, 0x2A)[0]
    if compatible_version < 0x200:  # old-format instruments have no swing fields
        return data
    patched = bytearray(data)
    table = 0xC0 + n_orders
    for index in range(n_instruments):
        if table + 4 * index + 4 > len(data):
            break
        offset = struct.unpack_from("<I", data, table + 4 * index)[0]
        if offset + 0x1C <= len(data) and data[offset:offset + 4] == b"IMPI":
            patched[offset + 0x1A] = 0  # random volume variation (%)
            patched[offset + 0x1B] = 0  # random panning variation
    return bytes(patched)


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))


def _render_all(data: bytes, label: str, sample_rate: int, max_seconds: float) -> dict:
    """The full render and every channel that sounds in the excerpt, soloed (see :func:`render`)."""
    with opened(data, label) as module:
        duration_s, n_channels = module.duration_s, module.n_channels
        settings = {name: module.render_param(param) for name, param in (
            ("stereo_separation_percent", RENDER_STEREO_SEPARATION),
            ("interpolation_filter", RENDER_INTERPOLATION_FILTER),
            ("volume_ramping", RENDER_VOLUME_RAMPING))}
        subsongs = module.n_subsongs
        with_notes = module.channels_with_notes()
    offset_s = excerpt_offset_s(duration_s, max_seconds)
    # +1 s so a song that ends early ends by itself (the read returns 0) rather than by the cap
    n_frames = round(min(max_seconds, max(duration_s - offset_s, 0.0) + 1.0) * sample_rate)
    mix, seen = _render_pass(data, label, sample_rate, offset_s, n_frames, solo=None, watch=True)
    n_frames = seen["frames"]
    mix = mix[:, :n_frames]
    if n_frames == 0 or not np.any(mix):
        raise AutomixError(f"{label}: the excerpt is silent")
    # Only channels whose VU meter moved in the full render are rendered first (most songs
    # leave many channels empty); the VU misses some voices, so if those channels do not sum
    # to the mix, every other channel with a note anywhere in the song is rendered too.
    channels: dict[int, np.ndarray] = {}
    total = np.zeros(mix.shape, dtype=np.float64)
    error = 1.0
    for pick in (lambda ch: seen["vu"][ch] > 0.0, lambda ch: ch in with_notes):
        for channel in range(n_channels):
            if channel not in channels and pick(channel):
                channels[channel] = _render_pass(data, label, sample_rate, offset_s, n_frames, solo=channel)[0]
                total += channels[channel]
        error = _rms(mix - total) / _rms(mix)
        if error <= MAX_SUM_ERROR:
            break
    return {"mix": mix, "channels": dict(sorted(channels.items())), "seen": seen, "n_channels": n_channels,
            "error": error, "settings": settings, "subsongs": subsongs}


def render(source: SourceFile, sample_rate: int = 44100, max_seconds: float = 30.0) -> HumanMix:
    """Render an excerpt of a module: each channel soloed (tracks) and all together (mix).

    The excerpt is at most ``max_seconds`` long and starts at :func:`excerpt_offset_s`. Each
    track is ``(2, N)`` float32 at ``sample_rate`` Hz: one pattern channel with everything the
    author set (channel, sample/instrument and global volumes and pans); channels silent or
    inaudible (:func:`~automix.data.human_mix.audible`) in the excerpt are dropped. Track names
    are the instrument/sample the channel plays most in the excerpt, else ``ch<n>`` (1-based).
    A module with random instrument swing is rendered without it (:func:`without_random_swing`).
    Raises AutomixError if the file cannot be loaded, the excerpt is silent, or the soloed
    channels do not sum to the mix (relative RMS error above :data:`MAX_SUM_ERROR`).
    """
    if sample_rate <= 0 or max_seconds <= 0:
        raise AutomixError("sample_rate and max_seconds must be > 0")
    label = f"{source.package}:{source.source_path}"
    try:
        data = Path(source.path).read_bytes()
    except OSError as exc:
        raise AutomixError(one_line(f"cannot read {label}: {exc}")) from exc
    notes = []
    result = _render_all(data, label, sample_rate, max_seconds)
    if result["error"] > MAX_SUM_ERROR and without_random_swing(data) != data:
        data = without_random_swing(data)
        result = _render_all(data, label, sample_rate, max_seconds)
        notes.append("instrument random volume/pan swing set to 0 (libopenmpt's random seed is not settable)")
    if result["error"] > MAX_SUM_ERROR:
        raise AutomixError(f"{label}: soloed channels do not sum to the mix (relative RMS error "
                           f"{result['error']:.2e}; random effects or a non-linear plugin)")
    mix, seen = result["mix"], result["seen"]
    names = _track_names(data, label, seen["rows"], result["n_channels"], source.author)
    tracks, quiet = [], []
    for channel, audio in result["channels"].items():
        if audible(audio, sample_rate):
            tracks.append((names[channel], audio))
        else:
            quiet.append(channel + 1)
    silent = [ch + 1 for ch in range(result["n_channels"]) if ch not in result["channels"]]
    notes += [f"libopenmpt render params {result['settings']}",
              f"subsongs: {result['subsongs']} (libopenmpt's default selection played)",
              f"sum-of-channels error: {result['error']:.2e} relative RMS"]
    if silent:
        notes.append(f"channels silent in the excerpt: {silent}")
    if quiet:
        notes.append(f"channels dropped as inaudible: {quiet}")
    return HumanMix(source=source, sample_rate=sample_rate, tracks=tracks, mix=mix, offset_s=seen["offset_s"],
                    notes=notes)

"""Pick representative excerpts ("analysis windows") of a multitrack and of a reference.

Style transfer, refinement and reverse engineering look at a few short excerpts instead of
the whole song (the differentiable console and the losses are too slow for minutes of
audio). The excerpts must represent the song: the loudest and most active sections, not the
first seconds, so a quiet intro or a fade-out does not decide the mix.

Everything works on frame energies with a fixed hop, so choosing windows costs one pass over
the audio. Audio arrays are float32 ``(channels, samples)`` as everywhere in automix.
"""

from __future__ import annotations

import numpy as np

HOP_S = 0.1
"""Frame hop of the activity curves, seconds."""

ACTIVE_RANGE_DB = 30.0
"""A stem counts as playing in a frame when it is within this many dB of its own loudest frame."""

_SILENCE_POWER = 1e-12  # mean-square floor (−120 dBFS) so empty frames give finite dB values


def frame_power(audio: np.ndarray, sample_rate: int, hop_s: float = HOP_S) -> np.ndarray:
    """Mean-square power (channels averaged) of consecutive frames.

    Args:
        audio: ``(channels, samples)``.
        sample_rate: Hz.
        hop_s: frame length = hop, seconds.

    Returns:
        ``(frames,)`` float64 with ``frames = ceil(samples / hop)``; the last frame is zero-padded.
    """
    hop = max(1, round(hop_s * sample_rate))
    x = np.asarray(audio, dtype=np.float64)
    n = x.shape[-1]
    frames = max(1, -(-n // hop))
    padded = np.zeros((x.shape[0], frames * hop))
    padded[:, :n] = x
    return (padded.reshape(x.shape[0], frames, hop) ** 2).mean(axis=(0, 2))


def multitrack_activity(stems: list[np.ndarray], sample_rate: int, hop_s: float = HOP_S) -> np.ndarray:
    """Per-frame score of how much of the arrangement plays, and how loud it is.

    The score is the fraction of stems playing (within :data:`ACTIVE_RANGE_DB` of their
    own loudest frame) plus a level term in [0, 1] that rises by 1 over 40 dB up to the
    loudest frame of the stem sum. Activity dominates, level breaks ties.

    Returns:
        ``(frames,)`` float64, the length of the longest stem.
    """
    if not stems:
        raise ValueError("no stems")
    powers = [frame_power(s, sample_rate, hop_s) for s in stems]
    frames = max(len(p) for p in powers)
    table = np.zeros((len(stems), frames))
    for i, p in enumerate(powers):
        table[i, : len(p)] = p
    db = 10.0 * np.log10(table + _SILENCE_POWER)
    peak_db = db.max(axis=1, keepdims=True)
    playing = (db > peak_db - ACTIVE_RANGE_DB) & (table > _SILENCE_POWER * 10)
    active_fraction = playing.mean(axis=0)
    sum_db = 10.0 * np.log10(table.sum(axis=0) + _SILENCE_POWER)
    level = np.clip(1.0 + (sum_db - sum_db.max()) / 40.0, 0.0, 1.0)
    return active_fraction + level


def signal_activity(audio: np.ndarray, sample_rate: int, hop_s: float = HOP_S) -> np.ndarray:
    """Per-frame level score in [0, 1] of one signal (e.g. a reference mix): 1 at its loudest frame."""
    db = 10.0 * np.log10(frame_power(audio, sample_rate, hop_s) + _SILENCE_POWER)
    return np.clip(1.0 + (db - db.max()) / 40.0, 0.0, 1.0)


def pick_windows(
    activity: np.ndarray, window_frames: int, count: int, total_frames: int | None = None
) -> list[int]:
    """Greedily choose up to ``count`` non-overlapping windows with the highest mean score.

    Args:
        activity: ``(frames,)`` per-frame score.
        window_frames: window length in frames.
        count: how many windows at most (fewer when the signal is too short to fit them).
        total_frames: length to consider (defaults to ``len(activity)``).

    Returns:
        Start frames, sorted in time. A signal shorter than one window gives ``[0]``.
    """
    if count < 1 or window_frames < 1:
        raise ValueError("count and window_frames must be positive")
    total = len(activity) if total_frames is None else total_frames
    if total <= window_frames:
        return [0]
    cumsum = np.concatenate([[0.0], np.cumsum(activity[:total])])
    scores = (cumsum[window_frames:] - cumsum[:-window_frames]) / window_frames  # one per start frame
    taken = np.zeros(len(scores), dtype=bool)
    starts: list[int] = []
    for _ in range(count):
        candidates = np.where(taken, -np.inf, scores)
        best = int(np.argmax(candidates))
        if not np.isfinite(candidates[best]):
            break
        starts.append(best)
        # Starts closer than one window to a chosen start would overlap it.
        taken[max(0, best - window_frames + 1): best + window_frames] = True
    return sorted(starts)


def window_starts_samples(
    activity: np.ndarray, sample_rate: int, window_s: float, count: int, n_samples: int,
    hop_s: float = HOP_S,
) -> list[int]:
    """:func:`pick_windows` in samples: start samples of ``window_s``-second windows."""
    hop = max(1, round(hop_s * sample_rate))
    window_frames = max(1, round(window_s * sample_rate / hop))
    total_frames = max(1, (n_samples - round(window_s * sample_rate)) // hop + window_frames)
    starts = pick_windows(activity, window_frames, count, min(total_frames, len(activity)))
    return [min(s * hop, max(0, n_samples - round(window_s * sample_rate))) for s in starts]


def cut(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    """``audio[:, start:start+length]``, zero-padded to ``length`` samples if the signal ends first."""
    out = np.zeros((audio.shape[0], length), dtype=np.float32)
    piece = audio[:, start: start + length]
    out[:, : piece.shape[1]] = piece
    return out


def multitrack_windows(
    stems: list[np.ndarray], sample_rate: int, window_s: float, count: int
) -> tuple[list[list[np.ndarray]], list[int]]:
    """The ``count`` most active ``window_s``-second excerpts of a multitrack.

    Returns:
        ``(windows, starts)``: ``windows[w][k]`` is stem ``k`` in window ``w`` as
        ``(channels, window_samples)`` float32; ``starts`` are the start samples.
    """
    length = round(window_s * sample_rate)
    n = max(s.shape[-1] for s in stems)
    starts = window_starts_samples(multitrack_activity(stems, sample_rate), sample_rate, window_s, count, n)
    return [[cut(s, st, length) for s in stems] for st in starts], starts


def signal_windows(
    audio: np.ndarray, sample_rate: int, window_s: float, count: int
) -> tuple[list[np.ndarray], list[int]]:
    """The ``count`` loudest ``window_s``-second excerpts of one signal, as ``(channels, samples)``."""
    length = round(window_s * sample_rate)
    starts = window_starts_samples(
        signal_activity(audio, sample_rate), sample_rate, window_s, count, audio.shape[-1]
    )
    return [cut(audio, st, length) for st in starts], starts

"""Try descriptors that need the stems' audio frame by frame (melody, echoes) in the forest's CV.

Companion to ``scripts/cv_balance_features.py``, whose variants derive from the cached per-track
descriptors; these need every stem's STFT, so they are computed here from the corpus audio
(cached in ``--cache``). Two ideas of what sets an author's level beyond a track's spectrum:

* **Melody.** The line on top is usually the loudest part, the accompaniment under it quieter.
  Per track: median and spread of the dominant pitch (60–4,000 Hz, octaves re 1 kHz), how
  often it moves, chroma entropy (a single line vs chords), the share of its frames where it is
  the highest or the lowest sounding track, and its register relative to the song.
* **Echoes and doublings.** Trackers copy a line to a second channel a few rows later at a lower
  volume; arrangers double parts. Per track: the best onset-envelope correlation with another
  track at lag 0, as a delayed copy of one (lags 2–21 frames, 0.09–1 s) and as the original of
  one, and the best correlation of whole log-band spectrograms.

The learner, folds and report are those of ``scripts/cv_balance_models.py``. Results:
docs/results/real-cv/audio-features.txt. Use::

    python scripts/cv_balance_audio_features.py --corpus data/real
"""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from cv_balance_models import FOLDS, cv_corpus, fold_errors, report_line, shipped_forest

from automix.evaluate.features import balance_error_db
from automix.mixers.balance_features import song_features
from automix.train.balance import group_folds
from automix.train.corpus_table import join_tables

FFT = 4096
HOP = 2048
MAX_LAG = 21
"""Frames (≈ 1 s at 44.1 kHz): the longest delay looked at for an echo channel."""
BAND_EDGES_HZ = np.geomspace(40.0, 16000.0, 25)
ACTIVE_RANGE_DB = 30.0


def _stem_frames(path: Path) -> np.ndarray:
    """``(27, frames)``: 24 log-band powers, dominant pitch (oct re 1 kHz), chroma entropy (bits), frame dB."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = np.pad(audio.mean(axis=1), (0, FFT))
    count = max(1, (mono.size - FFT) // HOP)
    spectra = np.abs(np.fft.rfft(np.lib.stride_tricks.sliding_window_view(mono, FFT)[::HOP][:count]
                                 * np.hanning(FFT), axis=1)) ** 2
    freqs = np.fft.rfftfreq(FFT, 1.0 / rate)
    bands = [spectra[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in itertools.pairwise(BAND_EDGES_HZ)]
    tonal = (freqs >= 60.0) & (freqs <= 4000.0)
    pitch = np.log2(freqs[tonal][np.argmax(spectra[:, tonal], axis=1)] / 1000.0)
    pitch_class = np.round(69 + 12 * np.log2(freqs[tonal] / 440.0)).astype(int) % 12
    chroma = np.stack([spectra[:, tonal][:, pitch_class == c].sum(axis=1) for c in range(12)], axis=1) + 1e-20
    share = chroma / chroma.sum(axis=1, keepdims=True)
    entropy = -(share * np.log2(share)).sum(axis=1)
    frame_db = 10.0 * np.log10(spectra.sum(axis=1) + 1e-20)
    return np.vstack([np.array(bands), pitch, entropy, frame_db]).astype(np.float32)


def song_frames(folder: str) -> tuple[str, np.ndarray]:
    """The song id and ``(K, 27, frames)`` for its tracks, cut to the shortest."""
    meta = json.loads((Path(folder) / "song.json").read_text(encoding="utf-8"))
    frames = [_stem_frames(Path(folder) / t["file"]) for t in meta["tracks"]]
    length = min(f.shape[1] for f in frames)
    return meta["song_id"], np.stack([f[:, :length] for f in frames])


def _rank(values: np.ndarray) -> np.ndarray:
    if values.size == 1:
        return np.full(1, 0.5)
    return np.argsort(np.argsort(values, kind="stable"), kind="stable") / (values.size - 1)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-9)


def melody(frames: np.ndarray) -> np.ndarray:
    """``(K, 9)`` melody descriptors (module docstring)."""
    pitch, entropy, frame_db = frames[:, 24], frames[:, 25], frames[:, 26]
    active = frame_db >= np.percentile(frame_db, 95, axis=1, keepdims=True) - ACTIVE_RANGE_DB
    out = np.zeros((len(frames), 9))
    for i, playing in enumerate(active):
        if playing.sum() < 3:
            continue
        line = pitch[i, playing]
        above = np.zeros(line.size, dtype=bool)
        below = np.zeros(line.size, dtype=bool)
        for j in range(len(frames)):
            if j != i:
                above |= active[j, playing] & (pitch[j, playing] > line)
                below |= active[j, playing] & (pitch[j, playing] < line)
        out[i, :6] = (np.median(line), line.std(), np.mean(np.abs(np.diff(line)) > 0.04),
                      entropy[i, playing].mean(), 1.0 - above.mean(), 1.0 - below.mean())
    out[:, 6] = out[:, 0] - out[:, 0].mean()
    out[:, 7] = _rank(out[:, 0])
    out[:, 8] = out[:, 3] - out[:, 3].mean()
    return out


def echoes(frames: np.ndarray) -> np.ndarray:
    """``(K, 5)`` copy descriptors (module docstring): lag-0, delayed-copy, original-of, their
    difference, spectrogram similarity; 0 for a song too short or of one track."""
    count, length = len(frames), frames.shape[2] - 1 - MAX_LAG
    out = np.zeros((count, 5))
    if count < 2 or length < 50:
        return out
    band_db = 10.0 * np.log10(frames[:, :24] + 1e-12)
    band_db = np.maximum(band_db, band_db.max(axis=(1, 2), keepdims=True) - 60.0)
    onsets = np.clip(np.diff(band_db, axis=2), 0.0, None).sum(axis=1)
    now = _unit(onsets[:, MAX_LAG:MAX_LAG + length])
    past = np.stack([_unit(onsets[:, MAX_LAG - lag:MAX_LAG - lag + length]) for lag in range(MAX_LAG + 1)])
    shapes = _unit(band_db.reshape(count, -1))
    for i in range(count):
        others = [j for j in range(count) if j != i]
        copy_of = max(float((past[2:, j] @ now[i]).max()) for j in others)
        original_of = max(float((past[2:, i] @ now[j]).max()) for j in others)
        out[i] = (max(float(now[i] @ now[j]) for j in others), copy_of, original_of, copy_of - original_of,
                  max(float(shapes[i] @ shapes[j]) for j in others))
    return out


def cached_frames(corpus: Path, cache: Path, songs: list[str]) -> dict[str, np.ndarray]:
    path = cache / "audio-frames.npz"
    if path.is_file():
        stored = np.load(path)
        if set(songs) <= set(stored.files):
            return {s: stored[s] for s in songs}
    folders = [str(p.parent) for split in ("train", "val") for p in sorted((corpus / split).glob("*/song.json"))]
    with ProcessPoolExecutor(2) as pool:
        frames = dict(pool.map(song_frames, folders, chunksize=4))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_name(path.name + ".tmp.npz"), **frames)
    path.with_name(path.name + ".tmp.npz").replace(path)
    return {s: frames[s] for s in songs}


def main() -> None:
    args, tables, songs, families = cv_corpus(__doc__.splitlines()[0], threads=2)
    frames = cached_frames(args.corpus, args.cache, songs)
    shipped = [song_features(rows) for t in tables for rows in t.tracks]
    levels = [lv for t in tables for lv in t.levels]
    extra = {"melody": [melody(frames[s]) for s in songs], "echoes": [echoes(frames[s]) for s in songs]}
    variants = {
        "shipped descriptors": shipped,
        "+ melody": [np.concatenate([f, m], 1) for f, m in zip(shipped, extra["melody"])],
        "+ echoes and doublings": [np.concatenate([f, e], 1) for f, e in zip(shipped, extra["echoes"])],
        "+ both": [np.concatenate([f, m, e], 1) for f, m, e in zip(shipped, extra["melody"], extra["echoes"])],
    }
    folds = group_folds(join_tables(*tables).groups(), FOLDS)
    equal = np.array([balance_error_db(np.zeros(len(lv)), lv).mean() for lv in levels])
    print(f"{len(songs)} songs from {len({s.split('__')[0] for s in songs})} packages, {FOLDS} folds by package and composer")
    print(report_line("equal loudness", equal, equal, families), flush=True)
    for name, features in variants.items():
        errors = fold_errors(lambda: shipped_forest(args.threads), features, levels, folds)
        print(report_line(name, errors, equal, families), flush=True)

if __name__ == "__main__":
    main()

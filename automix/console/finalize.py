"""The output stage: loudness normalisation, then a true-peak look-ahead limiter.

``finalize(mix)`` turns the console's stereo output into a deliverable:

1. Measure the integrated loudness (BS.1770-4) and set a gain that reaches the target.
2. Limit: the oversampled (4×) peak of every sample interval gives the gain that interval
   needs to stay under the ceiling; a look-ahead minimum over :data:`LOOKAHEAD_MS` followed
   by a moving average of the same length lowers the gain smoothly *before* each peak, and
   an exponential release (:data:`RELEASE_MS`) lets it recover without distorting.
   Because the moving average only ever averages gains that are each low enough for the
   peak under it, the sample peaks never exceed the ceiling.
3. Limiting lowers loudness, so the gain is re-solved (secant steps on measured loudness)
   and the limiter re-run, up to :data:`MAX_PASSES` times, until the output is within
   :data:`LOUDNESS_TOLERANCE_LU` of the target.
4. Safety: the true peak of the float32 output is measured with the same oversampled meter
   as :func:`automix.console.loudness.true_peak_dbtp`; any remaining inter-sample over
   (gain modulation can create one) is removed by scaling the whole output down. (When a plain
   gain leaves the predicted peak clearly under the ceiling, this measurement is skipped: see
   :data:`PREDICTED_PEAK_MARGIN_DB`.)

Reachability rule: the limiter never takes more than :data:`MAX_LIMITER_DRIVE_DB` off the
highest peak. When a very crest-heavy mix would need more to reach the target, the output is
left quieter than the target (``report.output_lufs`` says by how much) instead of squashed;
``report.limiter_max_reduction_db`` is then ≈ ``MAX_LIMITER_DRIVE_DB``.

Guarantees: output float32, finite, ``true_peak_dbtp(out) <= ceiling_dbtp``, bit-identical on
repeated calls. Work is done in chunks (about 20 s each), so the extra memory beyond the
output array is a few hundred MB at most, whatever the length of the mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from automix.console.limiter_gain import limiter_gains
from automix.console.loudness import (
    SILENCE_LUFS,
    TRUE_PEAK_FLOOR_DB,
    LoudnessAccumulator,
    integrated_lufs,
    interval_peaks,
    true_peak_dbtp,
)
from automix.console.schema import DEFAULT_CEILING_DBTP, DEFAULT_TARGET_LUFS, FINALIZE
from automix.errors import ParamsError
from automix.io import ScratchAudio

LOOKAHEAD_MS = 2.0
"""Attack: the gain starts falling this long before a peak (≈ the period of 500 Hz)."""

RELEASE_MS = 50.0
"""Release time constant: gain reduction (in dB) decays by a factor e every 50 ms, so 12 dB
recovers to 1 dB in 125 ms and 3 dB to 1 dB in 55 ms. Much shorter would modulate within a
bass cycle (20 ms at 50 Hz) and distort; longer loses loudness on drums."""

MAX_LIMITER_DRIVE_DB = 12.0
"""The most gain reduction the limiter may apply to the highest peak (see the reachability rule)."""

MISSED_TARGET_NOTE_LU = 1.0
"""A mix this far under its loudness target gets a note saying why (see :func:`shortfall_note`)."""

LOUDNESS_TOLERANCE_LU = 0.2
"""Stop iterating once the output loudness is this close to the target."""

MAX_PASSES = 6
"""Limiter passes at most (each one re-measures loudness)."""

SAFETY_MARGIN_DB = 0.002
"""Extra reduction when the final safety scaling has to act (covers float32 rounding)."""

PREDICTED_PEAK_MARGIN_DB = 0.01
"""A plain gain scales the true peak exactly, up to float32 rounding of the output and of the
meter's arithmetic (a relative error of a few 1e-6, i.e. ≲ 1e-4 dB). When the input's measured
peak plus the gain is at least this far under the ceiling, the output is not measured again
(saves a full oversampled pass) and the report gives the predicted peak."""

_CHUNK_SAMPLES = 1 << 20
_EXACT_SHIFT_MIN_LUFS = -55.0  # below this, re-measure instead of adding the gain to the input loudness
_CACHE_ENVELOPE_MAX_SAMPLES = 1 << 26  # keep the peak envelope between passes up to ~25 min at 44.1 kHz


@dataclass
class FinalizeReport:
    """What the output stage did. Levels in LUFS / dBTP, gains in dB.

    Attributes:
        input_lufs: integrated loudness of the mix as given.
        gain_db: gain applied before the limiter (after the safety scaling is folded in).
        output_lufs: integrated loudness of the returned audio.
        true_peak_dbtp: true peak of the returned audio (measured; when a plain gain left it at
            least ``PREDICTED_PEAK_MARGIN_DB`` under the ceiling, the input's measured peak plus
            the gain, within 1e-3 dB of a measurement).
        limiter_max_reduction_db: the largest gain reduction the limiter applied (≥ 0).
        passes: limiter passes run (0 when a plain gain met the ceiling, or for silence).
        silent: True when the mix was silence (below the −70 LUFS gate) and was returned as is.
    """

    input_lufs: float
    gain_db: float
    output_lufs: float
    true_peak_dbtp: float
    limiter_max_reduction_db: float
    passes: int = 0
    silent: bool = False


def _check_level(name: str, value: float) -> float:
    spec = FINALIZE.spec(name)
    value = float(value)
    if not spec.contains(value):
        raise ParamsError(f"{name}: {value:g} {spec.unit} is outside [{spec.minimum:g}, {spec.maximum:g}]")
    return value


Audio = np.ndarray | ScratchAudio
"""The mix and the output: arrays in memory, or float32 scratch files on disk (long songs)."""

_PEAK_CONTEXT = 16  # samples of context either side for interval_peaks (≥ its half filter length)


def _read(audio: Audio, start: int, stop: int) -> np.ndarray:
    return audio.read(start, stop) if isinstance(audio, ScratchAudio) else audio[:, start:stop]


def _write(audio: Audio, start: int, block: np.ndarray) -> None:
    if isinstance(audio, ScratchAudio):
        audio.write(start, block)
    else:
        audio[:, start:start + block.shape[1]] = block


def _peaks(audio: Audio, start: int, stop: int) -> np.ndarray:
    """:func:`interval_peaks` of ``[start, stop)``; a scratch file is read with context margins."""
    if not isinstance(audio, ScratchAudio):
        return interval_peaks(audio, start, stop)
    block = audio.read(start - _PEAK_CONTEXT, stop + _PEAK_CONTEXT)  # zeros outside the audio
    return interval_peaks(block, _PEAK_CONTEXT, _PEAK_CONTEXT + stop - start)


def _lufs(audio: Audio, sample_rate: int) -> float:
    if not isinstance(audio, ScratchAudio):
        return integrated_lufs(audio, sample_rate)
    meter = LoudnessAccumulator(sample_rate, audio.channels)
    for start in range(0, audio.frames, _CHUNK_SAMPLES):
        meter.push(audio.read(start, min(start + _CHUNK_SAMPLES, audio.frames)))
    return meter.lufs()


def _true_peak(audio: Audio, sample_rate: int) -> float:
    if not isinstance(audio, ScratchAudio):
        return true_peak_dbtp(audio, sample_rate)
    peak = 0.0
    for start in range(0, audio.frames, _CHUNK_SAMPLES):
        peak = max(peak, float(_peaks(audio, start, min(start + _CHUNK_SAMPLES, audio.frames)).max()))
    return 20.0 * math.log10(peak) if peak > 0 else TRUE_PEAK_FLOOR_DB


def _check_mix(mix: Audio) -> None:
    if not isinstance(mix, ScratchAudio):
        if not isinstance(mix, np.ndarray) or mix.ndim != 2 or not 1 <= mix.shape[0] <= 5:
            raise ValueError(f"mix must be a (channels, samples) array, got shape {np.shape(mix)}")
        if not np.issubdtype(mix.dtype, np.floating):
            raise ValueError(f"mix must be floating point, got {mix.dtype}")
    for start in range(0, mix.shape[1], _CHUNK_SAMPLES):
        if not np.isfinite(_read(mix, start, start + _CHUNK_SAMPLES)).all():
            raise ValueError("mix contains NaN or infinite samples")


class _PeakEnvelope:
    """Oversampled per-interval peaks of the input, chunk by chunk (cached when small enough)."""

    def __init__(self, mix: Audio, cache: bool) -> None:
        self.mix = mix
        self._cache: dict[tuple[int, int], np.ndarray] | None = {} if cache else None

    def get(self, start: int, stop: int) -> np.ndarray:
        key = (start, stop)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        env = _peaks(self.mix, start, stop)
        if self._cache is not None:
            self._cache[key] = env
        return env


@dataclass
class _PassResult:
    gain_db: float
    output_lufs: float
    max_reduction_db: float


class _Limiter:
    """Runs one limiter pass over the whole mix at a given input gain, writing into ``out``."""

    def __init__(self, mix: Audio, sample_rate: int, ceiling_dbtp: float, out: Audio) -> None:
        self.mix = mix
        self.sample_rate = sample_rate
        self.out = out
        self.ceiling = 10.0 ** (ceiling_dbtp / 20.0)
        self.lookahead = max(2, round(LOOKAHEAD_MS * 1e-3 * sample_rate))
        self.release_decay = math.exp(-1.0 / (RELEASE_MS * 1e-3 * sample_rate))
        n = mix.shape[1]
        self.envelope = _PeakEnvelope(mix, cache=n <= _CACHE_ENVELOPE_MAX_SAMPLES)
        # Chunks start one look-ahead before the signal so the gain can already be falling at 0.
        self._chunks = [
            (start, min(start + _CHUNK_SAMPLES, n)) for start in range(-self.lookahead, n, _CHUNK_SAMPLES)
        ]

    def _envelope(self, start: int, stop: int) -> np.ndarray:
        """Interval peaks from one sample before ``start`` to ``lookahead - 1`` after ``stop``."""
        return self.envelope.get(start - 1, stop + self.lookahead - 1)

    def input_peak_dbtp(self) -> float:
        """True peak of the input (the same measure as ``true_peak_dbtp``); fills the cache."""
        peak = max(float(self._envelope(a, b).max()) for a, b in self._chunks)
        return 20.0 * math.log10(peak) if peak > 0 else TRUE_PEAK_FLOOR_DB

    def run(self, gain_db: float) -> _PassResult:
        gain = 10.0 ** (gain_db / 20.0)
        meter = LoudnessAccumulator(self.sample_rate, self.mix.shape[0])
        ring = np.ones(self.lookahead)
        state = np.zeros(2)
        smallest = 1.0
        for a, b in self._chunks:
            env = self._envelope(a, b)
            smooth = np.empty(b - a)
            smallest = min(smallest, limiter_gains(env, gain, self.ceiling, self.release_decay, ring, state,
                                                    smooth))
            lo = max(a, 0)
            if b > lo:
                limited = np.multiply(_read(self.mix, lo, b), smooth[lo - a:] * gain).astype(np.float32)
                _write(self.out, lo, limited)
                meter.push(limited)
        return _PassResult(gain_db, meter.lufs(), -20.0 * math.log10(smallest))


def _next_gain(history: list[_PassResult], target_lufs: float, max_gain_db: float) -> float:
    """Secant step on measured loudness vs gain (slope clamped to (0, 1]: limiting only ever
    makes loudness grow more slowly than the gain)."""
    last, before = history[-1], history[-2]
    slope = 1.0
    if last.gain_db != before.gain_db:
        slope = min(1.0, max(0.05, (last.output_lufs - before.output_lufs) / (last.gain_db - before.gain_db)))
    return min(max_gain_db, last.gain_db + (target_lufs - last.output_lufs) / slope)


def finalize(
    mix: Audio, sample_rate: int, target_lufs: float = DEFAULT_TARGET_LUFS,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP, *,
    out: Audio | None = None,
) -> tuple[Audio, FinalizeReport]:
    """Loudness-normalise ``mix`` to ``target_lufs`` and true-peak limit it to ``ceiling_dbtp``.

    Args:
        mix: ``(channels, samples)`` float console output (normally stereo), finite.
        sample_rate: Hz.
        target_lufs: integrated loudness target (BS.1770-4), within the schema's range.
        ceiling_dbtp: true-peak ceiling, within the schema's range.
        out: where the result goes (same shape as ``mix``; an array or a :class:`ScratchAudio`
            for long songs streamed from disk); default a new float32 array.

    Returns:
        ``(audio, report)``: float32 ``(channels, samples)`` with
        ``true_peak_dbtp(audio) <= ceiling_dbtp``, and a :class:`FinalizeReport`.

    Raises:
        ParamsError: target or ceiling outside the schema range.
        ValueError: not a 2-D float array, or NaN/inf samples (a bug upstream).
    """
    target_lufs = _check_level("target_lufs", target_lufs)
    ceiling_dbtp = _check_level("ceiling_dbtp", ceiling_dbtp)
    _check_mix(mix)
    input_lufs = _lufs(mix, sample_rate)
    if out is None:
        out = np.empty(mix.shape, dtype=np.float32)
    elif tuple(out.shape) != tuple(mix.shape):
        raise ValueError(f"out must have the mix's shape {tuple(mix.shape)}, got {tuple(out.shape)}")
    if input_lufs <= SILENCE_LUFS:
        for start in range(0, mix.shape[1], _CHUNK_SAMPLES):
            _write(out, start, _read(mix, start, start + _CHUNK_SAMPLES).astype(np.float32))
        safety_db, peak_dbtp = _apply_safety(out, sample_rate, ceiling_dbtp)
        return out, FinalizeReport(input_lufs, safety_db, SILENCE_LUFS, peak_dbtp, 0.0, passes=0, silent=True)

    limiter = _Limiter(mix, sample_rate, ceiling_dbtp, out)
    input_peak_dbtp = limiter.input_peak_dbtp()
    gain_db = target_lufs - input_lufs
    if gain_db + input_peak_dbtp <= ceiling_dbtp:  # most mixes: a plain gain meets the ceiling
        _apply_gain(mix, gain_db, out)
        if gain_db + input_peak_dbtp <= ceiling_dbtp - PREDICTED_PEAK_MARGIN_DB:
            safety_db, peak_dbtp = 0.0, gain_db + input_peak_dbtp
        else:  # close to the ceiling: float32 rounding could matter, so measure
            safety_db, peak_dbtp = _apply_safety(out, sample_rate, ceiling_dbtp)
        gain_db += safety_db
        # A constant gain shifts every block, and so both gates, by the same amount: the output
        # loudness is exact arithmetic unless blocks near the −70 LUFS absolute gate move across it.
        output_lufs = input_lufs + gain_db
        if input_lufs < _EXACT_SHIFT_MIN_LUFS:
            output_lufs = _lufs(out, sample_rate)
        return out, FinalizeReport(input_lufs, gain_db, output_lufs, peak_dbtp, 0.0, passes=0)

    # Gain at which the highest peak is reduced by exactly MAX_LIMITER_DRIVE_DB.
    max_gain_db = ceiling_dbtp + MAX_LIMITER_DRIVE_DB - input_peak_dbtp
    # Anchor the secant steps at the gain where limiting starts: there the loudness is exact.
    onset_db = ceiling_dbtp - input_peak_dbtp
    history = [_PassResult(onset_db, input_lufs + onset_db, 0.0), limiter.run(min(gain_db, max_gain_db))]
    while len(history) <= MAX_PASSES:
        last = history[-1]
        if abs(last.output_lufs - target_lufs) <= LOUDNESS_TOLERANCE_LU:
            break
        gain_db = _next_gain(history, target_lufs, max_gain_db)
        if gain_db == last.gain_db:  # at the drive limit: the target is not reachable
            break
        history.append(limiter.run(gain_db))
    last = history[-1]
    safety_db, peak_dbtp = _apply_safety(out, sample_rate, ceiling_dbtp)
    return out, FinalizeReport(
        input_lufs=input_lufs,
        gain_db=last.gain_db + safety_db,
        output_lufs=last.output_lufs + safety_db,
        true_peak_dbtp=peak_dbtp,
        limiter_max_reduction_db=last.max_reduction_db,
        passes=len(history) - 1,
    )


def _apply_gain(mix: Audio, gain_db: float, out: Audio) -> None:
    gain = 10.0 ** (gain_db / 20.0)
    for start in range(0, mix.shape[1], _CHUNK_SAMPLES):
        stop = min(start + _CHUNK_SAMPLES, mix.shape[1])
        _write(out, start, np.multiply(_read(mix, start, stop), gain).astype(np.float32))


def _apply_safety(out: Audio, sample_rate: int, ceiling_dbtp: float) -> tuple[float, float]:
    """Scale ``out`` (in place) so that its true peak is at or under the ceiling.

    The peak is measured once; if it is over, the output is scaled to ``SAFETY_MARGIN_DB`` under
    the ceiling. Scaling moves the meter's reading by the scale factor up to float32 rounding
    (≲ 1e-4 dB, see :data:`PREDICTED_PEAK_MARGIN_DB`), far inside the margin, so the scaled
    output is not measured again.

    Returns:
        ``(gain_db, true_peak_dbtp)``: the scaling applied (≤ 0) and the final true peak.
    """
    peak_dbtp = _true_peak(out, sample_rate)
    excess_db = peak_dbtp - ceiling_dbtp
    if excess_db <= 0.0:
        return 0.0, peak_dbtp
    factor = np.float32(10.0 ** (-(excess_db + SAFETY_MARGIN_DB) / 20.0))
    for start in range(0, out.shape[1], _CHUNK_SAMPLES):
        stop = min(start + _CHUNK_SAMPLES, out.shape[1])
        _write(out, start, _read(out, start, stop) * factor)
    applied_db = 20.0 * math.log10(float(factor))  # the gain actually applied (factor is float32)
    return applied_db, peak_dbtp + applied_db


def shortfall_note(target_lufs: float, output_lufs: float, limiter_max_reduction_db: float,
                   ceiling_dbtp: float) -> str | None:
    """One line explaining a mix left well under its loudness target, or None.

    Finalize leaves a very peaky mix quieter rather than limit it by more than
    :data:`MAX_LIMITER_DRIVE_DB`; the note says so when the limiter ran at (within 0.5 dB of)
    that maximum, since then the ceiling, not the mix, held the loudness back.
    """
    shortfall_lu = target_lufs - output_lufs
    if shortfall_lu <= MISSED_TARGET_NOTE_LU:
        return None
    note = f"{shortfall_lu:.1f} LU under the {target_lufs:g} LUFS target"
    if limiter_max_reduction_db >= MAX_LIMITER_DRIVE_DB - 0.5:
        note += (f": reaching it would take more than {MAX_LIMITER_DRIVE_DB:g} dB of limiting at the "
                 f"{ceiling_dbtp:g} dBTP ceiling")
    return note

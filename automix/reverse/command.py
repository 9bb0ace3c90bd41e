"""``automix reverse``: load, align, start, fit, report and write the settings (steps 1–4 of
:mod:`automix.reverse`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automix.console.loudness import integrated_lufs, true_peak_dbtp
from automix.console.schema import FINALIZE, TRACK
from automix.console.settings import MixSettings, dumps
from automix.engine import add_stem_notes
from automix.errors import AutomixError
from automix.io import (
    check_output,
    is_audio_file,
    load_audio,
    load_stems,
    resample,
    scan_folder,
    write_text_atomic,
)
from automix.reverse.align import align_mix
from automix.reverse.fit import (
    DEFAULT_REVERSE_STEPS,
    REVERSE_WINDOW_S,
    REVERSE_WINDOWS,
    fit_settings,
    residual_db,
)
from automix.reverse.rides import RideFit, fit_rides
from automix.reverse.start import choose_start

MAX_RESIDUAL_DB = 0.0
"""A fit whose re-rendered mix is further from the target than silence is (0 dB) is refused."""

CEILING_MARGIN_DB = 0.5
"""The written ceiling sits this far above the target mix's own true peak."""

MIN_LENGTH_FRACTION = 0.5
"""A mix shorter than this fraction of the stems is refused: it is an excerpt, not their mix."""


_START_LABELS = {"flat": "start: least-squares faders/pans, EQ flat", "eq": "start: fitted EQ curves and faders"}
_COMPRESSORS_SUFFIX = "+compressors"


def start_label(start: str) -> str:
    """The report's words for a start name of :func:`choose_start` (``flat``/``eq``, ``+compressors``)."""
    base = start.removesuffix(_COMPRESSORS_SUFFIX)
    label = _START_LABELS[base]
    return label + ", compressors from the mix's frame gains" if start != base else label


@dataclass
class ReverseResult:
    """What :func:`reverse` found (``--json`` prints :meth:`to_json`)."""

    params_path: Path
    mix_path: Path
    tracks: list[str]
    sample_rate: int
    lag_samples: int
    correlation: float
    steps: int
    start: str
    loss_before: float
    loss_after: float
    residual_db_initial: float
    residual_db: float
    target_lufs: float
    ceiling_dbtp: float
    gains_db: list[float]
    pans: list[float]
    compressors: list[tuple[float, float] | None]
    """Per track ``(ratio, threshold_db)`` of the fitted compressor, None where it is off."""
    seconds: float
    notes: list[str] = field(default_factory=list)
    rides: RideFit | None = None
    """The per-section fader rides fitted after the static fit (None with ``automate=False``)."""

    def to_json(self) -> dict[str, Any]:
        def r(x: float, digits: int = 2) -> float:
            return round(float(x), digits)

        return {
            "params": str(self.params_path), "mix": str(self.mix_path), "sample_rate": self.sample_rate,
            "lag_samples": self.lag_samples, "lag_s": r(self.lag_samples / self.sample_rate, 4),
            "correlation": r(self.correlation, 3), "steps": self.steps, "start": self.start,
            "loss_before": r(self.loss_before, 4), "loss_after": r(self.loss_after, 4),
            "residual_db_initial": r(self.residual_db_initial), "residual_db": r(self.residual_db),
            "target_lufs": r(self.target_lufs), "ceiling_dbtp": r(self.ceiling_dbtp),
            "tracks": [{"name": n, "gain_db": r(g), "pan": r(p, 3),
                        "compressor": None if c is None else {"ratio": r(c[0]), "threshold_db": r(c[1], 1)}}
                       for n, g, p, c in zip(self.tracks, self.gains_db, self.pans, self.compressors)],
            "rides": None if self.rides is None else self.rides.to_json(),
            "seconds": r(self.seconds), "notes": list(self.notes),
        }

    def report(self) -> str:
        """The fit report printed by ``automix reverse`` (several lines)."""
        width = max(len(n) for n in self.tracks)
        lines = [
            (f"aligned: mix offset {self.lag_samples} samples ({self.lag_samples / self.sample_rate * 1000:.1f} ms), "
            f"fit correlation {self.correlation:.3f}"),
            (f"residual: {self.residual_db_initial:.1f} dB ({start_label(self.start)}) → {self.residual_db:.1f} dB "
            f"after {self.steps} steps{' and fader rides' if self.rides is not None and self.rides.fitted else ''} "
            f"(loss {self.loss_before:.3f} → {self.loss_after:.3f})"),
            f"level: target {self.target_lufs:.1f} LUFS, ceiling {self.ceiling_dbtp:.1f} dBTP",
            f"{'track':<{width}}  gain dB    pan  compressor",
        ]
        lines += [f"{n:<{width}}  {g:+7.2f}  {p:+.3f}  {'—' if c is None else f'{c[0]:.1f}:1 at {c[1]:.1f} dB'}"
                  for n, g, p, c in zip(self.tracks, self.gains_db, self.pans, self.compressors)]
        if self.rides is not None:
            lines.append(self.rides.summary())
        return "\n".join(lines)


def _stereo(audio: np.ndarray) -> np.ndarray:
    return np.concatenate([audio, audio]) if audio.shape[0] == 1 else audio


def render_fit(stems: Sequence[np.ndarray], settings: MixSettings, sample_rate: int) -> np.ndarray:
    """What ``automix render`` makes of ``settings``: the full-song console, then finalize."""
    from automix.console.finalize import finalize
    from automix.console.render import render_console

    mixed = render_console(list(stems), sample_rate, settings)
    final, _ = finalize(mixed, sample_rate, settings.target_lufs, settings.ceiling_dbtp)
    return final


def level_targets(mix: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """``(target_lufs, ceiling_dbtp)`` that make finalize reproduce ``mix``'s own level (clipped to range)."""
    lufs_spec, ceiling_spec = FINALIZE.spec("target_lufs"), FINALIZE.spec("ceiling_dbtp")
    lufs = float(np.clip(integrated_lufs(mix, sample_rate), lufs_spec.minimum, lufs_spec.maximum))
    peak = float(true_peak_dbtp(mix, sample_rate)) + CEILING_MARGIN_DB
    return lufs, float(np.clip(peak, ceiling_spec.minimum, ceiling_spec.maximum))


def reverse(
    stems_dir: str | Path,
    mix_path: str | Path,
    out_json: str | Path,
    *,
    steps: int = DEFAULT_REVERSE_STEPS,
    sample_rate: int | None = None,
    windows: int = REVERSE_WINDOWS,
    window_s: float = REVERSE_WINDOW_S,
    force: bool = False,
    progress: Callable[[str, float], None] | None = None,
    log: Callable[[str], None] | None = None,
    strict: bool = False,
    automate: bool = True,
) -> ReverseResult:
    """Estimate the console settings that turn the stems in ``stems_dir`` into ``mix_path``.

    Args:
        stems_dir: folder of stems.
        mix_path: the mix (any format, rate, mono or stereo).
        out_json: where to write the settings (a ``mix.json`` that ``automix render`` renders).
        steps: optimisation steps (0 = the start only: least-squares pans/widths, EQ curves, faders).
        sample_rate: analysis/render rate; None = the most common stem rate.
        windows, window_s: how many of the most active excerpts the fit uses, and their length.
        force: overwrite ``out_json``.
        progress: ``(step name, fraction)`` callback; log: one-line notes.
        strict: refuse stems with NaN/Inf samples instead of silencing damaged samples.
        automate: after the static fit, fit per-section fader rides where the mix's balance moves
            (:mod:`automix.reverse.rides`); False keeps one setting per track (``--static``).

    Raises:
        AutomixError: bad inputs, an unrelated mix, an existing output without ``force``.
    """
    started = time.perf_counter()
    mix_path, out_json = Path(mix_path), Path(out_json)
    if steps < 0:
        raise AutomixError(f"--steps {steps}: expected 0 or more")
    files, _ = scan_folder(stems_dir)
    if is_audio_file(out_json):  # next time it would be read as a stem (or mistaken for a mix)
        raise AutomixError(f"{out_json}: the settings are written as JSON; name the file .json")
    check_output(out_json, force, [*files, mix_path])

    def step(name: str, fraction: float) -> None:
        if progress is not None:
            progress(name, fraction)

    step("load", 0.0)
    stems, rate, notes = load_stems(stems_dir, sample_rate, log, strict=strict)
    mix, mix_rate = load_audio(mix_path)
    if mix_rate != rate:
        notes.append(f"resampled the mix from {mix_rate} Hz to {rate} Hz")
        mix = resample(mix, mix_rate, rate)
    if mix.shape[0] == 1:
        notes.append("the mix is mono: pans cannot be recovered")
    mix = _stereo(mix)
    audio = [s.audio for s in stems]
    stems_s, mix_s = audio[0].shape[1] / rate, mix.shape[1] / rate
    if mix_s < MIN_LENGTH_FRACTION * stems_s:
        raise AutomixError(f"{mix_path}: the mix is {mix_s:.1f} s long, the stems {stems_s:.1f} s; "
                           "give the mix of the whole song (reverse fits the stems' full length)")
    names = [s.name for s in stems]
    step("load", 1.0)

    step("align", 0.0)
    target, alignment = align_mix(audio, mix, rate)
    if alignment.inverted:
        notes.append("the mix is polarity-inverted against the stems: fitted (and residuals measured) "
                      "with its polarity flipped back")
    step("align", 1.0)
    step("start", 0.0)
    init, start_name, _ = choose_start(names, audio, target, rate, windows=windows, window_s=window_s)
    step("start", 1.0)
    result = fit_settings(audio, target, init, rate, steps=steps, windows=windows, window_s=window_s,
                          progress=lambda i, _loss: step("fit", i / max(steps, 1)))
    settings = result.settings
    lufs, ceiling = level_targets(mix, rate)
    for s in (init, settings):
        s.mixer = "reverse"
        s.sample_rate = rate
        s.finalize[FINALIZE.index("target_lufs")] = lufs
        s.finalize[FINALIZE.index("ceiling_dbtp")] = ceiling
    # Report exactly what the JSON will render.
    start, settings = init.clipped().rounded(), settings.clipped().rounded()
    for s in (start, settings):
        add_stem_notes(s, stems)

    step("render", 0.0)
    residual_initial = residual_db(render_fit(audio, start, rate), target)
    residual = residual_db(render_fit(audio, settings, rate), target)
    step("render", 1.0)
    if residual_initial < residual:
        # The fit lowers a spectral loss on a few excerpts; the whole-song waveform can still drift
        # (a tonal stem's phase): write whichever reproduces the mix better.
        notes.append(f"kept the start: the {steps} fit steps lowered the spectral loss but left the waveform "
                     f"further from the mix ({residual:.1f} dB against {residual_initial:.1f} dB)")
        settings, residual = start, residual_initial
    rides = None
    if automate:
        step("rides", 0.0)
        rides = fit_rides(audio, settings, target, rate, residual,
                          lambda ridden: residual_db(render_fit(audio, ridden, rate), target))
        if rides.fitted and rides.residual_db is not None:
            settings, residual = rides.settings, rides.residual_db
        step("rides", 1.0)
    if residual > MAX_RESIDUAL_DB:
        raise AutomixError(
            f"the fit does not reproduce the mix (residual {residual:+.1f} dB > {MAX_RESIDUAL_DB:g} dB, "
            "further from it than silence); the mix may use processing the console cannot model, or stems "
            "it does not contain; nothing written")
    write_text_atomic(out_json, dumps(settings), force=force, protect=[*files, mix_path])
    for note in notes:
        if log is not None and note.startswith(("resampled the mix", "the mix is mono", "the mix is polarity", "kept the start")):
            log(note)
    return ReverseResult(
        params_path=out_json, mix_path=mix_path, tracks=names, sample_rate=rate,
        lag_samples=alignment.lag_samples, correlation=alignment.correlation, steps=steps, start=start_name,
        loss_before=result.terms["sum_diff_mrstft"][0], loss_after=result.terms["sum_diff_mrstft"][-1],
        residual_db_initial=residual_initial, residual_db=residual, target_lufs=lufs, ceiling_dbtp=ceiling,
        gains_db=[float(v) for v in settings.track[:, TRACK.index("gain_db")]],
        pans=[float(v) for v in settings.track[:, TRACK.index("pan")]],
        compressors=[(float(row[TRACK.index("compressor.ratio")]), float(row[TRACK.index("compressor.threshold_db")]))
                     if row[TRACK.index("compressor.ratio")] > 1.0 else None for row in settings.track],
        seconds=time.perf_counter() - started, notes=notes, rides=rides,
    )

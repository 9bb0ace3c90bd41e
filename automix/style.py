"""Mixing style transfer: mix a folder of stems so it sounds like one or more reference mixes.

Pipeline of :func:`style_transfer` (same I/O, safety and JSON rules as :func:`automix.engine.mix`):

1. check every output path and every reference's header first (a missing, undecodable,
   too short or multichannel reference fails before the stems are read), then load the
   references: any length, rate, mono or stereo, lossy or lossless; resampled to the stems'
   rate, mono duplicated to stereo, loudness-normalised to :data:`REFERENCE_LUFS`;
2. the ``rules`` mixer gives the neutral settings (the ``--amount 0`` point);
3. the model predicts the settings (a trained model looks at the most active excerpts of the
   song and of each reference; several references are blended by averaging the per-reference
   predictions in normalised parameter space, see :class:`automix.models.mixer.ModelMixer`);
4. optional refinement (``refine_steps``): Adam through the differentiable console on the
   most active excerpts, minimising the AF loss to the blended features of all references
   (:mod:`automix.refine`);
5. the ``--amount`` family interpolates each parameter in normalised space between the rules
   settings and the transferred ones (:func:`blend_settings`);
6. the full song is rendered with the block renderer, finalized and written by the engine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from automix.analysis_windows import multitrack_windows, signal_windows
from automix.console.loudness import SILENCE_LUFS, integrated_lufs
from automix.console.schema import (
    DEFAULT_CEILING_DBTP,
    DEFAULT_TARGET_LUFS,
    FINALIZE,
    FX,
    MASTER,
    TRACK,
    ParamGroup,
)
from automix.console.settings import MixSettings
from automix.engine import (
    Log,
    MixResult,
    Progress,
    add_stem_notes,
    check_finalize_option,
    check_predicted,
    log_notes,
    plan_outputs,
    render_and_write,
    report_step,
)
from automix.errors import AudioLoadError, AutomixError
from automix.io import Stem, load_audio, load_stems, resample
from automix.mixers import check_device, check_seed, get_mixer
from automix.mixers.base import accepts_references
from automix.models.inputs import REFERENCE_LUFS
from automix.refine import DEFAULT_REFINE_STEPS, refine

MIN_REFERENCE_S = 1.0
"""A reference shorter than this carries too little of a style to analyse."""

SILENT_REFERENCE_LUFS = -60.0
"""A reference quieter than this (integrated) is treated as silent and refused."""

DEFAULT_STYLE_MODEL = "mst-small"

REFINE_WINDOWS = 2
"""Analysis excerpts of the stems that refinement mixes at every step."""

REFINE_WINDOW_S = 1.5
"""Length of each refinement excerpt, seconds (the console cost grows with it)."""

REFERENCE_WINDOWS = 4
REFERENCE_WINDOW_S = 10.0
"""Loudest excerpts of each reference whose AF features make the refinement target."""

ASPECTS: dict[str, str] = {
    "eq": "EQ of every strip and the master (eq.*)",
    "dynamics": "compressors of every strip and the master (compressor.*)",
    "width": "pan and stereo width of every track",
    "rest": "faders, trims, sends, reverb and master gain",
}


# --------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------


def check_reference(path: str | Path) -> Path:
    """Cheap checks of a reference from its header (no decoding): exists, decodable, at most
    two channels, at least :data:`MIN_REFERENCE_S` long. Returns the path.

    Raises:
        AudioLoadError: one line naming the file.
    """
    path = Path(path)
    try:
        info = sf.info(str(path)) if path.is_file() and path.stat().st_size > 0 else None
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        info = None
    if info is not None:
        channels, seconds = int(info.channels), info.frames / info.samplerate
    else:  # no header to read: decode, for the loader's wording (missing, empty, cannot decode)
        try:
            audio, rate = load_audio(path)
        except AudioLoadError as e:
            raise AudioLoadError(f"reference {e}") from None
        channels, seconds = audio.shape[0], audio.shape[1] / rate
    if channels > 2:
        raise AudioLoadError(f"reference {path.name}: {channels} channels; give a mono or stereo mix")
    if seconds < MIN_REFERENCE_S:
        raise AudioLoadError(f"reference {path.name}: {seconds:.2f} s long; give at least {MIN_REFERENCE_S:g} s of a mix")
    return path


def load_reference(path: str | Path, sample_rate: int, target_lufs: float = REFERENCE_LUFS) -> np.ndarray:
    """Load a reference mix for analysis.

    Args:
        path: any audio file libsndfile reads (wav, flac, aiff, ogg, mp3).
        sample_rate: rate to resample to, Hz (the stems' rate).
        target_lufs: integrated loudness the reference is normalised to.

    Returns:
        ``(2, samples)`` float32 (a mono reference is duplicated to both channels).

    Raises:
        AudioLoadError: missing, corrupt, more than two channels, shorter than
            :data:`MIN_REFERENCE_S`, or silent. The message is one line naming the file.
    """
    path = check_reference(path)
    try:
        audio, rate = load_audio(path)
    except AudioLoadError as e:
        raise AudioLoadError(f"reference {e}") from None
    audio = resample(audio, rate, sample_rate)
    if audio.shape[0] == 1:
        audio = np.concatenate([audio, audio])
    lufs = float(integrated_lufs(audio, sample_rate))
    if lufs <= max(SILENCE_LUFS, SILENT_REFERENCE_LUFS):
        raise AudioLoadError(f"reference {path.name}: silent (below {SILENT_REFERENCE_LUFS:g} LUFS)")
    return np.ascontiguousarray(audio * np.float32(10.0 ** ((target_lufs - lufs) / 20.0)), dtype=np.float32)


def reference_windows(reference: np.ndarray, sample_rate: int, count: int = REFERENCE_WINDOWS,
                      window_s: float = REFERENCE_WINDOW_S) -> list[np.ndarray]:
    """The loudest excerpts of a reference; a reference shorter than ``window_s`` is used whole."""
    length_s = reference.shape[-1] / sample_rate
    windows, _ = signal_windows(reference, sample_rate, min(window_s, length_s), count)
    return windows


# --------------------------------------------------------------------------------------
# Settings arithmetic in normalised space
# --------------------------------------------------------------------------------------


def _aspect(group: ParamGroup, name: str) -> str:
    if name.startswith("eq."):
        return "eq"
    if name.startswith("compressor."):
        return "dynamics"
    if group is TRACK and name in ("pan", "width"):
        return "width"
    return "rest"


def _check_amount(option: str, value: float) -> float:
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise AutomixError(f"{option} {value:g}: expected a value between 0 and 1")
    return float(value)


def _interpolate(group: ParamGroup, start: np.ndarray, end: np.ndarray, amounts: dict[str, float]) -> np.ndarray:
    """Per-parameter interpolation in normalised space; amount 0/1 return the endpoints exactly."""
    a = np.array([amounts[_aspect(group, name)] for name in group.names])
    n0, n1 = group.to_normalised(np.asarray(start, np.float64)), group.to_normalised(np.asarray(end, np.float64))
    mixed = group.from_normalised(n0 + a * (n1 - n0))
    out = np.where(a == 0.0, start, np.where(a == 1.0, end, mixed))
    return np.clip(out, group.minimum(), group.maximum())


def blend_settings(
    neutral: MixSettings,
    transferred: MixSettings,
    amount: float = 1.0,
    *,
    eq_amount: float | None = None,
    dynamics_amount: float | None = None,
    width_amount: float | None = None,
) -> MixSettings:
    """Interpolate each parameter between ``neutral`` (0) and ``transferred`` (1), normalised space.

    ``eq_amount`` applies to ``eq.*``, ``dynamics_amount`` to ``compressor.*``,
    ``width_amount`` to track ``pan``/``width``; ``amount`` to everything else, and is the
    default of the three others. Finalize values, names and notes come from ``neutral``.

    Raises:
        AutomixError: an amount outside [0, 1]; settings with different tracks.
    """
    if neutral.track_names != transferred.track_names:
        raise AutomixError("blend: the two settings have different tracks")
    amount = _check_amount("--amount", amount)
    amounts = {
        "rest": amount,
        "eq": _check_amount("--eq-amount", amount if eq_amount is None else eq_amount),
        "dynamics": _check_amount("--dynamics-amount", amount if dynamics_amount is None else dynamics_amount),
        "width": _check_amount("--width-amount", amount if width_amount is None else width_amount),
    }
    return MixSettings(
        list(neutral.track_names),
        _interpolate(TRACK, neutral.track, transferred.track, amounts),
        _interpolate(FX, neutral.fx, transferred.fx, amounts),
        _interpolate(MASTER, neutral.master, transferred.master, amounts),
        np.array(neutral.finalize, dtype=np.float64),
        dict(neutral.roles),
        {k: list(v) for k, v in neutral.notes.items()},
        transferred.mixer if amounts != {k: 0.0 for k in amounts} else neutral.mixer,
        neutral.sample_rate,
    )


def predict_style(mixer: Any, stems: list[Stem], sample_rate: int, references: Sequence[np.ndarray], *,
                  seed: int = 0) -> MixSettings:
    """The mixer's settings in the style of ``references`` (the mixer blends several).

    A mixer that takes no references (e.g. ``rules``) predicts once; refinement then does the transfer.
    """
    if not accepts_references(mixer):
        return mixer.predict(stems, sample_rate, seed=seed)
    return mixer.predict(stems, sample_rate, seed=seed, references=list(references))


def refine_to_references(
    stems: list[Stem], sample_rate: int, references: Sequence[np.ndarray], init: MixSettings, steps: int, *,
    windows: int = REFINE_WINDOWS, window_s: float = REFINE_WINDOW_S, progress: Progress | None = None,
) -> tuple[MixSettings, dict[str, Any]]:
    """Refine ``init`` towards the blended references on the most active excerpts of the song.

    Returns:
        ``(settings, info)``; ``info`` holds ``af_before``, ``af_after``, ``steps``,
        ``seconds_per_step`` and the excerpt starts in seconds.
    """
    audio = [s.audio for s in stems]
    length_s = audio[0].shape[-1] / sample_rate
    stem_windows, starts = multitrack_windows(audio, sample_rate, min(window_s, length_s), windows)
    ref_windows = [reference_windows(r, sample_rate) for r in references]

    def report(step: int, _loss: float) -> None:
        report_step(progress, "refine", step / max(steps, 1))

    result = refine(stem_windows, ref_windows, init, sample_rate, steps=steps, progress=report)
    af = result.terms["af"]
    info = {
        "steps": steps, "af_before": af[0], "af_after": af[-1], "seconds_per_step": result.seconds_per_step,
        "windows_s": [round(s / sample_rate, 2) for s in starts], "seconds": round(sum(result.step_seconds), 2),
    }
    return result.settings, info


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


@dataclass
class StyleResult(MixResult):
    """A :class:`~automix.engine.MixResult` plus what the style transfer did."""

    references: list[str] = field(default_factory=list)
    amounts: dict[str, float] = field(default_factory=dict)
    refine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["style"] = {
            "references": list(self.references),
            "amounts": dict(self.amounts),
            "refine": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.refine.items()},
        }
        return data


def style_transfer(
    stems_dir: str | Path,
    refs: Sequence[str | Path],
    out: str | Path,
    *,
    params_out: str | Path | None = None,
    model: str = DEFAULT_STYLE_MODEL,
    refine_steps: int = DEFAULT_REFINE_STEPS,
    amount: float = 1.0,
    eq_amount: float | None = None,
    dynamics_amount: float | None = None,
    width_amount: float | None = None,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
    sample_rate: int | None = None,
    stems_out: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    force: bool = False,
    bit_depth: str = "24",
    progress: Progress | None = None,
    log: Log | None = None,
    strict: bool = False,
    daw: str | None = None,
) -> StyleResult:
    """Mix ``stems_dir`` in the style of the reference mix(es) ``refs``; write the mix and its ``mix.json``.

    Args:
        stems_dir: folder of stems.
        refs: one or more reference mixes (blended when several).
        out: the mix (``.wav`` or ``.flac``); ``params_out`` defaults to ``out`` with ``.json``.
        model: a mixer or trained model; one that takes references (MST) predicts the style,
            any other gives the starting point refinement moves from.
        refine_steps: Adam steps of inference-time refinement (0 = off).
        amount, eq_amount, dynamics_amount, width_amount: 0 = the ``rules`` mix, 1 = full transfer.
        target_lufs, ceiling_dbtp, sample_rate, stems_out, device, seed, force, bit_depth,
        progress, log, strict, daw: as for :func:`automix.engine.mix`.

    Raises:
        AutomixError: bad options, stems or references (one-line messages).
    """
    started = time.perf_counter()
    out = Path(out)
    params_out = Path(params_out) if params_out is not None else out.with_suffix(".json")
    refs = [Path(r) for r in refs]
    if not refs:
        raise AutomixError("give at least one reference mix (--ref)")
    if refine_steps < 0:
        raise AutomixError(f"--refine {refine_steps}: expected 0 or more steps")
    amounts = {"amount": _check_amount("--amount", amount)}
    for option, key, value in (("--eq-amount", "eq", eq_amount), ("--dynamics-amount", "dynamics", dynamics_amount),
                               ("--width-amount", "width", width_amount)):
        amounts[key] = _check_amount(option, amount if value is None else value)
    finalize_values = (
        check_finalize_option("--target-lufs", "target_lufs", target_lufs),
        check_finalize_option("--ceiling", "ceiling_dbtp", ceiling_dbtp),
    )
    check_device(device)
    check_seed(seed)
    plan = plan_outputs(Path(stems_dir), out, params_out, Path(stems_out) if stems_out else None,
                         bit_depth, force, refs, daw)
    log_notes(plan.notes, log)  # e.g. where the reverb return goes

    mixer = get_mixer(model, device)  # an unknown model fails before any audio is read
    for ref in refs:
        check_reference(ref)
    report_step(progress, "load", 0.0)
    stems, rate, notes = load_stems(stems_dir, sample_rate, log, strict=strict)
    references = [load_reference(r, rate) for r in refs]
    report_step(progress, "load", 1.0)

    report_step(progress, "analyse", 0.0)
    neutral = get_mixer("rules").predict(stems, rate, seed=seed)
    check_predicted(neutral, stems, "rules")
    transferred = predict_style(mixer, stems, rate, references, seed=seed)
    check_predicted(transferred, stems, model)
    report_step(progress, "analyse", 1.0)

    refine_info: dict[str, Any] = {"steps": 0}
    if refine_steps > 0:
        transferred, refine_info = refine_to_references(stems, rate, references, transferred, refine_steps,
                                                        progress=progress)
        note = (f"refined {refine_steps} steps: AF loss {refine_info['af_before']:.4f} → "
                f"{refine_info['af_after']:.4f} ({refine_info['seconds_per_step']:.2f} s/step)")
        notes.append(note)
        if log is not None:
            log(note)

    settings = blend_settings(neutral, transferred, amount, eq_amount=eq_amount,
                              dynamics_amount=dynamics_amount, width_amount=width_amount)
    settings.mixer = f"style-transfer:{transferred.mixer}"
    add_stem_notes(settings, stems)
    settings.finalize[FINALIZE.index("target_lufs")] = finalize_values[0]
    settings.finalize[FINALIZE.index("ceiling_dbtp")] = finalize_values[1]
    settings.sample_rate = rate
    settings = settings.clipped().rounded()  # render exactly what mix.json will say
    result = render_and_write(stems, rate, settings, plan, force=force, bit_depth=bit_depth, notes=notes,
                               started=started, progress=progress)
    return StyleResult(**vars(result), references=[str(r) for r in refs], amounts=amounts, refine=refine_info)

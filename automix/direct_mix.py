"""The back half of ``mix`` for end-to-end models: their audio through the output stage to disk.

An :class:`~automix.mixers.base.AudioMixer` (Wave-U-Net and the other end-to-end baselines)
outputs the mix itself. It goes through the same output stage as every console mix
(loudness to the target, true-peak limiting to the ceiling, the same quantisation headroom),
so it never exceeds the ceiling either. Beside it goes a JSON of format
:data:`~automix.console.settings.DIRECT_FORMAT_NAME` that says which model made the mix from
which tracks and that there are no console settings: ``render`` and ``show`` refuse it with
that explanation instead of inventing a console.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from automix.console.settings import DIRECT_FORMAT_NAME
from automix.errors import AutomixError
from automix.io import Stem
from automix.mix_writer import MixResult, Progress, quantisation_gain, report_step, write_mix_pair
from automix.mixers.base import AudioMixer
from automix.output_plan import OutputPlan

DIRECT_NOTE = ("end-to-end model: the network output the mix directly; there are no console settings "
               "(gain, pan, EQ, compression, reverb) to read, edit or render again")


def direct_json(mixer: str, tracks: list[str], sample_rate: int, target_lufs: float, ceiling_dbtp: float) -> str:
    """The text of the JSON beside an end-to-end mix."""
    data: dict[str, Any] = {
        "format": DIRECT_FORMAT_NAME, "version": 1, "mixer": mixer, "sample_rate": sample_rate,
        "tracks": list(tracks), "console": None, "note": DIRECT_NOTE,
        "output": {"target_lufs": round(float(target_lufs), 2), "ceiling_dbtp": round(float(ceiling_dbtp), 2)},
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def predicted_audio(mixer: AudioMixer, stems: list[Stem], sample_rate: int, seed: int) -> np.ndarray:
    """The model's mix ``(2, N)`` float32, checked: a wrong shape or a non-finite sample is a bug."""
    audio = np.asarray(mixer.mix_audio(stems, sample_rate, seed=seed), dtype=np.float32)
    frames = stems[0].frames
    if audio.shape != (2, frames):
        raise RuntimeError(f"model {mixer.name!r} returned audio {audio.shape}, expected (2, {frames})")
    if not np.isfinite(audio).all():
        raise RuntimeError(f"model {mixer.name!r} returned non-finite samples")
    return audio


def check_direct_options(model: str, stems_out: Path | None, daw: str | None) -> None:
    """Refuse the outputs an end-to-end model cannot give (before any work)."""
    if stems_out is not None:
        raise AutomixError(f"--stems-out: {model} is an end-to-end model; it outputs the mix only, no processed stems")
    if daw is not None:
        raise AutomixError(f"--daw: {model} is an end-to-end model; there is no console to export to a DAW session")


def write_direct_mix(mixer: AudioMixer, stems: list[Stem], sample_rate: int, plan: OutputPlan, *, seed: int,
                     target_lufs: float, ceiling_dbtp: float, force: bool, bit_depth: str, notes: list[str],
                     started: float, progress: Progress | None) -> MixResult:
    """Run ``mixer`` on ``stems``, finalize and write the mix and its JSON (atomically, as a pair:
    :func:`~automix.mix_writer.write_mix_pair`)."""
    from automix.console.finalize import finalize

    report_step(progress, "analyse", 0.0)
    audio = predicted_audio(mixer, stems, sample_rate, seed)
    report_step(progress, "analyse", 1.0)
    report_step(progress, "finalize", 0.0)
    final, report = finalize(audio, sample_rate, target_lufs, ceiling_dbtp)
    report_step(progress, "finalize", 1.0)
    report_step(progress, "write", 0.0)
    gain = quantisation_gain(bit_depth, ceiling_dbtp)
    text = (direct_json(mixer.name, [s.name for s in stems], sample_rate, target_lufs, ceiling_dbtp)
            if plan.params_out is not None else None)
    write_mix_pair(plan, final, sample_rate, bit_depth, gain=gain, params_text=text, force=force)
    report_step(progress, "write", 1.0)
    frames = stems[0].frames
    return MixResult(
        mix_path=plan.out, params_path=plan.params_out, stems_out=None, stem_files=[], mixer=mixer.name,
        tracks=[s.name for s in stems], sample_rate=sample_rate, duration_s=frames / sample_rate,
        target_lufs=target_lufs, ceiling_dbtp=ceiling_dbtp, input_lufs=report.input_lufs, gain_db=report.gain_db,
        loudness_lufs=report.output_lufs + float(20.0 * np.log10(gain)),
        true_peak_dbtp=report.true_peak_dbtp + float(20.0 * np.log10(gain)),
        limiter_max_reduction_db=report.limiter_max_reduction_db, seconds=time.perf_counter() - started,
        notes=plan.notes + notes + [DIRECT_NOTE],
    )


__all__ = ["DIRECT_NOTE", "check_direct_options", "direct_json", "predicted_audio", "write_direct_mix"]

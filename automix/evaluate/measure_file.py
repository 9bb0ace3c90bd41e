"""Measure one mix file, and compare it with a reference (AF loss) and/or a target (MRSTFTs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from automix.errors import AutomixError
from automix.evaluate.features import compare_to_reference, compare_to_target, mix_report
from automix.evaluate.song_audio import load_at_rate
from automix.io import load_audio

LENGTH_NOTE_S = 0.05
"""A mix and a target differing in length by more than this get a note (a tail of a few ms is rounding)."""


def evaluate_file(mix: str | Path, ref: str | Path | None = None, target: str | Path | None = None
                  ) -> dict[str, Any]:
    """Measure one mix; with ``ref``, its AF loss to a reference; with ``target``, MRSTFTs to a target.

    The reference and target are resampled to the mix's rate. A mono target is compared as
    the same signal in both channels.

    Returns:
        ``{"mix", "sample_rate", "duration_s", <mix_report keys>, "bark_band_hz",
        "reference": {"path", "af_loss", "af_<term>"…}?, "target": {"path", "sum_diff_mrstft",
        "mrstft", "compared_s"}?, "notes"?}``; ``notes`` says when the mix and the target differ in length.

    Raises:
        AudioLoadError: a file is missing, unreadable, has NaNs or more than two channels.
        AutomixError: the target is silent.
    """
    from automix.measure.bark import bark_band_centres_hz

    mix = Path(mix)
    audio, rate = load_audio(mix)
    result: dict[str, Any] = {"mix": str(mix), "sample_rate": rate, "duration_s": audio.shape[1] / rate}
    result.update(mix_report(audio, rate))
    result["bark_band_hz"] = [float(f) for f in bark_band_centres_hz()]
    if ref is not None:
        reference = load_at_rate(Path(ref), rate, "reference")
        result["reference"] = {"path": str(ref), **compare_to_reference(audio, reference, rate)}
    if target is not None:
        target_audio = load_at_rate(Path(target), rate, "target")
        if not np.any(target_audio):
            raise AutomixError(f"target {target}: the file is silent; there is no mix to compare with")
        result["target"] = {"path": str(target), **compare_to_target(audio, target_audio, rate)}
        mix_s, target_s = audio.shape[1] / rate, target_audio.shape[1] / rate
        result["target"]["compared_s"] = min(mix_s, target_s)
        if abs(mix_s - target_s) > LENGTH_NOTE_S:
            result["notes"] = [(f"the mix is {mix_s:.2f} s long and the target {target_s:.2f} s: compared over "
                                f"the first {min(mix_s, target_s):.2f} s")]
    return result

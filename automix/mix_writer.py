"""The back half every command shares: render the console, finalize, write the mix and its files.

Streamed stems keep the mix in scratch files on disk, loaded stems keep it in memory (same
samples); processed stems, the reverb return, ``mix.json`` and the DAW session are written
atomically beside the mix. The mix and its ``mix.json`` are written as a pair
(:func:`write_mix_pair`): both go to temporary files first and are moved into place only once
both are complete, so a failure before the moves leaves the previous pair as it was.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automix.console.settings import MixSettings, dumps
from automix.errors import OutputExistsError
from automix.io import (
    QUANTISATION_STEPS,
    WRITE_BLOCK_SAMPLES,
    AudioWriter,
    ScratchAudio,
    Stem,
    StemFile,
    write_atomic,
)
from automix.output_plan import OutputPlan

Progress = Callable[[str, float], None]
"""Called with a step name ("load", "analyse", "render", "finalize", "write") and its done fraction."""

STEMS_OUT_BIT_DEPTH = "32f"
"""Processed stems are written as float: post-fader tracks may exceed 0 dBFS before the master."""


@dataclass
class MixResult:
    """What a mix or render produced (``--json`` prints :meth:`to_json`).

    Levels: ``input_lufs`` is the console output before finalize, ``loudness_lufs`` and
    ``true_peak_dbtp`` describe the written file.
    """

    mix_path: Path
    params_path: Path | None
    stems_out: Path | None
    stem_files: list[Path]
    mixer: str
    tracks: list[str]
    sample_rate: int
    duration_s: float
    target_lufs: float
    ceiling_dbtp: float
    input_lufs: float
    gain_db: float
    loudness_lufs: float
    true_peak_dbtp: float
    limiter_max_reduction_db: float
    seconds: float
    notes: list[str] = field(default_factory=list)
    reverb_return: Path | None = None
    """The reverb return written beside the processed stems (``--stems-out``), else None."""
    project: Path | None = None
    """The DAW session written beside the mix (``--daw``), else None."""

    def to_json(self) -> dict[str, Any]:
        def r(x: float) -> float:
            return round(float(x), 2)

        return {
            "mix": str(self.mix_path),
            "params": str(self.params_path) if self.params_path else None,
            "stems_out": str(self.stems_out) if self.stems_out else None,
            "stem_files": [str(p) for p in self.stem_files],
            "reverb_return": str(self.reverb_return) if self.reverb_return else None,
            "project": str(self.project) if self.project else None,
            "mixer": self.mixer,
            "tracks": list(self.tracks),
            "sample_rate": self.sample_rate,
            "duration_s": r(self.duration_s),
            "target_lufs": r(self.target_lufs),
            "ceiling_dbtp": r(self.ceiling_dbtp),
            "input_lufs": r(self.input_lufs),
            "gain_db": r(self.gain_db),
            "loudness_lufs": r(self.loudness_lufs),
            "true_peak_dbtp": r(self.true_peak_dbtp),
            "limiter_max_reduction_db": r(self.limiter_max_reduction_db),
            "seconds": r(self.seconds),
            "notes": list(self.notes),
        }


def quantisation_gain(bit_depth: str, ceiling_dbtp: float) -> float:
    """Linear gain (≤ 1) the finalized mix is written with, so the written file stays under the ceiling.

    Rounding to integer samples moves each sample by up to one step, which moves the oversampled
    true peak by up to one step times the largest absolute tap sum of the meter's interpolation
    filter (about 2.04). A mix limited exactly to the ceiling could otherwise end up over it
    (measured: +0.0003 dB at 16 bit). Costs at most 0.0006 dB at 16 bit, nothing audible.
    """
    step = QUANTISATION_STEPS.get(bit_depth)
    if step is None:
        return 1.0
    from automix.console.loudness import true_peak_spread

    spread = true_peak_spread()
    ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    return (ceiling - spread * step) / ceiling * (1.0 - 1e-6)  # 1e-6: float32 rounding of the product


def report_step(progress: Progress | None, name: str, fraction: float) -> None:
    if progress is not None:
        progress(name, fraction)


def write_mix_pair(plan: OutputPlan, audio: np.ndarray | ScratchAudio, sample_rate: int, bit_depth: str, *,
                   gain: float, params_text: str | None, force: bool) -> None:
    """Write the mix (``plan.out``, times ``gain``) and, if ``plan.params_out``, its JSON
    ``params_text`` as a pair: the audio goes to a temp file (:class:`AudioWriter`), the JSON to
    another (:func:`write_atomic`), both in their destination folders; only when both are
    complete are they moved into place, the mix first, the JSON right after. Anything that fails
    before the moves (a full disk, an output that appeared without ``force``) leaves both
    destinations as they were and removes the temp files."""
    channels, frames = audio.shape
    with AudioWriter(plan.out, channels, sample_rate, bit_depth, force=force, protect=plan.inputs) as writer:
        for start in range(0, frames, WRITE_BLOCK_SAMPLES):
            stop = min(start + WRITE_BLOCK_SAMPLES, frames)
            block = audio.read(start, stop) if isinstance(audio, ScratchAudio) else audio[:, start:stop]
            writer.write(block if gain == 1.0 else block * np.float32(gain))
        if plan.params_out is None or params_text is None:
            writer.commit()
            return
        params_out = Path(plan.params_out)

        def fill_params_then_commit_mix(tmp: Path) -> None:
            tmp.write_text(params_text, encoding="utf-8")  # the JSON is complete in its temp file...
            if not force and params_out.exists():  # (appeared while we were working: refuse before any move)
                raise OutputExistsError(f"{params_out}: exists (use --force to overwrite)")
            writer.commit()  # ...so the mix moves into place, and write_atomic moves the JSON right after

        write_atomic(params_out, fill_params_then_commit_mix, force=force, protect=plan.inputs)


def render_and_write(
    stems: list[Stem] | list[StemFile], sample_rate: int, settings: MixSettings, plan: OutputPlan, *, force: bool,
    bit_depth: str, notes: list[str], started: float, progress: Progress | None,
) -> MixResult:
    """Render, finalize and write. Streamed stems (:class:`StemFile`) keep the mix in scratch
    files on disk; loaded stems keep it in memory. Both give the same samples. Processed stems
    (``--stems-out``) are written block by block during the render and moved into place last."""
    from automix.console.finalize import finalize
    from automix.console.render import render_console

    streamed = any(isinstance(s, StemFile) for s in stems)
    frames = stems[0].frames
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(AudioWriter(plan.stem_outputs[s.name], 2, sample_rate, STEMS_OUT_BIT_DEPTH,
                                                   force=force, protect=plan.inputs))
                   for s in stems if s.name in plan.stem_outputs]
        fx_writer = (stack.enter_context(AudioWriter(plan.fx_output, 2, sample_rate, STEMS_OUT_BIT_DEPTH,
                                                     force=force, protect=plan.inputs))
                     if plan.fx_output is not None else None)
        mix_out = stack.enter_context(ScratchAudio(2, frames)) if streamed else None
        final_out = stack.enter_context(ScratchAudio(2, frames)) if streamed else None
        report_step(progress, "render", 0.0)
        mix_audio = render_console(
            stems if streamed else [s.audio for s in stems], sample_rate, settings, out=mix_out,
            track_sinks=[w.write for w in writers] if writers else None,
            fx_sink=fx_writer.write if fx_writer is not None else None,
            progress=(lambda f: report_step(progress, "render", f)) if progress else None,
        )
        report_step(progress, "finalize", 0.0)
        final, report = finalize(mix_audio, sample_rate, settings.target_lufs, settings.ceiling_dbtp, out=final_out)
        report_step(progress, "finalize", 1.0)

        report_step(progress, "write", 0.0)
        gain = quantisation_gain(bit_depth, settings.ceiling_dbtp)
        write_mix_pair(plan, final, sample_rate, bit_depth, gain=gain,
                       params_text=dumps(settings) if plan.params_out is not None else None, force=force)
        stem_files = [w.commit() for w in writers]
        reverb_return = fx_writer.commit() if fx_writer is not None else None
        stem_files += [reverb_return] if reverb_return is not None else []
        project = _write_project(plan, settings, stems, frames / sample_rate, force, reverb_return)
        report_step(progress, "write", 1.0)

    return MixResult(
        mix_path=plan.out, params_path=plan.params_out, stems_out=plan.stems_out, stem_files=stem_files,
        mixer=settings.mixer, tracks=list(settings.track_names), sample_rate=sample_rate,
        duration_s=frames / sample_rate, target_lufs=settings.target_lufs,
        ceiling_dbtp=settings.ceiling_dbtp, input_lufs=report.input_lufs, gain_db=report.gain_db,
        loudness_lufs=report.output_lufs + float(20.0 * np.log10(gain)),
        true_peak_dbtp=report.true_peak_dbtp + float(20.0 * np.log10(gain)),
        limiter_max_reduction_db=report.limiter_max_reduction_db, seconds=time.perf_counter() - started,
        notes=plan.notes + notes, reverb_return=reverb_return, project=project,
    )


def _write_project(plan: OutputPlan, settings: MixSettings, stems: list[Stem] | list[StemFile], duration_s: float,
                   force: bool, reverb_return: Path | None) -> Path | None:
    """The DAW session of ``plan`` (None without ``--daw``): the original stems with the faders,
    or, with ``--stems-out``, the processed stems that sum to the mix before its master stage."""
    if plan.daw is None or plan.project is None:
        return None
    from automix.daw import write_session

    originals = {s.name: s.path for s in stems if s.path is not None}
    processed = {s.name: plan.stem_outputs[s.name] for s in stems} if plan.stem_outputs else None
    skipped = [p for p in plan.stem_files if p.name not in originals]
    mono = {s.name for s in stems if s.channels == 1}
    return write_session(plan.daw, plan.project, settings, originals, duration_s=duration_s, processed=processed,
                         reverb_return=reverb_return, skipped=skipped, mono=mono, force=force, protect=plan.inputs)

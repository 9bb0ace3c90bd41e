"""The pipeline every command shares: load → predict → render → finalize → write.

:func:`mix` asks a mixer (``--model``) for console settings; :func:`render` takes them from
a ``mix.json``. Both check every output path *before* doing any work, render the settings
exactly as ``mix.json`` stores them (so re-rendering a written JSON is bit-exact), and write
all outputs atomically. Errors the user can fix are :class:`~automix.errors.AutomixError`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from automix.console.schema import DEFAULT_CEILING_DBTP, DEFAULT_TARGET_LUFS, FINALIZE
from automix.console.settings import MixSettings, dumps, load_params
from automix.daw import check_daw, project_path
from automix.errors import AutomixError
from automix.io.audio import (
    QUANTISATION_STEPS,
    AudioWriter,
    ScratchAudio,
    Stem,
    StemFile,
    check_bit_depth,
    check_output,
    is_audio_file,
    load_stems,
    name_too_long,
    open_stems,
    output_format,
    scan_folder,
    short_name,
    write_audio,
    write_text_atomic,
)
from automix.mixers import DEFAULT_MIXER, check_device, check_model_name, check_seed, get_mixer

Progress = Callable[[str, float], None]
"""Called with a step name ("load", "analyse", "render", "finalize", "write") and its done fraction."""

Log = Callable[[str], None]


FX_RETURN_NAME = "reverb_return"
"""File name (before ``.wav``) of the reverb return that ``--stems-out`` writes beside the tracks."""

STEMS_OUT_BIT_DEPTH = "32f"
"""Processed stems are written as float: post-fader tracks may exceed 0 dBFS before the master."""

STREAM_ABOVE_BYTES = 1 << 30
"""With ``stream=None``, sessions whose stems decode to more float32 bytes than this are streamed
from disk (stems read block by block, the mix kept in scratch files) instead of loaded: memory
then stays flat whatever the song length. Shorter sessions are loaded (a little faster)."""


def decoded_bytes(files: list[Path], sample_rate: int | None = None) -> int:
    """Float32 bytes the stems would take in memory (at ``sample_rate`` if given); unreadable files count 0."""
    total = 0
    for path in files:
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
            continue  # the loader reports it properly
        ratio = sample_rate / info.samplerate if sample_rate and info.samplerate else 1.0
        total += int(info.frames * ratio) * info.channels * 4
    return total


def note_cold_kernels(log: Log | None) -> None:
    """Say so when the audio kernels are not compiled yet: the first run would otherwise look slow."""
    from automix.kernel_cache import cold_kernels

    cold = cold_kernels()
    if cold and log is not None:
        log(f"note: compiling {len(cold)} audio kernels on first use (about 15 s, once; "
            "`python -m automix.warmup` does it ahead, `make venv` runs it)")


def _load(stems_dir: Path, sample_rate: int | None, log: Log | None, stream: bool | None, strict: bool,
          ) -> tuple[list[Stem] | list[StemFile], int, list[str]]:
    note_cold_kernels(log)
    if stream is None:
        files, _ = scan_folder(stems_dir)
        stream = decoded_bytes(files, sample_rate) > STREAM_ABOVE_BYTES
    if stream:
        return open_stems(stems_dir, sample_rate, log, strict=strict)
    return load_stems(stems_dir, sample_rate, log, strict=strict)


def add_stem_notes(settings: MixSettings, stems: list[Stem] | list[StemFile]) -> None:
    """Put what loading did to each stem (e.g. damaged samples silenced) first in its track's
    notes, so ``mix.json`` says it beside the mixer's own decisions (in place)."""
    for stem in stems:
        if stem.notes:
            settings.notes[stem.name] = list(stem.notes) + list(settings.notes.get(stem.name, []))


def log_notes(notes: list[str], log: Log | None) -> None:
    """Pass each note to ``log`` (the CLI's stderr printer), if there is one."""
    if log is not None:
        for text in notes:
            log(text)


def _close(stems: list[Stem] | list[StemFile]) -> None:
    for stem in stems:
        if isinstance(stem, StemFile):
            stem.close()


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


# --------------------------------------------------------------------------------------
# Option checks and output planning (before any work)
# --------------------------------------------------------------------------------------

def check_finalize_option(option: str, name: str, value: float) -> float:
    """Validate ``--target-lufs`` / ``--ceiling`` against the schema's FINALIZE ranges."""
    spec = FINALIZE.spec(name)
    if not spec.contains(float(value)):
        raise AutomixError(f"{option} {value:g}: outside [{spec.minimum:g}, {spec.maximum:g}] {spec.unit}")
    return float(value)


def stem_output_name(name: str, taken: set[str]) -> str:
    """File name of a processed stem in ``--stems-out``: ``kick.flac`` → ``kick.wav`` (unique)."""
    candidate = f"{Path(name).stem}.wav"
    if candidate in taken:
        candidate = f"{name}.wav"  # kick.flac beside kick.wav → kick.flac.wav
    number = 2
    while candidate in taken:
        candidate = f"{Path(name).stem}_{number}.wav"
        number += 1
    taken.add(candidate)
    return candidate


@dataclass
class OutputPlan:
    out: Path
    params_out: Path | None
    stems_out: Path | None
    stem_outputs: dict[str, Path]
    inputs: list[Path]
    fx_output: Path | None = None
    notes: list[str] = field(default_factory=list)
    """Decisions the user should hear about (e.g. a renamed reverb return)."""
    stem_files: list[Path] = field(default_factory=list)
    """The audio files of the stems folder (silent ones included)."""
    daw: str | None = None
    project: Path | None = None
    """The DAW session to write (``--daw``), beside the mix."""


def _plan_project(plan: OutputPlan, daw: str | None, force: bool) -> OutputPlan:
    """``plan`` with the DAW session's path, refused before any work if it would clobber a file."""
    daw = check_daw(daw)
    plan.stem_files = [p for p in plan.inputs if is_audio_file(p)]
    if daw is None:
        return plan
    project = project_path(plan.out, daw)
    taken = {plan.out.resolve(): "the mix"}
    if plan.params_out is not None:
        taken[Path(plan.params_out).resolve()] = "the params file"
    if project.resolve() in taken:
        raise AutomixError(f"{project}: the {daw} session would overwrite {taken[project.resolve()]}; "
                           "name the mix .wav or .flac")
    plan.daw, plan.project = daw, check_output(project, force, plan.inputs)
    return plan


def plan_outputs(
    stems_dir: Path, out: Path, params_out: Path | None, stems_out: Path | None, bit_depth: str,
    force: bool, extra_inputs: list[Path], daw: str | None = None,
) -> OutputPlan:
    """Every output path checked (format, clobbering, inputs) before any audio is read."""
    return _plan_project(_plan_files(stems_dir, out, params_out, stems_out, bit_depth, force, extra_inputs),
                         daw, force)


def _plan_files(
    stems_dir: Path, out: Path, params_out: Path | None, stems_out: Path | None, bit_depth: str,
    force: bool, extra_inputs: list[Path],
) -> OutputPlan:
    output_format(out)
    check_bit_depth(bit_depth, out)
    if params_out is not None and Path(params_out).resolve() == Path(out).resolve():
        raise AutomixError(f"{params_out}: the params file and the mix cannot be the same file")
    files, _ = scan_folder(stems_dir)
    inputs = files + extra_inputs
    if Path(out).resolve().parent == Path(stems_dir).resolve():
        raise AutomixError(f"{out}: write the mix outside the stems folder (it would be mixed as a stem next time)")
    check_output(out, force, inputs)
    if params_out is not None:
        check_output(params_out, force, inputs)
    if params_out is not None and is_audio_file(params_out) and Path(params_out).resolve().parent == \
            Path(stems_dir).resolve():
        raise AutomixError(f"{params_out}: the params file would be read as a stem next time; "
                           "name it .json or write it outside the stems folder")
    stem_outputs: dict[str, Path] = {}
    if stems_out is not None:
        try:
            not_a_folder = stems_out.exists() and not stems_out.is_dir()
        except OSError as e:  # e.g. a name longer than the file system allows
            raise AutomixError(f"{stems_out}: cannot write ({e.strerror or e})") from None
        if not_a_folder:
            raise AutomixError(f"{stems_out}: --stems-out must be a folder")
        if stems_out.resolve() == Path(stems_dir).resolve():
            raise AutomixError(f"{stems_out}: write the processed stems outside the stems folder "
                               "(they would be mixed as stems next time)")
        files_out = {Path(out).resolve(): "the mix"}
        if params_out is not None:
            files_out[Path(params_out).resolve()] = "the params file"
        if stems_out.resolve() in files_out:
            raise AutomixError(f"{stems_out}: --stems-out is also {files_out[stems_out.resolve()]}; "
                               "give it a folder of its own")
        taken: set[str] = set()

        def planned(name: str, what: str) -> Path:
            path = stems_out / stem_output_name(name, taken)
            too_long = name_too_long(path)
            if too_long is not None and too_long[0] == path.name:  # (a folder name too long: check_output says so)
                _, size, limit = too_long
                raise AutomixError(f"{short_name(name)}: its processed stem would be {short_name(path.name)}, "
                                   f"{size} bytes, more than the {limit} the file system allows; rename the stem")
            # With --force this file would silently replace the mix (or params) just written.
            if path.resolve() in files_out:
                raise AutomixError(f"{path}: would be written twice, as {files_out[path.resolve()]} and as {what}; "
                                   "choose another --stems-out or output name")
            return check_output(path, force, inputs)

        stem_outputs = {f.name: planned(f.name, f"the processed {f.name}") for f in files}
        fx_output = planned(FX_RETURN_NAME, "the reverb return")
        notes: list[str] = []
        usual = f"{FX_RETURN_NAME}.wav"
        if fx_output.name != usual:  # a stem took the usual name: say which file is the return
            taker = next(name for name, path in stem_outputs.items() if path.name == usual)
            notes.append(f"the reverb return is {fx_output.name} ({usual} is kept for the stem {taker})")
        return OutputPlan(Path(out), params_out, stems_out, stem_outputs, inputs, fx_output, notes)
    return OutputPlan(Path(out), params_out, stems_out, stem_outputs, inputs)


# --------------------------------------------------------------------------------------
# Shared back half: render → finalize → write
# --------------------------------------------------------------------------------------

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
        write_audio(plan.out, final, sample_rate, bit_depth, force=force, protect=plan.inputs, gain=gain)
        if plan.params_out is not None:
            write_text_atomic(plan.params_out, dumps(settings), force=force, protect=plan.inputs)
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


def check_predicted(settings: MixSettings, stems: list[Stem], mixer_name: str) -> None:
    """A mixer's output must cover the stems in order with finite values (a bug otherwise)."""
    names = [s.name for s in stems]
    if settings.track_names != names:
        raise RuntimeError(f"mixer {mixer_name!r} returned tracks {settings.track_names}, expected {names}")
    arrays = (settings.track, settings.fx, settings.master)
    if settings.track.shape[0] != len(names) or not all(np.isfinite(a).all() for a in arrays):
        raise RuntimeError(f"mixer {mixer_name!r} returned malformed or non-finite settings")


# --------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------

def mix(
    stems_dir: str | Path,
    out: str | Path,
    params_out: str | Path | None = None,
    model: str = DEFAULT_MIXER,
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
    stream: bool | None = None,
    strict: bool = False,
    daw: str | None = None,
) -> MixResult:
    """Mix a folder of stems with a mixer or trained model; write the mix and its ``mix.json``.

    Args:
        stems_dir: folder of stems (see :func:`automix.io.audio.load_stems`).
        out: the mix, ``.wav`` (or ``.flac``).
        params_out: the params JSON; default ``out`` with ``.json``.
        model: ``rules``, ``mono``, ``equal-loudness``, ``random``, a registry name or a checkpoint path.
        target_lufs, ceiling_dbtp: output stage loudness target and true-peak ceiling.
        sample_rate: render rate in Hz; None = the most common stem rate.
        stems_out: folder for the processed stems (post-fader, panned, stereo, float WAV) and
            ``reverb_return.wav``; together they sum to the master bus input.
        device: where a trained model runs (``auto``, ``cpu``, ``cuda``…).
        seed: for mixers with randomness.
        force: overwrite existing outputs.
        bit_depth: ``16``, ``24`` or ``32f``.
        progress, log: callbacks for the CLI (steps with fractions; one-line notes).
        stream: read the stems block by block from disk and keep the mix in scratch files
            (memory independent of song length); None = when the stems would take more than
            :data:`STREAM_ABOVE_BYTES` in memory. Same output either way.
        strict: refuse stems with NaN/Inf samples instead of silencing damaged samples (see
            :mod:`automix.io.audio`).
        daw: also write a session for this DAW beside ``out`` (``"reaper"``: ``mix.rpp``; see
            :mod:`automix.daw`), refused like every output if it exists without ``force``.
    """
    started = time.perf_counter()
    out = Path(out)
    params_out = Path(params_out) if params_out is not None else out.with_suffix(".json")
    finalize_values = (
        check_finalize_option("--target-lufs", "target_lufs", target_lufs),
        check_finalize_option("--ceiling", "ceiling_dbtp", ceiling_dbtp),
    )
    check_device(device)
    check_model_name(model)
    check_seed(seed)
    plan = plan_outputs(Path(stems_dir), out, params_out, Path(stems_out) if stems_out else None,
                         bit_depth, force, [], daw)
    log_notes(plan.notes, log)

    mixer = get_mixer(model, device)  # an unknown model fails before any audio is read
    report_step(progress, "load", 0.0)
    stems, rate, notes = _load(Path(stems_dir), sample_rate, log, stream, strict)
    try:
        report_step(progress, "load", 1.0)
        report_step(progress, "analyse", 0.0)
        settings = mixer.predict(stems, rate, seed=seed)
        check_predicted(settings, stems, model)
        add_stem_notes(settings, stems)
        report_step(progress, "analyse", 1.0)

        settings.finalize[FINALIZE.index("target_lufs")] = finalize_values[0]
        settings.finalize[FINALIZE.index("ceiling_dbtp")] = finalize_values[1]
        settings.sample_rate = rate
        settings = settings.clipped().rounded()  # render exactly what mix.json will say
        return render_and_write(stems, rate, settings, plan, force=force, bit_depth=bit_depth, notes=notes,
                                 started=started, progress=progress)
    finally:
        _close(stems)


def render(
    stems_dir: str | Path,
    params: str | Path,
    out: str | Path,
    stems_out: str | Path | None = None,
    target_lufs: float | None = None,
    ceiling_dbtp: float | None = None,
    sample_rate: int | None = None,
    force: bool = False,
    bit_depth: str = "24",
    progress: Progress | None = None,
    log: Log | None = None,
    stream: bool | None = None,
    strict: bool = False,
    daw: str | None = None,
) -> MixResult:
    """Render a folder of stems with the settings of a ``mix.json`` (e.g. after editing it).

    The stems folder must hold exactly the JSON's tracks. Without overrides, the loudness
    target, ceiling and sample rate are the JSON's, and the result is bit-identical to the
    ``mix`` that wrote the JSON. ``stream``, ``strict``, ``daw``: as in :func:`mix`.

    Raises:
        AutomixError: missing/malformed params, stems that do not match, bad options.
    """
    started = time.perf_counter()
    params = Path(params)
    settings = load_params(params)
    if target_lufs is not None:
        settings.finalize[FINALIZE.index("target_lufs")] = check_finalize_option(
            "--target-lufs", "target_lufs", target_lufs)
    if ceiling_dbtp is not None:
        settings.finalize[FINALIZE.index("ceiling_dbtp")] = check_finalize_option(
            "--ceiling", "ceiling_dbtp", ceiling_dbtp)
    plan = plan_outputs(Path(stems_dir), Path(out), None, Path(stems_out) if stems_out else None,
                         bit_depth, force, [params], daw)
    log_notes(plan.notes, log)

    report_step(progress, "load", 0.0)
    rate = sample_rate if sample_rate is not None else settings.sample_rate
    stems, rate, notes = _load(Path(stems_dir), rate, log, stream, strict)
    try:
        report_step(progress, "load", 1.0)
        stems = match_stems(stems, settings, Path(stems_dir), params, plan.inputs)

        settings.sample_rate = rate
        settings = settings.clipped().rounded()
        return render_and_write(stems, rate, settings, plan, force=force, bit_depth=bit_depth, notes=notes,
                                 started=started, progress=progress)
    finally:
        _close(stems)


def match_stems(stems: list, settings: MixSettings, stems_dir: Path, params: Path,
                 inputs: list[Path]) -> list:
    """Stems reordered like the params' tracks; an error naming every mismatch otherwise."""
    by_name = {s.name: s for s in stems}
    missing = [n for n in settings.track_names if n not in by_name]
    extra = [n for n in by_name if n not in settings.track_names]
    if missing or extra:
        on_disk = {p.name for p in inputs}
        parts = []
        if missing:
            silent = [n for n in missing if n in on_disk]
            absent = [n for n in missing if n not in on_disk]
            if absent:
                parts.append(f"missing {', '.join(absent)}")
            if silent:
                parts.append(f"silent {', '.join(silent)}")
        if extra:
            parts.append(f"not in the params: {', '.join(extra)}")
        raise AutomixError(f"{stems_dir} does not match {params.name}: {'; '.join(parts)}")
    return [by_name[n] for n in settings.track_names]

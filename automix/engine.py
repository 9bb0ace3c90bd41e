"""The pipeline every command shares: load → predict → render → finalize → write.

:func:`mix` asks a mixer (``--model``) for console settings; :func:`render` takes them from
a ``mix.json``. Both check every output path *before* doing any work, render the settings
exactly as ``mix.json`` stores them (so re-rendering a written JSON is bit-exact), and write
all outputs atomically. Errors the user can fix are :class:`~automix.errors.AutomixError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.console.schema import DEFAULT_CEILING_DBTP, DEFAULT_TARGET_LUFS, FINALIZE
from automix.console.settings import MixSettings, load_params
from automix.direct_mix import check_direct_options, write_direct_mix
from automix.errors import AutomixError
from automix.io import (
    Stem,
    StemFile,
    load_stems,
    open_stems,
    scan_folder,
)
from automix.mix_writer import MixResult, Progress, render_and_write, report_step
from automix.mixers import DEFAULT_MIXER, check_device, check_model_name, check_seed, get_mixer
from automix.mixers.base import outputs_audio
from automix.mixers.riding import ride_faders
from automix.output_plan import FX_RETURN_NAME, check_finalize_option, plan_outputs

Log = Callable[[str], None]



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


def direct_stream_note(model: str, stems_dir: Path, sample_rate: int | None, stream: bool | None) -> str | None:
    """The note for an end-to-end model asked to stream (``stream=True``), or whose stems are
    large enough that a console mix would stream them (``stream=None``): it cannot, it needs
    every stem at once, so the stems are loaded and the mix is made in memory. None otherwise."""
    if stream is False:
        return None
    if stream is None:
        files, _ = scan_folder(stems_dir)
        if decoded_bytes(files, sample_rate) <= STREAM_ABOVE_BYTES:
            return None
    return (f"note: {model} is an end-to-end model: it needs every stem at once, so the stems are loaded and "
            "the mix is rendered in memory (not streamed from disk)")


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
    automate: bool = True,
) -> MixResult:
    """Mix a folder of stems with a mixer or trained model; write the mix and its ``mix.json``.

    Args:
        stems_dir: folder of stems (see :func:`automix.io.load_stems`).
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
            :data:`STREAM_ABOVE_BYTES` in memory. Same output either way. An end-to-end model
            cannot stream (it needs every stem at once): it loads them, with a note to ``log``.
        strict: refuse stems with NaN/Inf samples instead of silencing damaged samples (see
            :mod:`automix.io`).
        daw: also write a session for this DAW beside ``out`` (``"reaper"``: ``mix.rpp``; see
            :mod:`automix.daw`), refused like every output if it exists without ``force``.
        automate: ride faders per section where a track's balance against the rest changes
            (:mod:`automix.mixers.riding`); False = one static setting per track.
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
    direct = outputs_audio(mixer)
    if direct:
        check_direct_options(model, plan.stems_out, daw)
        if log is not None and (note := direct_stream_note(model, Path(stems_dir), sample_rate, stream)):
            log(note)
    report_step(progress, "load", 0.0)
    # An end-to-end network needs every stem at once: it reads no stream (the note above says so).
    stems, rate, notes = _load(Path(stems_dir), sample_rate, log, False if direct else stream, strict)
    try:
        report_step(progress, "load", 1.0)
        if direct:
            return write_direct_mix(mixer, stems, rate, plan, seed=seed, target_lufs=finalize_values[0],
                                    ceiling_dbtp=finalize_values[1], force=force, bit_depth=bit_depth, notes=notes,
                                    started=started, progress=progress)
        report_step(progress, "analyse", 0.0)
        settings = mixer.predict(stems, rate, seed=seed)
        check_predicted(settings, stems, model)
        add_stem_notes(settings, stems)
        if automate:
            settings = ride_faders(settings, stems, rate)
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


__all__ = [
    "FX_RETURN_NAME", "Log", "MixResult", "Progress", "add_stem_notes", "check_finalize_option", "check_predicted",
    "direct_stream_note", "log_notes", "match_stems", "mix", "note_cold_kernels", "plan_outputs", "render",
    "render_and_write", "report_step",
]

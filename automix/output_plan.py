"""Every output of a mix checked before any work: formats, paths, clobbering, inputs kept safe.

:func:`plan_outputs` refuses a bad or taken output path (and the DAW session's) with a one-line
:class:`~automix.errors.AutomixError` before any audio is read, so a refused command leaves
nothing behind; the :class:`OutputPlan` it returns says where each file goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from automix.console.schema import FINALIZE
from automix.daw import check_daw, project_path
from automix.errors import AutomixError
from automix.io import (
    check_bit_depth,
    check_output,
    is_audio_file,
    name_too_long,
    output_format,
    scan_folder,
    short_name,
)

FX_RETURN_NAME = "reverb_return"
"""File name (before ``.wav``) of the reverb return that ``--stems-out`` writes beside the tracks."""


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

"""The mix and its ``mix.json`` are written as a pair; an end-to-end model says it cannot stream.

A failure after the audio is complete but while the JSON is written (a full disk, simulated)
must leave the previous pair exactly as it was, or, without one, nothing at all, and no temp
files; an output that appears while we work is refused without ``--force`` before any move.
"""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch

from automix import engine
from automix.errors import AutomixError, OutputExistsError
from automix.models.checkpoint import save_checkpoint
from automix.models.wave_unet import WaveUNet, WaveUNetConfig

RATE = 16000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny untrained Wave-U-Net checkpoint (an end-to-end model)."""
    torch.manual_seed(0)
    net = WaveUNet(WaveUNetConfig(sample_rate_hz=RATE, max_tracks=6, levels=3, base_channels=4, growth=4,
                                  down_kernel=5, up_kernel=3)).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny-unet"
    save_checkpoint(path, net, {"description": "a tiny end-to-end model"})
    return path


def _fail_json_writes(monkeypatch, folder: Path, appear: Path | None = None) -> list[Path]:
    """Make writing any ``.json`` file in ``folder`` fail half-way (a full disk), or, with
    ``appear``, succeed but create ``appear`` meanwhile (another process writing it)."""
    real = pathlib.Path.write_text
    attempts: list[Path] = []

    def write_text(self, data, *args, **kwargs):
        if self.suffix == ".json" and self.parent.resolve() == folder.resolve():
            attempts.append(self)
            if appear is not None:
                real(appear, "{}\n", encoding="utf-8")
                return real(self, data, *args, **kwargs)
            real(self, data[: len(data) // 2], *args, **kwargs)
            raise OSError(28, "No space left on device")
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    return attempts


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _mix(song: Path, out: Path, model: str | None, **kwargs):
    return engine.mix(song, out, **({"model": model} if model else {}), automate=False, **kwargs)


MODELS = pytest.mark.parametrize("kind", ["console", "end-to-end"])


@MODELS
def test_a_failure_writing_the_json_leaves_the_previous_pair_intact(kind, tiny_model, tmp_path, synth,
                                                                    monkeypatch):
    song = synth.write_song(tmp_path / "stems", duration_s=1.0)
    model = str(tiny_model) if kind == "end-to-end" else None
    out_dir = tmp_path / "out"
    _mix(song, out_dir / "mix.wav", model, ceiling_dbtp=-1.0)
    before = _snapshot(out_dir)
    assert sorted(before) == ["mix.json", "mix.wav"]

    attempts = _fail_json_writes(monkeypatch, out_dir)
    with pytest.raises(AutomixError, match="No space left on device"):
        _mix(song, out_dir / "mix.wav", model, ceiling_dbtp=-3.0, force=True)  # a different mix
    assert attempts, "the JSON write was never attempted"
    assert _snapshot(out_dir) == before  # same files, same bytes: no new mix beside the old JSON, no temps

    monkeypatch.undo()
    _mix(song, out_dir / "mix.wav", model, ceiling_dbtp=-3.0, force=True)
    after = _snapshot(out_dir)
    assert sorted(after) == ["mix.json", "mix.wav"] and after["mix.wav"] != before["mix.wav"]


@MODELS
def test_a_failure_writing_the_json_of_a_first_mix_leaves_nothing(kind, tiny_model, tmp_path, synth, monkeypatch):
    song = synth.write_song(tmp_path / "stems", duration_s=1.0)
    model = str(tiny_model) if kind == "end-to-end" else None
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _fail_json_writes(monkeypatch, out_dir)
    with pytest.raises(AutomixError, match="No space left on device"):
        _mix(song, out_dir / "mix.wav", model)
    assert list(out_dir.iterdir()) == []


def test_a_json_that_appears_while_mixing_is_not_clobbered_and_no_mix_is_moved(tiny_model, tmp_path, synth,
                                                                               monkeypatch):
    song = synth.write_song(tmp_path / "stems", duration_s=1.0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _fail_json_writes(monkeypatch, out_dir, appear=out_dir / "mix.json")
    with pytest.raises(OutputExistsError, match="mix.json: exists"):
        _mix(song, out_dir / "mix.wav", None)
    assert _snapshot(out_dir) == {"mix.json": b"{}\n"}  # theirs kept, no mix.wav without its JSON, no temps


def test_existing_outputs_are_still_refused_without_force(tmp_path, synth):
    song = synth.write_song(tmp_path / "stems", duration_s=1.0)
    out_dir = tmp_path / "out"
    _mix(song, out_dir / "mix.wav", None)
    before = _snapshot(out_dir)
    with pytest.raises(OutputExistsError, match="use --force"):
        _mix(song, out_dir / "mix.wav", None, ceiling_dbtp=-3.0)
    assert _snapshot(out_dir) == before


# ---- an end-to-end model asked to stream ----------------------------------------------------

def test_an_end_to_end_model_asked_to_stream_says_it_renders_in_memory(tiny_model, tmp_path, synth):
    song = synth.write_song(tmp_path / "stems", duration_s=1.0)
    lines: list[str] = []
    engine.mix(song, tmp_path / "a.wav", model=str(tiny_model), stream=True, log=lines.append)
    notes = [line for line in lines if "end-to-end" in line]
    assert len(notes) == 1 and "\n" not in notes[0]
    assert notes[0].startswith("note: ") and "in memory" in notes[0] and "not streamed" in notes[0]

    lines.clear()
    engine.mix(song, tmp_path / "b.wav", model=str(tiny_model), stream=False, log=lines.append)
    engine.mix(song, tmp_path / "c.wav", model=str(tiny_model), log=lines.append)  # small: would load anyway
    assert not [line for line in lines if "end-to-end" in line]

    lines.clear()
    engine.mix(song, tmp_path / "d.wav", stream=True, log=lines.append, automate=False)  # a console mix streams
    assert not [line for line in lines if "in memory" in line]


def test_an_end_to_end_model_on_a_session_that_would_stream_says_so(tiny_model, tmp_path, synth, monkeypatch):
    song = synth.write_song(tmp_path / "stems", duration_s=1.0)
    monkeypatch.setattr(engine, "STREAM_ABOVE_BYTES", 0)  # every session counts as large
    lines: list[str] = []
    engine.mix(song, tmp_path / "a.wav", model=str(tiny_model), log=lines.append)
    assert len([line for line in lines if "in memory" in line]) == 1


def test_the_stream_note_reaches_stderr_through_the_cli_log(tiny_model, tmp_path, synth, capsys):
    from automix.cli_common import Reporter

    song = synth.write_song(tmp_path / "stems", duration_s=1.0)
    engine.mix(song, tmp_path / "a.wav", model=str(tiny_model), stream=True, log=Reporter().log)
    captured = capsys.readouterr()
    assert "rendered in memory" in captured.err and "in memory" not in captured.out

"""``--daw reaper``: the REAPER session written beside the mix, parsed back and played by summing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import assert_user_error, run

from automix.console.render import render_console
from automix.console.schema import SEND_OFF_DB, TRACK, db_to_amplitude, send_gain
from automix.console.settings import load_params
from automix.daw.reaper import FX_RETURN_TRACK, quote
from automix.io import load_stems

_TOKEN = re.compile(r'"[^"]*"|\'[^\']*\'|`[^`]*`|\S+')


@dataclass
class Node:
    """One ``<NAME args…`` block of a REAPER project: its lines (tokenised) and its sub-blocks."""

    name: str
    args: list[str]
    lines: list[list[str]] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def value(self, key: str) -> list[str]:
        return next(line[1:] for line in self.lines if line[0] == key)

    def all(self, key: str) -> list[list[str]]:
        return [line[1:] for line in self.lines if line[0] == key]

    def blocks(self, name: str) -> list[Node]:
        return [c for c in self.children if c.name == name]


def unquote(token: str) -> str:
    return token[1:-1] if token[:1] in "\"'`" and token[-1:] == token[:1] and len(token) >= 2 else token


def parse_rpp(text: str) -> Node:
    """The project as a tree; fails on unbalanced blocks (a project REAPER could not open)."""
    stack: list[Node] = []
    root: Node | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("|"):  # notes text
            continue
        if line.startswith("<"):
            tokens = _TOKEN.findall(line[1:])
            node = Node(tokens[0], [unquote(t) for t in tokens[1:]])
            if stack:
                stack[-1].children.append(node)
            else:
                assert root is None, "two top-level blocks"
                root = node
            stack.append(node)
        elif line == ">":
            stack.pop()
        else:
            tokens = _TOKEN.findall(line)
            stack[-1].lines.append([tokens[0], *(unquote(t) for t in tokens[1:])])
    assert root is not None and not stack, "unbalanced project"
    return root


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory, synth) -> Path:
    """The five-stem test song plus a silent stem (left out of the mix, muted in the session)."""
    folder = synth.write_song(tmp_path_factory.mktemp("daw") / "stems", duration_s=1.5)
    synth.write(folder / "silence.wav", np.zeros((1, synth.SR), dtype=np.float32))
    return folder


def _tracks(project: Node) -> dict[str, Node]:
    return {t.value("NAME")[0]: t for t in project.blocks("TRACK")}


def _item_file(track: Node, rpp: Path) -> Path:
    source = track.blocks("ITEM")[0].blocks("SOURCE")[0]
    return (rpp.parent / source.value("FILE")[0]).resolve()


def test_original_stem_session_carries_faders_pans_and_sends(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix" / "mix.wav"
    result = run("mix", song, "-o", out, "--model", "rules", "--daw", "reaper")
    assert result.exit_code == 0, result.output
    rpp = out.with_suffix(".rpp")
    assert f"session {rpp}" in result.stderr + result.stdout
    project = parse_rpp(rpp.read_text(encoding="utf-8"))
    assert project.name == "REAPER_PROJECT"
    assert project.value("SAMPLERATE")[0] == "44100"
    settings = load_params(out.with_suffix(".json"))
    tracks = _tracks(project)
    assert set(tracks) == {Path(n).stem for n in settings.track_names} | {"silence", FX_RETURN_TRACK}

    sends = []
    for i, name in enumerate(settings.track_names):
        track = tracks[Path(name).stem]
        volume, pan = map(float, track.value("VOLPAN")[:2])
        strip_db = settings.get(i, "trim_db") + settings.get(i, "gain_db") + settings.get(i, "compressor.makeup_db")
        mono = sf.info(str(song / name)).channels == 1
        assert volume == pytest.approx(db_to_amplitude(strip_db) * (np.sqrt(0.5) if mono else 1.0), rel=1e-9)
        assert pan == pytest.approx(settings.get(i, "pan"), abs=1e-12)
        assert track.value("MUTESOLO")[0] == "0"
        assert _item_file(track, rpp) == (song / name).resolve()  # relative path to the original
        kind = track.blocks("ITEM")[0].blocks("SOURCE")[0].args[0]
        assert kind == ("FLAC" if name.endswith(".flac") else "WAVE")
        if settings.get(i, "send.reverb_db") > SEND_OFF_DB:
            sends.append((str(i), send_gain(settings.get(i, "send.reverb_db"))))
    assert tracks["silence"].value("MUTESOLO")[0] == "1"
    assert _item_file(tracks["silence"], rpp) == (song / "silence.wav").resolve()

    fx_return = tracks[FX_RETURN_TRACK]
    assert fx_return.value("MUTESOLO")[0] == "1"  # no reverb on it yet: muted
    receives = [(r[0], float(r[2])) for r in fx_return.all("AUXRECV")]
    assert len(receives) == len(sends) > 0
    for (source, gain), (want_source, want_gain) in zip(receives, sends):
        assert source == want_source and gain == pytest.approx(want_gain, rel=1e-9)
    notes = rpp.read_text(encoding="utf-8").split("<NOTES")[1]
    assert "compressor" in notes and "not in this session" in notes.lower()

    # The same mix.json rendered again writes the same session, byte for byte.
    again = tmp_path / "again" / "mix.wav"
    assert run("render", song, out.with_suffix(".json"), "-o", again, "--daw", "reaper").exit_code == 0
    assert again.with_suffix(".rpp").read_text(encoding="utf-8") == rpp.read_text(encoding="utf-8")


def test_processed_session_nulls_with_the_mix_before_its_master_stage(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix.wav"
    result = run("mix", song, "-o", out, "--model", "rules", "--stems-out", tmp_path / "processed",
                 "--daw", "reaper")
    assert result.exit_code == 0, result.output
    rpp = out.with_suffix(".rpp")
    project = parse_rpp(rpp.read_text(encoding="utf-8"))

    played = None
    for name, track in _tracks(project).items():
        if track.value("MUTESOLO")[0] == "1":
            assert name == "silence"
            continue
        volume, pan = map(float, track.value("VOLPAN")[:2])
        assert (volume, pan) == (1.0, 0.0)  # the strip is in the file
        audio, rate = sf.read(_item_file(track, rpp), dtype="float64", always_2d=True)
        played = audio.T * volume if played is None else played + audio.T * volume
    assert played is not None

    settings = load_params(out.with_suffix(".json"))
    stems, rate, _ = load_stems(song, settings.sample_rate)
    by_name = {s.name: s.audio for s in stems}
    returns: list[np.ndarray] = []
    _, tracks = render_console([by_name[n] for n in settings.track_names], rate, settings, return_tracks=True,
                               fx_sink=returns.append)
    bus = np.sum(tracks, axis=0, dtype=np.float64) + np.concatenate(returns, axis=1)
    assert np.abs(bus).max() > 0.05  # a real mix, not silence
    assert np.abs(played - bus).max() < 1e-5  # the session plays the mix before its master stage

    # The session's reverb is the rendered return; the receives are kept, muted.
    fx_return = _tracks(project)[FX_RETURN_TRACK]
    assert fx_return.value("MUTESOLO")[0] == "0"
    assert all(r[4] == "1" for r in fx_return.all("AUXRECV"))
    assert _item_file(fx_return, rpp).name == "reverb_return.wav"


def test_daw_refusals_are_one_line_and_write_nothing(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix.wav"
    bad = run("mix", song, "-o", out, "--daw", "ableton")
    assert_user_error(bad, "ableton", "reaper")
    assert not out.exists()

    out.with_suffix(".rpp").write_text("mine", encoding="utf-8")
    taken = run("mix", song, "-o", out, "--daw", "reaper")
    assert_user_error(taken, "mix.rpp", "--force")
    assert not out.exists() and out.with_suffix(".rpp").read_text(encoding="utf-8") == "mine"

    assert run("mix", song, "-o", out, "--daw", "reaper", "--force").exit_code == 0
    assert out.with_suffix(".rpp").read_text(encoding="utf-8").startswith("<REAPER_PROJECT")


@pytest.mark.parametrize("name", ['plain', 'say "hi"', "it's \"both\"", "all ` ' \""])
def test_names_survive_quoting(name: str) -> None:
    tokens = _TOKEN.findall(f"NAME {quote(name)}")
    assert len(tokens) == 2
    back = unquote(tokens[1])
    assert back == name or ("`" in name and back == name.replace("`", "'"))


def _kick_with_neutral_strip(song: Path, tmp_path: Path):
    """The rules' mix of ``song`` with the kick's EQ, compressor and width set to do nothing;
    returns ``(settings, kick index)``."""
    out = tmp_path / "mix.wav"
    assert run("mix", song, "-o", out, "--model", "rules").exit_code == 0
    settings = load_params(out.with_suffix(".json"))
    i = settings.track_names.index("kick.wav")
    for name in TRACK.names:
        if name.startswith(("eq.", "compressor.")) or name == "width":
            settings.set(i, name, TRACK.spec(name).default)
    settings.set(i, "eq.highpass.freq_hz", TRACK.spec("eq.highpass.freq_hz").minimum)
    settings.set(i, "compressor.ratio", 1.0)
    return settings, i


def test_what_the_session_leaves_out_is_listed(song: Path, tmp_path: Path) -> None:
    from automix.daw.reaper import processing_summary

    settings, i = _kick_with_neutral_strip(song, tmp_path)
    assert processing_summary(settings, i) == "nothing"
    settings.set(i, "eq.band_2.gain_db", -5.0)
    settings.set(i, "eq.band_2.freq_hz", 646.0)
    settings.set(i, "eq.band_2.q", 4.0)
    settings.set(i, "compressor.ratio", 4.0)
    settings.set(i, "compressor.threshold_db", -20.0)
    assert processing_summary(settings, i) == "-5 dB at 646 Hz, Q 4; compressor 4:1 at -20 dB"


def test_style_transfer_writes_the_session_too(song: Path, tmp_path: Path, synth) -> None:
    reference = synth.write(tmp_path / "ref.wav", np.stack([synth.pad(2.0)[0], synth.lead(2.0)[0]]))
    out = tmp_path / "styled.wav"
    result = run("style-transfer", song, "--ref", reference, "-o", out, "--refine", "0", "--daw", "reaper")
    assert result.exit_code == 0, result.output
    project = parse_rpp(out.with_suffix(".rpp").read_text(encoding="utf-8"))
    settings = load_params(out.with_suffix(".json"))
    assert {Path(n).stem for n in settings.track_names} <= set(_tracks(project))


def test_a_ridden_eq_band_is_noted_as_ridden_with_its_range_not_its_static_gain(song: Path, tmp_path: Path) -> None:
    """Issue 15: a band with a gain lane renders the lane, not its static gain; the session
    (which writes no envelopes) says so in the notes with the lane's range."""
    from automix.console.automation import Lane
    from automix.daw.reaper import processing_summary

    settings, i = _kick_with_neutral_strip(song, tmp_path)
    settings.set(i, "eq.band_2.gain_db", -5.0)  # the static gain: not what plays
    settings.set(i, "eq.band_2.freq_hz", 646.0)
    settings.set(i, "eq.band_2.q", 4.0)
    settings.automation.setdefault("kick.wav", {})["eq.band_2.gain_db"] = Lane((0.0, 0.5, 1.0), (-4.0, 3.0, 1.5))
    summary = processing_summary(settings, i)
    assert summary == "band_2 ridden -4 dB…+3 dB at 646 Hz (automated; its lane is in mix.json, not in this session)"
    assert "-5 dB" not in summary
    settings.set(i, "eq.band_3.gain_db", 2.0)  # a static band beside the ridden one is still described
    settings.set(i, "eq.band_3.freq_hz", 2500.0)
    assert processing_summary(settings, i).startswith("+2 dB at 2.5 kHz")

    # and the written project's notes carry it
    from automix.daw import write_session

    project = write_session("reaper", tmp_path / "ridden.rpp", settings,
                            {s: song / s for s in settings.track_names}, duration_s=2.0)
    text = project.read_text()
    assert re.search(r"\|  kick: [^\n]*band_2 ridden -4 dB…\+3 dB at 646 Hz \(automated", text), text


def test_fader_pan_and_send_rides_are_noted_with_their_range(song: Path, tmp_path: Path) -> None:
    """The original-stem session holds static faders: a ridden fader, pan or send is told in the
    notes with the lane's range, so nobody takes the session's fader for the mix's."""
    from automix.console.automation import Lane
    from automix.daw import write_session
    from automix.daw.reaper import processing_summary

    settings, i = _kick_with_neutral_strip(song, tmp_path)
    lanes = settings.automation.setdefault("kick.wav", {})
    lanes["gain_db"] = Lane((0.0, 0.75, 1.25), (-6.0, -6.0, 2.0))
    assert processing_summary(settings, i) == ("fader ridden -6 dB…+2 dB (automated; its lane is in mix.json, "
                                               "not in this session)")
    lanes["pan"] = Lane((0.0, 1.0), (-0.25, 0.5))
    lanes["send.reverb_db"] = Lane((0.0, 1.0), (TRACK.spec("send.reverb_db").minimum, -12.5))
    summary = processing_summary(settings, i)
    assert "pan ridden -0.25…+0.5 (automated" in summary
    assert "reverb send ridden off…-12.5 dB (automated" in summary
    lanes["pan"] = Lane((0.0, 1.0), (0.3, 0.3))  # a flat lane: one value
    assert "pan ridden +0.3 (automated" in processing_summary(settings, i)
    project = write_session("reaper", tmp_path / "rides.rpp", settings,
                            {s: song / s for s in settings.track_names}, duration_s=2.0)
    assert re.search(r"\|  kick: fader ridden -6 dB…\+2 dB \(automated", project.read_text())

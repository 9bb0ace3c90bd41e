"""Audio I/O: folder loading rules, resampling quality, atomic and safe writing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import sine as _signal_sine

from automix.errors import AudioLoadError, AutomixError, OutputExistsError
from automix.io import (
    AudioWriter,
    ScratchAudio,
    check_output,
    choose_sample_rate,
    load_audio,
    load_stems,
    open_stems,
    resample,
    resample_blocks,
    write_audio,
    write_text_atomic,
)
from automix.io import wav as wav_module


def sine(freq_hz: float, sr: int, duration_s: float = 0.5, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    return _signal_sine(freq_hz, duration_s, amplitude=amp, sr=sr, channels=channels)


def test_folder_order_skips_and_notes(tmp_path, synth):
    synth.write(tmp_path / "b.wav", sine(220, 44100))
    synth.write(tmp_path / "A.flac", sine(330, 44100, channels=2))
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    seen: list[str] = []
    stems, sr, notes = load_stems(tmp_path, log=seen.append)
    assert [s.name for s in stems] == ["A.flac", "b.wav"]
    assert [s.channels for s in stems] == [2, 1]  # stereo stays stereo, mono stays mono
    assert sr == 44100
    assert any(".DS_Store" in n for n in notes) and any("notes.txt" in n for n in notes)
    assert any("sub/" in n for n in notes)
    assert seen == notes
    assert all(s.audio.dtype == np.float32 for s in stems)


def test_mixed_rates_resampled_and_padded(tmp_path, synth):
    synth.write(tmp_path / "low.wav", sine(1000, 8000, 1.0), 8000)
    synth.write(tmp_path / "high.wav", sine(1000, 96000, 0.5), 96000)
    synth.write(tmp_path / "high2.wav", sine(500, 96000, 0.25), 96000)
    stems, sr, notes = load_stems(tmp_path)
    assert sr == 96000  # the most common rate
    assert {s.audio.shape[1] for s in stems} == {96000}
    assert any("low.wav from 8000 Hz to 96000 Hz" in n for n in notes)
    assert any("padded high2.wav" in n for n in notes)
    high2 = next(s for s in stems if s.name == "high2.wav")
    assert np.all(high2.audio[:, 24000:] == 0.0)
    stems, sr, _ = load_stems(tmp_path, sample_rate=44100)
    assert sr == 44100 and stems[0].audio.shape[1] == 44100


def test_choose_sample_rate_tie_goes_to_higher_rate():
    assert choose_sample_rate([44100, 48000]) == 48000
    assert choose_sample_rate([44100, 44100, 48000]) == 44100


@pytest.mark.parametrize(("src", "dst"), [(48000, 44100), (44100, 48000), (8000, 96000), (96000, 22050)])
def test_resampler_is_clean(src, dst):
    """A 1 kHz sine resampled must match the ideal sine to better than −80 dB (edges excluded)."""
    x = sine(1000.0, src, 1.0)
    y = resample(x, src, dst)
    assert y.shape == (1, dst)
    ideal = sine(1000.0, dst, 1.0)
    core = slice(dst // 10, -dst // 10)
    err_db = 20 * np.log10(np.sqrt(np.mean((y[0, core] - ideal[0, core]) ** 2)) / np.sqrt(np.mean(ideal[0, core] ** 2)))
    assert err_db < -80.0


def test_resampler_rejects_aliases():
    """A 30 kHz tone at 96 kHz must not fold back into the audio band of a 44.1 kHz result."""
    y = resample(sine(30000.0, 96000, 1.0), 96000, 44100)
    level_db = 20 * np.log10(np.sqrt(np.mean(y[0, 4410:-4410] ** 2)) / (0.5 / np.sqrt(2)))
    assert level_db < -80.0


def test_silent_stem_is_skipped_with_a_note(tmp_path, synth):
    synth.write(tmp_path / "a.wav", sine(220, 44100))
    synth.write(tmp_path / "quiet.wav", sine(220, 44100, amp=1e-5))  # −100 dBFS peak
    stems, _, notes = load_stems(tmp_path)
    assert [s.name for s in stems] == ["a.wav"]
    assert "skipped quiet.wav (silent)" in notes


def test_all_silent_is_an_error(tmp_path, synth):
    synth.write(tmp_path / "a.wav", np.zeros((1, 4410), np.float32))
    with pytest.raises(AutomixError, match="silent"):
        load_stems(tmp_path)


def test_nan_samples_name_the_file_when_strict(tmp_path, synth):
    x = sine(220, 44100)
    x[0, 100] = np.nan
    synth.write(tmp_path / "broken.wav", x)
    for load in (load_stems, open_stems):
        with pytest.raises(AudioLoadError, match=r"^broken\.wav: 1 NaN/Inf samples; the file is damaged"):
            load(tmp_path, strict=True)
    with pytest.raises(AudioLoadError, match=r"^broken\.wav: 1 NaN/Inf samples"):  # a single file (a reference)
        load_audio(tmp_path / "broken.wav")


def _damaged_song(folder: Path, synth) -> tuple[Path, np.ndarray]:
    """A float WAV lead (44.1 kHz) with 2 NaN and one 1e6 sample beside a clean bass at 48 kHz
    (so both loaders also resample); returns the lead's path and its clean samples."""
    folder.mkdir()
    clean = synth.lead(1.0)
    x = clean.copy()
    x[0, 4410], x[0, 30000], x[0, 20000] = np.nan, np.nan, 1e6
    synth.write(folder / "bass.wav", synth.bass(1.0, 48000), 48000)
    return synth.write(folder / "lead.wav", x), clean


def test_damaged_samples_are_silenced_alike_in_memory_and_streamed(tmp_path, synth):
    """NaN/Inf and absurd (> +60 dBFS) samples become 0 with one note, the rest is untouched;
    streamed stems read the same samples; the file itself is never changed."""
    lead, clean = _damaged_song(tmp_path / "stems", synth)
    before = lead.read_bytes()
    loaded, rate, notes = load_stems(tmp_path / "stems", sample_rate=44100)
    streamed, _, streamed_notes = open_stems(tmp_path / "stems", sample_rate=44100)
    try:
        assert rate == 44100 and [s.name for s in loaded] == ["bass.wav", "lead.wav"]
        expected = clean.copy()
        expected[0, [4410, 20000, 30000]] = 0.0
        by_name = {s.name: s for s in loaded}
        np.testing.assert_array_equal(by_name["lead.wav"].audio, expected)
        note = "3 damaged samples (NaN/Inf or beyond +60 dBFS) silenced, first at 0.100 s"
        assert by_name["lead.wav"].notes == [note] and by_name["bass.wav"].notes == []
        assert f"lead.wav: {note}" in notes
        assert streamed_notes == notes
        for memory, disk in zip(loaded, streamed):
            assert disk.notes == memory.notes
            np.testing.assert_allclose(disk.read(0, disk.frames), memory.audio, rtol=0, atol=1e-6)
        assert np.array_equal(streamed[1].read(19990, 20010), expected[:, 19990:20010])
    finally:
        for stem in streamed:
            stem.close()
    # Resampled (the damaged lead to 48 kHz): the repair comes first on both paths.
    loaded, _, _ = load_stems(tmp_path / "stems", sample_rate=48000)
    streamed, _, _ = open_stems(tmp_path / "stems", sample_rate=48000)
    try:
        assert np.isfinite(loaded[1].audio).all() and np.abs(loaded[1].audio).max() < 1.0
        for memory, disk in zip(loaded, streamed):
            np.testing.assert_allclose(disk.read(0, disk.frames), memory.audio, rtol=0, atol=1e-6)
    finally:
        for stem in streamed:
            stem.close()
    assert lead.read_bytes() == before


@pytest.mark.parametrize(("name", "subtype"), [("x.wav", "FLOAT"), ("x.wav", "DOUBLE"), ("x.aiff", "FLOAT")])
def test_damaged_samples_are_silenced_by_either_decoder(tmp_path, name, subtype):
    """Float WAV is decoded by automix, double WAV and float AIFF by libsndfile: the same repair."""
    x = np.full((2, 2000), 0.25)
    x[1, 700], x[0, 1500] = -np.inf, 1e30
    sf.write(tmp_path / name, x.T, 8000, subtype=subtype)
    for load in (load_stems, open_stems):
        stems, _, notes = load(tmp_path)
        audio = stems[0].audio
        if load is open_stems:
            stems[0].close()
        assert audio[1, 700] == 0.0 and audio[0, 1500] == 0.0 and np.count_nonzero(audio != 0.25) == 2
        assert notes == [f"{name}: 2 damaged samples (NaN/Inf or beyond +60 dBFS) silenced, first at 0.087 s"]


def test_strict_keeps_finite_samples_and_refuses_nan(tmp_path, synth):
    x = synth.lead(0.5)
    x[0, 100] = 1e6  # finite: kept as it is (the older rule)
    synth.write(tmp_path / "loud.wav", x)
    stems, _, notes = load_stems(tmp_path, strict=True)
    assert stems[0].audio[0, 100] == 1e6 and stems[0].notes == [] and not any("damaged" in n for n in notes)
    x[0, 200] = np.inf
    synth.write(tmp_path / "loud.wav", x)
    for load in (load_stems, open_stems):
        with pytest.raises(AudioLoadError, match=r"^loud\.wav: 1 NaN/Inf samples.*without --strict"):
            load(tmp_path, strict=True)


@pytest.mark.parametrize("damaged_share", [0.02, 1.0])
def test_mostly_damaged_stem_is_refused(tmp_path, synth, damaged_share):
    x = synth.pad(0.5)  # stereo: samples are counted per channel
    step = round(1 / damaged_share)
    x[:, ::step] = np.nan
    synth.write(tmp_path / "a.wav", synth.kick(0.5))
    synth.write(tmp_path / "noise.wav", x)
    share = f"{100 * x[:, ::step].size / x.size:.3g}%"
    for load in (load_stems, open_stems):
        with pytest.raises(AudioLoadError, match=rf"^noise\.wav: {x[:, ::step].size} of its {x.size} samples "
                                                 rf"\({share}\) are NaN/Inf or beyond \+60 dBFS; the file is too damaged"):
            load(tmp_path)


def test_damage_at_the_limit(tmp_path, synth):
    """Exactly +60 dBFS is kept; one step beyond is damage; at most 1 % damaged is repaired."""
    x = np.zeros((1, 1000), np.float32)
    x[0, :9] = 0.5
    x[0, 10], x[0, 11], x[0, 12] = 1e3, -1e3, np.nextafter(np.float32(1e3), np.float32(np.inf))
    synth.write(tmp_path / "edge.wav", x)
    stems, _, _ = load_stems(tmp_path)
    assert stems[0].audio[0, 10] == 1e3 and stems[0].audio[0, 11] == -1e3 and stems[0].audio[0, 12] == 0.0
    assert stems[0].notes == ["1 damaged sample (NaN/Inf or beyond +60 dBFS) silenced, first at 0.000 s"]
    x[0, 20:29] = np.nan  # 10 of 1000: exactly 1 %, still repaired
    synth.write(tmp_path / "edge.wav", x)
    assert load_stems(tmp_path)[0][0].notes[0].startswith("10 damaged samples")


def test_more_than_two_channels_refused(tmp_path, synth):
    synth.write(tmp_path / "surround.wav", sine(220, 44100, channels=6))
    with pytest.raises(AudioLoadError, match=r"surround\.wav: 6 channels"):
        load_stems(tmp_path)


def test_corrupt_and_empty_files(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(AudioLoadError, match=r"bad\.wav: cannot decode"):
        load_audio(tmp_path / "bad.wav")
    (tmp_path / "zero.flac").write_bytes(b"")
    with pytest.raises(AudioLoadError, match=r"zero\.flac: empty file"):
        load_audio(tmp_path / "zero.flac")


@pytest.mark.parametrize(("fmt", "subtype"), [
    ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"), ("WAVEX", "PCM_24"),
    ("WAVEX", "FLOAT"), ("WAV", "PCM_U8"), ("FLAC", "PCM_24"), ("AIFF", "PCM_24"),
])
@pytest.mark.parametrize("channels", [1, 2])
def test_decoding_equals_libsndfile(tmp_path, fmt, subtype, channels):
    """WAV data decoded by automix and everything else (via libsndfile) give libsndfile's values,
    for the whole file and for blocks read at any offset (the streaming path)."""
    rng = np.random.default_rng(channels)
    x = rng.uniform(-1.0, 1.0, (70_001, channels))
    x[:3] = np.array([1.0, -1.0, 0.0])[:, None]  # full scale both ways and zero
    path = tmp_path / f"x.{'flac' if fmt == 'FLAC' else 'aiff' if fmt == 'AIFF' else 'wav'}"
    sf.write(path, x, 44100, subtype=subtype, format=fmt)
    expected = sf.read(str(path), dtype="float32", always_2d=True)[0].T
    with sf.SoundFile(str(path)) as info:  # the WAV data this test is about is decoded by automix
        assert (wav_module._find_wav_data(path, info) is not None) == (fmt != "AIFF" and fmt != "FLAC"
                                                                         and subtype != "PCM_U8")
    audio, sr = load_audio(path)
    assert sr == 44100 and audio.dtype == np.float32 and audio.flags.c_contiguous
    np.testing.assert_array_equal(audio, expected)
    opened, _, _ = open_stems(tmp_path)
    try:
        for start in (0, 12_345, 69_000):
            np.testing.assert_array_equal(opened[0].read(start, start + 40_000),
                                          np.pad(expected[:, start:start + 40_000],
                                                 ((0, 0), (0, max(0, start + 40_000 - x.shape[0])))))
    finally:
        opened[0].close()


def test_wav_chunks_before_the_samples_and_truncated_data(tmp_path):
    """Chunks of odd size before ``fmt``/``data`` are skipped; a data chunk longer than the file
    yields the frames that are there, like libsndfile."""
    samples = np.array([0, 1, -1, 2**23 - 1, -(2**23), 12345, -54321, 7], dtype=np.int64)  # stereo frames
    data = b"".join(int(v & 0xFFFFFF).to_bytes(3, "little") for v in samples)
    fmt = b"fmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (2).to_bytes(2, "little") \
        + (8000).to_bytes(4, "little") + (8000 * 6).to_bytes(4, "little") + (6).to_bytes(2, "little") \
        + (24).to_bytes(2, "little")
    odd = b"LIST" + (5).to_bytes(4, "little") + b"notes" + b"\0"
    body = b"WAVE" + odd + fmt + odd + b"data" + len(data).to_bytes(4, "little") + data
    path = tmp_path / "x.wav"
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    audio, sr = load_audio(path)
    assert sr == 8000
    np.testing.assert_array_equal(audio, (samples.reshape(-1, 2).T / 2**23).astype(np.float32))
    path.write_bytes(path.read_bytes()[:-6])  # the last frame is gone, the header still counts it
    np.testing.assert_array_equal(load_audio(path)[0], sf.read(str(path), dtype="float32", always_2d=True)[0].T)
    assert load_audio(path)[0].shape == (2, 3)


def test_parallel_loading_reports_the_first_bad_file(tmp_path, synth):
    for name in ("a.wav", "c.wav", "e.wav"):
        synth.write(tmp_path / name, sine(220, 44100, channels=2))
    x = sine(220, 44100, channels=2)
    x[1, 10], x[0, 20] = np.inf, np.nan
    synth.write(tmp_path / "b.wav", x)
    (tmp_path / "d.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    for load in (load_stems, open_stems):  # in memory and streamed
        with pytest.raises(AudioLoadError, match=r"^b\.wav: 2 NaN/Inf samples"):
            load(tmp_path, strict=True)
    (tmp_path / "b.wav").unlink()
    for load in (load_stems, open_stems):
        with pytest.raises(AudioLoadError, match=r"^d\.wav: cannot decode"):
            load(tmp_path)


def test_folder_errors(tmp_path, synth):
    with pytest.raises(AutomixError, match="not found"):
        load_stems(tmp_path / "nope")
    with pytest.raises(AutomixError, match="is empty"):
        load_stems(tmp_path)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(AutomixError, match="no audio files"):
        load_stems(tmp_path)
    f = synth.write(tmp_path / "a.wav", sine(220, 44100))
    with pytest.raises(AutomixError, match="not a folder"):
        load_stems(f)
    with pytest.raises(AutomixError, match="sample rate"):
        load_stems(tmp_path, sample_rate=1000)


def test_exclude_keeps_outputs_out_of_the_stems(tmp_path, synth):
    synth.write(tmp_path / "a.wav", sine(220, 44100))
    synth.write(tmp_path / "mix.wav", sine(330, 44100))
    stems, _, notes = load_stems(tmp_path, exclude=[tmp_path / "mix.wav"])
    assert [s.name for s in stems] == ["a.wav"]
    assert any("mix.wav (an output of this run)" in n for n in notes)


@pytest.mark.parametrize(("bit_depth", "subtype", "tolerance"), [("16", "PCM_16", 2**-15), ("24", "PCM_24", 2**-23),
                                                                 ("32f", "FLOAT", 0.0)])
def test_write_audio_bit_depths(tmp_path, bit_depth, subtype, tolerance):
    x = sine(440, 44100, channels=2, amp=0.7)
    path = write_audio(tmp_path / "out.wav", x, 44100, bit_depth)
    assert sf.info(str(path)).subtype == subtype
    y, sr = load_audio(path)
    assert sr == 44100 and y.shape == x.shape
    assert np.max(np.abs(y - x)) <= tolerance
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o044  # readable by others, not mkstemp's 0600


def test_integer_formats_clip_instead_of_wrapping(tmp_path):
    x = np.array([[0.5, 1.5, -1.5]], np.float32)
    y, _ = load_audio(write_audio(tmp_path / "o.wav", x, 8000, "16"))
    assert y[0, 1] > 0.99 and y[0, 2] < -0.99


def test_write_refuses_existing_and_inputs(tmp_path):
    x = sine(440, 8000)
    path = write_audio(tmp_path / "o.wav", x, 8000)
    with pytest.raises(OutputExistsError, match="--force"):
        write_audio(path, x, 8000)
    write_audio(path, 0.5 * x, 8000, force=True)
    assert np.max(np.abs(load_audio(path)[0])) == pytest.approx(0.25, abs=1e-4)
    with pytest.raises(AutomixError, match="input file"):
        write_audio(path, x, 8000, force=True, protect=[path])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]  # no temp files left behind


def test_write_creates_folders_and_rejects_bad_targets(tmp_path):
    x = sine(440, 8000)
    assert write_audio(tmp_path / "new" / "deep" / "o.flac", x, 8000).is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(AutomixError, match="cannot create output folder"):
        write_audio(tmp_path / "file" / "o.wav", x, 8000)
    with pytest.raises(AutomixError, match=r"\.wav or \.flac"):
        write_audio(tmp_path / "o.mp3", x, 8000)
    with pytest.raises(AutomixError, match="--bit-depth"):
        write_audio(tmp_path / "o.wav", x, 8000, "8")
    with pytest.raises(AutomixError, match="is a folder"):
        check_output(tmp_path / "new", force=True)


def test_write_text_atomic(tmp_path):
    path = write_text_atomic(tmp_path / "mix.json", "{}\n")
    assert path.read_text() == "{}\n"
    with pytest.raises(OutputExistsError):
        write_text_atomic(path, "{}")
    write_text_atomic(path, "[]", force=True)
    assert path.read_text() == "[]"


# --------------------------------------------------------------------------------------
# Streaming: block resampling, scratch files, stems read from disk, the block writer
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("src", "dst"), [(48000, 44100), (44100, 48000), (22050, 44100), (32000, 44100)])
def test_block_resampling_matches_whole_signal(src, dst):
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal((2, 3 * src + 123))).astype(np.float32)
    whole = resample(x, src, dst)
    with ScratchAudio(2, whole.shape[1]) as scratch:
        def read(a, b):
            out = np.zeros((2, b - a), np.float32)
            lo, hi = max(a, 0), min(b, x.shape[1])
            out[:, lo - a:hi - a] = x[:, lo:hi]
            return out
        n = resample_blocks(read, x.shape[1], src, dst, scratch.write, block=10000)
        assert n == whole.shape[1]
        assert np.max(np.abs(scratch.read(0, n) - whole)) <= 1e-6


def test_scratch_audio_round_trip_and_zero_padding():
    x = np.arange(20, dtype=np.float32).reshape(2, 10)
    with ScratchAudio(2, 10) as scratch:
        scratch.write(0, x[:, :6])
        scratch.write(6, x[:, 6:])
        assert np.array_equal(scratch.read(0, 10), x)
        padded = scratch.read(-3, 13)
        assert np.array_equal(padded[:, 3:13], x) and not padded[:, :3].any() and not padded[:, 13:].any()
        with pytest.raises(ValueError):
            scratch.write(8, x[:, :5])


def test_open_stems_reads_what_load_stems_loads(tmp_path, synth):
    sf.write(tmp_path / "a.wav", synth.kick(1.0).T, 44100, subtype="PCM_24")
    sf.write(tmp_path / "b.wav", synth.pad(0.7).T, 48000, subtype="PCM_24")
    sf.write(tmp_path / "c.wav", np.zeros((4410, 1)), 44100)
    loaded, rate, notes = load_stems(tmp_path)
    opened, rate2, notes2 = open_stems(tmp_path)
    try:
        assert (rate, notes) == (rate2, notes2)
        assert [s.name for s in loaded] == [s.name for s in opened] == ["a.wav", "b.wav"]
        for a, b in zip(loaded, opened):
            assert (a.channels, a.frames) == (b.channels, b.frames)
            assert np.max(np.abs(b.read(0, b.frames) - a.audio)) <= 1e-6
            assert not b.read(b.frames, b.frames + 10).any()
    finally:
        for s in opened:
            s.close()


def test_audio_writer_is_atomic_and_respects_force(tmp_path):
    path = tmp_path / "out.wav"
    with AudioWriter(path, 2, 44100, "24") as writer:
        writer.write(np.full((2, 100), 0.25, np.float32))
        assert not path.exists() and len(list(tmp_path.iterdir())) == 1  # only the temp file so far
    assert not path.exists() and not list(tmp_path.iterdir())  # left without commit: nothing remains
    with AudioWriter(path, 2, 44100, "16") as writer:
        writer.write(np.full((2, 100), 1.5, np.float32))  # clipped, not wrapped
        writer.commit()
    data, _ = sf.read(path)
    assert data.shape == (100, 2) and np.allclose(data, 1.0, atol=1e-4)
    with pytest.raises(OutputExistsError):
        AudioWriter(path, 2, 44100)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open descriptors through /proc")
def test_a_streamed_wav_stem_holds_one_file_descriptor(tmp_path, synth):
    """A streamed session keeps every stem open during the render: one descriptor each, not two."""
    for i in range(12):
        sf.write(tmp_path / f"s{i:02d}.wav", synth.pad(0.2).T, 44100, subtype="PCM_24")
    before = len(list(Path("/proc/self/fd").iterdir()))
    opened, _, _ = open_stems(tmp_path)
    try:
        assert len(list(Path("/proc/self/fd").iterdir())) - before == len(opened) == 12
        assert all(np.abs(s.read(0, s.frames)).max() > 0 for s in opened)
    finally:
        for s in opened:
            s.close()
    assert len(list(Path("/proc/self/fd").iterdir())) == before

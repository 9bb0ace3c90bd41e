"""Second QA pass: training configs whose model sizes or lengths torch would refuse (one line,
exit 2, before any data work), an empty config, excerpts longer than the songs, processed-stem
names longer than the file system allows, and a stem named like the reverb return. Generated
data only; nothing trains, and the mixes are 1 s long.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_helpers import assert_user_error, run
from signals import sine as _signal_sine

from automix.errors import AutomixError
from automix.io import check_output, name_too_long
from automix.measure.distances import SumDiffSTFTLoss
from automix.models.checkpoint import build_model
from automix.models.encoder import WINDOW_SAMPLES
from automix.train.config import ConfigError, load_config

SMOKE_SIZES = "sizes: {embed_dim: 32, layers: 1, heads: 2, ff_dim: 32, hidden_dim: 32, channels: [4, 8], " \
              "n_mels: 16, dropout: 0.1}"
SR = 8000


def _edit(config: Path, old: str, new: str) -> None:
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new), encoding="utf-8")


# ---- 1. model sizes and lengths: checked by the config, not by torch --------------------------

@pytest.mark.parametrize(("old", "new", "fragments"), [
    ("dropout: 0.1", "dropout: 1.5", ["model.sizes.dropout: expected a number from 0 to below 1 (got 1.5)"]),
    ("dropout: 0.1", "dropout: -0.5", ["model.sizes.dropout", "(got -0.5)"]),
    ("dropout: 0.1", "dropout: 1", ["model.sizes.dropout", "(got 1)"]),  # every unit dropped
    ("heads: 2", "heads: 3", ["model.sizes.heads: expected a divisor of embed_dim 32, e.g. 1, 2, 4, 8, 16 (got 3)"]),
    ("heads: 2", "heads: 0", ["model.sizes.heads: expected a positive integer (got 0)"]),
    ("n_mels: 16", "n_mels: 0", ["model.sizes.n_mels: expected a positive integer (got 0)"]),
    ("layers: 1", "layers: 0", ["model.sizes.layers"]),
    ("hidden_dim: 32", "hidden_dim: 0", ["model.sizes.hidden_dim"]),
    ("embed_dim: 32", "embed_dim: 2.5", ["model.sizes.embed_dim", "(got 2.5)"]),
    ("channels: [4, 8]", "channels: [4, 0]", ["model.sizes.channels: expected a list of positive integers"]),
    ("n_mels: 16", "n_mels: 16, mels: 8", ["model.sizes.mels: unknown size of a mst model (known: channels, "]),
    ("n_mels: 16", "n_mels: 16, sample_rate_hz: 44100", ["model.sizes.sample_rate_hz: set by data.sample_rate_hz"]),
    # the default sizes count too: the default MST has embed_dim 128
    (SMOKE_SIZES, "sizes: {heads: 3}", ["model.sizes.heads: expected a divisor of embed_dim 128"]),
    ("fft_sizes: [256, 512]", "fft_sizes: [1048576]",
     [("loss.fft_sizes: expected FFT sizes from 16 to 8000, the samples the loss sees "
       "(data.excerpt_s / 2 at 8000 Hz) (got 1048576)")]),
    ("excerpt_s: 2.0", "excerpt_s: 0.2",
     ["data.excerpt_s: the model would see 800 samples", "expected at least 0.256 s"]),
])
def test_bad_model_sizes_are_one_line_before_any_data_work(config, no_data_work, tmp_path, old, new, fragments):
    _edit(config, old, new)
    assert_user_error(run("train", "--config", config), *fragments, only_line=True)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_dmc_sizes_are_checked_against_the_dmc(config, no_data_work):
    _edit(config, "kind: mst", "kind: dmc")
    # an MST-only size is unknown to the DMC
    assert_user_error(run("train", "--config", config), "model.sizes.layers: unknown size of a dmc model",
                      only_line=True)
    _edit(config, SMOKE_SIZES, "sizes: {n_mels: 0}")
    assert_user_error(run("train", "--config", config), "model.sizes.n_mels", only_line=True)


def test_the_smallest_accepted_sizes_and_lengths_really_train(config):
    """The bounds are the real ones: one mel band, no CNN block, an input exactly one analysis
    window long and an STFT as long as that input all build, run and give finite gradients."""
    _edit(config, SMOKE_SIZES, "sizes: {embed_dim: 4, layers: 1, heads: 4, ff_dim: 4, hidden_dim: 4, "
                               "channels: [], n_mels: 1, dropout: 0.0}")
    samples = WINDOW_SAMPLES  # method 1: the model sees half of each excerpt
    _edit(config, "excerpt_s: 2.0", f"excerpt_s: {2 * samples / SR}")
    _edit(config, "fft_sizes: [256, 512]", f"fft_sizes: [16, {samples}]")
    cfg = load_config(config)
    model = build_model("mst", {**cfg.model.sizes, "sample_rate_hz": SR})
    stems = torch.randn(2, 3, 2, samples, generator=torch.Generator().manual_seed(0))
    out = model(stems, torch.zeros(2, 3, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool), None)
    mix = (out.track[..., :1, None] * stems[:, :, 0:1]).sum(1).expand(-1, 2, -1)
    loss = SumDiffSTFTLoss(cfg.loss.fft_sizes)(mix.contiguous(), stems[:, 0])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    # one sample less is refused, as is an FFT one sample longer
    _edit(config, f"excerpt_s: {2 * samples / SR}", f"excerpt_s: {2 * (samples - 1) / SR}")
    with pytest.raises(ConfigError, match="data.excerpt_s: the model would see 1023 samples"):
        load_config(config)
    _edit(config, f"excerpt_s: {2 * (samples - 1) / SR}", f"excerpt_s: {2 * samples / SR}")
    _edit(config, f"fft_sizes: [16, {samples}]", f"fft_sizes: [16, {samples + 1}]")
    with pytest.raises(ConfigError, match=f"from 16 to {samples}, .* \\(got {samples + 1}\\)"):
        load_config(config)
    # …unless the STFT loss is off (the FFT sizes are then unused)
    _edit(config, "sum_diff_stft: 0.1", "sum_diff_stft: 0.0")
    assert load_config(config).loss.fft_sizes == [16, samples + 1]


def test_supervised_excerpts_are_whole(config, no_data_work):
    """Supervised training feeds the whole excerpt: 0.2 s at 8 kHz is 1600 samples, enough."""
    _edit(config, 'method: "1"', "method: supervised")
    _edit(config, "param: 1.0", "param: 0.0")
    _edit(config, "excerpt_s: 2.0", "excerpt_s: 0.2")
    _edit(config, "fft_sizes: [256, 512]", "fft_sizes: [2048]")
    assert_user_error(run("train", "--config", config), "from 16 to 1600, the samples the loss sees "
                      "(data.excerpt_s at 8000 Hz) (got 2048)", only_line=True)


# ---- 2. an empty config, excerpts longer than the songs ------------------------------------------

@pytest.mark.parametrize(("name", "text"), [("empty.yaml", ""), ("comments.yaml", "# nothing yet\n"),
                                            ("empty.toml", "")])
def test_an_empty_config_says_so(tmp_path, no_data_work, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert_user_error(run("train", "--config", path),
                      f"{path}: the config is empty; it needs at least the data and loss sections", only_line=True)


def test_a_config_without_data_section_says_so(tmp_path, no_data_work):
    path = tmp_path / "nodata.yaml"
    path.write_text("steps: 5\nloss: {af: 1.0}\n", encoding="utf-8")
    assert_user_error(run("train", "--config", path), f"{path}: the data section is missing", only_line=True)


def _write_songs(root: Path, seconds: float) -> None:
    """data/synth-style songs (split/song/stems/*.wav + song.json): three tones each."""
    t = np.arange(int(seconds * SR)) / SR
    for split, count in (("train", 2), ("val", 1)):
        for s in range(count):
            folder = root / split / f"song_{split}_{s}" / "stems"
            folder.mkdir(parents=True)
            for k in range(3):
                sf.write(folder / f"{k}.wav", (0.2 * np.sin(2 * np.pi * 110 * (k + 1) * t)).astype(np.float32), SR)
            (folder.parent / "song.json").write_text("{}")  # the data/synth layout


def test_excerpts_longer_than_the_songs_are_named_as_the_cause(config, tmp_path):
    _write_songs(tmp_path / "synth", 3.0)
    _edit(config, "excerpt_s: 2.0", "excerpt_s: 50")
    result = run("train", "--config", config)
    assert_user_error(result, "no usable songs in split 'train' (the longest is 3.0 s; lower data.excerpt_s)")
    assert result.stderr.startswith("note: train: skipped 2 songs shorter than one 50 s excerpt")
    assert not (tmp_path / "run").exists()


# ---- 3. output names longer than the file system allows ----------------------------------------

def _tone(freq_hz: float) -> np.ndarray:
    return _signal_sine(freq_hz, 1.0, amplitude=0.2, sr=SR)


def test_a_processed_stem_name_too_long_fails_before_any_folder_is_made(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    stems = tmp_path / "stems"
    stems.mkdir()
    base = "a" * (limit - 5)
    sf.write(stems / f"{base}.flac", _tone(330.0), SR)  # first in name order → base.wav
    sf.write(stems / f"{base}.wav", _tone(220.0), SR)   # → base.wav.wav: limit + 3 bytes
    out = tmp_path / "out"
    line = assert_user_error(run("mix", stems, "-o", out / "mix.wav", "--stems-out", out / "so"),
                             ".wav: its processed stem would be aaaa", f".wav.wav, {limit + 3} bytes, more than the "
                             f"{limit} the file system allows; rename the stem", only_line=True)
    assert line.startswith("error: aaaa") and len(line) < 250  # the long names are shortened
    assert not out.exists()


@pytest.mark.parametrize("where", ["file", "folder"])
def test_check_output_counts_bytes_of_every_new_name(tmp_path, where):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    long_name = "é" * (limit // 2 - 1) + ".wav"  # fewer characters than the limit, but 2 bytes each in UTF-8
    assert len(long_name) < limit < len(os.fsencode(long_name))
    parts = ["out", long_name] if where == "file" else ["out", long_name, "mix.wav"]
    path = tmp_path.joinpath(*parts)
    name, size, found_limit = name_too_long(path)
    assert (name, size, found_limit) == (long_name, len(os.fsencode(long_name)), limit)
    with pytest.raises(AutomixError, match=f"is {size} bytes, more than the {limit} the file system allows"):
        check_output(path)
    assert name_too_long(tmp_path / "out" / ("é" * ((limit - 4) // 2) + ".wav")) is None  # ≤ limit bytes
    assert list(tmp_path.iterdir()) == []


def test_a_mix_name_too_long_fails_before_the_work(tmp_path):
    stems = tmp_path / "stems"
    stems.mkdir()
    sf.write(stems / "a.wav", _tone(220.0), SR)
    out = tmp_path / "new" / ("m" * 300 + ".wav")
    assert_user_error(run("mix", stems, "-o", out), "is 304 bytes, more than the", only_line=True)
    assert not (tmp_path / "new").exists()


# ---- 4. a stem named like the reverb return ----------------------------------------------------

def _mix_json(tmp_path: Path, names: list[str]) -> tuple[dict, str]:
    stems = tmp_path / "stems"
    stems.mkdir()
    for i, name in enumerate(names):
        sf.write(stems / name, _tone(220.0 * (i + 1)), SR)
    result = run("mix", stems, "-o", tmp_path / "mix.wav", "--stems-out", tmp_path / "so", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_a_stem_named_reverb_return_moves_the_return_and_says_so(tmp_path):
    data, stderr = _mix_json(tmp_path, ["reverb_return.wav", "guitar.wav"])
    so = tmp_path / "so"
    assert data["reverb_return"] == str(so / "reverb_return_2.wav")
    assert data["stem_files"][-1] == data["reverb_return"]
    assert (so / "reverb_return.wav").is_file() and (so / "reverb_return_2.wav").is_file()
    note = "the reverb return is reverb_return_2.wav (reverb_return.wav is kept for the stem reverb_return.wav)"
    assert note in data["notes"] and note in stderr
    # the processed stem is the stem (a 220 Hz tone), not the reverb
    stem, _ = sf.read(so / "reverb_return.wav")
    spectrum = np.abs(np.fft.rfft(stem[:, 0] + stem[:, 1]))
    assert abs(np.argmax(spectrum) * SR / len(stem) - 220.0) < 2.0


def test_the_reverb_return_is_in_the_json_when_nothing_collides(tmp_path):
    data, stderr = _mix_json(tmp_path, ["bass.wav", "guitar.wav"])
    assert data["reverb_return"] == str(tmp_path / "so" / "reverb_return.wav")
    assert not any("reverb return" in n for n in data["notes"]) and "reverb return" not in stderr
    plain = run("mix", tmp_path / "stems", "-o", tmp_path / "plain.wav", "--json")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["reverb_return"] is None

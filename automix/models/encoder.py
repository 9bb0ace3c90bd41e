"""Spectrogram encoders shared by the controllers.

A log-mel front end feeds a small 2-D CNN. The CNN output is averaged over time and
concatenated with the per-band mean and standard deviation of the log-mel frames (cheap,
level- and spectrum-aware summary statistics), then projected to ``embed_dim``.

Every track goes through the same encoder (shared weights), so a controller built on it
treats tracks as an unordered set. A stereo reference is encoded as two tokens, mid and side.
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

_EPS = 1e-8

INPUT_LIMIT = 1e4
"""Sample magnitude the spectrogram front end clamps its input to (+80 dBFS; NaN becomes 0).

A guard for callers that bypass :class:`automix.models.mixer.ModelMixer`'s own clip (at
+60 dBFS): beyond about 1e16 the float32 STFT power overflows to inf, and one inf frame turns
the whole network's output into NaN. Training audio never comes near it, so no gradient is
lost. With it, a Hann-windowed bin's power is at most (1e4 · 512)² ≈ 3e13 and its mel sum
stays far inside float32."""

WINDOW_SAMPLES = 1024
"""FFT size of the encoders' log-mel front end: the model's input must be at least this long
(training configs are checked against it)."""


class LogMel(nn.Module):
    """Mono audio ``(..., samples)`` → log-mel frames ``(..., n_mels, frames)`` in dB / 10.

    The window is fixed at ``n_fft`` samples of the model's analysis rate; the output is
    scaled so that typical music sits around −10 … +1 and the network needs no input norm.
    """

    def __init__(self, sample_rate_hz: int, n_fft: int = WINDOW_SAMPLES, hop_samples: int = 512, n_mels: int = 64):
        super().__init__()
        self.n_fft = n_fft
        self.hop_samples = hop_samples
        fb = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, 20.0, sample_rate_hz / 2.0, n_mels, sample_rate_hz, norm="slaney", mel_scale="slaney"
        )
        self.register_buffer("filterbank", fb, persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def power(self, audio: torch.Tensor) -> torch.Tensor:
        """Mel power frames ``(..., n_mels, frames)`` (linear)."""
        lead = audio.shape[:-1]
        x = audio.reshape(-1, audio.shape[-1])
        x = torch.nan_to_num(x, nan=0.0, posinf=INPUT_LIMIT, neginf=-INPUT_LIMIT).clamp(-INPUT_LIMIT, INPUT_LIMIT)
        spec = torch.stft(x, self.n_fft, self.hop_samples, window=self.window, center=True, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (batch, bins, frames)
        mel = torch.einsum("bkt,km->bmt", power, self.filterbank)
        return mel.reshape(*lead, mel.shape[-2], mel.shape[-1])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log10(self.power(audio) + _EPS)  # = dB / 10


class SpectrogramEncoder(nn.Module):
    """Mono audio ``(batch, samples)`` → embedding ``(batch, embed_dim)``.

    Args:
        sample_rate_hz: analysis rate of the audio the encoder receives.
        embed_dim: output size.
        channels: CNN widths; each block halves time and frequency.
        n_mels: mel bands of the front end.
    """

    def __init__(
        self,
        sample_rate_hz: int,
        embed_dim: int = 128,
        channels: tuple[int, ...] = (16, 32, 64),
        n_mels: int = 64,
        n_fft: int = WINDOW_SAMPLES,
        hop_samples: int = 512,
    ):
        super().__init__()
        self.logmel = LogMel(sample_rate_hz, n_fft, hop_samples, n_mels)
        blocks: list[nn.Module] = []
        c_in = 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(1, c), nn.GELU()]
            c_in = c
        self.cnn = nn.Sequential(*blocks)
        f_out = n_mels
        for _ in channels:
            f_out = math.ceil(f_out / 2)
        self.proj = nn.Sequential(
            nn.Linear(c_in * f_out + 2 * n_mels, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim)
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        logmel = self.logmel(audio)  # (batch, mels, frames)
        stats = torch.cat([logmel.mean(-1), logmel.std(-1)], dim=-1)
        feat = self.cnn(logmel.unsqueeze(1)).mean(-1)  # average over time → (batch, C, F')
        return self.proj(torch.cat([feat.flatten(1), stats], dim=-1))


class TrackEncoder(nn.Module):
    """Stems ``(batch, tracks, 2, samples)`` → track embeddings ``(batch, tracks, embed_dim)``.

    A stem is encoded from its mid signal (a mono stem uses channel 0 only); a learned vector
    marks stereo stems, and a second feature carries the side/mid level ratio in dB / 10.
    """

    def __init__(self, sample_rate_hz: int, embed_dim: int = 128, **encoder_kwargs):
        super().__init__()
        self.encoder = SpectrogramEncoder(sample_rate_hz, embed_dim, **encoder_kwargs)
        self.stereo = nn.Linear(2, embed_dim)

    def forward(self, stems: torch.Tensor, is_stereo: torch.Tensor) -> torch.Tensor:
        b, t, _, n = stems.shape
        stereo = is_stereo.to(stems.dtype)[..., None]  # (b, t, 1)
        left, right = stems[:, :, 0], stems[:, :, 1]
        mid = torch.where(stereo > 0, 0.5 * (left + right), left)
        side = stereo * 0.5 * (left - right)
        side_db = 10.0 * torch.log10((side.square().mean(-1) + _EPS) / (mid.square().mean(-1) + _EPS)) / 10.0
        emb = self.encoder(mid.reshape(b * t, n)).reshape(b, t, -1)
        extra = torch.stack([stereo[..., 0], side_db.clamp(-8.0, 2.0) * stereo[..., 0]], dim=-1)
        return emb + self.stereo(extra)


def balance_estimate_db(track_power: torch.Tensor, mix_power: torch.Tensor, track_mask: torch.Tensor,
                        iterations: int = 100) -> torch.Tensor:
    """Per-track power gains (dB) that best explain a mix's average spectrum.

    Solves ``mix ≈ Σ_i g_i · track_i`` over mel bands with ``g ≥ 0``, each band's error
    relative to the mix's power there (so quiet high bands count as much as loud lows), by
    Lee–Seung multiplicative updates (monotone, keeps ``g`` non-negative). Tracks and mix are
    different excerpts of one song, so this is a rough prior the network refines, not an answer.

    Args:
        track_power: ``(B, T, M)`` time-averaged mel power of each track (both channels summed).
        mix_power: ``(B, M)`` the same for the mix.
        track_mask: ``(B, T)`` bool; padding tracks get −40 dB.

    Returns:
        ``(B, T)`` gains in dB, clipped to [−40, 20].
    """
    # float64: a loud track over a near-silent mix makes ratios of 1e20 and more, whose Gram
    # products would overflow float32 (inf / inf = NaN); the problem is tiny (B·T·M values).
    ratio = track_power.double() / (mix_power.double()[:, None, :] + _EPS)
    x = ratio * track_mask[..., None].double()
    gram = x @ x.transpose(1, 2)  # (B, T, T)
    target = x.sum(-1)  # X · 1
    g = torch.ones_like(target)
    for _ in range(iterations):
        g = g * target / ((gram @ g[..., None])[..., 0] + 1e-12)
    db = torch.nan_to_num(10.0 * torch.log10(g + 1e-4), nan=-40.0).to(track_power.dtype)
    return torch.where(track_mask, db, torch.full_like(db, -40.0)).clamp(-40.0, 20.0)


class ReferenceEncoder(nn.Module):
    """Stereo reference ``(batch, 2, samples)`` → two tokens ``(batch, 2, embed_dim)``: mid, side."""

    def __init__(self, sample_rate_hz: int, embed_dim: int = 128, **encoder_kwargs):
        super().__init__()
        self.encoder = SpectrogramEncoder(sample_rate_hz, embed_dim, **encoder_kwargs)
        self.kind = nn.Parameter(torch.zeros(2, embed_dim))

    def forward(self, reference: torch.Tensor) -> torch.Tensor:
        mid = 0.5 * (reference[:, 0] + reference[:, 1])
        side = 0.5 * (reference[:, 0] - reference[:, 1])
        b, _n = mid.shape
        emb = self.encoder(torch.cat([mid, side], dim=0)).reshape(2, b, -1).transpose(0, 1)
        return emb + self.kind

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


class LogMel(nn.Module):
    """Mono audio ``(..., samples)`` → log-mel frames ``(..., n_mels, frames)`` in dB / 10.

    The window is fixed at ``n_fft`` samples of the model's analysis rate; the output is
    scaled so that typical music sits around −10 … +1 and the network needs no input norm.
    """

    def __init__(self, sample_rate_hz: int, n_fft: int = 1024, hop_samples: int = 512, n_mels: int = 64):
        super().__init__()
        self.n_fft = n_fft
        self.hop_samples = hop_samples
        fb = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, 20.0, sample_rate_hz / 2.0, n_mels, sample_rate_hz, norm="slaney", mel_scale="slaney"
        )
        self.register_buffer("filterbank", fb, persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        lead = audio.shape[:-1]
        x = audio.reshape(-1, audio.shape[-1])
        spec = torch.stft(x, self.n_fft, self.hop_samples, window=self.window, center=True, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (batch, bins, frames)
        mel = torch.einsum("bkt,km->bmt", power, self.filterbank)
        logmel = 10.0 * torch.log10(mel + _EPS) / 10.0
        return logmel.reshape(*lead, logmel.shape[-2], logmel.shape[-1])


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
        n_fft: int = 1024,
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

"""The audio features the project measures mixes with (Diff-MST, Vanka et al., ISMIR 2024), in torch.

RMS, crest factor, stereo width, stereo imbalance and the mid/side Bark spectrum; each a
differentiable time average of a ``(B, 2, N)`` mix, so training losses, style-transfer
refinement, reverse engineering and evaluation all compute the same numbers. The feature
functions follow the paper's reference implementation (read, not copied); every definition is
in its docstring.

Deliberate differences from the reference implementation (all documented where they occur):

* Bark spectrum: periodic Hann window instead of the rectangular one ``torch.stft`` uses when
  no window is passed (measured here: a rectangular window leaks a 1.26 kHz tone into the
  adjacent Bark bands at −18…−20 dB and still −35 dB four bands away; Hann: below −77 dB),
  magnitudes normalised by the window sum, mid/side halved
  (``(L±R)/2``), frames without centre padding, FFT size scaled with the sample rate, and the
  Traunmüller Bark→Hz inverse applied to *both* ends of the scale (the reference skips the
  high-band correction, which moves its top bands above 20 kHz). The normalisation and halving
  only shift ``log`` magnitudes by a constant, which cancels in the MSE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from automix.measure.bark import BARK_BANDS, bark_fft_size, bark_filterbank

POWER_EPS = 1e-8
"""Floor of a mean-square power (so an RMS is at least 1e-4 = −80 dBFS), as in Diff-MST."""

LOG_EPS = 1e-8
"""Added to Bark-band magnitudes before ``log`` (−160 dB re a full-scale sine)."""


def check_stereo(audio: Tensor, what: str = "audio") -> None:
    if audio.ndim != 3 or audio.shape[1] != 2:
        raise ValueError(f"{what} must be (batch, 2, samples), got {tuple(audio.shape)}")
    if audio.shape[-1] < 1:
        raise ValueError(f"{what} has no samples")


def rms(audio: Tensor) -> Tensor:
    """Root mean square of each channel, linear amplitude (not dB).

    ``sqrt(max(mean(x²), 1e-8))`` over all samples, so silence reads 1e-4 (−80 dBFS).

    Args:
        audio: ``(..., N)``.

    Returns:
        ``(...)``, e.g. ``(B, 2)`` for a batch of stereo mixes.
    """
    return torch.sqrt(audio.square().mean(dim=-1).clamp(min=POWER_EPS))


def crest_factor_db(audio: Tensor) -> Tensor:
    """Peak-to-RMS ratio of each channel in dB: ``20·log10(max|x| / rms(x))``.

    Sample peak (not true peak); the ratio is floored at 1e-8, so silence reads −160 dB. A
    full-scale square wave reads 0 dB, a sine sampled at its crests 3.01 dB.

    Args:
        audio: ``(..., N)``.

    Returns:
        ``(...)`` dB.
    """
    peak = audio.abs().amax(dim=-1)
    return 20.0 * torch.log10((peak / rms(audio)).clamp(min=1e-8))


def stereo_width(audio: Tensor) -> Tensor:
    """Side-to-mid energy ratio ``mean((L−R)²) / max(mean((L+R)²), 1e-8)`` (linear, ≥ 0).

    0 for identical channels (mono), 1 for a single-sided or two uncorrelated equal-level
    channels, very large for channels in opposite polarity.

    Args:
        audio: ``(B, 2, N)``.

    Returns:
        ``(B,)``.
    """
    check_stereo(audio)
    mid_power = (audio[:, 0] + audio[:, 1]).square().mean(dim=-1)
    side_power = (audio[:, 0] - audio[:, 1]).square().mean(dim=-1)
    return side_power / mid_power.clamp(min=POWER_EPS)


def stereo_imbalance(audio: Tensor) -> Tensor:
    """Right-minus-left energy balance ``(E_R − E_L) / max(E_R + E_L, 1e-8)`` in [−1, 1].

    ``E`` is the mean square of a channel. −1 means left only, 0 balanced, +1 right only.

    Args:
        audio: ``(B, 2, N)``.

    Returns:
        ``(B,)``.
    """
    check_stereo(audio)
    left = audio[:, 0].square().mean(dim=-1)
    right = audio[:, 1].square().mean(dim=-1)
    return (right - left) / (right + left).clamp(min=POWER_EPS)


class BarkSpectrum(nn.Module):
    """Long-term mid/side Bark spectrum: ``log`` of band-summed mean STFT magnitude.

    Definition, per batch item:

    1. mid ``M = (L+R)/2``, side ``S = (L−R)/2`` (Diff-MST uses ``L±R``: a constant ``log 2``
       offset that cancels in the loss; halving makes a mono signal's mid equal the signal);
    2. STFT with a periodic Hann window of ``fft_size`` samples, hop ``fft_size // 4``, no
       centre padding (a signal shorter than one window is zero-padded to one window);
       magnitudes divided by the window sum, so a bin-centred sine of amplitude A reads A/2
       in its bin (and A/4 in each neighbour);
    3. mean magnitude over frames, then 24 triangular Bark bands (:func:`bark_filterbank`)
       summing the weighted bin magnitudes;
    4. natural ``log(x + 1e-8)``. A full-scale sine at a band centre reads ≈ 0 (0 dB); ``20 /
       ln 10`` times the value is dB.

    With gradients disabled, frames are processed in chunks of ``chunk_frames`` (same result,
    bounded memory for whole songs).
    """

    def __init__(self, sample_rate: int, fft_size: int | None = None, chunk_frames: int = 32) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.fft_size = int(fft_size) if fft_size else bark_fft_size(self.sample_rate)
        self.hop_size = self.fft_size // 4
        self.chunk_frames = int(chunk_frames)
        window = torch.hann_window(self.fft_size, periodic=True, dtype=torch.float64)
        self.register_buffer("window", (window / window.sum()).float(), persistent=False)
        fb = torch.from_numpy(bark_filterbank(self.fft_size, self.sample_rate)).float()
        self.register_buffer("filterbank", fb, persistent=False)

    def _mean_magnitude(self, x: Tensor) -> Tensor:
        """``(R, N)`` signals → ``(R, fft_size // 2 + 1)`` magnitude averaged over frames."""
        n = x.shape[-1]
        if n < self.fft_size:
            x = F.pad(x, (0, self.fft_size - n))
            n = self.fft_size
        frames = 1 + (n - self.fft_size) // self.hop_size
        window = self.window.to(x.dtype)
        step = frames if torch.is_grad_enabled() else max(1, self.chunk_frames)
        total = x.new_zeros(x.shape[0], self.fft_size // 2 + 1)
        for first in range(0, frames, step):
            count = min(step, frames - first)
            start = first * self.hop_size
            segment = x[:, start : start + (count - 1) * self.hop_size + self.fft_size]
            spec = torch.stft(segment, self.fft_size, self.hop_size, window=window, center=False,
                              return_complex=True)
            total = total + spec.abs().sum(dim=-1)
        return total / frames

    def forward(self, audio: Tensor) -> Tensor:
        """Args: ``audio (B, 2, N)``. Returns ``(B, 2, 24)``: ``[:, 0]`` mid, ``[:, 1]`` side."""
        check_stereo(audio)
        mid_side = torch.stack([audio[:, 0] + audio[:, 1], audio[:, 0] - audio[:, 1]], dim=1) * 0.5
        batch = audio.shape[0]
        magnitude = self._mean_magnitude(mid_side.reshape(batch * 2, -1))
        bands = magnitude @ self.filterbank.to(magnitude.dtype)
        return torch.log(bands + LOG_EPS).reshape(batch, 2, BARK_BANDS)

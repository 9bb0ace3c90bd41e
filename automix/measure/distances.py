"""Distances between mixes: the Diff-MST audio-feature (AF) loss and the (sum/difference) MRSTFT.

AF loss: ``Σ_k w_k · MSE(f_k(pred), f_k(ref))`` over the features of
:mod:`automix.measure.features`, with the paper's weights (0.1, 0.001, 1.0, 1.0, 0.1).

MRSTFT: thin wrappers around auraloss 0.4 (``MultiResolutionSTFTLoss`` and
``SumAndDifferenceSTFTLoss``) with CPU-friendly resolutions. They validate shapes (auraloss
fails with an unhelpful size mismatch or a ``.view`` error on non-contiguous input).

Training uses them as losses, evaluation and style transfer as measurements: one definition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import auraloss
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from automix.measure.features import (
    BarkSpectrum,
    check_stereo,
    crest_factor_db,
    rms,
    stereo_imbalance,
    stereo_width,
)

AF_WEIGHTS: dict[str, float] = {
    "rms": 0.1,
    "crest_factor": 0.001,
    "stereo_width": 1.0,
    "stereo_imbalance": 1.0,
    "bark_spectrum": 0.1,
}
"""Diff-MST paper weights of the five AF-loss terms, in the order the paper lists them."""


class AudioFeatureLoss(nn.Module):
    """Diff-MST audio-feature loss between a predicted mix and a reference mix.

    ``loss = Σ_k w_k · MSE(f_k(pred), f_k(ref))`` over the features ``rms`` ``(B, 2)``,
    ``crest_factor`` (dB, ``(B, 2)``), ``stereo_width`` ``(B,)``, ``stereo_imbalance``
    ``(B,)`` and ``bark_spectrum`` (``(B, 2, 24)`` log magnitudes, mid/side), each MSE a mean
    over batch items and channels/bands, with the paper's weights :data:`AF_WEIGHTS` unless
    ``weights`` overrides some of them. Every feature is a time average, so ``pred`` and
    ``ref`` may have different lengths (a 5 s excerpt can be compared with a 30 s reference).

    An exactly silent prediction is a stationary point (every feature is even in the signal,
    so its gradient there is 0, finite); gradients are finite everywhere else too.

    Cost of forward + backward (B = 4 stereo 10 s vs a reference of the same size,
    single-thread CPU time): 22.05 kHz ≈ 0.3 s, 44.1 kHz ≈ 0.7 s, mostly the Bark STFT.

    Args:
        sample_rate: Hz, of both signals (sets the Bark filterbank).
        weights: optional overrides by feature name (keys of :data:`AF_WEIGHTS`).
        bark_fft_size: FFT size of the Bark spectrum (default :func:`automix.measure.bark.bark_fft_size`).
    """

    def __init__(
        self,
        sample_rate: int,
        weights: Mapping[str, float] | None = None,
        bark_fft_size: int | None = None,
    ) -> None:
        super().__init__()
        unknown = set(weights or {}) - set(AF_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown AF-loss terms {sorted(unknown)}; known: {list(AF_WEIGHTS)}")
        self.weights = {**AF_WEIGHTS, **(weights or {})}
        self.bark = BarkSpectrum(sample_rate, bark_fft_size)

    def features(self, audio: Tensor) -> dict[str, Tensor]:
        """Unweighted features of ``audio (B, 2, N)`` keyed like :data:`AF_WEIGHTS`.

        Compute a fixed reference's features once and pass them to :meth:`feature_terms`.
        """
        check_stereo(audio)
        return {
            "rms": rms(audio),
            "crest_factor": crest_factor_db(audio),
            "stereo_width": stereo_width(audio),
            "stereo_imbalance": stereo_imbalance(audio),
            "bark_spectrum": self.bark(audio),
        }

    def feature_terms(self, pred: Mapping[str, Tensor], ref: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Weighted MSE per feature (scalars) from precomputed :meth:`features`.

        A reference with batch size 1 is broadcast against a larger prediction batch.
        """
        terms = {}
        for name, weight in self.weights.items():
            target = ref[name].expand_as(pred[name])
            terms[name] = weight * F.mse_loss(pred[name], target)
        return terms

    def terms(self, pred: Tensor, ref: Tensor) -> dict[str, Tensor]:
        """The five weighted terms for ``pred (B, 2, N)`` vs ``ref (B or 1, 2, M)``; they sum to
        :meth:`forward`."""
        check_stereo(pred, "pred")
        check_stereo(ref, "ref")
        return self.feature_terms(self.features(pred), self.features(ref))

    def forward(self, pred: Tensor, ref: Tensor) -> Tensor:
        """Args: ``pred (B, 2, N)``, ``ref (B or 1, 2, M)``. Returns a scalar."""
        return torch.stack(list(self.terms(pred, ref).values())).sum()


MRSTFT_FFT_SIZES: tuple[int, ...] = (512, 1024, 2048)
"""Default resolutions (window = FFT size, hop 25 %): cheap enough for CPU training."""


def _check_pair(pred: Tensor, target: Tensor, stereo: bool) -> tuple[Tensor, Tensor]:
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must both be (batch, channels, samples) of one shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if stereo and pred.shape[1] != 2:
        raise ValueError(f"sum/difference loss needs stereo input, got {pred.shape[1]} channel(s)")
    # auraloss reshapes with .view(), which fails on non-contiguous tensors (e.g. a transpose).
    return pred.contiguous(), target.contiguous()


def _resolutions(fft_sizes: Sequence[int], hop_fraction: float) -> dict[str, list[int]]:
    if not fft_sizes or not 0.0 < hop_fraction <= 1.0:
        raise ValueError("need at least one FFT size and 0 < hop_fraction <= 1")
    return {
        "fft_sizes": [int(n) for n in fft_sizes],
        "hop_sizes": [max(1, int(n * hop_fraction)) for n in fft_sizes],
        "win_lengths": [int(n) for n in fft_sizes],
    }


class MRSTFTLoss(nn.Module):
    """Multi-resolution STFT loss (auraloss): spectral convergence + L1 log-magnitude.

    Averaged over resolutions; channels are folded into the batch. Notes on auraloss 0.4:
    spectral convergence is one Frobenius-norm ratio over the *whole batch*, not a per-item
    mean, and STFT magnitudes are floored at 1e-4, so a silent target makes the loss huge.

    Cost of forward + backward, B = 4 stereo 10 s excerpts, default resolutions
    512/1024/2048 with 25 % hop, measured as single-thread CPU time on this machine:
    22.05 kHz ≈ 1.5 s, 44.1 kHz ≈ 2.8 s (wall 4–10 s while other jobs loaded the 2 cores).
    About a quarter of it is auraloss computing an unused phase (``torch.angle``).

    Args:
        fft_sizes: FFT (= window) sizes in samples.
        hop_fraction: hop as a fraction of the FFT size.
    """

    def __init__(self, fft_sizes: Sequence[int] = MRSTFT_FFT_SIZES, hop_fraction: float = 0.25) -> None:
        super().__init__()
        self.inner = auraloss.freq.MultiResolutionSTFTLoss(**_resolutions(fft_sizes, hop_fraction))

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Args: ``pred``, ``target`` ``(B, C, N)`` of the same shape. Returns a scalar."""
        pred, target = _check_pair(pred, target, stereo=False)
        return self.inner(pred, target)


class SumDiffSTFTLoss(nn.Module):
    """Stereo sum/difference MRSTFT loss (auraloss, Steinmetz et al. 2021 / DMC).

    ``(MRSTFT(L+R) + MRSTFT(L−R)) / 2`` with the same resolutions as :class:`MRSTFTLoss`
    (auraloss caveats apply; a mono-only target has a silent difference channel, so the
    difference term is dominated by the 1e-4 magnitude floor).

    Cost of forward + backward (B = 4 stereo 10 s, single-thread CPU time, default
    resolutions): 22.05 kHz ≈ 1.5 s, 44.1 kHz ≈ 3.0 s.
    """

    def __init__(self, fft_sizes: Sequence[int] = MRSTFT_FFT_SIZES, hop_fraction: float = 0.25) -> None:
        super().__init__()
        self.inner = auraloss.freq.SumAndDifferenceSTFTLoss(**_resolutions(fft_sizes, hop_fraction))

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Args: ``pred``, ``target`` ``(B, 2, N)`` of the same shape. Returns a scalar."""
        pred, target = _check_pair(pred, target, stereo=True)
        return self.inner(pred, target)

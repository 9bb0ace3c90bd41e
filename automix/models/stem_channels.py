"""The input of the end-to-end networks: a song's stems as a fixed number of channels."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional


def stems_as_channels(stems: Tensor, is_stereo: Tensor | None, track_mask: Tensor | None, max_tracks: int) -> Tensor:
    """``stems (B, T, 2, N)`` → ``(B, 2 · max_tracks, N)``: stem ``t`` on channels ``2t, 2t + 1``.

    A mono stem (the console convention: channel 0 holds it, channel 1 is silent, ``is_stereo``
    False) enters on both channels; masked-out and missing stems are zeros.

    Raises:
        ValueError: not two channels per stem, or more than ``max_tracks`` stems.
    """
    b, t, channels, n = stems.shape
    if channels != 2 or t > max_tracks:
        raise ValueError(f"stems must be (batch, ≤{max_tracks}, 2, samples), got {tuple(stems.shape)}")
    if is_stereo is not None:
        stems = torch.where(is_stereo.bool()[..., None, None], stems, stems[:, :, :1].expand_as(stems))
    if track_mask is not None:
        stems = stems * track_mask.to(stems.dtype)[..., None, None]
    return functional.pad(stems.reshape(b, 2 * t, n), (0, 0, 0, 2 * (max_tracks - t)))

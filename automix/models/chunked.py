"""Whole songs through an end-to-end network in overlapping, cross-faded chunks.

The networks see a few seconds at a time in training and pad their convolutions with zeros,
so a whole song in one pass would cost memory in proportion to its length and be coloured
at nothing but its two ends anyway. Chunks of :data:`PROCESS_CHUNK_S` overlap by
:data:`CROSSFADE_S` and are cross-faded linearly (weights normalised to sum to one), so no
chunk edge is heard.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

PROCESS_CHUNK_S = 8.0
"""Seconds per forward pass."""

CROSSFADE_S = 0.25
"""Overlap of neighbouring chunks (s)."""


@torch.no_grad()
def process_in_chunks(network: nn.Module, stems: Tensor, is_stereo: Tensor, sample_rate: int,
                      alignment: int = 1) -> Tensor:
    """``network(stems (1, T, 2, n), is_stereo (1, T)) → (1, 2, n)`` over a whole song:
    ``stems (T, 2, N)``, ``is_stereo (T,)`` → ``(2, N)``.

    ``alignment``: chunks start on multiples of it (the network's total down-sampling factor), so
    every chunk sees the song on the same decimation grid as a single pass would.
    """
    fade = -(-int(CROSSFADE_S * sample_rate) // alignment) * alignment
    chunk = -(-int(PROCESS_CHUNK_S * sample_rate) // alignment) * alignment + fade
    n = stems.shape[-1]
    out = torch.zeros(2, n, dtype=stems.dtype, device=stems.device)
    weight = torch.zeros(n, dtype=stems.dtype, device=stems.device)
    for start in range(0, max(1, n - fade), chunk - fade):
        stop = min(n, start + chunk)
        piece = network(stems[None, :, :, start:stop], is_stereo[None])[0]
        ramp = torch.ones(stop - start, dtype=stems.dtype, device=stems.device)
        edge = min(fade, (stop - start) // 2)
        if start > 0 and edge:
            ramp[:edge] = torch.linspace(0.0, 1.0, edge + 2, dtype=stems.dtype, device=stems.device)[1:-1]
        if stop < n and edge:
            ramp[-edge:] = torch.linspace(1.0, 0.0, edge + 2, dtype=stems.dtype, device=stems.device)[1:-1]
        out[:, start:stop] += piece * ramp
        weight[start:stop] += ramp
        if stop == n:
            break
    return out / weight.clamp_min(1e-6)

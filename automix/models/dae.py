"""Deep autoencoder per instrument group: an end-to-end baseline (no console, the mix comes out).

After Martínez Ramírez & Reiss, "End-to-end equalization with convolutional neural networks" /
"Deep learning and intelligent audio mixing" (WIMP 2017): stacked feed-forward autoencoders on
STFT magnitudes (``n_fft`` 2048, hop 1024), one per instrument group, raw stem → processed
stem, the phase taken from the input. Here:

* every stem's channel is analysed separately (Hann window, ``n_fft``/``hop`` samples); a mono
  stem (console convention: channel 1 silent, ``is_stereo`` False) enters on both channels, so
  the output is stereo with the stem centred;
* its log magnitude frames ``log1p(|X|)`` ``(frames, n_fft/2 + 1)`` go through the group's
  autoencoder (bins → ``hidden_1`` → ``hidden_2`` → ``hidden_3`` → ``hidden_2`` → ``hidden_1`` →
  bins, ReLU), whose output is a positive gain per bin (softplus; initialised to exactly 1, so
  an untrained model returns the unity sum of the stems);
* the processed spectrum is that gain times the input spectrum (the input's phase), inverted
  with the overlap-added iSTFT, and the stems are summed: the mix.

Groups (:data:`GROUPS`, from :func:`automix.mixers.roles.role_from_name`; :func:`group_of`):
bass → ``bass``; guitar → ``guitar``; lead_vocal, backing_vocal and lead (sax, flute, solo…)
→ ``vocal`` (vocal-like melodic leads); keys and pad → ``keys``; drums, fx and unnamed stems →
``other``. A stem's group chooses the weights it goes through; the model sees no stem order,
so it is permutation-equivariant and takes any number of stems (the Wave-U-Net and
Demucs-lite take at most 16, by position).

It is trained through the mix (the song's own mix as target, sum/difference MRSTFT after level
matching) and, with ``loss.per_stem`` (:mod:`automix.train.stem_targets`), on each processed
stem against its truth-processed stem (the stem at the author's gain and pan from the real
corpus's ``song.json``), as the paper trains raw → processed stem per instrument.

Shapes: ``stems (B, T, 2, N)``, ``is_stereo (B, T)``, ``track_mask (B, T)``, ``track_groups
(B, T)`` (ints in ``range(len(GROUPS))``) → ``(B, 2, N)``; any ``T`` and ``N``.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from automix.mixers.roles import role_from_name
from automix.models.chunked import process_in_chunks
from automix.models.direct_mixer import DirectModelMixer

GROUPS: tuple[str, ...] = ("bass", "guitar", "vocal", "keys", "other")
"""The instrument groups, one autoencoder each; a stem's group id is its index here."""

ROLE_GROUPS: dict[str, str] = {
    "bass": "bass", "guitar": "guitar", "lead_vocal": "vocal", "backing_vocal": "vocal", "lead": "vocal",
    "keys": "keys", "pad": "keys"}
"""Role (:data:`automix.mixers.roles.ROLES`) → group; every other role (and no role) is ``other``."""


def group_of(name: str) -> int:
    """The group id (index in :data:`GROUPS`) of a stem file name."""
    role, _ = role_from_name(name)
    return GROUPS.index(ROLE_GROUPS.get(role or "", "other"))


def groups_of(names: Sequence[str]) -> list[int]:
    """:func:`group_of` for each name."""
    return [group_of(n) for n in names]


@dataclass
class DAEConfig:
    """Sizes of a :class:`DAE` (stored in the checkpoint JSON)."""

    sample_rate_hz: int = 22050
    n_fft: int = 2048
    hop: int = 1024
    hidden_1: int = 128
    hidden_2: int = 64
    hidden_3: int = 32


_IDENTITY_BIAS = math.log(math.e - 1.0)
"""softplus(this) = 1: the last layer starts as a unity gain."""


class _Autoencoder(nn.Module):
    """Magnitude frames ``(..., bins)`` (log1p) → positive gains ``(..., bins)``."""

    def __init__(self, bins: int, hidden: Sequence[int]):
        super().__init__()
        widths = [bins, *hidden, *reversed(hidden[:-1])]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], bins)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, _IDENTITY_BIAS)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = functional.relu(layer(x))
        return functional.softplus(self.out(x))


class DAE(nn.Module):
    """Stems → stereo mix through one spectral autoencoder per group (see the module docstring)."""

    kind = "dae"
    outputs_audio = True
    """An end-to-end model: ``forward`` returns the mix, not console settings."""
    uses_track_groups = True
    """The training loop passes ``track_groups`` (from the stem names) to ``forward``."""
    outputs_stems = True
    """``forward(..., per_stem=True)`` returns each processed stem (``loss.per_stem`` trains on them)."""

    def __init__(self, config: DAEConfig):
        super().__init__()
        self.config = c = config
        if c.hop > c.n_fft:
            raise ValueError(f"hop {c.hop} must not exceed n_fft {c.n_fft}")
        bins = c.n_fft // 2 + 1
        hidden = (c.hidden_1, c.hidden_2, c.hidden_3)
        self.groups = nn.ModuleList(_Autoencoder(bins, hidden) for _ in GROUPS)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)

    def forward(self, stems: Tensor, is_stereo: Tensor | None = None, track_mask: Tensor | None = None,
                reference: Tensor | None = None, track_groups: Tensor | None = None, per_stem: bool = False) -> Tensor:
        """``stems (B, T, 2, N)``, ``is_stereo (B, T)``, ``track_mask (B, T)``, ``track_groups (B, T)``
        (None: every stem ``other``) → mix ``(B, 2, N)``, or with ``per_stem`` the processed stems
        ``(B, T, 2, N)`` before the sum (masked stems are zeros; a mono stem's two channels are
        equal). ``reference`` is accepted for the training loop's common call and unused."""
        c = self.config
        b, t, channels, n = stems.shape
        if channels != 2:
            raise ValueError(f"stems must be (batch, tracks, 2, samples), got {tuple(stems.shape)}")
        if is_stereo is not None:
            stems = torch.where(is_stereo.bool()[..., None, None], stems, stems[:, :, :1].expand_as(stems))
        if track_mask is not None:
            stems = stems * track_mask.to(stems.dtype)[..., None, None]
        if track_groups is None:
            track_groups = torch.full((b, t), GROUPS.index("other"), dtype=torch.long, device=stems.device)
        # Zeros up to a whole number of hops (at least n_fft: the centre padding needs more than
        # n_fft / 2 samples), so a frame is centred on the padded end. Else the last samples, up to
        # a hop past the last frame's centre, lie under that frame's window tail alone, and the
        # iSTFT's division by the squared-window sum (→ 0 there) turns the gain's smearing of the
        # frame into a burst (peaks of 30× the signal at the end of a song).
        padded = -(-max(n, c.n_fft) // c.hop) * c.hop
        x = functional.pad(stems.reshape(b * t * 2, n), (0, padded - n))
        spec = torch.stft(x, c.n_fft, c.hop, window=self.window.to(x.dtype), center=True, return_complex=True)
        features = torch.log1p(spec.abs()).transpose(-1, -2)  # (B·T·2, frames, bins)
        gains = torch.ones_like(features)
        rows = track_groups.to(stems.device).long().repeat_interleave(2, dim=1).reshape(-1)
        for g, autoencoder in enumerate(self.groups):
            chosen = rows == g
            if bool(chosen.any()):
                gains = gains.index_put((chosen.nonzero()[:, 0],), autoencoder(features[chosen]))
        out = torch.istft(spec * gains.transpose(-1, -2), c.n_fft, c.hop, window=self.window.to(x.dtype),
                          center=True, length=padded)
        processed = out[..., :n].reshape(b, t, 2, n)
        return processed if per_stem else processed.sum(dim=1)

    def process(self, stems: Tensor, is_stereo: Tensor, track_groups: Tensor | None = None) -> Tensor:
        """A whole song ``stems (T, 2, N)``, ``is_stereo (T,)``, ``track_groups (T,)`` → mix ``(2, N)``
        (cross-faded chunks on the hop grid)."""
        groups = None if track_groups is None else track_groups[None]

        def network(s: Tensor, st: Tensor) -> Tensor:
            return self(s, st, track_groups=groups)

        return process_in_chunks(network, stems, is_stereo, self.config.sample_rate_hz, self.config.hop)


class _WithGroups:
    """A :class:`DAE` seen through :class:`DirectModelMixer`'s ``process(stems, is_stereo)`` call,
    with one song's group ids bound."""

    def __init__(self, model: DAE, groups: Tensor):
        self.model, self.groups, self.config = model, groups, model.config

    def process(self, stems: Tensor, is_stereo: Tensor) -> Tensor:
        return self.model.process(stems, is_stereo, self.groups)


class DAEMixer(DirectModelMixer):
    """:class:`DirectModelMixer` for a :class:`DAE`: the stems' file names choose their groups."""

    def mix_audio(self, stems: list[Any], sample_rate: int, *, seed: int = 0) -> np.ndarray:
        """The mix ``(2, N)`` float32 at ``sample_rate``; each stem through its name's group."""
        bound = copy.copy(self)  # the shared model is not touched: this call's groups live in the copy
        bound.model = _WithGroups(self.model, torch.tensor(groups_of([s.name for s in stems]), device=self.device))
        return DirectModelMixer.mix_audio(bound, stems, sample_rate, seed=seed)

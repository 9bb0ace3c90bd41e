"""``DirectModelMixer``: an end-to-end model behind :class:`automix.mixers.base.AudioMixer`.

Inference mirrors training: every stem is trimmed to :data:`NORMALISED_STEM_LUFS` (the level
the corpus stores its dry stems at; the trim range and the input clip of the console models
apply) and resampled to the model's rate, by the same :func:`~automix.models.inputs.model_stem`
as the console models; it is run through the network in chunks, and the mix resampled back to
the song's rate. Its level is whatever the network produced; the output stage sets loudness and peak.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from automix.errors import AutomixError
from automix.io import Stem, resample
from automix.models.inputs import console_stereo, model_stem


class DirectModelMixer:
    """Mixes with an end-to-end model (``model.process(stems, is_stereo) → (2, N)``).

    Args:
        model: a loaded end-to-end model (eval mode), e.g. :class:`~automix.models.wave_unet.WaveUNet`.
        meta: the checkpoint description.
        name: what ``--model`` called it; recorded as ``mixer`` in the JSON beside the mix.
        device: where to run it.
    """

    accepts_references = False

    def __init__(self, model: nn.Module, meta: dict[str, Any], name: str, device: str | torch.device = "cpu"):
        self.model = model.eval()
        self.meta = meta
        self.name = name
        self.device = torch.device(device)
        self.rate_hz = int(model.config.sample_rate_hz)
        self.max_tracks = int(getattr(model.config, "max_tracks", 0)) or None

    @torch.no_grad()
    def mix_audio(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> np.ndarray:
        """The mix ``(2, N)`` float32 at ``sample_rate`` (``N`` the stems' length)."""
        if not stems:
            raise AutomixError("no stems to mix")
        if self.max_tracks is not None and len(stems) > self.max_tracks:
            raise AutomixError(f"{self.name} takes at most {self.max_tracks} stems (its input channels are fixed), "
                               f"got {len(stems)}: group some stems, or mix with a console model")
        frames = stems[0].frames
        audio = [console_stereo(model_stem(stem.audio, stem.sample_rate, self.rate_hz)[0]) for stem in stems]
        batch = torch.from_numpy(np.stack(audio)).to(self.device)
        is_stereo = torch.tensor([s.channels == 2 for s in stems], device=self.device)
        mix = self.model.process(batch, is_stereo).double().cpu().numpy()
        out = resample(mix, self.rate_hz, sample_rate)
        fitted = np.zeros((2, frames), dtype=np.float32)
        n = min(frames, out.shape[-1])
        fitted[:, :n] = out[:, :n]
        return fitted

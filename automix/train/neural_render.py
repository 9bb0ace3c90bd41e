"""The neural console: the differentiable mix with each channel strip rendered by the frozen
transformation network (``loss.console: neural``), as Steinmetz et al. 2021 train their DMC.

A training-time device only. The controller trained through it still predicts ordinary console
settings, and at mix time those settings are rendered by the DSP console (the paper's point:
the network stands in for a console that need not be differentiable; the mix never goes
through it). Nothing outside :mod:`automix.train` imports this module.

Signal flow per track, matching :func:`automix.console.torch_console.mix_console` except where
marked: trim → **TCN (EQ → compressor)** → fader → pan/width, post-fader send to the DSP
reverb bus, DSP master bus. The TCN (:mod:`automix.models.tcn`) was trained on mono signals at
its checkpoint's sample rate, from normalised (−23 LUFS) stems, conditioned on the
:data:`~automix.models.tcn.STRIP_PARAMS` normalised by the schema; here each channel of a stem
is one such signal (a stereo stem's compressor is therefore unlinked, unlike the DSP strip's).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from automix.console.reverb import reverb_ir
from automix.console.schema import FX, MASTER, TRACK, db_to_amplitude, send_gain
from automix.console.torch_console import fft_convolve, master_bus, pan_matrix
from automix.errors import AutomixError
from automix.models.tcn import TCN, normalised_strip_params


class NeuralConsole(nn.Module):
    """The console with a frozen TCN in place of every strip's EQ and compressor.

    Args:
        strip: a trained :class:`~automix.models.tcn.TCN`; it is put in eval mode (batch norm
            uses its running statistics) and its parameters stop requiring gradients, so the
            optimiser of the controller never changes it. Gradients still flow *through* it
            to its inputs: the audio and the normalised strip parameters (the FiLM MLP).
        sample_rate: Hz of the audio to render; must be the one the TCN was trained at.
    """

    def __init__(self, strip: TCN, sample_rate: int):
        super().__init__()
        if strip.config.sample_rate_hz != sample_rate:
            raise AutomixError(f"the neural strip was trained at {strip.config.sample_rate_hz} Hz, the data are "
                               f"at {sample_rate} Hz: set data.sample_rate_hz to {strip.config.sample_rate_hz}")
        self.strip = strip.eval().requires_grad_(False)
        self.sample_rate = sample_rate

    def train(self, mode: bool = True) -> NeuralConsole:
        """Stays in eval mode whatever the caller asks: the strip is frozen, batch norm included."""
        super().train(mode)
        self.strip.eval()
        return self

    def strips(self, stems: Tensor, is_stereo: Tensor, track_params: Tensor, track_mask: Tensor) -> Tensor:
        """Post-pan tracks ``(B, T, 2, N)`` from stems ``(B, T, 2, N)``, ``is_stereo``/``track_mask``
        ``(B, T)`` bool and physical ``track_params`` ``(B, T, len(TRACK))``.

        Only the channels that carry audio (active tracks; channel 1 of stereo stems) go through
        the TCN: it costs ~40 k multiply-adds per sample and channel, the rest would be silence.
        """
        channels = stems.shape[2]
        trim = db_to_amplitude(track_params[..., TRACK.index("trim_db")]).to(stems.dtype)
        x = stems * trim[..., None, None]
        used = track_mask.bool()[..., None] & torch.stack([torch.ones_like(is_stereo, dtype=torch.bool),
                                                            is_stereo.bool()], dim=-1)  # (B, T, 2)
        params = normalised_strip_params(track_params).to(stems.dtype)  # (B, T, P)
        rows = self.strip.process(x[used][:, None], params[:, :, None].expand(-1, -1, channels, -1)[used])
        y = torch.zeros_like(x).index_put((used,), rows[:, 0])
        matrix = pan_matrix(track_params, is_stereo.bool()).to(stems.dtype) * track_mask.to(stems.dtype)[..., None, None]
        return torch.einsum("btij,btjn->btin", matrix, y)

    def forward(self, stems: Tensor, is_stereo: Tensor, track_params: Tensor, fx_params: Tensor,
                master_params: Tensor, track_mask: Tensor) -> Tensor:
        """The mix ``(B, 2, N)`` before finalize; arguments as :func:`~automix.console.torch_console.mix_console`
        (physical units; ``fx_params (B, len(FX))``, ``master_params (B, len(MASTER))``)."""
        tracks = self.strips(stems, is_stereo, track_params, track_mask)
        mix = tracks.sum(dim=1)
        # The reverb bus and master stay DSP, as in mix_console: the TCN emulates the strip only.
        send_amp = send_gain(track_params[..., TRACK.index("send.reverb_db")]).to(tracks.dtype)
        return_amp = send_gain(fx_params[:, FX.index("reverb.return_db")]).to(tracks.dtype)
        if bool((send_amp != 0).any()) and bool((return_amp != 0).any()):
            send_bus = torch.einsum("bt,btcn->bcn", send_amp, tracks)
            ir = reverb_ir(fx_params, self.sample_rate).to(tracks.dtype)
            mix = mix + fft_convolve(send_bus, ir) * return_amp[:, None, None]
        if tuple(master_params.shape) != (stems.shape[0], len(MASTER)):
            raise AutomixError(f"master_params must be {(stems.shape[0], len(MASTER))}, got {tuple(master_params.shape)}")
        return master_bus(mix, master_params, self.sample_rate)


def load_neural_console(name_or_path: str, sample_rate: int) -> NeuralConsole:
    """The :class:`NeuralConsole` of a shipped strip emulator (e.g. ``"tcn-10"``) or a checkpoint
    path, loaded code-free (safetensors + JSON) through the registry."""
    from automix.models.registry import load_model

    model, _ = load_model(name_or_path, "cpu")
    if not isinstance(model, TCN):
        raise AutomixError(f"{name_or_path}: not a transformation network (a {type(model).__name__}); "
                           "loss.strip_model must name a tcn checkpoint")
    return NeuralConsole(model, sample_rate)

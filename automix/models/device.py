"""Where a trained model runs: ``--device`` validated and ``auto`` resolved (torch imported only to resolve)."""

from __future__ import annotations

import re

from automix.errors import AutomixError

_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def check_device(device: str) -> str:
    """Validate ``--device`` (auto, cpu, cuda, cuda:N, mps); returns it unchanged."""
    if not _DEVICE.fullmatch(device):
        raise AutomixError(f"--device {device!r}: choose auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; an unavailable CUDA/MPS device is an error."""
    import torch

    check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AutomixError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise AutomixError(f"--device {device}: this machine has {count} CUDA device{'' if count == 1 else 's'} "
                           f"(cuda:0…cuda:{count - 1})")
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise AutomixError("--device mps: MPS is not available on this machine; use --device cpu")
    return device

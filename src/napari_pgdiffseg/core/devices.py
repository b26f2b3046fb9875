"""Choosing the torch device: 'auto' picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import torch

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """The devices that exist on this machine, best first."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn 'auto' / 'cpu' / 'cuda[:i]' / 'mps' into a device that exists, or raise ConfigError."""
    if isinstance(name, torch.device):
        name = str(name)
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if base == "auto":
        return torch.device(available_devices()[0])
    if base not in available_devices():
        raise ConfigError(
            f"device {name!r} is not available on this machine (available: {', '.join(available_devices())}); "
            "use 'auto' or 'cpu'"
        )
    return torch.device(name)

"""Choosing the torch device: 'auto' picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import contextlib
import os
import threading

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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so that oneDNN runs
    bfloat16 convolutions faster than float32 ones. torch has no public query for it; these
    are the checks its own CPU kernels dispatch on. PGDIFFSEG_NO_BF16=1 answers no."""
    if os.environ.get("PGDIFFSEG_NO_BF16", "") not in ("", "0"):
        return False
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    except AttributeError:  # another torch: no such query, assume float32
        return False


_threads_lock = threading.Lock()


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch intra-op threads (0: leave torch's setting), then restore it.

    torch's thread count is per process, so concurrent blocks are serialised on a lock
    rather than fighting over the setting.
    """
    if not n:
        yield
        return
    with _threads_lock:
        before = torch.get_num_threads()
        torch.set_num_threads(int(n))
        try:
            yield
        finally:
            torch.set_num_threads(before)


def busy_hint(cores: int | None = None, load: float | None = None) -> str:
    """'' or one line saying the CPU is busy with other work (1-minute load average >= cores)."""
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on every platform
            return ""
    if load < cores:
        return ""
    return (f"this machine is busy (load {load:.1f} on {cores} cores): with other work running, "
            f"fewer threads (e.g. {max(1, cores // 2)}) may segment faster")

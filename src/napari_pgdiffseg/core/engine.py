"""The tile-batch engine: the one loop over a frame's tiles behind `segment`, `compute_noise`
(the noise inspector) and `segment_baseline`.

- `TileRun` counts network evaluations, checks for cancel before each one and reports a
  `Progress` after each; a network joins the count through `TileRun.counted`.
- `TileRun.batches` hands out the tiles of a grid, read on demand, `tile_batch` at a time.
- `diffusion_networks`: a bundle's encoder and U-Nets on a device, one tile per call when
  results must not depend on the batch size.
- `starting_noise`: the starting noise of one sample of a tile batch (prior / random /
  forward), drawn from per-tile generators so that batching never changes it.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .devices import cpu_has_native_bf16
from .errors import SegmentationCancelled
from .models import encode_latents
from .noise import NoiseConfig, class_noise, latent_noise, tile_generators

# Streams of the per-tile random generators: sample s uses stream s; 10_000 + s for the
# fresh noise that `mix` adds, so changing `mix` does not change the random baseline.
MIX_STREAM = 10_000
BATCH_INVARIANT_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class Progress:
    """Where a run stands; sent to the progress callback after each network evaluation."""

    tiles_done: int
    tiles_total: int
    evals_done: int  # network calls on tile batches so far
    evals_total: int


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool] | threading.Event


def cancel_check(cancel: CancelCheck | None) -> Callable[[], bool]:
    """A callable that says whether to stop, from None, a callable or a threading.Event."""
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


class TileRun:
    """One pass over `n_tiles` tiles in batches of `tile_batch`: counts, progress, cancel.

    evals_per_batch: the counted network calls each batch makes (for the progress total).
    """

    def __init__(self, n_tiles: int, tile_batch: int, evals_per_batch: int,
                 progress: ProgressCallback | None = None, cancel: CancelCheck | None = None):
        self.n_tiles, self.tile_batch = n_tiles, tile_batch
        self.n_batches = math.ceil(n_tiles / tile_batch)
        self.evals_total = self.n_batches * evals_per_batch
        self.evals_done = 0
        self.tiles_done = 0
        self.evals: Counter[str] = Counter()  # counted calls by kind, over all batches
        self.progress = progress
        self.cancelled = cancel_check(cancel)

    def check(self) -> None:
        if self.cancelled():
            raise SegmentationCancelled("cancelled")

    def report(self) -> None:
        if self.progress is not None:
            self.progress(Progress(self.tiles_done, self.n_tiles, self.evals_done, self.evals_total))

    def counted(self, fn, kind: str):
        """Wrap a network: check for cancel before each call, count and report after it."""

        def call(*args):
            self.check()
            out = fn(*args)
            self.evals_done += 1
            self.evals[kind] += 1
            self.report()
            return out

        return call

    def batches(self, origins: Sequence[tuple[int, int]], read_tile: Callable[[int, int], np.ndarray]
                ) -> Iterator[tuple[list[int], list[tuple[int, int]], np.ndarray]]:
        """(tile ids, origins, (B, 1, t, t) float32 tiles) per batch; a batch's tiles count as
        done when the caller asks for the next one (or the loop ends)."""
        self.report()
        for b0 in range(0, len(origins), self.tile_batch):
            self.check()
            batch = list(origins[b0 : b0 + self.tile_batch])
            tiles = np.stack([read_tile(y, x) for y, x in batch])[:, None]
            yield list(range(b0, b0 + len(batch))), batch, tiles
            self.tiles_done += len(batch)
            self.report()


def one_tile_at_a_time(fn):
    """fn(x, *args) evaluated on each tile of the batch x alone, results concatenated.

    CPU kernels (oneDNN convolutions, MKL linear layers) choose their blocking from the
    batch size, so a tile's output differs by ~1e-6 between batch sizes; evaluated alone,
    a tile always goes through the same kernels. A per-tile timestep tensor is split too.
    """

    def call(x, *args):
        outs = []
        for i in range(x.shape[0]):
            a = [v[i : i + 1] if torch.is_tensor(v) and v.ndim and v.shape[0] == x.shape[0] else v for v in args]
            # A copy, not a view: oneDNN kernels can round differently for inputs at another
            # memory alignment, and a view of tile i starts i tiles into the batch.
            outs.append(fn(x[i : i + 1].clone(), *a))
        if hasattr(outs[0], "sample"):  # diffusers' UNet2DOutput
            return type(outs[0])(sample=torch.cat([o.sample for o in outs]))
        return torch.cat(outs)

    return call


def batch_invariant_on(batch_invariant: str, device: torch.device) -> bool:
    """Whether the networks run one tile at a time: "on", or "auto" on a CPU."""
    return batch_invariant == "on" or (batch_invariant == "auto" and device.type == "cpu")


#: Network precision of a run: "auto" = float16 autocast on CUDA, bfloat16 autocast on CPUs
#: that compute it natively (`cpu_has_native_bf16`), float32 elsewhere.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device`, or None for plain float32.

    "auto" on a CPU with native bfloat16: 1.4-1.5x faster for the shipped models with their
    labels 99.9 % alike (README, "What pays on this CPU"); elsewhere bfloat16 is emulated and
    slower than float32, so "auto" stays float32 there.
    """
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    return {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def autocast_call(fn, device: torch.device, dtype: torch.dtype):
    """`fn` run under `torch.autocast` at `dtype`, its output back in float32: the networks run
    in half precision, the DDIM updates and the blending stay in float32."""
    def call(x, *args, **kwargs):
        with torch.autocast(device.type, dtype=dtype):
            out = fn(x, *args, **kwargs)
        if hasattr(out, "sample"):  # diffusers' UNet2DOutput
            return type(out)(sample=out.sample.float())
        return out.float()

    return call


def channels_last_inputs(fn):
    """`fn` with its (B, C, H, W) input in channels-last (NHWC) memory order."""
    def call(x, *args):
        return fn(x.contiguous(memory_format=torch.channels_last), *args)

    return call


def diffusion_networks(bundle, device: torch.device, batch_invariant: str = "auto", precision: str = "float32",
                       channels_last: bool | None = None):
    """(encode, ldm_p, ldm_s) of `bundle` moved to `device`, one tile per call where asked, under
    autocast where `precision` asks for it (`PRECISIONS`).

    channels_last (None: on CPUs): the networks' weights and inputs in NHWC order, which
    oneDNN's convolutions use without reordering: 1.2-1.3x on this project's CPU for the
    shipped models, labels unchanged (benchmarks/cpu_options.py). Saving is unaffected
    (diffusers writes contiguous tensors).
    """
    bundle.to(device)
    if channels_last is None:
        channels_last = device.type == "cpu"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for m in (bundle.autoencoder, bundle.ldm_p, bundle.ldm_s):
        m.to(memory_format=fmt)
    nets = (lambda x: encode_latents(bundle.autoencoder, x), bundle.ldm_p, bundle.ldm_s)
    if channels_last:
        nets = tuple(channels_last_inputs(f) for f in nets)
    dtype = autocast_dtype(precision, device)
    if dtype is not None:
        nets = tuple(autocast_call(f, device, dtype) for f in nets)
    if batch_invariant_on(batch_invariant, device):
        nets = tuple(one_tile_at_a_time(f) for f in nets)
    return nets


def starting_noise(z: torch.Tensor, noise: NoiseConfig, n_classes: int, seed: int, tile_ids: Sequence[int],
                   sample: int, ldm_p, scheduler, prior: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """((B, n, h, w) starting noise of sample `sample`, the latent-shaped noise it came from).

    The prior's inversion is deterministic: pass its result back as `prior` for the next
    samples instead of inverting again. Random draws come from per-tile generators of
    (seed, tile id, stream), so a tile's noise does not depend on its batch.
    """
    eps = prior
    if noise.strategy == "prior" and eps is None:
        eps = latent_noise(z, noise, ldm_p, scheduler, [])
    elif noise.strategy == "forward":
        eps = latent_noise(z, noise, ldm_p, scheduler, tile_generators(seed, tile_ids, sample))
    stream = sample if noise.strategy == "random" else MIX_STREAM + sample
    start = class_noise(eps, noise, n_classes, tile_generators(seed, tile_ids, stream), z.shape[2:])
    return start.to(z.device, z.dtype), (eps if noise.strategy == "prior" else None)

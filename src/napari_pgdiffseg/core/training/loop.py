"""What every training loop here shares: endless shuffled tile batches, aligned random
crops, and a record of the machine a run used (the diffusion stages and the U-Net baseline
both train through these, so they see the same tiles and augmentation draws)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .dataset import TileDataset

__all__ = ["StepReport", "TrainControl", "machine_info", "random_crop", "tile_batches"]


@dataclass(frozen=True)
class StepReport:
    """One optimiser step as a caller sees it (progress bars, live loss curves)."""

    stage: str  # "autoencoder", "ldm_p", "ldm_s" or "unet"
    step: int  # steps done in this stage, resumed ones included
    steps: int | None  # the stage's step cap (None: only a time budget ends it)
    loss: float
    elapsed: float  # seconds of this run of the stage
    budget: float | None  # seconds this stage may run (None: no time budget)


@dataclass
class TrainControl:
    """What a caller controls of a running training loop.

    deadline: a `time.monotonic()` value after which the stage stops at the end of its
    current step (None: run every step). cancel: set it to stop; the loop saves a last
    checkpoint and raises `TrainingCancelled`. on_step: called after every step with a
    `StepReport`. The diffusion stages and the U-Net baseline take the same control.
    """

    deadline: float | None = None
    cancel: threading.Event | None = None
    on_step: Callable[[StepReport], None] | None = None

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def budget(self, now: float) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - now)

    def report(self, stage: str, step: int, steps: int | None, loss: float, t0: float) -> None:
        if self.on_step is not None:
            now = time.monotonic()
            self.on_step(StepReport(stage, step, steps, loss, now - t0,
                                    None if self.deadline is None else self.deadline - t0))

def tile_batches(dataset: TileDataset, batch_size: int, seed: int, num_workers: int) -> Iterator[dict]:
    """Endless shuffled batches; each epoch reseeds the dataset's augmentation."""
    g = torch.Generator().manual_seed(seed)
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=True, generator=g, drop_last=len(dataset) >= batch_size,
            num_workers=num_workers,
        )
        yield from loader
        epoch += 1


def random_crop(batch: dict, size: int, g: torch.Generator) -> dict:
    """The same random `size` px window of every image (and mask) of the batch, at a multiple
    of 4 px (the autoencoder's factor), so the latent grid stays aligned."""
    img = batch["image"]
    h, w = img.shape[-2:]
    if size >= h and size >= w:
        return batch
    y = int(torch.randint(0, h - size + 1, (1,), generator=g)) // 4 * 4
    x = int(torch.randint(0, w - size + 1, (1,), generator=g)) // 4 * 4
    out = dict(batch)
    out["image"] = img[..., y : y + size, x : x + size]
    if "mask" in batch:
        out["mask"] = batch["mask"][..., y : y + size, x : x + size]
    return out


def machine_info() -> dict:
    """Where a run happened: enough to compare timings honestly."""
    import platform

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info

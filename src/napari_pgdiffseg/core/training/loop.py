"""What every training loop here shares: endless shuffled tile batches, aligned random
crops, and a record of the machine a run used (the diffusion stages and the U-Net baseline
both train through these, so they see the same tiles and augmentation draws)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from .dataset import TileDataset

__all__ = ["machine_info", "random_crop", "tile_batches"]

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

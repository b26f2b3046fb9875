"""`compute_noise`: the starting noise LDM-S would get for an image (the noise-quality
inspector's computation), without sampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .bundle import Bundle
from .devices import resolve_device
from .engine import CancelCheck, ProgressCallback, TileRun, diffusion_networks, starting_noise
from .models import DOWNSAMPLE_FACTOR
from .noise import NoiseConfig
from .preprocess import check_frame, rescale_frame
from .source import FrameSource
from .tiling import TileGrid

__all__ = ["centre_crop_box", "compute_noise"]

def compute_noise(
    image,
    bundle: Bundle,
    noise: NoiseConfig,
    *,
    seed: int = 0,
    device: str = "auto",
    tile_batch: int = 4,
    batch_invariant: str = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """The (n, ceil(h/4), ceil(w/4)) starting noise that LDM-S would get for `image`.

    (h, w) is the frame's size at the bundle's ``input_scale`` (the frame's own size for 1).

    Same steps as `segment` up to the sampler: checks, the bundle's normalisation, tiles of
    the bundle's tile size (no overlap: a noise is not blended, it would lose variance),
    encoder, the strategy's latent noise, channel averaging and repeat (Algorithm 1).
    An image larger than one tile is cropped, centred, to whole tiles first.

    precision is `SegmentConfig.precision` (same default), so the noise is the one `segment`
    starts from on the same machine.

    progress gets a `Progress` after every network evaluation (the encoder, the prior's
    inversion steps) and every tile batch; cancel is checked before each evaluation and
    each batch and raises SegmentationCancelled.
    """
    noise.validate(bundle.num_train_timesteps)
    if bundle.card.input_scale != 1.0:  # the noise of the frame at the model's pixel size
        image = rescale_frame(check_frame(image), bundle.card.input_scale)
    source = FrameSource(image, bundle.card.normalization)
    t = bundle.card.tile_size
    H, W = source.shape
    # Larger than a tile: keep the centred whole-tile part, so tiles neither overlap nor pad
    # (an axis shorter than a tile is the whole axis, mirrored up to a tile by the source).
    ch, cw = (H // t * t if H > t else H), (W // t * t if W > t else W)
    y0, x0 = (H - ch) // 2, (W - cw) // 2
    grid = TileGrid(ch, cw, t, 0, DOWNSAMPLE_FACTOR)
    dev = resolve_device(device)
    # Progress counts the encoder too, so a strategy without a network still reports per batch.
    run = TileRun(len(grid), tile_batch, 1 + (noise.inversion_steps if noise.strategy == "prior" else 0),
                  progress, cancel)
    encode, net_p, _ = diffusion_networks(bundle, dev, batch_invariant, precision)
    encode, ldm_p = run.counted(encode, "encode"), run.counted(net_p, "inversion")
    scheduler = bundle.make_scheduler()
    n = bundle.n_classes
    lh, lw = -(-grid.padded_shape[0] // DOWNSAMPLE_FACTOR), -(-grid.padded_shape[1] // DOWNSAMPLE_FACTOR)
    out = np.zeros((n, lh, lw), np.float32)
    for ids, batch, tiles in run.batches(grid.origins(), lambda y, x: source.tile(y0 + y, x0 + x, t)):
        z = encode(torch.from_numpy(tiles).to(dev))
        start, _ = starting_noise(z, noise, n, seed, ids, 0, ldm_p, scheduler)
        start = start.float().cpu().numpy()
        for i, (y, x) in enumerate(batch):
            ly, lx = y // DOWNSAMPLE_FACTOR, x // DOWNSAMPLE_FACTOR
            out[:, ly : ly + start.shape[2], lx : lx + start.shape[3]] = start[i]
    return out[:, : -(-ch // DOWNSAMPLE_FACTOR), : -(-cw // DOWNSAMPLE_FACTOR)]


def centre_crop_box(shape: Sequence[int], size: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the centred size x size crop of a (H, W) frame (smaller frames: all)."""
    H, W = int(shape[0]), int(shape[1])
    h, w = min(H, size), min(W, size)
    y0, x0 = (H - h) // 2, (W - w) // 2
    return y0, y0 + h, x0, x0 + w

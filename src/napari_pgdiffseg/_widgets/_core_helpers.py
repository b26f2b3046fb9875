"""Qt-free compute the widgets need and the core does not have yet (candidates to move into core/).

`peek_bundle` reads a bundle's card without loading weights (live validation of the
settings), `compute_noise` makes the starting noise of one strategy for a frame without
sampling (the inspector), `split_cells` turns a class mask into one id per cell, and
`summarize_planes` combines per-plane summaries of a stack.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label as connected_components
from skimage.segmentation import watershed

from ..core.bundle import CARD_NAME, SCHEDULER_FILE, Bundle, BundleCard
from ..core.devices import resolve_device
from ..core.errors import BundleError, SegmentationCancelled
from ..core.models import DOWNSAMPLE_FACTOR, encode_latents
from ..core.noise import NoiseConfig, class_noise, latent_noise, tile_generators
from ..core.preprocess import check_frame, normalize
from ..core.summary import summarize
from ..core.tiling import TileGrid

# Must match core.pipeline._MIX_STREAM so that a strategy's noise here is the noise
# `segment` starts from for the same seed and tile id.
_MIX_STREAM = 10_000


def peek_bundle(path: str | os.PathLike) -> tuple[BundleCard, int]:
    """(card, num_train_timesteps) of a bundle folder from its JSON files only (milliseconds).

    Raises BundleError naming the problem; weights are checked later by `load_bundle`.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"model bundle {path} does not exist or is not a folder")
    for rel in (CARD_NAME, SCHEDULER_FILE):
        if not (path / rel).is_file():
            raise BundleError(f"{path} is not a PG-DiffSeg bundle: {rel} is missing")
    try:
        card_dict = json.loads((path / CARD_NAME).read_text())
        sched = json.loads((path / SCHEDULER_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path}: cannot read the bundle's JSON files ({e})") from None
    card = BundleCard.from_dict(card_dict)
    try:
        timesteps = int(sched["num_train_timesteps"])
    except (KeyError, TypeError, ValueError):
        raise BundleError(f"{path / SCHEDULER_FILE} has no valid num_train_timesteps") from None
    return card, timesteps


def _check_cancel(cancel) -> None:
    if cancel is None:
        return
    is_set = cancel.is_set() if isinstance(cancel, threading.Event) else cancel()
    if is_set:
        raise SegmentationCancelled("cancelled")


def compute_noise(
    image,
    bundle: Bundle,
    noise: NoiseConfig,
    *,
    seed: int = 0,
    device: str = "auto",
    tile_batch: int = 4,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
) -> np.ndarray:
    """The (n, ceil(H/4), ceil(W/4)) starting noise that LDM-S would get for `image`.

    Same steps as `segment` up to the sampler: checks, the bundle's normalisation, tiles of
    the bundle's tile size (no overlap: a noise is not blended, it would lose variance),
    encoder, the strategy's latent noise, channel averaging and repeat (Algorithm 1).
    An image larger than one tile is cropped, centred, to whole tiles first.

    progress(done, total) is called after every network evaluation (the prior's inversion
    steps) and every tile batch; cancel is checked before each evaluation and each batch
    and raises SegmentationCancelled.
    """
    noise.validate(bundle.num_train_timesteps)
    frame = normalize(check_frame(image), bundle.card.normalization)
    t = bundle.card.tile_size
    H, W = frame.shape
    # Larger than a tile: keep the centred whole-tile part, so tiles neither overlap nor pad.
    ch, cw = (H // t * t if H > t else H), (W // t * t if W > t else W)
    y0, x0 = (H - ch) // 2, (W - cw) // 2
    frame = frame[y0 : y0 + ch, x0 : x0 + cw]
    grid = TileGrid(ch, cw, t, 0, DOWNSAMPLE_FACTOR)
    padded = grid.pad(frame)
    origins = grid.origins()
    dev = resolve_device(device)
    bundle.to(dev)
    scheduler = bundle.make_scheduler()
    n = bundle.n_classes
    lh, lw = -(-grid.padded_shape[0] // DOWNSAMPLE_FACTOR), -(-grid.padded_shape[1] // DOWNSAMPLE_FACTOR)
    out = np.zeros((n, lh, lw), np.float32)
    n_batches = -(-len(origins) // tile_batch)
    per_batch = noise.inversion_steps if noise.strategy == "prior" else 0
    total = n_batches * (per_batch + 1)
    done = 0

    def ldm_p(sample, timestep):  # counts evaluations and checks cancel, like `segment`
        nonlocal done
        _check_cancel(cancel)
        result = bundle.ldm_p(sample, timestep)
        done += 1
        if progress is not None:
            progress(done, total)
        return result

    for b0 in range(0, len(origins), tile_batch):
        _check_cancel(cancel)
        batch = origins[b0 : b0 + tile_batch]
        ids = list(range(b0, b0 + len(batch)))
        tiles = np.stack([padded[y : y + t, x : x + t] for y, x in batch])[:, None]
        z = encode_latents(bundle.autoencoder, torch.from_numpy(tiles).to(dev))
        eps = None
        if noise.strategy == "prior":
            eps = latent_noise(z, noise, ldm_p, scheduler, [])
        elif noise.strategy == "forward":
            eps = latent_noise(z, noise, bundle.ldm_p, scheduler, tile_generators(seed, ids, 0))
        stream = 0 if noise.strategy == "random" else _MIX_STREAM
        start = class_noise(eps, noise, n, tile_generators(seed, ids, stream), z.shape[2:])
        start = start.float().cpu().numpy()
        for i, (y, x) in enumerate(batch):
            ly, lx = y // DOWNSAMPLE_FACTOR, x // DOWNSAMPLE_FACTOR
            out[:, ly : ly + start.shape[2], lx : lx + start.shape[3]] = start[i]
        done = (b0 // tile_batch + 1) * (per_batch + 1)
        if progress is not None:
            progress(done, total)
    return out[:, : -(-ch // DOWNSAMPLE_FACTOR), : -(-cw // DOWNSAMPLE_FACTOR)]


def centre_crop_box(shape: Sequence[int], size: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the centred size x size crop of a (H, W) frame (smaller frames: all)."""
    H, W = int(shape[0]), int(shape[1])
    h, w = min(H, size), min(W, size)
    y0, x0 = (H - h) // 2, (W - w) // 2
    return y0, y0 + h, x0, x0 + w


def split_cells(
    labels: np.ndarray,
    phase: np.ndarray,
    class_id: int,
    *,
    min_distance: int = 10,
    smooth: float = 2.0,
) -> np.ndarray:
    """One id per cell of class `class_id`: (H, W) int32, 0 elsewhere.

    Connected components of the class mask, with touching cells split by a watershed on
    the (smoothed) phase: cells are thickest, so the phase is highest, at their centres.
    Markers are phase maxima at least `min_distance` px apart inside the mask; a component
    without a maximum keeps one id.
    """
    mask = np.asarray(labels) == class_id
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    landscape = ndi.gaussian_filter(np.asarray(phase, np.float32), smooth) if smooth > 0 else np.asarray(phase, np.float32)
    components = connected_components(mask, connectivity=2)
    peaks = peak_local_max(
        landscape, min_distance=max(int(min_distance), 1), labels=components, exclude_border=False
    )
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    # Components without a peak (flat or tiny) still get a marker of their own.
    has_marker = np.zeros(components.max() + 1, bool)
    has_marker[components[markers > 0]] = True
    next_id = len(peaks) + 1
    for comp in np.flatnonzero(~has_marker[1:]) + 1:
        yx = np.argwhere(components == comp)[0]
        markers[tuple(yx)] = next_id
        next_id += 1
    cells = watershed(-landscape, markers, mask=mask, connectivity=2)  # 8-connected, like the components
    # Renumber 1..N so ids are compact.
    ids = np.unique(cells)
    ids = ids[ids > 0]
    lut = np.zeros(int(cells.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[cells]


def summarize_planes(planes: Sequence[np.ndarray], class_names: Sequence[str], min_area: int = 30) -> dict:
    """`summarize` over the planes of a stack: fractions averaged, cell counts summed.

    The same combination `core.batch.segment_file` writes into its CSV row.
    """
    per_plane = [summarize(p, tuple(class_names), min_area) for p in planes]
    live = sum(s["live_cells"] for s in per_plane)
    dead = sum(s["dead_cells"] for s in per_plane)
    out = {f"fraction_{n}": float(np.mean([s[f"fraction_{n}"] for s in per_plane])) for n in class_names}
    out["live_cells"] = live
    out["dead_cells"] = dead
    out["viability_percent"] = 100.0 * live / (live + dead) if live + dead else float("nan")
    return out

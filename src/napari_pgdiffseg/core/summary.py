"""Per-frame numbers a microscopist reads off a segmentation: class fractions, cell counts, viability."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label as connected_components
from skimage.segmentation import watershed

LIVE, DEAD = 1, 2


def count_cells(labels: np.ndarray, class_id: int, min_area: int = 30) -> int:
    """Number of 8-connected regions of `class_id` with at least `min_area` pixels."""
    cc = connected_components(labels == class_id, connectivity=2)
    if cc.max() == 0:
        return 0
    areas = np.bincount(cc.ravel())[1:]
    return int((areas >= min_area).sum())


def summarize(labels: np.ndarray, class_names: tuple[str, ...], min_area: int = 30) -> dict:
    """Pixel fraction per class, live and dead cell counts and viability % (NaN with no cells).

    Live and dead are classes 1 and 2 (the default class order).
    """
    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    out = {f"fraction_{name}": float(c) / labels.size for name, c in zip(class_names, counts)}
    n_live, n_dead = count_cells(labels, LIVE, min_area), count_cells(labels, DEAD, min_area)
    out["live_cells"] = n_live
    out["dead_cells"] = n_dead
    out["viability_percent"] = 100.0 * n_live / (n_live + n_dead) if n_live + n_dead else float("nan")
    return out


def summarize_planes(planes: Sequence[np.ndarray], class_names: Sequence[str], min_area: int = 30) -> dict:
    """`summarize` over the planes of a stack: fractions averaged, cell counts summed.

    The combination `core.batch.segment_file` writes into its CSV row.
    """
    per_plane = [summarize(p, tuple(class_names), min_area) for p in planes]
    live = sum(s["live_cells"] for s in per_plane)
    dead = sum(s["dead_cells"] for s in per_plane)
    out = {f"fraction_{n}": float(np.mean([s[f"fraction_{n}"] for s in per_plane])) for n in class_names}
    out["live_cells"] = live
    out["dead_cells"] = dead
    out["viability_percent"] = 100.0 * live / (live + dead) if live + dead else float("nan")
    return out


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
    landscape = np.asarray(phase, np.float32)
    if smooth > 0:
        landscape = ndi.gaussian_filter(landscape, smooth)
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

"""Per-frame numbers a microscopist reads off a segmentation: class fractions, cell counts, viability."""

from __future__ import annotations

import numpy as np
from skimage.measure import label as connected_components

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

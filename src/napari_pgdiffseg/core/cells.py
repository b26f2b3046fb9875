"""Per-frame numbers a microscopist reads off a segmentation: class fractions, cell counts,
viability, and one id per cell (`cell_instances`, the `<stem>_cells.tif` files).

Class ids come from the bundle card's class names (0 is always background), so a 2-class
model (background / cell) works as well as the 3-class live/dead one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label as connected_components
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from .errors import ConfigError

INSTANCE_METHODS = ("components", "watershed")


def foreground_classes(class_names: Sequence[str]) -> list[tuple[int, str]]:
    """(id, name) of every class but the background (id 0)."""
    return list(enumerate(class_names))[1:]


def class_id(class_names: Sequence[str], name: str) -> int | None:
    """The id of the class called `name`, or None when the model has no such class."""
    names = list(class_names)
    return names.index(name) if name in names else None


def count_cells(labels: np.ndarray, class_id: int, min_area: int = 30) -> int:
    """Number of 8-connected regions of `class_id` with at least `min_area` pixels."""
    cc = connected_components(labels == class_id, connectivity=2)
    if cc.max() == 0:
        return 0
    areas = np.bincount(cc.ravel())[1:]
    return int((areas >= min_area).sum())


def _viability(counts: Mapping[str, int]) -> float:
    live, dead = counts.get("live"), counts.get("dead")
    if live is None or dead is None or live + dead == 0:
        return float("nan")
    return 100.0 * live / (live + dead)


def summarize(labels: np.ndarray, class_names: Sequence[str], min_area: int = 30) -> dict:
    """Pixel fraction per class, a cell count per foreground class (``<name>_cells``) and
    viability % (live / (live + dead) cells; NaN without cells or without live and dead classes).
    """
    return summarize_planes([labels], class_names, min_area)


def summarize_planes(planes: Sequence[np.ndarray], class_names: Sequence[str], min_area: int = 30, *,
                     instances: Sequence[np.ndarray] | None = None) -> dict:
    """`summarize` over the planes of a stack: fractions averaged, cell counts summed.

    Cells are counted in `instances` (the `cell_instances` of each plane, so the counts
    match the `<stem>_cells.tif` ids) when given, else as connected regions of at least
    `min_area` px. The combination `core.filejob.segment_file` writes into its CSV row.
    """
    names = tuple(class_names)
    fractions = np.zeros(len(names))
    counts = {name: 0 for _, name in foreground_classes(names)}
    for i, p in enumerate(planes):
        p = np.asarray(p)
        fractions += np.bincount(p.ravel(), minlength=len(names))[: len(names)] / p.size
        for cid, name in foreground_classes(names):
            if instances is None:
                counts[name] += count_cells(p, cid, min_area)
            else:
                ids = np.unique(np.asarray(instances[i])[p == cid])
                counts[name] += int((ids > 0).sum())
    out = {f"fraction_{n}": float(f / len(planes)) for n, f in zip(names, fractions)}
    out.update({f"{name}_cells": c for name, c in counts.items()})
    out["viability_percent"] = _viability(counts)
    return out


@dataclass(frozen=True)
class InstanceConfig:
    """How class labels become one id per object; stored in the bundle card (``instances``).

    method: "components" (each connected region is one object: nuclei, which rarely touch)
    or "watershed" (touching objects split by a watershed on the smoothed phase, whose
    maxima mark cell centres: whole cells in clusters). min_distance: px between two
    centres (watershed, when h is 0). smooth: Gaussian sigma of the phase in px (watershed).
    h: with h > 0 the centres are the phase's h-maxima instead (scikit-image
    `h_maxima`: maxima that stand at least h above the saddle to any higher one, with the
    phase scaled so its percentiles 1 and 99.8 are 0 and 1), so the texture inside one cell
    does not split it however close two cells are. min_area: objects smaller than this
    (px) are dropped. merge (watershed, 0 = off): two neighbouring pieces become one cell
    when the phase along their shared border stays above `merge` x the lower of their two
    peaks (heights over the background): the bumps of one textured cell are separated by
    shallow saddles, two touching cells by a valley.
    """

    method: str = "components"
    min_distance: int = 10
    smooth: float = 2.0
    min_area: int = 30
    h: float = 0.0
    merge: float = 0.0

    def __post_init__(self):
        if self.method not in INSTANCE_METHODS:
            raise ConfigError(f"instance method must be one of {', '.join(INSTANCE_METHODS)}, got {self.method!r}")
        for name in ("min_distance", "min_area"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"instances.{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.smooth, (int, float)) or not 0 <= self.smooth <= 100:
            raise ConfigError(f"instances.smooth must be a number in [0, 100], got {self.smooth!r}")
        if isinstance(self.h, bool) or not isinstance(self.h, (int, float)) or not 0 <= self.h < 1:
            raise ConfigError(f"instances.h must be a number in [0, 1), got {self.h!r}")
        if isinstance(self.merge, bool) or not isinstance(self.merge, (int, float)) or not 0 <= self.merge < 1:
            raise ConfigError(f"instances.merge must be a number in [0, 1), got {self.merge!r}")

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "InstanceConfig":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown instance setting(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for tables and logs, e.g. 'watershed (min_distance 5, smooth 3, min_area 150)'."""
        if self.method == "components":
            return f"components (min_area {self.min_area})"
        marks = f"h {self.h:g}" if self.h > 0 else f"min_distance {self.min_distance}"
        merge = f", merge {self.merge:g}" if self.merge > 0 else ""
        return f"watershed ({marks}, smooth {self.smooth:g}{merge}, min_area {self.min_area})"


def cell_instances(labels: np.ndarray, phase: np.ndarray | None, class_names: Sequence[str],
                   config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """One id per object of every foreground class: (H, W) uint32, 0 background, ids 1..N.

    Each class is split on its own (`config`), so an object never mixes classes; the ids of
    class c follow those of class c - 1. `phase` (the image) is needed by "watershed".
    """
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.uint32)
    next_id = 0
    for cid, _ in foreground_classes(class_names):
        mask = labels == cid
        if not mask.any():
            continue
        if config.method == "watershed":
            if phase is None:
                raise ConfigError("the watershed instance method needs the image (phase)")
            ids = split_cells(labels, phase, cid, min_distance=config.min_distance, smooth=config.smooth,
                              h=config.h, merge=config.merge)
        else:
            ids = connected_components(mask, connectivity=2).astype(np.int32)
        # By hand, not skimage's remove_small_objects: its size argument changed meaning
        # (min_size -> max_size) in 0.26, and this works on every version we allow.
        sizes = np.bincount(ids.ravel())
        small = sizes < config.min_area
        small[0] = False
        ids[small[ids]] = 0
        present = np.unique(ids)
        present = present[present > 0]
        lut = np.zeros(int(ids.max()) + 1, np.uint32)
        lut[present] = np.arange(next_id + 1, next_id + 1 + len(present), dtype=np.uint32)
        out[mask] = lut[ids[mask]]
        next_id += len(present)
    return out


def instance_dtype(n_objects: int) -> np.dtype:
    """uint16 while the ids fit (smaller files, read by every viewer), else uint32."""
    return np.dtype(np.uint16) if n_objects <= np.iinfo(np.uint16).max else np.dtype(np.uint32)


def split_cells(
    labels: np.ndarray,
    phase: np.ndarray,
    class_id: int,
    *,
    min_distance: int = 10,
    smooth: float = 2.0,
    h: float = 0.0,
    merge: float = 0.0,
) -> np.ndarray:
    """One id per cell of class `class_id`: (H, W) int32, 0 elsewhere.

    Connected components of the class mask, with touching cells split by a watershed on
    the (smoothed) phase: cells are thickest, so the phase is highest, at their centres.
    Markers are phase maxima at least `min_distance` px apart inside the mask, or with
    h > 0 the regions of the phase's h-maxima inside the mask (phase scaled so that its
    percentiles 1 and 99.8 are 0 and 1; see `InstanceConfig`); a component without a
    marker keeps one id. With merge > 0, pieces split only by a shallow saddle are joined
    again (`merge_shallow`).
    """
    mask = np.asarray(labels) == class_id
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    landscape = np.asarray(phase, np.float32)
    if smooth > 0:
        landscape = ndi.gaussian_filter(landscape, smooth)
    components = connected_components(mask, connectivity=2)
    if h > 0:
        lo, hi = (float(v) for v in np.percentile(phase, [1.0, 99.8]))
        scaled = (landscape - lo) / (hi - lo) if hi > lo else landscape - lo
        markers = connected_components(h_maxima(scaled, h).astype(bool) & mask, connectivity=2).astype(np.int32)
        n_markers = int(markers.max())
    else:
        peaks = peak_local_max(
            landscape, min_distance=max(int(min_distance), 1), labels=components, exclude_border=False
        )
        markers = np.zeros(mask.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
        n_markers = len(peaks)
    # Components without a marker (flat or tiny) still get a marker of their own.
    has_marker = np.zeros(components.max() + 1, bool)
    has_marker[components[markers > 0]] = True
    next_id = n_markers + 1
    for comp in np.flatnonzero(~has_marker[1:]) + 1:
        yx = np.argwhere(components == comp)[0]
        markers[tuple(yx)] = next_id
        next_id += 1
    cells = watershed(-landscape, markers, mask=mask, connectivity=2)  # 8-connected, like the components
    if merge > 0:
        cells = merge_shallow(cells, landscape, mask, merge)
    # Renumber 1..N so ids are compact.
    ids = np.unique(cells)
    ids = ids[ids > 0]
    lut = np.zeros(int(cells.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[cells]


def merge_shallow(cells: np.ndarray, landscape: np.ndarray, mask: np.ndarray, merge: float) -> np.ndarray:
    """Join neighbouring watershed pieces whose shared border is no valley.

    Heights are over the background (the median of `landscape` outside `mask`); pieces a, b
    are joined when the mean height along their border (scikit-image's `rag_boundary`) is
    at least `merge` x min(peak a, peak b). One pass over the border graph with union-find,
    so the result does not depend on the order of the pieces.
    """
    from skimage.graph import rag_boundary

    n = int(cells.max())
    if n < 2:
        return cells
    outside = ~mask
    bg = float(np.median(landscape[outside])) if outside.any() else float(landscape.min())
    height = (landscape - np.float32(bg)).astype(np.float64)
    peaks = np.zeros(n + 1)
    peaks[1:] = ndi.maximum(height, cells, index=np.arange(1, n + 1))
    parent = np.arange(n + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rag = rag_boundary(cells, height, connectivity=2)
    for a, b, data in rag.edges(data=True):
        if a == 0 or b == 0:
            continue
        low = min(peaks[a], peaks[b])
        if low > 0 and data["weight"] >= merge * low:
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    lut = np.array([root(i) for i in range(n + 1)])
    return lut[cells].astype(cells.dtype, copy=False)

"""Normalised, padded tiles of one frame, read on demand: from memory, or lazily from disk.

A frame in memory (numpy) is checked and normalised once. A frame that is not (a dask
array, e.g. a napari layer; a zarr array; a tifffile or numpy memmap) and is larger than
`LAZY_MIN_PIXELS` is never read whole: its dtype and shape are checked from metadata, the
normalisation's percentiles come from a strided sample (the same sample a numpy frame of
that size uses, so both give the same labels), and each tile reads only its own window,
checked for NaN/inf when it is read. `segment` writes labels and agreement into whole-frame
arrays (5 bytes a pixel) unless it is given `labels_out` / `agreement_out` arrays on disk.

Tiles past the bottom/right edge are mirrored ('symmetric', as `np.pad` does) by index,
so no padded copy of the frame is ever made.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputImageError
from .preprocess import Normalization, check_frame, check_frame_meta, normalize_range, range_of, replace_outliers

# Non-numpy frames up to this many pixels are simply read into memory.
LAZY_MIN_PIXELS = 1 << 24


def is_lazy(image) -> bool:
    """True for array-likes that are not in memory (dask, zarr, memmaps) above LAZY_MIN_PIXELS."""
    if isinstance(image, np.ndarray) and not isinstance(image, np.memmap):
        return False
    shape = getattr(image, "shape", None)
    if shape is None or not hasattr(image, "__getitem__") or not hasattr(image, "dtype"):
        return False
    return math.prod(int(s) for s in shape) > LAZY_MIN_PIXELS


def mirror_index(start: int, stop: int, length: int) -> np.ndarray:
    """Indices start..stop-1 into an axis of `length`, mirrored past its end like np.pad 'symmetric'."""
    idx = np.arange(start, stop) % (2 * length)
    return np.where(idx < length, idx, 2 * length - 1 - idx)


class FrameSource:
    """Normalised float32 tiles of a checked 2D frame, padded by mirroring (bottom/right)."""

    def __init__(self, image, norm: Normalization, *, name: str = "image"):
        self.name = name
        self.lazy = is_lazy(image)
        if self.lazy:
            self.shape = check_frame_meta(np.dtype(image.dtype), tuple(int(s) for s in image.shape), name=name)
            self._src = image
            self.outliers = 0
            self.lo, self.hi = range_of(image, norm, name=name)
            self._norm = norm
        else:
            frame = check_frame(np.asarray(image), name=name)
            self.outliers = replace_outliers(frame, norm)  # hot pixels: the lazy path clips them per tile
            lo, hi = range_of(frame, norm, name=name)
            self._src = normalize_range(frame, lo, hi, norm, inplace=True)  # frame is our own copy
            self.shape = frame.shape
            self.lo, self.hi = lo, hi

    def tile(self, y: int, x: int, size: int) -> np.ndarray:
        """The (size, size) normalised tile at (y, x); windows past the frame are mirrored."""
        H, W = self.shape
        if y + size <= H and x + size <= W:
            block = self._read(y, y + size, x, x + size)
        else:
            rows, cols = mirror_index(y, y + size, H), mirror_index(x, x + size, W)
            r0, c0 = int(rows.min()), int(cols.min())
            window = self._read(r0, int(rows.max()) + 1, c0, int(cols.max()) + 1)
            block = window[np.ix_(rows - r0, cols - c0)]
        return np.ascontiguousarray(block, dtype=np.float32)

    def _read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if not self.lazy:
            return self._src[y0:y1, x0:x1]
        raw = np.asarray(self._src[y0:y1, x0:x1]).astype(np.float32)
        if not np.isfinite(raw).all():
            raise InputImageError(
                f"{self.name} has NaN/inf pixels in rows {y0}-{y1 - 1}, columns {x0}-{x1 - 1}; fill or mask "
                "them before segmenting (e.g. np.nan_to_num or inpainting)"
            )
        return normalize_range(raw, self.lo, self.hi, self._norm, inplace=True)

"""Checks and normalisation of QPI frames before they reach the networks.

QPI frames arrive as float phase (radians) or as integer images (8/16-bit exports). One
rule, stored in the model bundle, maps every frame to the range the autoencoder was
trained on (see `Normalization`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError, InputImageError

MIN_SIZE = 16


NORMALIZATION_METHODS = ("percentile", "range", "background")


@dataclass(frozen=True)
class Normalization:
    """How a frame is mapped to the autoencoder's input range ``[-1, 1]``.

    method
        ``"percentile"`` (default): the frame's `low` and `high` percentiles go to -1 and 1.
        It works for radians and for any integer export alike and ignores a few hot pixels.
        ``"range"``: the fixed interval `in_range` goes to [-1, 1] (for a calibrated setup
        whose phase range is known, so that frames with few cells are not stretched).
        ``"background"``: the frame's background phase (the peak of its histogram) goes to
        `background_value` and the `high` percentile to 1. Phase is measured against the
        background, so this puts the background of every set-up at one place whatever its
        offset, halo or share of the frame (percentiles put a frame with one small cell and
        a dark halo, like scikit-image's cell, half-way up the range).
    clip
        Clip the result to [-1, 1] (off by default: a phase above the high percentile is
        real signal, and the networks see values slightly out of range in training too).
    """

    method: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    in_range: tuple[float, float] | None = None
    clip: bool = False
    background_value: float = -0.95

    def __post_init__(self):
        if self.method not in NORMALIZATION_METHODS:
            raise ConfigError(
                f"normalization method must be one of {', '.join(map(repr, NORMALIZATION_METHODS))}, "
                f"got {self.method!r}"
            )
        if not -1.0 <= float(self.background_value) < 1.0:
            raise ConfigError(f"normalization background_value must be in [-1, 1), got {self.background_value}")
        if self.method in ("percentile", "background") and not (0.0 <= self.low < self.high <= 100.0):
            raise ConfigError(
                f"normalization percentiles need 0 <= low < high <= 100, got {self.low}, {self.high}"
            )
        if self.method == "range":
            if self.in_range is None or len(self.in_range) != 2 or not self.in_range[0] < self.in_range[1]:
                raise ConfigError(
                    f"normalization method 'range' needs in_range=(lo, hi) with lo < hi, got {self.in_range}"
                )
            object.__setattr__(self, "in_range", (float(self.in_range[0]), float(self.in_range[1])))

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["in_range"] is not None:
            d["in_range"] = list(d["in_range"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        d = dict(d)
        if d.get("in_range") is not None:
            d["in_range"] = tuple(d["in_range"])
        return cls(**d)


def check_frame_meta(dtype: np.dtype, shape: tuple[int, ...], *, name: str = "image") -> tuple[int, int]:
    """The checks that need no pixel values (dtype, dims, size); returns (H, W).

    Raises `InputImageError` naming the problem: complex/bool/object dtype, empty, RGB/RGBA,
    not 2D, smaller than 16 px.
    """
    if dtype == bool:
        raise InputImageError(
            f"{name} is a boolean mask, not a phase image; pass the QPI frame itself"
        )
    if np.issubdtype(dtype, np.complexfloating):
        raise InputImageError(
            f"{name} is complex; pass the phase (np.angle of the field, unwrapped) as a real array"
        )
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputImageError(
            f"{name} has dtype {dtype}; expected an integer or floating-point phase image"
        )
    if int(np.prod(shape, dtype=np.int64)) == 0:
        raise InputImageError(f"{name} is empty (shape {shape})")
    if len(shape) == 3 and shape[-1] in (3, 4):
        raise InputImageError(
            f"{name} looks like an RGB/RGBA image (shape {shape}); QPI is single-channel: "
            "pass one channel (e.g. image[..., 0] if all channels are equal)"
        )
    if len(shape) != 2:
        raise InputImageError(
            f"{name} must be a 2D frame (height, width), got shape {shape}; "
            "pass stacks through segment_stack or one plane at a time"
        )
    if min(shape) < MIN_SIZE:
        raise InputImageError(
            f"{name} is {shape[0]}x{shape[1]} px; frames must be at least "
            f"{MIN_SIZE}x{MIN_SIZE} px"
        )
    return int(shape[0]), int(shape[1])


def _check_values(arr: np.ndarray, name: str, what: str = "") -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        n_bad = int((~finite).sum())
        raise InputImageError(
            f"{name} has {n_bad} NaN/inf {what}pixel(s); fill or mask them before segmenting "
            "(e.g. np.nan_to_num or inpainting)"
        )
    if float(arr.max()) == float(arr.min()):
        raise InputImageError(
            f"{name} is constant (every {what}pixel = {arr.flat[0]:g}); there is nothing to segment"
        )


def check_frame(image, *, name: str = "image") -> np.ndarray:
    """Validate one 2D frame and return it as a float32 array (a view-free copy).

    Raises `InputImageError` naming the problem: not 2D, RGB/RGBA, complex/bool/object
    dtype, empty, smaller than 16 px, NaN/inf, or constant.
    """
    arr = np.asarray(image)
    check_frame_meta(arr.dtype, arr.shape, name=name)
    out = arr.astype(np.float32, copy=True)
    _check_values(out, name)
    return out


# Percentiles of frames above this many pixels come from a strided sample of at most this
# many pixels (the 1 % / 99.8 % points of millions of pixels are as good as of all of
# them), so a frame read lazily, tile by tile, is normalised exactly like one in memory.
MAX_STATS_PIXELS = 1 << 24


def stats_sample(frame):
    """frame itself, or frame[::s, ::s] with the smallest s that leaves <= MAX_STATS_PIXELS."""
    H, W = (int(v) for v in frame.shape)
    if H * W <= MAX_STATS_PIXELS:
        return frame
    s = math.ceil(math.sqrt(H * W / MAX_STATS_PIXELS))
    while -(-H // s) * -(-W // s) > MAX_STATS_PIXELS:
        s += 1
    return frame[::s, ::s]


def range_of(frame, norm: Normalization, *, name: str = "image") -> tuple[float, float]:
    """(lo, hi) mapped to -1 and 1: the percentiles of `stats_sample(frame)` or `norm.in_range`.

    `frame` is a checked float32 array, or a lazy array-like (only the sample is read and
    checked for NaN/inf and constant values).
    """
    if norm.method == "range":
        return norm.in_range
    sample = stats_sample(frame)
    if not isinstance(frame, np.ndarray) or isinstance(frame, np.memmap):
        sample = np.asarray(sample).astype(np.float32)
        _check_values(sample, name, "sampled ")
    lo, hi = (float(v) for v in np.percentile(sample, [norm.low, norm.high]))
    if norm.method == "background":
        bg = background_level(sample)
        if hi > bg:  # lo such that bg lands on background_value and hi on 1
            b = float(norm.background_value)
            return bg - (hi - bg) * (1.0 + b) / (1.0 - b), hi
    if hi <= lo:  # a frame that is almost all one value: fall back to the full range
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:  # a big frame whose sample is constant (checked frames are not)
        lo, hi = float(frame.min()), float(frame.max())
    return lo, hi


def background_level(sample) -> float:
    """The background of a phase frame: the peak of its histogram (256 bins between the
    0.5 and 99.5 percentiles, smoothed by a Gaussian of 2 bins, scipy.ndimage).

    Cells cover less of a QPI frame than the flat background does, even in dense
    cultures, so the most common value is the background (tested on the holographic frames
    and scikit-image's cell).
    """
    from scipy import ndimage

    a = np.asarray(sample, np.float32).ravel()
    lo, hi = (float(v) for v in np.percentile(a, [0.5, 99.5]))
    if hi <= lo:
        return float(np.median(a))
    hist, edges = np.histogram(a, bins=256, range=(lo, hi))
    i = int(np.argmax(ndimage.gaussian_filter1d(hist.astype(np.float64), 2.0)))
    return float((edges[i] + edges[i + 1]) / 2)


#: Normalised values are always clipped to +-OUTLIER_LIMIT: one hot pixel (a saturated or
#: corrupt 3e38) would otherwise reach the networks as ~1e38 and change the labels of its
#: whole neighbourhood. The real frames reach at most 4.4 (HeLa, CHO and qpi-cells frames,
#: percentile normalisation), so 5 leaves every real value as it is.
OUTLIER_LIMIT = 5.0


def outlier_bounds(lo: float, hi: float) -> tuple[float, float]:
    """The raw values that normalise to -OUTLIER_LIMIT and +OUTLIER_LIMIT for the range (lo, hi)."""
    half = (float(hi) - float(lo)) / 2.0
    mid = (float(hi) + float(lo)) / 2.0
    return mid - OUTLIER_LIMIT * half, mid + OUTLIER_LIMIT * half


def replace_outliers(frame: np.ndarray, norm: Normalization) -> int:
    """Replace, in place, the pixels of a checked float32 frame beyond `outlier_bounds` of its
    own range (hot or dead pixels: a saturated or corrupt value, e.g. 3e38) by the median of
    their 3 x 3 neighbours that are within the bounds; returns how many were replaced.

    Clipping alone is not enough: a pixel at 5x the frame's range still changes the labels
    around it, while its neighbours' median is what the sensor would have shown.
    """
    lo, hi = range_of(frame, norm)
    a, b = outlier_bounds(lo, hi)
    bad = (frame < a) | (frame > b)
    n = int(np.count_nonzero(bad))
    if not n:
        return 0
    H, W = frame.shape
    good = np.where(bad, np.nan, frame)
    # By hand, not scipy.ndimage.median_filter: the median must leave out the other bad
    # pixels of the window (a 2-pixel hot spot would otherwise keep one of them), and only
    # these few pixels need it, not the whole frame. A frame full of them is clipped instead.
    for y, x in zip(*np.nonzero(bad)):
        if n > 10_000:
            break
        win = good[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
        ok = win[np.isfinite(win)]
        frame[y, x] = np.median(ok) if ok.size else (lo + hi) / 2
    np.clip(frame, a, b, out=frame)  # what is left (a block of bad pixels) at least stays in range
    return n


def normalize_range(frame: np.ndarray, lo: float, hi: float, norm: Normalization, *,
                    inplace: bool = False) -> np.ndarray:
    """Map float32 values so that lo -> -1 and hi -> 1, clipped to [-1, 1] if `norm.clip`,
    else to +-`OUTLIER_LIMIT`.

    inplace: overwrite `frame` (a float32 array the caller owns) instead of allocating a
    second frame-sized array; the values are the same.
    """
    # Scale, then shift, with the constants in float64: (frame - lo) overflows float32 for
    # frames spanning more than half of its range (found by the hypothesis tests).
    scale = 2.0 / (float(hi) - float(lo))
    if inplace and frame.dtype == np.float32:
        out = np.multiply(frame, np.float32(scale), out=frame)
        np.subtract(out, np.float32(float(lo) * scale + 1.0), out=out)
    else:
        out = frame * np.float32(scale) - np.float32(float(lo) * scale + 1.0)
    limit = 1.0 if norm.clip else OUTLIER_LIMIT
    np.clip(out, -limit, limit, out=out)
    return out.astype(np.float32, copy=False)


def normalize(frame: np.ndarray, norm: Normalization) -> np.ndarray:
    """Map a checked float32 frame to the autoencoder's [-1, 1] input range."""
    return normalize_range(frame, *range_of(frame, norm), norm)


def _in_memory(image) -> bool:
    return isinstance(image, np.ndarray) and not isinstance(image, np.memmap)


def _array_like(image) -> bool:
    return all(hasattr(image, a) for a in ("shape", "dtype", "__getitem__"))


class PlaneView:
    """Plane `index` of a (n, H, W) stack that is not in memory (dask, zarr, memmap).

    Reads nothing until indexed: ``view[y0:y1, x0:x1]`` reads that window of the plane,
    ``np.asarray(view)`` the whole plane. `segment` sees an ordinary lazy 2D frame.
    """

    def __init__(self, stack, index: int):
        self.stack, self.index = stack, int(index)
        self.shape = tuple(int(v) for v in stack.shape[1:])
        self.dtype = np.dtype(stack.dtype)
        self.ndim = 2

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return self.stack[(self.index,) + key]

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self.stack[self.index, :, :])
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"PlaneView(plane {self.index} of {type(self.stack).__name__} {tuple(self.stack.shape)})"


def as_planes(image, *, name: str = "image") -> tuple[Sequence, bool]:
    """Return ``(planes, was_stack)`` for a 2D frame or a (planes, h, w) stack.

    A numpy frame or stack comes back as one (n, h, w) array. An array-like that is not in
    memory (a dask or zarr array, a memmap) is never read here: a frame comes back as
    ``[frame]`` and a stack as one `PlaneView` per plane, each read only where `segment`
    reads it. A 3D array whose last axis is 3 or 4 is taken for RGB and refused; more than
    3 dims are refused with a hint to select planes first.
    """
    lazy = not _in_memory(image) and _array_like(image)
    arr = image if lazy else np.asarray(image)
    shape = tuple(int(v) for v in arr.shape)
    if len(shape) == 3 and shape[-1] in (3, 4):
        check_frame_meta(np.dtype(arr.dtype), shape, name=name)  # raises the RGB message
    if len(shape) == 2:
        return ([arr] if lazy else arr[None]), False
    if len(shape) == 3:
        if shape[0] == 0:
            raise InputImageError(f"{name} is an empty stack (shape {shape})")
        return ([PlaneView(arr, i) for i in range(shape[0])] if lazy else arr), True
    raise InputImageError(
        f"{name} must be 2D (h, w) or a stack of planes (n, h, w), got shape {shape}; "
        "select the planes to segment first"
    )


def check_input_scale(scale) -> float:
    """A model's input scale (its pixels per frame pixel) as a float in [1/16, 4]."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) \
            or not math.isfinite(scale) or not 1.0 / 16 <= scale <= 4.0:
        raise ConfigError(f"input_scale must be a number in [0.0625, 4] (model pixels per frame pixel), got {scale!r}")
    return float(scale)


def scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """The (h, w) a (H, W) frame has at `scale` (at least 16 px a side, the smallest frame)."""
    return tuple(max(16, int(round(int(v) * scale))) for v in shape[-2:])


def rescale_frame(frame: np.ndarray, scale: float) -> np.ndarray:
    """A float32 frame resized by `scale` for a model that works at another pixel size.

    scikit-image's `resize` (bilinear, Gaussian anti-aliasing when shrinking); scale 1
    returns the frame itself.
    """
    from skimage.transform import resize

    if scale == 1.0:
        return frame
    out = resize(np.asarray(frame, np.float32), scaled_shape(frame.shape, scale), order=1,
                 anti_aliasing=scale < 1.0, preserve_range=True)
    return out.astype(np.float32, copy=False)


def rescale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Class labels resized to `shape` by nearest neighbour (ids are never blended)."""
    from skimage.transform import resize

    labels = np.asarray(labels)
    if tuple(labels.shape) == tuple(shape):
        return labels
    return resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False).astype(labels.dtype)

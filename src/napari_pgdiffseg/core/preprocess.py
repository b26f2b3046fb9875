"""Checks and normalisation of QPI frames before they reach the networks.

QPI frames arrive as float phase (radians) or as integer images (8/16-bit exports). One
rule, stored in the model bundle, maps every frame to the range the autoencoder was
trained on (see `Normalization`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError, InputImageError

MIN_SIZE = 16


@dataclass(frozen=True)
class Normalization:
    """How a frame is mapped to the autoencoder's input range ``[-1, 1]``.

    method
        ``"percentile"`` (default): the frame's `low` and `high` percentiles go to -1 and 1.
        It works for radians and for any integer export alike and ignores a few hot pixels.
        ``"range"``: the fixed interval `in_range` goes to [-1, 1] (for a calibrated setup
        whose phase range is known, so that frames with few cells are not stretched).
    clip
        Clip the result to [-1, 1] (off by default: a phase above the high percentile is
        real signal, and the networks see values slightly out of range in training too).
    """

    method: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    in_range: tuple[float, float] | None = None
    clip: bool = False

    def __post_init__(self):
        if self.method not in ("percentile", "range"):
            raise ConfigError(
                f"normalization method must be 'percentile' or 'range', got {self.method!r}"
            )
        if self.method == "percentile" and not (0.0 <= self.low < self.high <= 100.0):
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


def check_frame(image, *, name: str = "image") -> np.ndarray:
    """Validate one 2D frame and return it as a float32 array (a view-free copy).

    Raises `InputImageError` naming the problem: not 2D, RGB/RGBA, complex/bool/object
    dtype, empty, smaller than 16 px, NaN/inf, or constant.
    """
    arr = np.asarray(image)
    if arr.dtype == bool:
        raise InputImageError(
            f"{name} is a boolean mask, not a phase image; pass the QPI frame itself"
        )
    if np.iscomplexobj(arr):
        raise InputImageError(
            f"{name} is complex; pass the phase (np.angle of the field, unwrapped) as a real array"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputImageError(
            f"{name} has dtype {arr.dtype}; expected an integer or floating-point phase image"
        )
    if arr.size == 0:
        raise InputImageError(f"{name} is empty (shape {arr.shape})")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise InputImageError(
            f"{name} looks like an RGB/RGBA image (shape {arr.shape}); QPI is single-channel: "
            "pass one channel (e.g. image[..., 0] if all channels are equal)"
        )
    if arr.ndim != 2:
        raise InputImageError(
            f"{name} must be a 2D frame (height, width), got shape {arr.shape}; "
            "pass stacks through segment_stack or one plane at a time"
        )
    if min(arr.shape) < MIN_SIZE:
        raise InputImageError(
            f"{name} is {arr.shape[0]}x{arr.shape[1]} px; frames must be at least "
            f"{MIN_SIZE}x{MIN_SIZE} px"
        )
    out = arr.astype(np.float32, copy=True)
    finite = np.isfinite(out)
    if not finite.all():
        n_bad = int((~finite).sum())
        raise InputImageError(
            f"{name} has {n_bad} NaN/inf pixel(s); fill or mask them before segmenting "
            "(e.g. np.nan_to_num or inpainting)"
        )
    if float(out.max()) == float(out.min()):
        raise InputImageError(
            f"{name} is constant (every pixel = {out.flat[0]:g}); there is nothing to segment"
        )
    return out


def normalize(frame: np.ndarray, norm: Normalization) -> np.ndarray:
    """Map a checked float32 frame to the autoencoder's [-1, 1] input range."""
    if norm.method == "percentile":
        lo, hi = np.percentile(frame, [norm.low, norm.high])
        if hi <= lo:  # a frame that is almost all one value: fall back to the full range
            lo, hi = float(frame.min()), float(frame.max())
    else:
        lo, hi = norm.in_range
    # Scale, then shift, with the constants in float64: (frame - lo) overflows float32 for
    # frames spanning more than half of its range (found by the hypothesis tests).
    scale = 2.0 / (float(hi) - float(lo))
    out = frame * np.float32(scale) - np.float32(float(lo) * scale + 1.0)
    if norm.clip:
        np.clip(out, -1.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


def as_planes(image, *, name: str = "image") -> tuple[np.ndarray, bool]:
    """Return ``(planes, was_stack)`` for a 2D frame or a (planes, h, w) stack.

    A 3D array whose last axis is 3 or 4 is taken for RGB and refused; more than 3 dims
    are refused with a hint to select planes first.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr[None], False
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        if arr.shape[0] == 0:
            raise InputImageError(f"{name} is an empty stack (shape {arr.shape})")
        return arr, True
    if arr.ndim == 3:
        check_frame(arr, name=name)  # raises the RGB message
    raise InputImageError(
        f"{name} must be 2D (h, w) or a stack of planes (n, h, w), got shape {arr.shape}; "
        "select the planes to segment first"
    )

"""Segment what the user sees: one region of a frame at screen resolution (the live preview).

A preview must answer within about a second whatever the zoom, so it segments only the
visible box of the frame, at no more pixels than the screen shows of it (zoomed out, the
frame is resized down first, as a model card's ``input_scale`` does), with the fast settings.
Normalisation uses the *whole frame's* range (`frame_range`), so the preview's labels are
those a full run would give at that resolution, not those of the crop stretched on its own.

No Qt: the napari widget (`_widgets/_segment.py`) computes the box from the canvas and runs
`segment_region` on a worker; tests and scripts can call it directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .config import SegmentConfig
from .errors import ConfigError
from .preprocess import MIN_SIZE, Normalization, check_frame, range_of

__all__ = ["PreviewBox", "preview_box", "preview_config", "frame_range", "segment_region", "PREVIEW_MAX_SIDE",
           "PREVIEW_SETTINGS"]

#: The longest side, in model-input pixels, a preview segments: 512 px is 9 tiles of 256 px,
#: about 1 s at 2 network evaluations per tile on a 2-core CPU (benchmarks/speed.py).
PREVIEW_MAX_SIDE = 512


@dataclass(frozen=True)
class PreviewBox:
    """A region of a frame in its pixels (rows y0:y1, columns x0:x1) and the resolution to
    segment it at: `factor` screen (preview) pixels per frame pixel, <= 1."""

    y0: int
    x0: int
    y1: int
    x1: int
    factor: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def preview_box(corners, frame_shape, screen_px_per_pixel: float, max_side: int = PREVIEW_MAX_SIDE) -> PreviewBox:
    """The visible box of a frame and its resolution.

    corners: ((y0, x0), (y1, x1)) of the view in frame pixels (napari's ``layer.corner_pixels``
    of the displayed axes; clipped here to the frame, and widened to `MIN_SIZE`).
    screen_px_per_pixel: how many screen pixels show one frame pixel (camera zoom x layer
    scale); the preview uses at most that many, never more than 1 per frame pixel, and at
    most `max_side` along the longer side.
    """
    H, W = (int(v) for v in frame_shape)
    if H < MIN_SIZE or W < MIN_SIZE:
        raise ConfigError(f"a preview needs a frame of at least {MIN_SIZE} x {MIN_SIZE} px, got {H} x {W}")
    (y0, x0), (y1, x1) = (tuple(int(math.floor(float(v))) for v in corners[0]),
                          tuple(int(math.ceil(float(v))) for v in corners[1]))
    y0, y1 = _span(y0, y1, H)
    x0, x1 = _span(x0, x1, W)
    if not math.isfinite(screen_px_per_pixel) or screen_px_per_pixel <= 0:
        raise ConfigError(f"screen pixels per frame pixel must be a positive number, got {screen_px_per_pixel!r}")
    factor = min(1.0, float(screen_px_per_pixel), max_side / max(y1 - y0, x1 - x0))
    # The resized box must keep MIN_SIZE pixels on its shorter side.
    factor = max(factor, MIN_SIZE / min(y1 - y0, x1 - x0))
    return PreviewBox(y0, x0, y1, x1, min(factor, 1.0))


def _span(a: int, b: int, n: int) -> tuple[int, int]:
    a, b = max(0, min(a, n)), max(0, min(b, n))
    if b - a < MIN_SIZE:  # a sliver (or nothing) in view: a MIN_SIZE span around it, inside the frame
        mid = (a + b) // 2
        a = max(0, min(mid - MIN_SIZE // 2, n - MIN_SIZE))
        b = a + MIN_SIZE
    return a, b


#: What a preview changes in the user's settings: one view, one sample, one inversion and
#: one sampling step (2 network evaluations per tile; the README's NFE study), no noise
#: metrics, tiles batched. Strategy, model and the rest stay the user's.
PREVIEW_SETTINGS = dict(inversion_steps=1, sampling_steps=1, flips=1, ensemble=1, noise_metrics=False,
                        batch_invariant="off", return_scores=False)


def preview_config(config: SegmentConfig) -> SegmentConfig:
    """The user's `config` with `PREVIEW_SETTINGS` on top."""
    return replace(config, **PREVIEW_SETTINGS)


def frame_range(frame, norm: Normalization) -> tuple[float, float]:
    """(lo, hi) of the whole frame under `norm`: pass it to `segment_region` for every box
    of that frame (a lazy array is read only where `range_of` samples it)."""
    in_memory = isinstance(frame, np.ndarray) and not isinstance(frame, np.memmap)
    return range_of(check_frame(frame) if in_memory else frame, norm)


def segment_region(frame, bundle, box: PreviewBox, config: SegmentConfig | None = None, *,
                   value_range: tuple[float, float] | None = None, cancel=None, progress=None):
    """Segment `box` of `frame` with `bundle`: (labels (h, w) uint8 at the box's resolution, result).

    `value_range`: the whole frame's (lo, hi) (`frame_range`; computed here if None). The
    box is resized by ``box.factor`` first (zoomed out), so the labels cover it at that many
    pixels per frame pixel: show them with scale ``1 / factor`` at the box's origin. The
    model's own ``input_scale`` applies on top, as in `segment`. `config` is used as given
    (a preview passes the fast preset); `cancel` and `progress` as in `segment`.
    """
    from .pipeline import segment
    from .preprocess import rescale_frame

    norm = bundle.card.normalization
    lo, hi = value_range if value_range is not None else frame_range(frame, norm)
    crop = check_frame(np.asarray(frame[box.y0:box.y1, box.x0:box.x1], dtype=np.float32))
    if box.factor != 1.0:
        crop = rescale_frame(crop, box.factor)
    fixed = Normalization(method="range", in_range=(float(lo), float(hi)), clip=norm.clip)
    fixed_bundle = replace(bundle, card=replace(bundle.card, normalization=fixed))
    result = segment(crop, fixed_bundle, config or SegmentConfig(), cancel=cancel, progress=progress)
    return result.labels, result

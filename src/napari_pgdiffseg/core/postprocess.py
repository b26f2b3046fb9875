"""From blended class scores to class labels: a foreground margin and snapping outlines to the image.

The diffusion model predicts the mask at the latent's resolution (a quarter of the tile,
and an eighth of the frame at input scale 0.5), so its outlines are smooth and may sit a
few pixels off the cell's edge. `refine_labels` can (1) move the decision between
background and foreground by a margin on the scores, and (2) re-decide a band of `snap`
pixels around every outline by a marker-controlled watershed on the image's gradient
(scikit-image `sobel` + `watershed`): pixels sure to be inside or outside keep their class,
the band goes to the class whose region reaches it first through the image's edges. Both
are off by default; a model card's ``refine`` entry turns them on for that model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import sobel
from skimage.measure import label as connected_components
from skimage.segmentation import watershed

from .errors import ConfigError


@dataclass(frozen=True)
class Refine:
    """How scores become labels; stored in the bundle card (``refine``).

    margin: a pixel is foreground when its best foreground class's score exceeds the
    background's by more than `margin` (0: plain argmax; > 0 shrinks the objects, < 0
    grows them). snap: px on each side of an outline that are re-decided by a watershed on
    the image's gradient (0: off). smooth: Gaussian sigma (px) of the image before its
    gradient is taken.
    """

    margin: float = 0.0
    snap: int = 0
    smooth: float = 1.0

    def __post_init__(self):
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float)) or not -2 <= self.margin <= 2:
            raise ConfigError(f"refine.margin must be a number in [-2, 2], got {self.margin!r}")
        if isinstance(self.snap, bool) or not isinstance(self.snap, (int, np.integer)) or not 0 <= self.snap <= 64:
            raise ConfigError(f"refine.snap must be an integer in [0, 64] px, got {self.snap!r}")
        if isinstance(self.smooth, bool) or not isinstance(self.smooth, (int, float)) or not 0 <= self.smooth <= 20:
            raise ConfigError(f"refine.smooth must be a number in [0, 20] px, got {self.smooth!r}")

    @property
    def active(self) -> bool:
        return self.margin != 0 or self.snap > 0

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "Refine":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown refine setting(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if not self.active:
            return "argmax"
        parts = [f"margin {self.margin:+g}"] if self.margin else []
        if self.snap:
            parts.append(f"snap {self.snap} px (sigma {self.smooth:g})")
        return ", ".join(parts)


def labels_with_margin(scores: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(n, H, W) class scores -> (H, W) uint8 labels, background unless the best foreground
    class beats it by more than `margin`."""
    scores = np.asarray(scores, np.float32)
    if scores.ndim != 3 or scores.shape[0] < 2:
        raise ConfigError(f"scores must be (classes >= 2, H, W), got shape {scores.shape}")
    fg = np.argmax(scores[1:], axis=0) + 1
    best = np.take_along_axis(scores, fg[None], axis=0)[0]
    return np.where(best - scores[0] > margin, fg, 0).astype(np.uint8)


def snap_labels(labels: np.ndarray, image: np.ndarray, snap: int, smooth: float = 1.0) -> np.ndarray:
    """Re-decide `snap` px on each side of every outline by a watershed on the image gradient.

    Markers: each class where it is sure (background farther than `snap` from any object,
    an object's pixels deeper than `snap` inside it; an object thinner than that keeps its
    deepest pixels), so no object vanishes and none appears from nothing.
    """
    labels = np.asarray(labels)
    if snap <= 0 or not labels.any():
        return labels.astype(np.uint8)
    image = np.asarray(image, np.float32)
    if image.shape != labels.shape:
        raise ConfigError(f"image {image.shape} and labels {labels.shape} differ in shape")
    fg = labels > 0
    depth = ndi.distance_transform_edt(fg)
    sure_fg = depth > snap
    comps = connected_components(fg, connectivity=2)
    n = int(comps.max())
    if n:
        deepest = np.asarray(ndi.maximum(depth, comps, index=np.arange(1, n + 1)))
        thin = np.zeros(n + 1, bool)
        thin[1:] = deepest <= snap
        sure_fg |= thin[comps] & (depth >= np.concatenate([[np.inf], deepest])[comps])
    sure_bg = ndi.distance_transform_edt(~fg) > snap
    markers = np.zeros(labels.shape, np.int32)
    markers[sure_bg] = 1
    markers[sure_fg] = labels[sure_fg].astype(np.int32) + 1
    smoothed = ndi.gaussian_filter(image, smooth) if smooth > 0 else image
    out = watershed(sobel(smoothed), markers)
    return (out - 1).astype(np.uint8)


def refine_labels(scores: np.ndarray, image: np.ndarray, refine: Refine = Refine()) -> np.ndarray:
    """Labels from (n, H, W) class scores and the (H, W) image with the `refine` settings."""
    labels = labels_with_margin(scores, refine.margin)
    return snap_labels(labels, image, refine.snap, refine.smooth)

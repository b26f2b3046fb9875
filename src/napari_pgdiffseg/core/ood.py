""""This image is unlike the training data": an out-of-distribution score from the image
latents the autoencoder computes anyway.

Every tile's latent (3 channels at 1/4 resolution) is summarised by its per-channel mean
and standard deviation (6 numbers: brightness, contrast and texture as the model sees
them). A model card stores the mean and SD of these numbers over its training tiles
(`reference_from_features`, written by ``scripts/card_ood_reference.py``) and a threshold.
A frame's score is the median over its tiles of the root-mean-square z-score of the six
numbers against that reference: about 1 for tiles like the training tiles, larger the
further they are. A median, so that a few odd tiles (an edge, debris) do not flag a frame.

This measures how unusual the image is for the model, not whether the labels are right;
it is a prompt to check, computed at no extra network cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_FEATURES = 6  # per latent channel: mean, SD


def latent_features(z) -> np.ndarray:
    """(B, 6) float64 per-tile features of image latents `z` (B, 3, h, w): channel means, then SDs."""
    import torch

    z = z.detach().float()
    mean = z.mean(dim=(2, 3))
    sd = z.std(dim=(2, 3))
    return torch.cat([mean, sd], dim=1).cpu().numpy().astype(np.float64)


@dataclass(frozen=True)
class OODReference:
    """What a card stores: the training tiles' feature mean and SD, the score threshold, and
    what the reference was computed from."""

    mean: tuple[float, ...]
    sd: tuple[float, ...]
    threshold: float
    train_max: float = float("nan")  # the highest score among the training frames
    source: str = ""

    @classmethod
    def from_dict(cls, d: dict | None) -> "OODReference | None":
        if not d:
            return None
        mean, sd = tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["sd"])
        if len(mean) != N_FEATURES or len(sd) != N_FEATURES or min(sd) <= 0:
            from .errors import BundleError

            raise BundleError(f"the card's 'ood' reference needs {N_FEATURES} means and {N_FEATURES} positive SDs")
        return cls(mean, sd, float(d["threshold"]), float(d.get("train_max", "nan")), str(d.get("source", "")))

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "sd": list(self.sd), "threshold": self.threshold,
                "train_max": self.train_max, "source": self.source}


def tile_scores(features: np.ndarray, ref: OODReference) -> np.ndarray:
    """RMS z-score of each tile's features against the reference: (n_tiles,)."""
    f = np.asarray(features, np.float64).reshape(-1, N_FEATURES)
    z = (f - np.asarray(ref.mean)) / np.asarray(ref.sd)
    return np.sqrt(np.mean(z**2, axis=1))


def frame_score(features: np.ndarray, ref: OODReference | None) -> float:
    """Median tile score of a frame (NaN without a reference or tiles)."""
    if ref is None or np.size(features) == 0:
        return float("nan")
    return float(np.median(tile_scores(features, ref)))


def reference_from_features(frame_features: Sequence[np.ndarray], source: str, margin: float = 1.5) -> OODReference:
    """The reference of a model from the per-tile features of its training frames (one array
    per frame): feature mean and SD over all tiles; threshold `margin` x the highest frame
    score among those frames (so no training frame is flagged, with room for new frames of
    the same kind)."""
    tiles = np.concatenate([np.asarray(f, np.float64).reshape(-1, N_FEATURES) for f in frame_features])
    ref = OODReference(tuple(tiles.mean(axis=0)), tuple(np.maximum(tiles.std(axis=0), 1e-6)), 0.0, source=source)
    worst = max(frame_score(f, ref) for f in frame_features)
    return OODReference(ref.mean, ref.sd, round(float(margin * worst), 3), round(float(worst), 3), source)


def ood_message(score: float, ref: OODReference | None) -> str:
    """'' or one line saying that the image is unlike the model's training images."""
    if ref is None or not np.isfinite(score) or score <= ref.threshold:
        return ""
    return (f"this image is unlike the model's training images (unlikeness {score:.1f}; its training frames "
            f"score at most {ref.train_max:.1f}, warning above {ref.threshold:.1f}): check that the model "
            "fits this kind of image, or fine-tune it on a few of your frames")


def frame_features(image, bundle, overlap: int = 32, batch: int = 8, precision: str = "auto") -> np.ndarray:
    """(n_tiles, 6) latent features of a frame as `segment` computes them (same outlier
    replacement, input scale, normalisation, tiles and encoder precision, on the CPU), from
    the autoencoder alone: what a card's reference is made of."""
    import torch

    from .engine import diffusion_networks
    from .models import DOWNSAMPLE_FACTOR
    from .preprocess import check_frame, replace_outliers, rescale_frame
    from .source import FrameSource
    from .tiling import TileGrid

    card = bundle.card
    frame = check_frame(image)
    if card.input_scale != 1.0:
        replace_outliers(frame, card.normalization)
        frame = rescale_frame(frame, card.input_scale)
    source = FrameSource(frame, card.normalization)
    grid = TileGrid(source.shape[0], source.shape[1], card.tile_size, overlap, DOWNSAMPLE_FACTOR)
    t = grid.tile
    origins = grid.origins()
    encode = diffusion_networks(bundle, torch.device("cpu"), "off", precision)[0]
    out = []
    with torch.inference_mode():
        for i in range(0, len(origins), batch):
            tiles = np.stack([source.tile(y, x, t)[None] for y, x in origins[i:i + batch]])
            out.append(latent_features(encode(torch.from_numpy(tiles))))
    return np.concatenate(out)

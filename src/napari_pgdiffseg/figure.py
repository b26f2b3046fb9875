"""The demo figure: image | starting noise | Canny edges of the noise | labels | truth (PNG).

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI backend).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .core.io import atomic_write
from .core.metrics import noise_edges
from .core.pipeline import SegmentationResult


def label_rgba(labels: np.ndarray, colors) -> np.ndarray:
    """(H, W) labels -> (H, W, 4) uint8 using the bundle's colours (background drawn black)."""
    lut = np.array(colors, np.uint8).copy()
    lut[0] = (0, 0, 0, 255)
    return lut[labels]


def demo_figure(path: str | os.PathLike, image: np.ndarray, result: SegmentationResult, colors,
                truth: np.ndarray | None = None, title: str | None = None, max_px: int = 512) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    noise = result.noise.mean(axis=0)
    panels = [("image", image, "gray"), ("starting noise", noise, "gray"),
              ("Canny edges of the noise", noise_edges(result.noise), "gray"),
              ("labels (live red, dead orange)", label_rgba(result.labels, colors), None)]
    if truth is not None:
        panels.append(("truth", label_rgba(truth, colors), None))
    fig = Figure(figsize=(3.2 * len(panels), 3.6), dpi=max(60, min(150, max_px // 3)))
    FigureCanvasAgg(fig)
    for i, (name, data, cmap) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(data, cmap=cmap, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))

"""Figures (PNG): the demo figure (image | starting noise | Canny edges of the noise | labels |
truth) and the evaluation's quality-against-NFE curve.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI backend).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np

from .core.files import atomic_write
from .core.metrics import noise_edges
from .core.pipeline import SegmentationResult

if TYPE_CHECKING:
    from .core.evaluation import MethodScores


def label_rgba(labels: np.ndarray, colors) -> np.ndarray:
    """(H, W) labels -> (H, W, 4) uint8 using the bundle's colours (background drawn black)."""
    lut = np.array(colors, np.uint8).copy()
    lut[0] = (0, 0, 0, 255)
    return lut[labels]


def demo_figure(path: str | os.PathLike, image: np.ndarray, result: SegmentationResult, colors,
                truth: np.ndarray | None = None, title: str | None = None, max_px: int = 512) -> Path:
    noise = result.noise.mean(axis=0)
    panels = [("image", image, "gray"), ("starting noise", noise, "gray"),
              ("Canny edges of the noise", noise_edges(result.noise), "gray"),
              ("labels", label_rgba(result.labels, colors), None)]
    if truth is not None:
        panels.append(("truth", label_rgba(truth, colors), None))
    return _panels_figure(path, panels, title, (3.2, 3.6), max(60, min(150, max_px // 3)))


def _panels_figure(path, panels, title: str | None, size: tuple[float, float], dpi: int) -> Path:
    """One row of image panels ``(name, data, colormap or None)`` written atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * len(panels), size[1]), dpi=dpi)
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


def nfe_curve_figure(path: str | Path, curves: "dict[str, Sequence[MethodScores]]", title: str = "") -> Path:
    """PNG: mIoU (mean +- SD) against NFE per tile (log axis), one line per curve."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, scores in curves.items():
        pts = sorted((s.nfe, s.row()["miou"], s.row()["miou_sd"]) for s in scores)
        if not pts:
            continue
        x, y, e = (np.array(v, float) for v in zip(*pts))
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per tile (NFE)")
    ax.set_ylabel("mIoU")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def truth_figure(path: str | os.PathLike, image: np.ndarray, labels: np.ndarray, truth: np.ndarray, colors,
                 title: str | None = None) -> Path:
    """PNG: image | labels | truth | outlines on the image (predicted green, true red)."""
    from skimage.segmentation import find_boundaries

    grey = np.asarray(image, np.float32)
    lo, hi = np.percentile(grey, [1, 99.8])
    grey = np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1)
    overlay = np.stack([grey] * 3, -1)
    overlay[find_boundaries(truth > 0, mode="thick")] = (1.0, 0.1, 0.1)
    overlay[find_boundaries(labels > 0, mode="thick")] = (0.1, 1.0, 0.1)
    panels = [("image", grey, "gray"), ("labels", label_rgba(labels, colors), None),
              ("truth", label_rgba(truth, colors), None), ("outlines: predicted green, true red", overlay, None)]
    return _panels_figure(path, panels, title, (3.4, 3.8), 110)

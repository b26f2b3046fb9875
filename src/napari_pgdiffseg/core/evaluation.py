"""Scoring segmentation methods on labelled frames: mIoU / F1 mean (SD), NFE, seconds per tile.

A *method* is a name and a `SegmentConfig` (e.g. "Prior x1", "Random x5"); every method
runs through `segment`, the same entry point as the GUI and the CLI, on every frame.
"""

from __future__ import annotations

import csv
import io as _io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .io import atomic_write
from .metrics import segmentation_scores
from .pipeline import SegmentConfig, segment


def paper_methods(inversion_steps: int = 100, sampling_steps: int = 200, base: SegmentConfig | None = None
                  ) -> dict[str, SegmentConfig]:
    """The starting-noise methods of the paper's Tables 2 and 3 at the given step counts."""
    b = base or SegmentConfig()
    b = replace(b, inversion_steps=inversion_steps, sampling_steps=sampling_steps)
    return {
        "Prior x1": replace(b, strategy="prior", ensemble=1),
        "Random x1": replace(b, strategy="random", ensemble=1),
        "Random x5": replace(b, strategy="random", ensemble=5),
        "Forward t=300": replace(b, strategy="forward", forward_t=300, ensemble=1),
    }


@dataclass
class MethodScores:
    """Per-frame scores of one method."""

    name: str
    nfe: int
    miou: list[float] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)
    noise_ssim: list[float] = field(default_factory=list)
    noise_kld: list[float] = field(default_factory=list)
    seconds_per_tile: list[float] = field(default_factory=list)

    def row(self) -> dict:
        def ms(v):
            v = np.asarray(v, float)
            v = v[np.isfinite(v)]
            if v.size == 0:
                return float("nan"), float("nan")
            return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0

        out = {"method": self.name, "nfe": self.nfe, "frames": len(self.miou)}
        for key in ("miou", "f1", "noise_ssim", "noise_kld", "seconds_per_tile"):
            out[key], out[key + "_sd"] = ms(getattr(self, key))
        return out


def evaluate(
    bundle: Bundle,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    methods: dict[str, SegmentConfig],
    *,
    on_frame: Callable[[str, int, int], None] | None = None,
) -> list[MethodScores]:
    """Run every method on every (image, mask) frame; per-frame mIoU/F1 (absent classes ignored)."""
    results = []
    for name, cfg in methods.items():
        ms = MethodScores(name, cfg.nfe_per_tile())
        for i, (img, mask) in enumerate(zip(images, masks)):
            r = segment(img, bundle, cfg)
            s = segmentation_scores(r.labels, np.asarray(mask), bundle.n_classes)
            ms.miou.append(s["miou"])
            ms.f1.append(s["f1"])
            ms.noise_ssim.append(r.noise_ssim)
            ms.noise_kld.append(r.noise_kld)
            ms.seconds_per_tile.append(r.segment_seconds_per_tile)
            if on_frame is not None:
                on_frame(name, i, len(images))
        results.append(ms)
    return results


def _fmt(mean: float, sd: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ({sd:.{digits}f})"


def markdown_table(scores: Sequence[MethodScores], title: str | None = None) -> str:
    """The paper's format: mean (SD) over frames, plus NFE and seconds per tile."""
    lines = [f"**{title}**", ""] if title else []
    lines += ["| Method | NFE / tile | mIoU | F1 | noise SSIM | noise KLD | s / tile |",
              "|---|---:|---|---|---|---|---:|"]
    for s in scores:
        r = s.row()
        lines.append(
            f"| {r['method']} | {r['nfe']} | {_fmt(r['miou'], r['miou_sd'])} | {_fmt(r['f1'], r['f1_sd'])} | "
            f"{_fmt(r['noise_ssim'], r['noise_ssim_sd'])} | {_fmt(r['noise_kld'], r['noise_kld_sd'])} | "
            f"{r['seconds_per_tile']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_csv(path: str | Path, scores: Sequence[MethodScores], extra: dict | None = None) -> Path:
    rows = [{**(extra or {}), **s.row()} for s in scores]
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))

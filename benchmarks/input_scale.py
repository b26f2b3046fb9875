"""Seconds per real 832 px SLIM frame for slim-viability at its input scale (0.5) and at scale 1.

    python benchmarks/input_scale.py [--frames 3] [--data ../shared/data/qpi-live-dead/HeLa]

The same networks and settings (prior, 10 + 10 steps), side by side in one process; only the
card's input_scale differs. Prints a Markdown table (the README's speed section).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import torch

from napari_pgdiffseg import SegmentConfig, segment
from napari_pgdiffseg.core.bundle import load_model
from napari_pgdiffseg.core.training import find_frames
from napari_pgdiffseg.core.files import read_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/qpi-live-dead/HeLa"))
    ap.add_argument("--frames", type=int, default=3)
    args = ap.parse_args()
    frames = [read_image(f.image_path) for f in find_frames(args.data)[: args.frames]]
    bundle = load_model("slim-viability")
    scales = (bundle.card.input_scale, 1.0)
    cfg = SegmentConfig(inversion_steps=10, sampling_steps=10, noise_metrics=False, device="cpu")
    rows = []
    for s in scales:
        bundle.card = dataclasses.replace(bundle.card, input_scale=s)
        segment(frames[0][:256, :256], bundle, cfg)  # warm-up
        t0 = time.perf_counter()
        tiles = [segment(f, bundle, cfg).n_tiles for f in frames]
        rows.append((s, (time.perf_counter() - t0) / len(frames), tiles[0]))
    print(f"slim-viability, {len(frames)} frames of {Path(args.data).name} ({frames[0].shape[0]}x{frames[0].shape[1]}), "
          f"prior 10+10 steps; {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}\n")
    print("| input scale | model tiles per frame | s per frame | vs scale 1 |")
    print("|---:|---:|---:|---:|")
    for s, sec, n in rows:
        print(f"| {s:g} | {n} | {sec:.2f} | {rows[-1][1] / sec:.2f}x faster |" if s != 1.0 else
              f"| {s:g} | {n} | {sec:.2f} | 1.00x |")


if __name__ == "__main__":
    main()

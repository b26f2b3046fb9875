"""Score bundles on a held-out synthetic set: Prior x1, Random x1, Random x5, Forward t=300.

    python scripts/evaluate_bundles.py out/train/x0 out/train/eps --frames 32 --seed 9001 \
        --steps 100:200 10:10 --out out/eval

Frames are 256x256 synthetic tiles from `synthetic.make_dataset(frames, seed)`; the default
bundle was trained on seed 1, so seeds >= 2 are disjoint from training. Prints one Markdown
table per bundle and step setting and writes them (and a CSV) under --out.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from napari_pgdiffseg.core.bundle import load_bundle
from napari_pgdiffseg.core.evaluation import evaluate, markdown_table, paper_methods, write_csv
from napari_pgdiffseg.core.pipeline import SegmentConfig
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--seed", type=int, default=9001)
    ap.add_argument("--difficulty", type=float, default=0.5)
    ap.add_argument("--steps", nargs="+", default=["100:200"], help="inversion:sampling pairs")
    ap.add_argument("--methods", nargs="*", default=None, help="subset of method names")
    ap.add_argument("--tile-batch", type=int, default=8)
    ap.add_argument("--out", default="out/eval")
    args = ap.parse_args()

    images, masks = make_dataset(args.frames, args.seed, SyntheticConfig(shape=(256, 256), difficulty=args.difficulty))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    header = (f"Held-out synthetic set: {args.frames} frames of 256x256, seed {args.seed}, difficulty "
              f"{args.difficulty}; CPU ({machine}); mean (SD) over frames.\n")
    print(header)
    md = [header]
    for b in args.bundles:
        bundle = load_bundle(b)
        for pair in args.steps:
            inv, samp = (int(v) for v in pair.split(":"))
            base = SegmentConfig(device="cpu", tile_batch=args.tile_batch)
            methods = paper_methods(inv, samp, base)
            if args.methods:
                methods = {k: v for k, v in methods.items() if k in args.methods}
            t0 = time.perf_counter()
            scores = evaluate(bundle, images, masks, methods)
            title = (f"{b} (LDM-S predicts {bundle.card.prediction_type}), inversion {inv} / sampling {samp} steps "
                     f"[{time.perf_counter() - t0:.0f} s]")
            table = markdown_table(scores, title)
            print(table, flush=True)
            md.append(table)
            write_csv(out / f"{Path(b).name}_{inv}_{samp}.csv", scores,
                      {"bundle": b, "prediction_type": bundle.card.prediction_type, "inversion_steps": inv,
                       "sampling_steps": samp, "frames": args.frames, "seed": args.seed})
    (out / "tables.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()

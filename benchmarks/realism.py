"""How realistic are the synthetic generators? Real vs synthetic tiles; prints a Markdown table.

Rows pair a real tile set with a generator:

- SLIM (HeLa + CHO frames of ``qpi-live-dead``) vs the old generator
  (``synthetic.make_dataset`` defaults, 256x256) and vs the new SLIM generator
  (``synthetic_real.make_slim_frame``; half the frames with ``SlimConfig.hela()``, half with
  ``SlimConfig.cho()``, as the real set is half HeLa, half CHO);
- holographic QPI (``qpi-cells``) vs the old generator and vs the new holographic one
  (``synthetic_real.make_holo_frame`` defaults).

The new generators are scored twice: on frames of the real frames' size (832 and 600 px)
cut into tiles, the like-for-like comparison, and on 256 px frames (their default shape).

Columns (see ``napari_pgdiffseg.core.realism``): cross-validated accuracy of a logistic
regression on per-tile features telling real from synthetic tiles (0.5 = it cannot, 1.0 =
trivially), 1-D Wasserstein distances of the pooled normalised intensities and of the
Sobel gradient magnitudes (lower is closer), and the tiles per class. Every frame is
normalised as the package does (percentiles 1 and 99.8) before it is cut into 256 px tiles.

Run from the repository root (about a minute on one CPU core at the defaults)::

    python benchmarks/realism.py
    python benchmarks/realism.py --tiles 300 --seed 1 --data-root ../shared/data
    python benchmarks/realism.py --features      # also per-feature medians per row
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from napari_pgdiffseg.core import realism, synthetic, synthetic_real  # noqa: E402

TILE = 256
SLIM_FRAME = (832, 832)  # the qpi-live-dead frames
HOLO_FRAME = (600, 600)  # the qpi-cells frames


def _files(root: Path, pattern: str) -> list[Path]:
    files = sorted(root.glob(pattern))
    if not files:
        raise SystemExit(f"no files match {root / pattern}; pass --data-root")
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"),
                    help="folder holding qpi-live-dead/ and qpi-cells/ (default: ../shared/data)")
    ap.add_argument("--tiles", type=int, default=200,
                    help="tiles per set (real sets may hold fewer; default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", action="store_true",
                    help="also print the median of every feature, real vs synthetic")
    args = ap.parse_args(argv)
    root = Path(args.data_root)
    t0 = time.perf_counter()
    n = int(args.tiles)

    slim_files = (_files(root, "qpi-live-dead/HeLa/*.png")
                  + _files(root, "qpi-live-dead/CHO/*.png"))
    holo_files = _files(root, "qpi-cells/images/*.tif")
    print(f"reading {len(slim_files)} SLIM and {len(holo_files)} holographic frames ...",
          file=sys.stderr)
    real = {
        "SLIM HeLa+CHO": realism.real_tiles_from_files(slim_files, TILE, n, args.seed),
        "holo qpi-cells": realism.real_tiles_from_files(holo_files, TILE, n, args.seed),
    }
    old_cfg = synthetic.SyntheticConfig(shape=(TILE, TILE))
    old = realism.synthetic_tiles(synthetic.make_frame, n, args.seed, TILE, configs=[old_cfg])
    # The new generators make frames of the real frames' size, normalised whole and cut
    # into tiles like the real ones (a 256 px frame normalised on its own always reaches
    # -1 and 1, which no tile of a bigger frame does); the 256 px rows show that effect.
    H, C = synthetic_real.SlimConfig.hela, synthetic_real.SlimConfig.cho
    holo = synthetic_real.HoloConfig
    slim_big = [H(shape=SLIM_FRAME), C(shape=SLIM_FRAME)]
    slim_small = [H(shape=(TILE, TILE)), C(shape=(TILE, TILE))]
    # Frames needed for n tiles: 832 px frames give 4 x 4 tiles, 600 px frames 3 x 3.
    n_slim, n_holo = -(-n // 16), -(-n // 9)
    make_slim, make_holo = synthetic_real.make_slim_frame, synthetic_real.make_holo_frame
    rows = [
        ("SLIM HeLa+CHO", "old `synthetic.make_frame` (256 px)", old),
        ("SLIM HeLa+CHO", "new `make_slim_frame` (832 px, HeLa/CHO)",
         realism.synthetic_tiles(make_slim, n_slim, args.seed, TILE, n, slim_big)),
        ("SLIM HeLa+CHO", "new `make_slim_frame` (256 px, HeLa/CHO)",
         realism.synthetic_tiles(make_slim, n, args.seed, TILE, n, slim_small)),
        ("holo qpi-cells", "old `synthetic.make_frame` (256 px)", old),
        ("holo qpi-cells", "new `make_holo_frame` (600 px)",
         realism.synthetic_tiles(make_holo, n_holo, args.seed, TILE, n, [holo(shape=HOLO_FRAME)])),
        ("holo qpi-cells", "new `make_holo_frame` (256 px)",
         realism.synthetic_tiles(make_holo, n, args.seed, TILE, n, [holo(shape=(TILE, TILE))])),
    ]
    feats = {}
    lines = [
        "| real set | generator | classifier accuracy | intensity W1 | gradient W1 | tiles |",
        "|---|---|---|---|---|---|",
    ]
    for real_name, gen_name, syn in rows:
        print(f"scoring {real_name} vs {gen_name} ...", file=sys.stderr)
        s = realism.realism_scores(real[real_name], syn, seed=args.seed)
        lines.append(
            f"| {real_name} | {gen_name} | {s['accuracy']:.3f} ± {s['accuracy_std']:.3f} | "
            f"{s['intensity_w1']:.3f} | {s['gradient_w1']:.4f} | {s['n_tiles']} |"
        )
        if args.features:
            feats[(real_name, gen_name)] = (realism.tile_features(real[real_name]),
                                            realism.tile_features(syn))
    elapsed = time.perf_counter() - t0
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
          f"(os.cpu_count), Python {platform.python_version()}; tiles {TILE}x{TILE}, "
          f"seed {args.seed}, {elapsed:.0f} s in all.")
    print()
    print("\n".join(lines))
    for (real_name, gen_name), (fr, fs) in feats.items():
        print(f"\nfeature medians, {real_name} (real) vs {gen_name}:")
        for name, a, b in zip(realism.FEATURE_NAMES, np.median(fr, 0), np.median(fs, 0)):
            print(f"  {name:28s} {a:9.3f} {b:9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

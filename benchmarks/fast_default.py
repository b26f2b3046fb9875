"""Seconds per real frame at the old default, the new fast default, the paper's protocol, the
U-Net baseline and the live preview, with 1 and 2 torch threads; prints Markdown tables.

    python benchmarks/fast_default.py [--data ../shared/data] [--threads 1 2] [--no-paper]

Per shipped real-data model, one real frame (slim-viability: HeLa 0000.png, 832 x 832 SLIM;
qpi-cells: the first qpi-cells frame, 600 x 600 rad), each thread count in a fresh subprocess
(its peak RSS is the row group's). Rows, side by side in that process after one warm-up call:

- old default: 10 + 10 steps, noise SSIM/KLD on, one tile per network call (batch-invariant),
  with the card's views: what `pgdiffseg segment` ran before the fast default;
- fast (new default): ``model_config(card)``, what `segment` runs now;
- for a card whose views mirror the sampling only (flip_scope "sampling"): fast with the
  views mirroring the whole pipeline, the card's setting before 2026-12-04;
- paper: ``--speed paper`` (100 + 200 steps, one view);
- U-Net (ResNet-18): the baseline's network (random weights: the time does not depend on
  them) over the same number of 256 px tiles, batch 8, at the model's input scale;
- preview: `core.preview.segment_region` of a 512 x 512 view at full resolution
  (`preview_config`), what the widget's Preview runs after each pan or zoom.

Achieved GFLOP/s: FLOPs counted once per network (torch FlopCounterMode: the autoencoder's
encoder per tile, LDM-S's forward for every network evaluation (LDM-P's is the same size),
x NFE and tiles) over the measured seconds,
against this machine's float32 matmul GFLOP/s measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARK = "PGDIFFSEG_FAST_RESULT "
FRAMES = {"slim-viability": "qpi-live-dead/HeLa/0000.png", "qpi-cells": None}  # None: the first qpi-cells image


def _frame(data: Path, model: str):
    from napari_pgdiffseg.core.files import read_image

    rel = FRAMES[model]
    path = data / rel if rel else sorted((data / "qpi-cells/images").glob("*.tif"))[0]
    return path, read_image(path)


def _flops(bundle, n_tiles: int, nfe: int) -> float:
    """FLOPs of a run: the encoder once per tile, one U-Net forward per network evaluation."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from napari_pgdiffseg.core.engine import encode_latents

    t = bundle.card.tile_size
    x = torch.zeros(1, 1, t, t)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        z = encode_latents(bundle.autoencoder, x)
    enc = float(counter.get_total_flops())
    counter = FlopCounterMode(display=False)
    zin = torch.zeros(1, bundle.ldm_s.config.in_channels, z.shape[2], z.shape[3])
    with torch.inference_mode(), counter:
        bundle.ldm_s(zin, torch.tensor(500))
    unet = float(counter.get_total_flops())
    return n_tiles * (enc + nfe * unet)


def child(model: str, data: Path, threads: int, paper: bool) -> dict:
    import dataclasses

    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    from speed import matmul_gflops, peak_rss_bytes

    from napari_pgdiffseg import segment
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.config import model_config
    from napari_pgdiffseg.core.preview import preview_box, preview_config, segment_region
    from napari_pgdiffseg.core.training.baseline import build_unet

    torch.set_num_threads(threads)
    bundle = load_model(model)
    card = bundle.card
    path, frame = _frame(data, model)
    rows = []
    configs = [("old default (10 + 10, noise metrics, one tile per call)",
                model_config(card, inversion_steps=10, sampling_steps=10, noise_metrics=True, batch_invariant="on",
                             flip_scope="pipeline")),
               ("**fast (new default)**", model_config(card))]
    if model_config(card).flip_scope == "sampling" and model_config(card).flips > 1:
        configs.append(("fast with whole-pipeline views (flip_scope pipeline, the card before 2026-12-04)",
                        model_config(card, flip_scope="pipeline")))
    if paper:
        configs.append(("paper (100 + 200, one view)", model_config(card, "paper")))
    segment(frame[:256, :256], bundle, dataclasses.replace(configs[1][1], device="cpu"))  # warm-up
    n_tiles = None
    for name, cfg in configs:
        cfg = dataclasses.replace(cfg, device="cpu")
        t0 = time.perf_counter()
        r = segment(frame, bundle, cfg)
        sec = time.perf_counter() - t0
        n_tiles = r.n_tiles if n_tiles is None else n_tiles
        nfe_run = r.nfe  # per tile, views included
        rows.append({"name": name, "nfe": nfe_run, "tiles": r.n_tiles, "s": sec,
                     # encoder passes: once per tile and pipeline view; U-Net forwards: r.nfe per tile
                     "gflop": (_flops(bundle, r.n_tiles, nfe_run) if cfg.flip_scope == "sampling" else
                               _flops(bundle, r.n_tiles * cfg.flips, nfe_run // max(cfg.flips, 1))) / 1e9,
                     "labels": r.labels})
    # U-Net baseline network on the same tiles (random weights).
    net = build_unet("resnet18", len(card.class_names)).eval()
    x = torch.zeros(n_tiles, 1, card.tile_size, card.tile_size)
    with torch.inference_mode():
        net(x[:1])
        t0 = time.perf_counter()
        for i in range(0, n_tiles, 8):
            net(x[i:i + 8])
        sec = time.perf_counter() - t0
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(x[:1])
    rows.append({"name": "U-Net (ResNet-18), networks only", "nfe": 1, "tiles": n_tiles, "s": sec,
                 "gflop": n_tiles * float(counter.get_total_flops()) / 1e9})
    # The live preview of a 512 x 512 view.
    box = preview_box(((0, 0), (512, 512)), frame.shape, 1.0)
    pcfg = dataclasses.replace(preview_config(model_config(card)), device="cpu")
    t0 = time.perf_counter()
    _, pr = segment_region(frame, bundle, box, pcfg)
    sec = time.perf_counter() - t0
    rows.append({"name": "preview of a 512 x 512 view", "nfe": pr.nfe, "tiles": pr.n_tiles, "s": sec,
                 "gflop": _flops(bundle, pr.n_tiles, pr.nfe) / 1e9})
    fast, old = rows[1]["labels"], rows[0]["labels"]
    agree = float(np.mean(fast == old))
    for r in rows:
        r.pop("labels", None)
    return {"model": model, "frame": str(path.name), "shape": list(frame.shape), "threads": threads,
            "rows": rows, "matmul_gflops": matmul_gflops(2048, repeats=3)["gflops"], "peak_rss": peak_rss_bytes(),
            "fast_vs_old_pixel_agreement": agree}


def child_json(cmd: list[str], mark: str) -> dict:
    """Run one benchmark child process (a fresh process per thread count, so thread pools and
    allocator state do not carry over) and return the JSON it printed after `mark`."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(next(ln for ln in out.splitlines() if ln.startswith(mark))[len(mark):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parents[1] / "shared/data"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", nargs="+", default=list(FRAMES))
    ap.add_argument("--no-paper", action="store_true", help="skip the 300-NFE paper rows (minutes on a CPU)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        model, threads, paper = args.child
        print(MARK + json.dumps(child(model, Path(args.data), int(threads), paper == "1")))
        return 0
    import torch

    print(f"# Fast default: seconds per real frame ({platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')})\n")
    for model in args.models:
        results = [child_json([sys.executable, __file__, "--data", args.data, "--child", model, str(th),
                               "0" if args.no_paper else "1"], MARK) for th in args.threads]
        r0 = results[0]
        print(f"## {model}: {r0['frame']} ({r0['shape'][0]} x {r0['shape'][1]})\n")
        head = "| settings | NFE / tile | tiles | " + " | ".join(
            f"s ({r['threads']} thr) | GFLOP/s ({r['threads']} thr)" for r in results) + " |"
        print(head)
        print("|---|---:|---:|" + "---:|---:|" * len(results))
        for i, row in enumerate(r0["rows"]):
            cells = []
            for r in results:
                x = r["rows"][i]
                cells += [f"{x['s']:.2f}", f"{x['gflop'] / x['s']:.0f}"]
            print(f"| {row['name']} | {row['nfe']} | {row['tiles']} | " + " | ".join(cells) + " |")
        for r in results:
            rows = {x["name"]: x for x in r["rows"]}
            old, fast = r["rows"][0]["s"], r["rows"][1]["s"]
            unet = rows["U-Net (ResNet-18), networks only"]["s"]
            print(f"\n{r['threads']} thread(s): fast is {old / fast:.1f}x faster than the old default and "
                  f"{fast / unet:.1f}x the U-Net's network time; matmul {r['matmul_gflops']:.0f} GFLOP/s; "
                  f"peak RSS {r['peak_rss'] / 2**20:.0f} MiB; labels of fast and old default agree on "
                  f"{100 * r['fast_vs_old_pixel_agreement']:.1f} % of pixels.")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

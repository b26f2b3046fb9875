"""Fine-tuning a shipped model on a few frames of another modality, as the Train widget does
(issue 14): start from slim-viability (SLIM nuclei), fine-tune on 1, 2 and 4 frames of
qpi-cells (holographic phase in radians, whole cells) for a few CPU minutes each, and score
foreground IoU and object F1 on held-out frames before and after, side by side with the
U-Net baseline trained on the same frames for the same time. Prints a Markdown table.

    OMP_NUM_THREADS=1 python benchmarks/finetune_qpi_cells.py [--data ../shared/data] [--minutes 5]

Frames: a seeded permutation (`--seed`, default 0) of the 15 qpi-cells frames; the first 4 are the
training pool (1, 2, 4 frames are its first 1, 2, 4), the other 11 are the test frames of
every row (never trained on by any model here). Each fine-tune runs through
`core.training.fine_tune` with the widget's defaults (LDM-S only, its own 20 % hold-out
check inside the training frames, default augmentation, input scale "auto"), classes background/cell, labels
read as cell ids, and whole-cell instances (watershed, as the qpi-cells card). The U-Net
(ResNet-18, Dice loss) gets the same frames, the same minutes and the same hold-out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAMES = ("background", "cell")
WHOLE_CELLS = {"method": "watershed", "min_distance": 5, "smooth": 3.0, "min_area": 150}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--sizes", default="1,2,4")
    ap.add_argument("--start", default="slim-viability")
    ap.add_argument("--seed", type=int, default=0, help="seed of the frame permutation (which frames train)")
    ap.add_argument("--out", default=None, help="folder for the models (default: a temporary one)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch's default, or OMP_NUM_THREADS); the widget's 'auto' uses all cores")
    ap.add_argument("--kinds", default="ldm_s,unet", help="what to train per size: ldm_s, unet or both")
    ap.add_argument("--input-scale", type=float, default=None,
                    help="set the new model's input scale (default: fine_tune's choice: the starting model's, or 1 "
                         "for frames unlike its training images, as qpi-cells are for slim-viability)")
    ap.add_argument("--table-from", default=None, metavar="JSON", help="only print the table of a saved run")
    args = ap.parse_args(argv)
    if args.table_from:
        print_table(json.loads(Path(args.table_from).read_text()))
        return 0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.files import read_image
    from napari_pgdiffseg.core.training import FineTuneConfig, check_pairs, fine_tune
    from napari_pgdiffseg.core.training.finetune import score_bundle
    from napari_pgdiffseg.core.training.frames import FrameSet, find_frames

    folder = Path(args.data) / "qpi-cells"
    frames = sorted((f for f in find_frames(folder) if f.mask_path is not None), key=lambda f: str(f.image_path))
    if len(frames) < 6:
        print(f"need the qpi-cells frames in {folder}", file=sys.stderr)
        return 2
    order = np.random.default_rng(args.seed).permutation(len(frames))
    pool, test = [frames[i] for i in order[:4]], [frames[i] for i in order[4:]]

    def pairs(fs):
        return check_pairs([read_image(f.image_path) for f in fs], [read_image(f.mask_path) for f in fs],
                           [Path(f.image_path).name for f in fs], NAMES, "instances")

    test_set = pairs(test)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pgdiffseg-finetune-"))
    out_root.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    start = load_model(args.start)
    before = score_bundle(start, test_set, NAMES, "cpu")
    rows = [{"row": f"{args.start} as shipped (no fine-tune)", "train_frames": 0, "steps": 0, "seconds": 0.0,
             **before}]
    print(f"# {args.start} on {len(test)} test frames: {before}", file=sys.stderr, flush=True)
    for n in [int(s) for s in args.sizes.split(",")]:
        train = pairs(pool[:n])
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            cfg = FineTuneConfig(train=kind, minutes=args.minutes, device="cpu")
            out = out_root / f"{kind}-{n}"
            updates = {"instances": WHOLE_CELLS, "mask_definition": "whole cells"}
            if args.input_scale is not None:
                updates["input_scale"] = args.input_scale
            r = fine_tune(args.start, train, cfg, out, class_names=NAMES, card_updates=updates, log=lambda s: None)
            if kind == "ldm_s":
                scores = score_bundle(load_model(out), test_set, NAMES, "cpu")
            else:
                from napari_pgdiffseg.core.training import load_baseline
                from napari_pgdiffseg.core.training.finetune import score_baseline

                scores = score_baseline(load_baseline(out), test_set, NAMES, WHOLE_CELLS, "cpu")
            row = {"row": ("PG-DiffSeg LDM-S fine-tuned" if kind == "ldm_s" else "U-Net (ResNet-18) trained") +
                   f" on {n} frame(s)", "train_frames": n, "steps": r.steps, "seconds": r.seconds, **scores,
                   "holdout_before": r.before, "holdout_after": r.after, "holdout_warning": r.warning}
            rows.append(row)
            print(f"# {row['row']}: {scores}; internal hold-out {r.before} -> {r.after}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t_all
    print(f"qpi-cells test frames ({len(test)}, never trained on): {', '.join(test_set.names)}")
    print(f"training pool (seed {args.seed}): {', '.join(Path(f.image_path).name for f in pool)}")
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s); "
          f"{args.minutes:g} min per training; whole run {wall / 60:.1f} min\n")
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


def print_table(rows) -> None:
    """The Markdown table of `rows` (also: `--table-from rows.json` reprints a saved run)."""
    print("| model | steps in the budget | test foreground IoU | test object F1 | "
          "its own hold-out check (before -> after, fg IoU) |")
    print("|---|---:|---|---|---|")
    for r in rows:
        check = ""
        if r.get("holdout_after"):
            check = f"{r['holdout_before'].get('fg_iou', float('nan')):.3f} -> {r['holdout_after']['fg_iou']:.3f}"
            if r["holdout_warning"]:
                check += " (warned: not better)"
        print(f"| {r['row']} | {r['steps']} | {r['fg_iou']:.3f} | {r['object_f1']:.3f} | {check} |")


if __name__ == "__main__":
    sys.exit(main())

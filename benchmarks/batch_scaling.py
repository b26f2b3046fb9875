"""Batch throughput: one process vs a Dask LocalCluster of 1 and 2 worker processes.

    python benchmarks/batch_scaling.py [--frames 8] [--data ../shared/data/qpi-live-dead] [--out FILE]

Segments the same frames with the shipped bundle at the default settings, side by side in
one run: `segment_files` here (torch's default threads), then `--scheduler local` with 1
and 2 workers (cores // workers torch threads each). Prints a Markdown table: wall time
(including the cluster's start), seconds per file, files per minute, speed-up against the
run here, and how many label files are bit-identical to the run here (identical only where
the torch thread counts agree: CPU reductions are split by thread). Frames come from the
real HeLa/CHO folder when it exists, else from the synthetic generator.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _frames(data: Path, n: int, tmp: Path, size: int = 832) -> tuple[list[Path], str]:
    files = sorted(p for p in data.rglob("*.png")) if data.is_dir() else []
    if files:
        # Alternate the two cell lines, evenly spread over each folder.
        by_line = {}
        for f in files:
            by_line.setdefault(f.parent.name, []).append(f)
        lines = sorted(by_line)
        per_line = -(-n // len(lines))
        picked = []
        for i in range(n):
            group = by_line[lines[i % len(lines)]]
            step = max(1, len(group) // per_line)
            picked.append(group[(i // len(lines)) * step % len(group)])
        return picked, f"{n} real 832 x 832 QPI frames from {data} ({', '.join(lines)})"
    import tifffile

    from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

    out = []
    for i in range(n):
        p = tmp / f"synthetic_{i}.tif"
        tifffile.imwrite(p, make_frame(100 + i, SyntheticConfig(shape=(size, size)))[0])
        out.append(p)
    return out, f"{n} synthetic {size} x {size} frames (no real data at {data})"


def _labels(folder: Path) -> dict[str, np.ndarray]:
    import tifffile

    return {p.name: tifffile.imread(p) for p in sorted(folder.glob("*_labels.tif"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" /
                    "qpi-live-dead")
    ap.add_argument("--workers", default="1,2", help="LocalCluster sizes to time (comma-separated)")
    ap.add_argument("--size", type=int, default=832, help="synthetic frame size, used when --data has no frames")
    ap.add_argument("--out", type=Path, help="also write the Markdown to this file")
    args = ap.parse_args(argv)

    import torch

    from napari_pgdiffseg import SegmentConfig
    from napari_pgdiffseg.core.batch import segment_files

    tmp = Path(tempfile.mkdtemp(prefix="pgdiffseg-scaling-"))
    try:
        files, what = _frames(args.data.resolve(), args.frames, tmp, args.size)
        config = SegmentConfig(noise_metrics=False, device="cpu")
        cores = os.cpu_count() or 1
        runs = []
        t0 = time.perf_counter()
        segment_files(files, None, config, tmp / "here")
        runs.append(("this process", "-", torch.get_num_threads(), time.perf_counter() - t0, tmp / "here"))
        for n in (int(v) for v in args.workers.split(",") if v.strip()):
            out = tmp / f"local{n}"
            t0 = time.perf_counter()
            rows = segment_files(files, None, config, out, scheduler="local", workers=n)
            wall = time.perf_counter() - t0
            if any(r["status"] != "ok" for r in rows):
                raise SystemExit(f"a file failed on the cluster: {rows}")
            runs.append(("Dask LocalCluster", n, max(1, cores // n), wall, out))
        ref = _labels(tmp / "here")
        base = runs[0][3]
        lines = [
            "# Batch throughput: one process vs Dask workers",
            "",
            f"Machine: {platform.processor() or platform.machine()}, {cores} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}; date "
            f"{_dt.datetime.now().astimezone().isoformat(timespec='seconds')}.",
            f"Data: {what}. Shipped bundle, `SegmentConfig()` defaults ({config.nfe_per_tile()} NFE / tile, "
            f"batch-invariant tiles) with noise metrics off.",
            "",
            "| run | workers | torch threads each | files | wall s (incl. cluster start) | s / file | files / min "
            "| speed-up vs this process | labels identical to this process |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, workers, threads, wall, out in runs:
            got = _labels(out)
            same = sum(np.array_equal(got[k], ref[k]) for k in ref if k in got)
            lines.append(f"| {name} | {workers} | {threads} | {len(files)} | {wall:.1f} | {wall / len(files):.2f} | "
                         f"{60 * len(files) / wall:.1f} | {base / wall:.2f}x | {same}/{len(ref)} |")
        text = "\n".join(lines) + "\n"
        sys.stdout.write(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            part = args.out.with_name(args.out.name + ".part")
            part.write_text(text)
            part.replace(args.out)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Why our Dask LocalCluster unsets MALLOC_TRIM_THRESHOLD_: one frame in a fresh process, with and without it.

    python benchmarks/malloc_trim.py [--image FRAME] [--out FILE]

dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536. Setting it switches off
glibc's adaptive mmap threshold, so torch's large temporary tensors are mapped and unmapped
on every allocation. This script segments the same 832 x 832 frame (default settings,
shipped bundle, one torch thread) in fresh spawned processes with and without that
variable, alternating, and prints a Markdown table of the times.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path

DASK_VALUE = "65536"
DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "qpi-live-dead" / "HeLa" / "0000.png"


def _segment_once(image: str, size: int = 832) -> float:
    import torch

    from napari_pgdiffseg import SegmentConfig, segment
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.files import read_image
    from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

    torch.set_num_threads(1)
    bundle = load_model("synthetic-demo")
    frame = read_image(image) if Path(image).is_file() else make_frame(0, SyntheticConfig(shape=(size, size)))[0]
    cfg = SegmentConfig(noise_metrics=False, device="cpu")
    segment(frame[:256, :256], bundle, cfg)  # warm-up
    t0 = time.perf_counter()
    segment(frame, bundle, cfg)
    return time.perf_counter() - t0


def _in_fresh_process(image: str, trim: str | None, size: int) -> float:
    saved = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    if trim is not None:
        os.environ["MALLOC_TRIM_THRESHOLD_"] = trim  # read by glibc when the process starts
    try:
        with mp.get_context("spawn").Pool(1) as pool:
            return pool.apply(_segment_once, (image, size))
    finally:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        if saved is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = saved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=str(DEFAULT_IMAGE), help="frame to segment (default: a real HeLa frame; "
                    "a synthetic 832 px frame when it is missing)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--size", type=int, default=832, help="synthetic frame size, used when --image is missing")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    times = {"unset (glibc default)": [], f"MALLOC_TRIM_THRESHOLD_={DASK_VALUE} (dask's worker default)": []}
    for _ in range(args.repeats):
        for label, trim in zip(times, (None, DASK_VALUE)):
            times[label].append(_in_fresh_process(args.image, trim, args.size))
    base = statistics.median(next(iter(times.values())))
    lines = [
        "# Segmentation time with and without MALLOC_TRIM_THRESHOLD_",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; one torch "
        f"thread; frame {args.image if Path(args.image).is_file() else f'synthetic {args.size} x {args.size}'}; default "
        "SegmentConfig (noise metrics off); fresh spawned process per run, runs alternated.",
        "",
        "| environment | runs | s / frame (median) | vs unset |",
        "|---|---:|---:|---:|",
    ]
    for label, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| {label} | {len(ts)} | {med:.1f} | {med / base:.2f}x |")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        part = args.out.with_name(args.out.name + ".part")
        part.write_text(text)
        part.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

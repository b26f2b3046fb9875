"""Speed and memory benchmark of PG-DiffSeg on this machine; prints Markdown tables.

What it measures (all in one run, so that the numbers share one machine state):

- this machine's float32 matmul GFLOP/s (2048 x 2048 @ 2048 x 2048, best of a few) and,
  as a second yardstick, the GFLOP/s of one large 3x3 convolution;
- milliseconds per network evaluation (NFE) of LDM-P and LDM-S at tile batch 1/4/16 for the
  shipped bundle (``small`` preset) and at tile batch 1/4 for the ``paper`` preset with
  random weights, with ms per tile per NFE, tiles per second per NFE, and the achieved
  GFLOP/s of each forward (FLOPs from ``torch.utils.flop_counter.FlopCounterMode``);
- variants of the shipped LDM-S at tile batch 4: eager under ``torch.inference_mode()``,
  channels-last, ``torch.compile`` (compile time apart from steady state) and eager with
  another torch thread count, each with a keep / no verdict (keep = > 5 % faster than eager);
- seconds per 832 x 832 synthetic frame with the default ``SegmentConfig()`` (noise metrics
  off) and the peak RSS of that run, in a fresh subprocess;
- with ``--huge``: a 10,000 x 10,000 float32 frame (strategy 'random', 1 sampling step) in a
  fresh subprocess, wall seconds and peak RSS against a 4 GiB limit.

Run from the repository root::

    python benchmarks/speed.py                      # full run (~10 min on 2 CPU cores)
    python benchmarks/speed.py --quick              # every table, fewer rows, ~30 s
    python benchmarks/speed.py --huge --out benchmarks/results/speed_cpu.md
    python benchmarks/speed.py --threads 1          # torch threads (default: torch's own)

On cores shared with other jobs pass ``--threads 1``: a multi-threaded torch then waits on
descheduled threads and runs many times slower (the variants table shows by how much).

The tables go to stdout (progress goes to stderr); ``--out FILE.md`` also writes exactly
what was printed, atomically. Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of
a subprocess that runs only that case (this script with a hidden ``--child`` flag); those
subprocesses run first, before this process imports torch, because Linux carries a parent's
peak RSS into the child's ru_maxrss across (v)fork + exec. Linux's VmHWM (the child's own
high-water mark) is printed next to it as a check.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

CHILD_MARK = "PGDIFFSEG_BENCH_RESULT "
HUGE_LIMIT_GIB = 4.0
KEEP_THRESHOLD = 1.05  # a variant is worth keeping when it is > 5 % faster than eager


def _log(msg: str) -> None:
    print(f"[speed] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- machine


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def loadavg() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


def _proc_status_bytes(field: str) -> int | None:
    """A kB field of /proc/self/status (Linux) in bytes, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def current_rss_bytes() -> int:
    value = _proc_status_bytes("VmRSS")
    return peak_rss_bytes() if value is None else value


def vm_hwm_bytes() -> int | None:
    """Peak RSS of this process image only (Linux VmHWM): unlike ru_maxrss, it does not
    inherit the parent's peak through fork/vfork + exec."""
    return _proc_status_bytes("VmHWM")


# ----------------------------------------------------------------------------- timing


def time_calls(fn, warmup: int, repeats: int) -> list[float]:
    """Seconds of `repeats` calls of fn() after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def matmul_gflops(size: int = 2048, repeats: int = 3) -> dict:
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    times = time_calls(lambda: torch.matmul(a, b), warmup=1, repeats=repeats)
    flops = 2.0 * size**3
    best = min(times)
    return {"op": f"torch.matmul {size} x {size} @ {size} x {size}", "gflop": flops / 1e9, "best_s": best,
            "gflops": flops / best / 1e9, "repeats": repeats}


def conv_gflops(repeats: int = 3) -> dict:
    """A second yardstick: one 3x3 convolution of the size the paper U-Nets run (oneDNN).

    torch.matmul goes to MKL sgemm, which does not use every vector unit on every CPU
    (e.g. AVX-512 on AMD); oneDNN convolutions can then run faster than matmul.
    """
    import torch

    b, c, hw = 4, 448, 32
    conv = torch.nn.Conv2d(c, c, 3, padding=1)
    x = torch.randn(b, c, hw, hw)

    def call():
        with torch.inference_mode():
            return conv(x)

    times = time_calls(call, warmup=1, repeats=repeats)
    flops = 2.0 * b * c * c * 9 * hw * hw
    best = min(times)
    return {"op": f"conv2d 3x3 {c} -> {c} ch on {b} x {c} x {hw} x {hw}", "gflop": flops / 1e9, "best_s": best,
            "gflops": flops / best / 1e9, "repeats": repeats}


def count_flops(model, x, t) -> float:
    """FLOPs of one forward (FlopCounterMode counts matmul-like ops: conv, linear, bmm)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x, t)
    return float(counter.get_total_flops())


def unet_input(model, batch: int, memory_format=None):
    import torch

    size = model.config.sample_size
    size = size if isinstance(size, int) else size[0]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, model.config.in_channels, size, size, generator=g)
    if memory_format is not None:
        x = x.contiguous(memory_format=memory_format)
    return x, torch.tensor(500)


def bench_unets(bundle, bundle_name: str, batches, warmup: int, repeats: int) -> list[dict]:
    """ms per NFE of LDM-P and LDM-S at each tile batch (plus FLOPs per forward)."""
    import torch

    rows = []
    for net_name, model in (("LDM-P", bundle.ldm_p), ("LDM-S", bundle.ldm_s)):
        n_params = sum(p.numel() for p in model.parameters())
        x1, t = unet_input(model, 1)
        flops_1 = count_flops(model, x1, t)  # FLOPs scale linearly with the batch
        for batch in batches:
            x, t = unet_input(model, batch)

            def call(model=model, x=x, t=t):
                with torch.inference_mode():
                    return model(x, t).sample

            _log(f"{bundle_name} {net_name} batch {batch}: {warmup} warm-up + {repeats} timed")
            times = time_calls(call, warmup, repeats)
            rows.append({
                "bundle": bundle_name, "net": net_name, "params": n_params, "batch": batch,
                "shape": tuple(x.shape), "repeats": repeats,
                "median_s": statistics.median(times), "best_s": min(times),
                "flops": flops_1 * batch,
            })
    return rows


def bench_variants(bundle, batch: int, warmup: int, repeats: int, do_compile: bool,
                   threads: int, other_threads: bool = True) -> list[dict]:
    """Shipped LDM-S at one tile batch: eager, channels-last, torch.compile, other threads.

    After each variant's warm-up (and compile), the timed calls are interleaved round-robin
    so that a change of load on shared cores hits every variant alike.
    """
    import torch

    eager = bundle.ldm_s
    x, t = unet_input(eager, batch)
    flops = count_flops(eager, x, t)
    variants: list[dict] = []

    def make_call(model, inp, n_threads=None):
        def call():
            prev = torch.get_num_threads()
            if n_threads is not None:
                torch.set_num_threads(n_threads)
            try:
                with torch.inference_mode():
                    return model(inp, t).sample
            finally:
                if n_threads is not None:
                    torch.set_num_threads(prev)

        return call

    variants.append({"name": "eager, inference_mode", "call": make_call(eager, x)})

    cl_model = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    variants.append({"name": "channels-last (model + input)", "call": make_call(cl_model, x_cl)})

    other = 1 if threads > 1 else max(usable_cores(), 1)
    if other_threads and other != threads:
        variants.append({"name": f"eager, {other} torch thread{'s' if other > 1 else ''} "
                                 f"(run uses {threads})", "call": make_call(eager, x, other)})

    compile_cache = None
    if do_compile:
        # A fresh inductor cache, so that the compile time is what a first run pays (a warm
        # cache from an earlier run turns ~90 s into ~5 s on 2 cores).
        compile_cache = tempfile.mkdtemp(prefix="pgdiffseg-bench-inductor-")
        previous_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = compile_cache
        compiled = torch.compile(copy.deepcopy(eager))
        v = {"name": "torch.compile (inductor, default mode, cold cache)", "call": make_call(compiled, x)}
        _log("torch.compile: compiling (first call)...")
        t0 = time.perf_counter()
        try:
            v["call"]()
            v["compile_s"] = time.perf_counter() - t0
            _log(f"torch.compile: compiled in {v['compile_s']:.1f} s")
        except Exception as exc:  # noqa: BLE001 - any compile failure is a result to print
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            v["error"] = reason[:200]
            _log(f"torch.compile failed: {v['error']}")
        finally:
            if previous_cache is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous_cache
        variants.append(v)
    else:
        variants.append({"name": "torch.compile", "skipped": "not run (--quick)"})

    live = [v for v in variants if "call" in v and "error" not in v]
    for v in live:
        _log(f"variant '{v['name']}': {warmup} warm-up")
        for _ in range(warmup):
            v["call"]()
        v["times"] = []
    _log(f"variants: {repeats} interleaved timed rounds")
    for _ in range(repeats):
        for v in live:
            t0 = time.perf_counter()
            v["call"]()
            v["times"].append(time.perf_counter() - t0)
    for v in variants:
        v["flops"] = flops
        v["batch"] = batch
        if "times" in v:
            v["median_s"] = statistics.median(v["times"])
            v["best_s"] = min(v["times"])
        v.pop("call", None)
    if compile_cache is not None:
        shutil.rmtree(compile_cache, ignore_errors=True)
    return variants


# ----------------------------------------------------------------------------- children


def _child(case: dict) -> dict:
    """Run one memory-measured case in this (fresh) process and return its numbers."""
    import numpy as np
    import torch

    from napari_pgdiffseg import SegmentConfig, segment
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

    if case.get("threads"):
        torch.set_num_threads(int(case["threads"]))
    bundle = load_model("synthetic-demo")
    size = int(case["size"])
    outputs = {}
    if case["kind"] == "frame":
        frame, _ = make_frame(int(case.get("seed", 0)), SyntheticConfig(shape=(size, size)))
        config = replace(SegmentConfig(), noise_metrics=False, batch_invariant=case.get("batch_invariant", "auto"))
    elif case["kind"] == "huge":
        # A 1000 px synthetic frame repeated into one preallocated float32 array: exactly
        # size * size * 4 bytes for the input, and no minutes spent drawing 10^4 cells.
        block, _ = make_frame(int(case.get("seed", 0)), SyntheticConfig(shape=(1000, 1000)))
        frame = np.empty((size, size), np.float32)
        for y in range(0, size, 1000):
            for x in range(0, size, 1000):
                h, w = min(1000, size - y), min(1000, size - x)
                frame[y : y + h, x : x + w] = block[:h, :w]
        config = replace(SegmentConfig(), strategy="random", sampling_steps=1, noise_metrics=False)
        if case.get("lazy"):
            # The same frame on disk, read as a dask array of row bands with plain file reads
            # (no memory map, whose pages would count as resident), labels and agreement
            # written band by band to files: nothing frame-sized in memory but the noise.
            tmp = Path(tempfile.mkdtemp(prefix="pgdiffseg-huge-"))
            frame.tofile(tmp / "frame.f32")
            del frame
            frame = _disk_frame(tmp / "frame.f32", size)
            outputs = {"labels_out": _BandFile(tmp / "labels.u8", (size, size), np.uint8),
                       "agreement_out": _BandFile(tmp / "agreement.f32", (size, size), np.float32)}
    else:
        raise ValueError(f"unknown child case {case['kind']!r}")
    gc.collect()
    rss_before = current_rss_bytes()
    peak_before = peak_rss_bytes()
    t0 = time.perf_counter()
    result = segment(frame, bundle, config, **outputs)
    wall = time.perf_counter() - t0
    if outputs:
        shutil.rmtree(outputs["labels_out"].path.parent, ignore_errors=True)
    return {
        "kind": case["kind"], "size": size, "wall_s": wall, "segment_s": result.seconds,
        "n_tiles": result.n_tiles, "nfe": result.nfe, "strategy": config.strategy,
        "inversion_steps": config.inversion_steps if config.strategy == "prior" else 0,
        "sampling_steps": config.sampling_steps, "ensemble": config.ensemble,
        "tile_batch": config.tile_batch, "nfe_config": config.nfe_per_tile(),
        "batch_invariant": config.batch_invariant,
        "input_bytes": int(np.prod(frame.shape)) * 4, "rss_before": rss_before, "peak_before": peak_before,
        "lazy": bool(case.get("lazy")),
        "peak_rss": peak_rss_bytes(), "vm_hwm": vm_hwm_bytes(), "threads": torch.get_num_threads(),
        "labels_ok": bool(tuple(result.labels.shape) == tuple(frame.shape)),
    }


def _disk_frame(path: Path, size: int):
    """A (size, size) float32 dask array read from a raw file in row bands of 512 rows."""
    import dask
    import dask.array as da
    import numpy as np

    band = 512

    def read(y0: int, h: int):
        with open(path, "rb") as fh:
            fh.seek(y0 * size * 4)
            return np.fromfile(fh, np.float32, count=h * size).reshape(h, size)

    blocks = [da.from_delayed(dask.delayed(read)(y0, min(band, size - y0)), (min(band, size - y0), size), np.float32)
              for y0 in range(0, size, band)]
    return da.concatenate(blocks, axis=0)


class _BandFile:
    """A write-only (H, W) array on disk that takes row bands (`out[y0:y1] = block`), as the stitcher writes."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype):
        import numpy as np

        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)
        with open(path, "wb") as fh:
            fh.truncate(shape[0] * shape[1] * self.dtype.itemsize)

    def __setitem__(self, key, block):
        import numpy as np

        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("_BandFile takes whole row bands only")
        y0 = key.start or 0
        with open(self.path, "r+b") as fh:
            fh.seek(y0 * self.shape[1] * self.dtype.itemsize)
            fh.write(np.ascontiguousarray(block, self.dtype).tobytes())


def run_child(case: dict, timeout: float) -> dict:
    """This script in a fresh interpreter with --child; returns its result dict (or an error)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(case)]
    _log(f"subprocess: {case}")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(CHILD_MARK):
            res = json.loads(line[len(CHILD_MARK):])
            res["process_s"] = time.perf_counter() - t0
            return res
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit code {proc.returncode}: {tail[:200]}"}


# ----------------------------------------------------------------------------- tables


def md_table(headers: list[str], rows: list[list]) -> str:
    right = ["---:" if any(isinstance(r[i], (int, float)) for r in rows) else "---"
             for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(right) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


class Num(float):
    """A float that prints with a fixed format (keeps md_table's right alignment)."""

    def __new__(cls, value, fmt: str = ".1f"):
        obj = super().__new__(cls, value)
        obj.fmt = fmt
        return obj

    def __str__(self):
        return format(float(self), self.fmt)


def nfe_table(rows: list[dict]) -> str:
    headers = ["bundle", "network", "params (M)", "input (B x C x H x W)", "tile batch", "timed runs",
               "ms / NFE (median)", "ms / NFE (best)", "ms / tile / NFE", "tiles / s per NFE"]
    body = []
    for r in rows:
        ms = r["median_s"] * 1e3
        body.append([r["bundle"], r["net"], Num(r["params"] / 1e6, ".2f"), " x ".join(map(str, r["shape"])),
                     r["batch"], r["repeats"], Num(ms), Num(r["best_s"] * 1e3), Num(ms / r["batch"]),
                     Num(r["batch"] / r["median_s"], ".2f")])
    return md_table(headers, body)


def flops_table(rows: list[dict], peak: dict, conv: dict) -> str:
    headers = ["bundle", "network", "tile batch", "GFLOP / NFE", "achieved GFLOP/s",
               "matmul GFLOP/s", "ratio to matmul", "ratio to conv yardstick"]
    body = []
    for r in rows:
        achieved = r["flops"] / r["median_s"] / 1e9
        body.append([r["bundle"], r["net"], r["batch"], Num(r["flops"] / 1e9, ".2f"), Num(achieved),
                     Num(peak["gflops"]), Num(achieved / peak["gflops"], ".3f"),
                     Num(achieved / conv["gflops"], ".3f")])
    return md_table(headers, body)


def variants_table(variants: list[dict]) -> str:
    headers = ["variant (shipped LDM-S)", "tile batch", "compile s", "ms / NFE (median)",
               "ms / NFE (best)", "speed-up vs eager", "GFLOP/s", "keep?"]
    base = next(v for v in variants if v["name"].startswith("eager, inference_mode"))
    body = []
    for v in variants:
        compile_s = Num(v["compile_s"]) if "compile_s" in v else "-"
        if "error" in v:
            body.append([v["name"], v["batch"], "-", f"failed: {v['error'].replace('|', '/')}", "-", "-", "-", "no"])
            continue
        if "skipped" in v:
            body.append([v["name"], v["batch"], "-", v["skipped"], "-", "-", "-", "-"])
            continue
        speedup = base["median_s"] / v["median_s"]
        if v is base:
            verdict = "baseline (current default)"
        elif speedup > KEEP_THRESHOLD:
            verdict = f"keep (> {KEEP_THRESHOLD - 1:.0%} faster)"
        else:
            verdict = f"no (not > {KEEP_THRESHOLD - 1:.0%} faster)"
        body.append([v["name"], v["batch"], compile_s, Num(v["median_s"] * 1e3), Num(v["best_s"] * 1e3),
                     Num(speedup, ".2f"), Num(v["flops"] / v["median_s"] / 1e9), verdict])
    return md_table(headers, body)


def _mib_or_dash(value) -> object:
    return "-" if value is None else Num(value / 2**20, ",.0f")


def frame_table(results: list[dict], size: int) -> str:
    headers = ["frame", "batch invariant", "strategy", "steps (inversion + sampling)", "ensemble", "NFE / tile",
               "tiles", "tile batch", "s / frame", "s / tile", "ms / tile / NFE", "peak RSS (MiB)", "VmHWM (MiB)"]
    rows = []
    for res in results:
        if "error" in res:
            rows.append([f"{size} x {size}", res.get("batch_invariant", "-"), "-", "-", "-", "-", "-", "-",
                         f"failed: {res['error']}", "-", "-", "-", "-"])
            continue
        s_tile = res["wall_s"] / res["n_tiles"]
        rows.append([f"{size} x {size} synthetic", res["batch_invariant"], res["strategy"],
                     f"{res['inversion_steps']} + {res['sampling_steps']}", res["ensemble"], res["nfe"],
                     res["n_tiles"], res["tile_batch"], Num(res["wall_s"], ".2f"), Num(s_tile, ".2f"),
                     Num(s_tile / res["nfe"] * 1e3), _mib_or_dash(res["peak_rss"]), _mib_or_dash(res.get("vm_hwm"))])
    return md_table(headers, rows)


def huge_passes(res: dict) -> bool:
    peak = max(res["peak_rss"], res.get("vm_hwm") or 0)
    return peak <= HUGE_LIMIT_GIB * 2**30 and res["labels_ok"]


def huge_table(results: list[dict], size: int) -> str:
    headers = ["frame", "read", "strategy", "sampling steps", "tiles", "input (MiB)", "wall s",
               "RSS before segment (MiB)", "peak RSS (MiB)", "VmHWM (MiB)", "limit", "result"]
    limit = f"{HUGE_LIMIT_GIB:g} GiB"
    rows = []
    for res in results:
        if "error" in res:
            rows.append([f"{size} x {size} float32", "-", "random", 1, "-", "-", "-", "-",
                         f"failed: {res['error']}", "-", limit, "FAIL"])
            continue
        read = ("dask array from a file, outputs to files band by band" if res.get("lazy")
                else "numpy array in memory")
        rows.append([f"{size} x {size} float32", read, res["strategy"],
                     f"{res['sampling_steps']} (memory does not depend on it)", res["n_tiles"],
                     Num(res["input_bytes"] / 2**20, ",.0f"), Num(res["wall_s"], ".1f"),
                     Num(res["rss_before"] / 2**20, ",.0f"), _mib_or_dash(res["peak_rss"]),
                     _mib_or_dash(res.get("vm_hwm")), limit, "PASS" if huge_passes(res) else "FAIL"])
    return md_table(headers, rows)


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="shipped bundle only, tile batch 1 and 4, one repeat, 256 px frame, no compile (~30 s)")
    p.add_argument("--huge", action="store_true",
                   help="also segment a 10,000 x 10,000 frame in a subprocess (peak RSS vs 4 GiB)")
    p.add_argument("--out", type=Path, help="also write the Markdown (exactly what is printed) to this file")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads for every measurement (default 0: torch's own default)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def measure(args) -> dict:
    """Run every measurement: the subprocess cases first, then the in-process ones."""
    m = {"load_start": loadavg(), "started": _dt.datetime.now().astimezone(), "t_start": time.perf_counter()}
    quick = args.quick
    m["frame_size"] = frame_size = 256 if quick else 832

    # Memory-measured cases first, while this process is still small: Linux carries a
    # parent's peak RSS into a child's ru_maxrss through (v)fork + exec, so a child started
    # after this process loaded torch and the paper models would report that peak instead.
    m["parent_peak"] = peak_rss_bytes()
    m["frame"] = run_child({"kind": "frame", "size": frame_size, "threads": args.threads}, timeout=1800)
    # The same frame with the networks batched (batch_invariant "off"): what determinism costs.
    m["frame_off"] = run_child({"kind": "frame", "size": frame_size, "threads": args.threads,
                                "batch_invariant": "off"}, timeout=1800)
    m["huge"] = None
    if args.huge:
        m["huge"] = [run_child({"kind": "huge", "size": 10_000, "threads": args.threads}, timeout=3600),
                     run_child({"kind": "huge", "size": 10_000, "threads": args.threads, "lazy": True}, timeout=3600)]

    import torch

    from napari_pgdiffseg.core.bundle import create_bundle, load_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    m["threads"] = threads = torch.get_num_threads()
    batches = (1, 4) if quick else (1, 4, 16)
    m["warmup"], m["repeats"] = warmup, repeats = (1, 1) if quick else (2, 5)

    _log("yardsticks: matmul and conv GFLOP/s")
    m["peak"] = matmul_gflops(2048, repeats=2 if quick else 5)
    m["conv"] = conv_gflops(repeats=2 if quick else 5)

    bundle = load_model("synthetic-demo")
    m["rows"] = bench_unets(bundle, "shipped (small)", batches, warmup, repeats)
    m["variants"] = bench_variants(bundle, 4, warmup, repeats if quick else 7, do_compile=not quick,
                                   threads=threads, other_threads=not quick)
    del bundle
    gc.collect()
    if not quick:
        _log("paper preset: creating random-weight bundle")
        t0 = time.perf_counter()
        paper = create_bundle("paper")
        _log(f"paper bundle built in {time.perf_counter() - t0:.1f} s")
        m["rows"] += bench_unets(paper, "paper (random weights)", (1, 4), warmup=1, repeats=1)
        del paper
        gc.collect()
    m["peak_end"] = matmul_gflops(2048, repeats=2 if quick else 3)
    return m


def _header(m: dict, quick: bool) -> list[str]:
    import torch

    return [
        "# PG-DiffSeg speed and memory benchmark" + (" (--quick)" if quick else ""),
        "",
        f"Machine: {cpu_name()} ({platform.machine()}), {usable_cores()} usable cores "
        f"(os.cpu_count {os.cpu_count()}), Python {platform.python_version()}, torch {torch.__version__}, "
        f"torch threads {m['threads']}, load average (1/5/15 min) at start {m['load_start']}, at end {loadavg()}; "
        f"date {m['started'].isoformat(timespec='seconds')}; benchmark wall time "
        f"{time.perf_counter() - m['t_start']:.0f} s.",
        "",
        "## Machine yardsticks (float32)",
        "",
        md_table(["when", "op", "GFLOP", "best ms", "runs", "GFLOP/s"],
                 [[w, p["op"], Num(p["gflop"], ".2f"), Num(p["best_s"] * 1e3), p["repeats"], Num(p["gflops"])]
                  for w, p in (("start", m["peak"]), ("start", m["conv"]), ("end", m["peak_end"]))]),
        "",
        "Ratios below use the start values. torch.matmul runs MKL sgemm and convolutions run oneDNN; "
        "where oneDNN uses wider vector units than MKL (e.g. AVX-512 on AMD CPUs), a large U-Net can "
        "exceed the matmul figure (ratio > 1), so the conv yardstick is given too.",
        "",
    ]


def _network_sections(m: dict, quick: bool) -> list[str]:
    warmup, repeats = m["warmup"], m["repeats"]
    return [
        "## Network evaluations (ms per NFE)",
        "",
        nfe_table(m["rows"]),
        "",
        "Latents are 64 x 64 for 256 px tiles; LDM-P takes the 3-channel image latent, LDM-S the n = 3 mask "
        "channels + 3 image-latent channels. Timestep 500, `torch.inference_mode()`, "
        + (f"{warmup} warm-up + {repeats} timed calls per row" if quick else
           f"shipped: {warmup} warm-up + {repeats} timed calls; paper: 1 warm-up + 1 timed call")
        + (". The paper preset is skipped with --quick." if quick else "."),
        "",
        "## Achieved GFLOP/s per U-Net forward",
        "",
        flops_table(m["rows"], m["peak"], m["conv"]),
        "",
        "FLOPs from `torch.utils.flop_counter.FlopCounterMode` (convolutions, linear layers, attention "
        "matmuls; 2 FLOPs per multiply-add) at batch 1, times the batch.",
        "",
        "## Variants of the shipped LDM-S",
        "",
        variants_table(m["variants"]),
        "",
        "Timed calls interleaved round-robin after each variant's warm-up; keep = median more than "
        f"{KEEP_THRESHOLD - 1:.0%} faster than eager.",
        "",
    ]


def _frame_section(m: dict) -> list[str]:
    from napari_pgdiffseg import SegmentConfig

    default, size = SegmentConfig(), m["frame_size"]
    frame, frame_off = m["frame"], m["frame_off"]
    out = [f"## Seconds per {size} x {size} frame (default SegmentConfig)", "",
           frame_table([frame, frame_off], size), ""]
    if "error" not in frame and "error" not in frame_off:
        out += [f"Batch-invariant tiles (one tile per network call, bit-identical labels for every tile batch; "
                f"the default on CPUs) take {frame['wall_s'] / frame_off['wall_s']:.2f}x the time of "
                "batched tiles, measured side by side above.", ""]
    out += [
        f"`SegmentConfig()` defaults at run time: strategy {default.strategy!r}, {default.inversion_steps} "
        f"inversion + {default.sampling_steps} sampling steps, ensemble {default.ensemble}, "
        f"{default.nfe_per_tile()} NFE / tile, tile batch {default.tile_batch}, overlap {default.overlap} px; "
        "run with noise_metrics=False, shipped bundle, synthetic frame (`make_frame`), one fresh subprocess "
        "(first call, no warm-up), run before this process imports torch. Peak RSS = ru_maxrss of that "
        "subprocess (imports + bundle + frame + run; it includes the launching process's peak, "
        f"{m['parent_peak'] / 2**20:.0f} MiB when launched); VmHWM = the same process's own high-water mark "
        "(Linux /proc/self/status).",
        "",
    ]
    return out


def _huge_section(m: dict) -> list[str]:
    out = ["## Huge frame (memory)", ""]
    if m["huge"] is None:
        return out + ["Not run (pass --huge)."]
    return out + [
        huge_table(m["huge"], 10_000),
        "",
        "Shipped bundle, strategy 'random', sampling_steps=1 (peak memory does not depend on the step "
        "count: every step reuses the same tile-batch tensors), noise_metrics=False, one fresh "
        "subprocess; the in-memory input frame is part of the RSS; RSS before segment = VmRSS after "
        "imports, bundle and input frame. The lazy row reads the frame through `core.source` (tiles and a "
        "strided sample for the percentiles) and writes labels and agreement into `labels_out` / "
        "`agreement_out` files; only the starting noise (n x H/4 x W/4 float32) stays frame-sized. PASS = the "
        "larger of ru_maxrss and VmHWM is within the limit and the labels have the frame's shape.",
    ]


def report(m: dict, quick: bool) -> str:
    """The markdown report of `measure`'s results."""
    lines = _header(m, quick) + _network_sections(m, quick) + _frame_section(m) + _huge_section(m)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(CHILD_MARK + json.dumps(_child(json.loads(args.child))), flush=True)
        return 0
    text = report(measure(args), args.quick)
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.out:
        write_atomic(args.out, text)
        _log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What pays on this CPU (issue 12 item 4): the same fast-default segmentation of one real
frame per shipped model, with the networks run in other ways, side by side in one process.

    python benchmarks/cpu_options.py [--data ../shared/data] [--threads 1 2] [--repeats 2]
                                     [--models slim-viability qpi-cells] [--skip onnx openvino compile]

Rows (each is `segment(frame, bundle, model_config(card))`, only the networks change):

- float32, NCHW: eager PyTorch, tiles batched, the default before 2026-12-04 (the reference);
- bfloat16 autocast (`precision="bfloat16"`), NCHW;
- channels-last: the autoencoder and U-Nets, and their inputs, in NHWC memory format
  (`engine.diffusion_networks`' default on CPUs), float32 and bfloat16 (today's default on
  CPUs with native bfloat16);
- torch.compile: the encoder and both U-Nets compiled by inductor (compile time reported
  apart, not in the row's seconds);
- ONNX Runtime and OpenVINO: the three networks exported to ONNX (torch.onnx, batch axis
  dynamic) and run by those runtimes (float32), called where PyTorch's would be;
- sampling views (models whose card has mirrored views): bfloat16 + channels-last with
  flip_scope "sampling", each tile encoded and inverted once and only LDM-S run per view; the
  other rows mirror the whole pipeline per view (flip_scope "pipeline");
- tile = frame: one tile covering the whole (scaled) frame instead of 256 px tiles with
  32 px overlap (fewer pixels through the networks, but a tile size the model never saw).

Per row: seconds per frame (best of `--repeats` after one warm-up run), the speed-up
against float32 NCHW, the share of pixels whose label equals that row's, and foreground IoU
against the frame's ground truth (HeLa 0000.png: nuclei; qpi-cells dense_img_001: cells).
Each thread count runs in a fresh subprocess. Prints Markdown tables.

    python benchmarks/cpu_options.py --precision-check [--data ../shared/data]

segments every labelled real frame (8 HeLa, 15 qpi-cells) with its shipped model in float32
and in bfloat16 autocast and prints, per model, the share of pixels labelled alike and the
foreground IoU of each against the ground truth. These models were trained on these
frames, so the IoUs are not held-out scores: the check is the difference between precisions.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from fast_default import child_json  # benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
MARK = "PGDIFFSEG_CPU_OPTIONS "
# (image, ground truth, label map of the truth)
FRAMES = {
    "slim-viability": ("qpi-live-dead/HeLa/0000.png", "qpi-live-dead/HeLa-labels/0000.png", "viability4"),
    "qpi-cells": ("qpi-cells/images/dense_img_001.tif", "qpi-cells/masks/dense_img_001.png", "instances"),
}


class _Out:
    """What diffusers' UNet2DModel returns, for callables that are not PyTorch modules."""

    def __init__(self, sample):
        self.sample = sample


class _Encode:
    """The bundle's encoder as a module: image tiles -> scaled latents (exportable)."""

    def __new__(cls, autoencoder):
        import torch

        from napari_pgdiffseg.core.models import encode_latents

        class Encode(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.ae = autoencoder

            def forward(self, x):
                return encode_latents(self.ae, x)

        return Encode()


class _UNet:
    def __new__(cls, unet):
        import torch

        class UNet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.unet = unet

            def forward(self, x, t):
                return self.unet(x, t).sample

        return UNet()


def _export(module, args, path: Path, names: list[str]) -> Path:
    import torch

    dyn = {n: {0: "batch"} for n in names if n != "t"}
    dyn["out"] = {0: "batch"}
    torch.onnx.export(module.eval(), args, str(path), input_names=names, output_names=["out"],
                      dynamic_axes=dyn, opset_version=17, dynamo=False)
    return path


def _onnx_files(bundle, folder: Path) -> dict[str, Path]:
    """The encoder, LDM-P and LDM-S as ONNX files (batch axis dynamic)."""
    import torch

    t = bundle.card.tile_size
    x = torch.zeros(2, 1, t, t)
    with torch.no_grad():
        z = _Encode(bundle.autoencoder)(x)
    n = bundle.ldm_s.config.in_channels
    step = torch.tensor([500])
    return {
        "encode": _export(_Encode(bundle.autoencoder), (x,), folder / "encode.onnx", ["x"]),
        "ldm_p": _export(_UNet(bundle.ldm_p), (torch.zeros_like(z), step), folder / "ldm_p.onnx", ["x", "t"]),
        "ldm_s": _export(_UNet(bundle.ldm_s), (torch.zeros(2, n, *z.shape[2:]), step), folder / "ldm_s.onnx", ["x", "t"]),
    }


def _runtime_networks(files: dict[str, Path], runtime: str, threads: int):
    """(encode, ldm_p, ldm_s) callables with PyTorch's signatures, run by ONNX Runtime or OpenVINO."""
    import numpy as np
    import torch

    def run_fn(path: Path):
        if runtime == "onnxruntime":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            names = [i.name for i in sess.get_inputs()]
            return lambda *a: sess.run(None, dict(zip(names, a)))[0]
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                               "INFERENCE_PRECISION_HINT": "f32"})
        req = compiled.create_infer_request()
        return lambda *a: req.infer(list(a))[compiled.output(0)].copy()

    enc, p, s = (run_fn(files[k]) for k in ("encode", "ldm_p", "ldm_s"))

    def encode(x):
        return torch.from_numpy(enc(x.numpy().astype(np.float32)))

    def unet(fn):
        def call(x, t):
            tt = np.asarray(t.cpu().numpy(), np.int64).reshape(-1)[:1]
            return _Out(torch.from_numpy(fn(x.contiguous().numpy().astype(np.float32), tt)))
        return call

    return encode, unet(p), unet(s)


@contextlib.contextmanager
def _networks(make):
    """Segment with the networks `make(bundle, device, batch_invariant, precision)` returns."""
    from napari_pgdiffseg.core import pipeline

    original = pipeline.diffusion_networks
    pipeline.diffusion_networks = make
    try:
        yield
    finally:
        pipeline.diffusion_networks = original


def child(model: str, data: Path, threads: int, repeats: int, skip: set[str]) -> dict:
    import numpy as np
    import torch

    from napari_pgdiffseg import segment
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.config import model_config
    from napari_pgdiffseg.core.engine import diffusion_networks
    from napari_pgdiffseg.core.files import read_image
    from napari_pgdiffseg.core.metrics import foreground_iou
    from napari_pgdiffseg.core.training.frames import read_mask

    torch.set_num_threads(threads)
    image_rel, truth_rel, label_map = FRAMES[model]
    frame = read_image(data / image_rel)
    truth = read_mask(data / truth_rel, label_map=label_map)
    base_cfg = dataclasses.replace(model_config(load_model(model).card), device="cpu", precision="float32",
                                   flip_scope="pipeline")

    def timed(bundle, cfg, make=None):
        ctx = _networks(make) if make is not None else contextlib.nullcontext()
        with ctx:
            t0 = time.perf_counter()
            r = segment(frame, bundle, cfg)  # warm-up (and compilation)
            first = time.perf_counter() - t0
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = segment(frame, bundle, cfg)
                best = min(best, time.perf_counter() - t0)
        return r, best, first

    rows = []

    def add(name, r, sec, first=None):
        rows.append({"name": name, "s": sec, "first": first, "tiles": r.n_tiles, "labels": r.labels,
                     "fg_iou": foreground_iou(r.labels, truth)})

    def nchw(b, device, batch_invariant, precision):
        return diffusion_networks(b, device, batch_invariant, precision, channels_last=False)

    bundle = load_model(model)
    r, s, _ = timed(bundle, base_cfg, nchw)
    add("float32, NCHW (the default before 2026-12-04)", r, s)
    r, s, _ = timed(bundle, dataclasses.replace(base_cfg, precision="bfloat16"), nchw)
    add("bfloat16 autocast, NCHW", r, s)
    r, s, _ = timed(bundle, base_cfg)
    add("float32, channels-last", r, s)
    r, s, _ = timed(bundle, dataclasses.replace(base_cfg, precision="bfloat16"))
    add("**bfloat16 autocast + channels-last** (the default on CPUs with native bfloat16)", r, s)
    if base_cfg.flips > 1:
        r, s, _ = timed(bundle, dataclasses.replace(base_cfg, precision="bfloat16", flip_scope="sampling"))
        add(f"bfloat16 + channels-last, {base_cfg.flips} views of the sampling only (flip_scope sampling)", r, s)

    if "compile" not in skip:
        cb = load_model(model)
        enc_c = torch.compile(_Encode(cb.autoencoder))
        p_c, s_c = torch.compile(cb.ldm_p), torch.compile(cb.ldm_s)
        compiled = (enc_c, p_c, s_c)
        r, s, first = timed(cb, base_cfg, lambda *a: compiled)
        add("torch.compile (inductor)", r, s, first)

    for runtime in ("onnxruntime", "openvino"):
        if runtime.replace("runtime", "") in skip or runtime in skip:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            files = _onnx_files(load_model(model), Path(tmp))
            nets_rt = _runtime_networks(files, runtime, threads)
            setup = time.perf_counter() - t0
            r, s, _ = timed(bundle, base_cfg, lambda *a, n=nets_rt: n)
        add({"onnxruntime": "ONNX Runtime (float32)", "openvino": "OpenVINO (float32)"}[runtime], r, s, setup)

    whole = load_model(model)
    h = int(round(frame.shape[0] * whole.card.input_scale))
    w = int(round(frame.shape[1] * whole.card.input_scale))
    whole.card.tile_size = -(-max(h, w) // 16) * 16  # the U-Nets need a multiple of 16 px
    r, s, _ = timed(whole, dataclasses.replace(base_cfg, overlap=0))
    add(f"tile = frame ({whole.card.tile_size} px, one tile)", r, s)

    ref = rows[0]["labels"]
    for row in rows:
        row["agree"] = float(np.mean(row.pop("labels") == ref))
    return {"model": model, "frame": image_rel, "shape": list(frame.shape), "threads": threads,
            "views": base_cfg.flips, "steps": [base_cfg.inversion_steps, base_cfg.sampling_steps], "rows": rows}


def precision_check(data: Path) -> None:
    """float32 against bfloat16 autocast on every labelled real frame (see the module doc)."""
    import numpy as np

    from napari_pgdiffseg import segment
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.config import model_config
    from napari_pgdiffseg.core.files import read_image
    from napari_pgdiffseg.core.metrics import foreground_iou
    from napari_pgdiffseg.core.training.frames import read_mask

    sets = {"slim-viability": (sorted((data / "qpi-live-dead/HeLa-labels").glob("*.png")),
                               lambda m: data / "qpi-live-dead/HeLa" / m.name, "viability4"),
            "qpi-cells": (sorted((data / "qpi-cells/masks").glob("*.png")),
                          lambda m: next((data / "qpi-cells/images").glob(m.stem + ".*")), "instances")}
    print("| model | frames | labels alike (mean, min) | fg IoU float32 | fg IoU bfloat16 | s float32 | s bfloat16 |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for model, (masks, image_of, label_map) in sets.items():
        bundle = load_model(model)
        cfg = dataclasses.replace(model_config(bundle.card), device="cpu", precision="float32")
        agree, iou32, iou16, s32, s16 = [], [], [], 0.0, 0.0
        for m in masks:
            frame, truth = read_image(image_of(m)), read_mask(m, label_map=label_map)
            t0 = time.perf_counter()
            a = segment(frame, bundle, cfg).labels
            t1 = time.perf_counter()
            b = segment(frame, bundle, dataclasses.replace(cfg, precision="bfloat16")).labels
            s32, s16 = s32 + t1 - t0, s16 + time.perf_counter() - t1
            agree.append(float(np.mean(a == b)))
            iou32.append(foreground_iou(a, truth))
            iou16.append(foreground_iou(b, truth))
        print(f"| {model} | {len(masks)} | {100 * np.mean(agree):.3f} %, {100 * min(agree):.3f} % | "
              f"{np.mean(iou32):.4f} | {np.mean(iou16):.4f} | {s32:.1f} | {s16:.1f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parents[1] / "shared/data"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(FRAMES))
    ap.add_argument("--skip", nargs="*", default=[], help="rows to leave out: compile, onnx, openvino")
    ap.add_argument("--precision-check", action="store_true",
                    help="float32 against bfloat16 labels on every labelled real frame")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.precision_check:
        precision_check(Path(args.data))
        return 0
    if args.child:
        model, threads = args.child
        print(MARK + json.dumps(child(model, Path(args.data), int(threads), args.repeats, set(args.skip))))
        return 0
    import torch

    print(f"# CPU options: seconds per real frame at the fast default ({platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {time.strftime('%Y-%m-%d')})\n")
    for model in args.models:
        skip = ["--skip", *args.skip] if args.skip else []
        results = [child_json([sys.executable, __file__, "--data", args.data, "--repeats", str(args.repeats),
                               "--child", model, str(th), *skip], MARK) for th in args.threads]
        r0 = results[0]
        print(f"## {model}: {r0['frame']} ({r0['shape'][0]} x {r0['shape'][1]}), its card's "
              f"{r0['steps'][0]} + {r0['steps'][1]} steps x {r0['views']} view(s)\n")
        print("| networks run as | tiles | " + " | ".join(
            f"s ({r['threads']} thr) | x float32 ({r['threads']} thr)" for r in results)
            + " | labels = float32's | fg IoU vs truth | setup / first run s |")
        print("|---|---:|" + "---:|---:|" * len(results) + "---:|---:|---:|")
        for i, row in enumerate(r0["rows"]):
            cells = []
            for r in results:
                x, base = r["rows"][i], r["rows"][0]
                cells += [f"{x['s']:.2f}", f"{base['s'] / x['s']:.2f}"]
            first = row["first"]
            print(f"| {row['name']} | {row['tiles']} | " + " | ".join(cells)
                  + f" | {100 * row['agree']:.2f} % | {row['fg_iou']:.3f} | "
                  + ("" if first is None else f"{first:.1f}") + " |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

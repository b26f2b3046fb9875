"""`pgdiffseg`: the command line face of the core (segment files, inspect a bundle).

Errors the user can fix are printed as one line (no traceback) with exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .core.errors import PGDiffSegError, SegmentationCancelled
from .core.pipeline import BATCH_INVARIANT_CHOICES, SETTINGS_HELP, SegmentConfig

DEMO_SEED = 20261125

def _add_config_args(p: argparse.ArgumentParser) -> None:
    defaults = SegmentConfig()
    for f in dataclasses.fields(SegmentConfig):
        if f.name == "return_scores":
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=SETTINGS_HELP[f.name])
        else:
            choices = {"strategy": ("prior", "random", "forward"), "batch_invariant": BATCH_INVARIANT_CHOICES}
            kw = {"choices": choices[f.name]} if f.name in choices else {}
            p.add_argument(flag, type=type(default), default=default, help=f"{SETTINGS_HELP[f.name]} (default: {default})", **kw)


def _config_from_args(args) -> SegmentConfig:
    names = {f.name for f in dataclasses.fields(SegmentConfig)} - {"return_scores"}
    return SegmentConfig(**{n: getattr(args, n) for n in names})


def _add_model_arg(p: argparse.ArgumentParser, nargs=None) -> None:
    from .core.bundle import DEFAULT_MODEL

    kw = {"nargs": nargs} if nargs else {}
    p.add_argument("--model", "--bundle", dest="model", default=None, metavar="NAME|FOLDER", **kw,
                   help=f"a shipped model (`pgdiffseg models`) or a bundle folder (default: {DEFAULT_MODEL}); "
                        "--bundle is the old name")


def _load(model: str | None):
    from .core.bundle import load_model

    return load_model(model)


def _expand_inputs(inputs: list[str], pattern: str) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(q for q in p.glob(pattern) if q.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise PGDiffSegError(f"input {item} does not exist")
    if not files:
        raise PGDiffSegError(f"no input files found in {', '.join(inputs)} (pattern {pattern!r})")
    return files


def cmd_segment(args) -> int:
    from tqdm import tqdm

    from .core.batch import CSV_NAME, segment_files
    from .core.bundle import resolve_model

    config = _config_from_args(args)
    files = _expand_inputs(args.inputs, args.glob)
    # With a Dask scheduler the workers load the bundle (once each); here only its card is read.
    bundle = _load(args.model) if args.scheduler is None else resolve_model(args.model)
    bar = tqdm(total=len(files), unit="file", disable=args.quiet)
    tile_bar = tqdm(unit="eval", leave=False, disable=args.quiet)

    def progress(plane, n_planes, p):
        tile_bar.total = p.evals_total
        tile_bar.n = p.evals_done
        tile_bar.set_description(f"plane {plane + 1}/{n_planes} tiles {p.tiles_done}/{p.tiles_total}")
        tile_bar.refresh()

    def on_file(i, n, row):
        bar.update(1)
        if row["status"] != "ok":
            tqdm.write(f"{row['file']}: {row['status']}")

    rows = segment_files(files, bundle, config, args.out, overwrite=args.overwrite, on_file=on_file,
                         progress=progress, min_area=args.min_area, scheduler=args.scheduler,
                         workers=args.workers)
    tile_bar.close()
    bar.close()
    n_err = sum(r["status"].startswith("error") for r in rows)
    n_ok = sum(r["status"] == "ok" for r in rows)
    print(f"{n_ok} segmented, {len(rows) - n_ok - n_err} skipped, {n_err} failed; "
          f"table: {Path(args.out) / CSV_NAME}")
    return 1 if n_err else 0


def cmd_demo(args) -> int:
    """Segment the plugin's real sample (or --image FILE, or --synthetic) and write labels, cells, figure, summary.

    The sample is scikit-image's real QPI cell, segmented with the model that fits it
    (qpi-cells) and scored against its hand-checked mask; --synthetic segments a synthetic
    frame with its truth using synthetic-demo; --image segments a file with --model
    (default: the default model).
    """
    from tqdm import tqdm

    from ._sample_data import SKIMAGE_CELL_MODEL, skimage_cell_truth
    from .core.filejob import cells_path, output_path
    from .core.data import read_image
    from .core.io import write_tiff
    from .core.metrics import foreground_iou, segmentation_scores
    from .core.pipeline import segment
    from .core.summary import InstanceConfig, cell_instances, foreground_classes, instance_dtype, summarize_planes
    from .core.synthetic import SyntheticConfig, make_frame
    from .figure import demo_figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if args.image:
        image, truth, name = read_image(args.image), None, Path(args.image).stem
    elif args.synthetic:
        image, truth = make_frame(DEMO_SEED, SyntheticConfig(shape=(512, 512), difficulty=0.5))
        name, model = "synthetic_qpi", model or "synthetic-demo"
        write_tiff(out / f"{name}.tif", image)
        write_tiff(out / f"{name}_truth.tif", truth)
    else:
        from skimage.data import cell

        image, truth, name, model = cell(), skimage_cell_truth(), "skimage_cell", model or SKIMAGE_CELL_MODEL
        write_tiff(out / f"{name}.tif", image)
        write_tiff(out / f"{name}_truth.tif", truth)
    config = _config_from_args(args)
    bundle = _load(model)
    bar = tqdm(unit="eval", desc=f"{name} ({config.strategy})", disable=args.quiet)

    def progress(p):
        bar.total = p.evals_total
        bar.n = p.evals_done
        bar.refresh()

    result = segment(image, bundle, config, progress=progress)
    bar.close()
    names = bundle.card.class_names
    cells = cell_instances(result.labels, image, names, InstanceConfig.from_dict(bundle.card.instances))
    write_tiff(cells_path(out, name), cells.astype(instance_dtype(int(cells.max()))))
    labels_path = write_tiff(output_path(out, name), result.labels)
    counts = summarize_planes([result.labels], names, instances=[cells])
    parts = [f"{name} ({Path(str(bundle.path)).name}):"]
    if truth is not None:
        if truth.max() < bundle.n_classes:
            s = segmentation_scores(result.labels, truth, bundle.n_classes)
            parts.append(f"mIoU {s['miou']:.3f}, F1 {s['f1']:.3f},")
        parts.append(f"foreground IoU {foreground_iou(result.labels, truth):.3f},")
    parts.append(", ".join(f"{counts[f'{n}_cells']} {n}" for _, n in foreground_classes(names)) + ",")
    parts.append(f"noise SSIM {result.noise_ssim:.3f}, KLD {result.noise_kld:.3f}, NFE {result.nfe}/tile x "
                 f"{result.n_tiles} tiles, {result.seconds:.1f} s on {result.device}")
    summary = " ".join(parts)
    fig = demo_figure(out / f"{name}_figure.png", image, result, bundle.card.colors, truth, title=summary)
    (out / f"{name}_summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"wrote {labels_path}, {cells_path(out, name)}, {fig}")
    return 0


def cmd_models(args) -> int:
    """The shipped models: what each labels, for which imaging, trained on what, held-out scores."""
    from .core.bundle import DEFAULT_MODEL, MODELS_DIR, peek_bundle, shipped_models

    names = shipped_models()
    if not names:
        raise PGDiffSegError(f"no models are installed in {MODELS_DIR}; reinstall napari-pgdiffseg")
    entries = []
    for name in names:
        card, _ = peek_bundle(MODELS_DIR / name)
        entries.append({"name": name, "default": name == DEFAULT_MODEL, "labels": card.mask_definition,
                        "modality": card.modality, "classes": list(card.class_names),
                        "description": card.description, "training_data": card.scores.get("training_data", ""),
                        "held_out": {k: v for k, v in card.scores.items() if k != "training_data"},
                        "path": str(MODELS_DIR / name)})
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        print(f"{e['name']}{' (default)' if e['default'] else ''}")
        print(f"  labels:    {e['labels']}; classes {', '.join(e['classes'])}")
        print(f"  imaging:   {e['modality']}")
        if e["description"]:
            print(f"  use:       {e['description']}")
        if e["training_data"]:
            print(f"  trained:   {e['training_data']}")
        for k, v in e["held_out"].items():
            print(f"  {k}: {v}")
    return 0


def cmd_info(args) -> int:
    bundle = _load(args.model)
    from .core.models import count_parameters

    info = bundle.card.to_dict()
    info["path"] = str(bundle.path)
    info["parameters"] = {n: count_parameters(getattr(bundle, n)) for n in ("autoencoder", "ldm_p", "ldm_s")}
    print(json.dumps(info, indent=2))
    return 0


def _relaunch_with_accelerate(args) -> int:
    """`train --accelerate [FLAGS]`: run this same command under `accelerate launch FLAGS`.

    FLAGS are accelerate's own (e.g. "--num_processes 4 --mixed_precision bf16"); without
    them accelerate uses the machine's `accelerate config`. The training code is the same
    either way: `accelerate launch -m napari_pgdiffseg.cli train ...` works directly too.
    """
    import shlex
    import subprocess

    argv, skip = [], False
    for a in args.argv:  # the command line minus --accelerate and its value
        if skip:
            skip = False
        elif a == "--accelerate":
            skip = args.accelerate != ""
        elif not a.startswith("--accelerate="):
            argv.append(a)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *shlex.split(args.accelerate),
           "-m", "napari_pgdiffseg.cli", *argv]
    print("pgdiffseg: " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
    return subprocess.call(cmd)


def cmd_train(args) -> int:
    import shlex

    if args.accelerate is not None:
        return _relaunch_with_accelerate(args)

    from .core.bundle import BundleCard, default_colors, load_model
    from .core.training import (
        STAGES, StageConfig, TrainConfig, build_training_data, process_state, train_bundle, with_classes,
    )

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    bad = set(stages) - set(STAGES)
    if bad:
        raise PGDiffSegError(f"unknown stage(s) {', '.join(sorted(bad))}; choose from {', '.join(STAGES)}")
    cfg = TrainConfig(
        preset=args.preset,
        prediction_type=args.prediction_type,
        autoencoder=StageConfig(args.steps_autoencoder, args.batch_autoencoder, args.crop_autoencoder, args.lr_autoencoder),
        ldm_p=StageConfig(args.steps_ldm_p, args.batch_ldm, args.crop_ldm, args.lr_ldm),
        ldm_s=StageConfig(args.steps_ldm_s, args.batch_ldm, args.crop_ldm, args.lr_ldm),
        seed=args.seed,
        device=args.device,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        checkpoint_every=args.checkpoint_every,
    )
    start = load_model(args.start_from) if args.start_from else None
    names = _class_names(args, start.card if start is not None else None)
    if start is not None:
        card = with_classes(start, names).card
    else:
        card = BundleCard(class_names=names, colors=default_colors(len(names)))
    card = _card_from_args(args, card)
    unlabelled, labelled, desc = build_training_data(
        args.data, masks=args.masks, synthetic_frames=args.synthetic, synthetic_seed=args.synthetic_seed,
        synthetic_config=_synthetic_config(args), synthetic_kind=args.synthetic_kind, label_map=_label_map(args),
        n_classes=len(names), seed=args.seed, stride=args.stride, augment=_augment(args),
        input_scale=card.input_scale, normalization=card.normalization,
    )
    main_process = process_state(args.device).is_main_process  # one of several under `accelerate launch`
    if main_process:
        print(f"training data: {desc['tiles_unlabelled']} tiles for autoencoder/LDM-P, "
              f"{desc['tiles_labelled']} labelled tiles for LDM-S")
    provenance = {"command": "pgdiffseg " + " ".join(shlex.quote(a) for a in args.argv), "data": desc}
    _, reports = train_bundle(cfg, unlabelled, labelled, args.out, stages=stages, start_from=start,
                              pretrained_autoencoder=args.pretrained_autoencoder, provenance=provenance,
                              card=card, resume=not args.no_resume)
    if main_process:
        print(f"bundle written to {args.out}")
    return 0


def _synthetic_config(args):
    """The classic generator's config from --synthetic-difficulty; the others use their defaults."""
    if args.synthetic_kind != "classic":
        return None
    from .core.synthetic import SyntheticConfig

    return SyntheticConfig(difficulty=args.synthetic_difficulty)


def cmd_train_baseline(args) -> int:
    from .core.baseline import BaselineConfig, train_baseline
    from .core.training import build_training_data

    cfg = BaselineConfig(backbone=args.backbone, steps=args.steps, batch_size=args.batch, lr=args.lr,
                         seed=args.seed, crop=args.crop, device=args.device)
    _, labelled, desc = build_training_data(
        args.data, masks=args.masks, synthetic_frames=args.synthetic, synthetic_seed=args.synthetic_seed,
        synthetic_config=_synthetic_config(args), synthetic_kind=args.synthetic_kind, label_map=_label_map(args),
        n_classes=len(_class_names(args)), seed=args.seed, augment=_augment(args),
    )
    if labelled is None:
        raise PGDiffSegError("the U-Net baseline needs labelled frames: give --data folders with masks or --synthetic N")
    print(f"training data: {len(labelled)} labelled tiles")
    train_baseline(labelled, cfg, args.out)
    print(f"baseline written to {args.out}")
    return 0


def _evaluation_frames(args, class_names):
    """(images, masks, true instances, description) from --data/--masks folders and/or --synthetic frames.

    The same loader as training (`data.read_frames`), so a frame is read one way everywhere.
    """
    from .core.data import mask_instances, read_frames
    from .core.generators import make_synthetic

    images, masks, instances, parts = [], [], [], []
    if args.data:
        frames = read_frames(args.data, args.masks, label_map=_label_map(args), n_classes=len(class_names),
                             labelled_only=True)
        images, masks, instances = list(frames.images), list(frames.masks), list(frames.instances)
        parts.append(f"{len(frames)} labelled frames of {', '.join(args.data)}"
                     + (f" (masks {', '.join(args.masks)})" if args.masks else ""))
    if args.synthetic:
        size = (args.synthetic_size, args.synthetic_size)
        si, sm, _ = make_synthetic(args.synthetic_kind, args.synthetic, args.synthetic_seed, _synthetic_config(args),
                                   shape=size, n_classes=len(class_names))
        images += list(si)
        masks += list(sm)
        instances += [mask_instances(m) for m in sm]
        parts.append(f"{args.synthetic} synthetic {args.synthetic_kind} frames of {size[0]}x{size[1]} "
                     f"(seed {args.synthetic_seed}" + (f", difficulty {args.synthetic_difficulty})"
                                                        if args.synthetic_kind == "classic" else ")"))
    if not images:
        raise PGDiffSegError("nothing to evaluate on: give --data folders with masks and/or --synthetic N")
    return images, masks, instances, "; ".join(parts)


def _fold_trainer(args, out: Path, class_names):
    """train_fold(images, masks, fold) -> (bundle, baseline predict or None) for --train-folds.

    With --start-from, each fold fine-tunes that model (only --stages); --train-synthetic N
    adds N synthetic frames (--synthetic-kind, seed --synthetic-seed + 1000) to every fold's
    training frames, never to its test frames.
    """
    from .core.bundle import load_model
    from .core.data import FrameSet
    from .core.training import StageConfig, TrainConfig, build_training_data, train_bundle, with_classes

    cfg = TrainConfig(
        preset=args.preset, prediction_type=args.prediction_type,
        autoencoder=StageConfig(args.steps_autoencoder, 16, 64, 1e-3),
        ldm_p=StageConfig(args.steps_ldm_p, 16, 128, 2e-4),
        ldm_s=StageConfig(args.steps_ldm_s, 16, args.crop_ldm, args.lr_ldm),
        seed=args.seed, device=args.device,
    )
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())

    def train_fold(images, masks, fold):
        frames = FrameSet(list(images), list(masks), [None] * len(images), [f"train frame {i}" for i in range(len(images))])
        start = with_classes(load_model(args.start_from), tuple(class_names)) if args.start_from else None
        if start is None:
            from .core.bundle import BundleCard, default_colors

            card = BundleCard(class_names=tuple(class_names), colors=default_colors(len(class_names)))
        else:
            card = start.card
        card = _card_from_args(args, card)
        unlabelled, labelled, desc = build_training_data(
            frames=frames, synthetic_frames=args.train_synthetic, synthetic_seed=args.synthetic_seed + 1000,
            synthetic_kind=args.synthetic_kind, synthetic_config=_synthetic_config(args),
            n_classes=len(class_names), tile_size=args.tile_size, stride=args.stride, seed=args.seed,
            augment=_augment(args), input_scale=card.input_scale, normalization=card.normalization,
        )
        bundle, _ = train_bundle(cfg, unlabelled, labelled, out / f"fold{fold}" / "bundle", stages=stages,
                                 start_from=start, card=card,
                                 provenance={"command": "pgdiffseg " + " ".join(args.argv), "fold": fold, "data": desc})
        predict = None
        if args.baseline_steps:
            from .core.baseline import BaselineConfig, train_baseline

            bcfg = BaselineConfig(steps=args.baseline_steps, seed=args.seed, device=args.device,
                                  crop=args.baseline_crop)
            model, _ = train_baseline(labelled, bcfg, out / f"fold{fold}" / "unet_baseline")
            predict = _baseline_predict(model, args, card.input_scale)
        return bundle.to("cpu"), predict

    return train_fold


def _baseline_predict(baseline, args, input_scale: float = 1.0):
    """The U-Net's labels of a frame, at the pixel size it was trained at (`input_scale`)."""
    import numpy as np

    from .core.baseline import segment_baseline
    from .core.preprocess import check_frame, rescale_frame, rescale_labels

    device = "cpu" if args.device == "auto" else args.device

    def predict(image):
        frame = rescale_frame(check_frame(image), input_scale)
        labels = segment_baseline(frame, baseline, tile_batch=args.tile_batch, device=device)
        return rescale_labels(labels, np.shape(image)[-2:])

    return predict


def cmd_evaluate(args) -> int:
    import platform
    import time

    import torch

    from .core.bundle import DEFAULT_MODEL, load_model, peek_bundle, resolve_model
    from .core.evaluation import TABLES, cross_validate, csv_text, markdown_table, method_tables
    from .core.io import atomic_write

    tables = list(dict.fromkeys(args.tables))
    bad = set(tables) - set(TABLES)
    if bad:
        raise PGDiffSegError(f"unknown table(s) {', '.join(sorted(bad))}; choose from {', '.join(TABLES)}")
    if args.train_folds and args.folds < 2:
        raise PGDiffSegError("--train-folds needs --folds 2 or more")
    models = args.model or [None]
    if args.train_folds:
        card = peek_bundle(resolve_model(args.start_from))[0] if args.start_from else None
    else:
        card = peek_bundle(resolve_model(models[0]))[0]
    class_names = _class_names(args, card)
    images, masks, instances, data_desc = _evaluation_frames(args, class_names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = SegmentConfig(device=args.device, tile_batch=args.tile_batch, seed=args.seed)

    baseline = None
    if args.baseline and not args.train_folds:
        from .core.baseline import load_baseline

        baseline = _baseline_predict(load_baseline(args.baseline), args)

    def all_rows(predict):
        rows = method_tables(args.inversion_steps, args.sampling_steps, base, baseline=predict,
                             nfe_sampling=args.nfe_sampling, nfe_inversion=args.nfe_inversion, mix=args.mix,
                             otsu=args.otsu)
        return [(t, m) for t in tables for m in rows[t]]

    def methods_for(predict):
        return [(t, m) for t, m in all_rows(predict) if not args.methods or m.name in args.methods]

    if args.methods:
        has_baseline = bool(args.baseline or (args.train_folds and args.baseline_steps))
        known = list(dict.fromkeys(m.name for _, m in all_rows((lambda image: image) if has_baseline else None)))
        unknown = [m for m in args.methods if m not in known]
        if unknown:
            hint = "" if has_baseline else " (the U-Net row needs --baseline, or --train-folds with --baseline-steps)"
            raise PGDiffSegError(f"no row named {', '.join(map(repr, unknown))} in the tables {', '.join(tables)}{hint}; "
                                 f"rows: {', '.join(known)}")

    if args.train_folds:
        what = f"fine-tuned from {args.start_from} ({args.stages})" if args.start_from else f"{args.preset}, from scratch"
        runs = [(f"trained per fold ({what}, LDM-S predicts {args.prediction_type})", None)]
    else:
        runs = [(p or DEFAULT_MODEL, load_model(p)) for p in models]

    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}, device {args.device}")
    header = ["# pgdiffseg evaluate", "", f"Command: `pgdiffseg {' '.join(args.argv)}`", "",
              f"Data: {data_desc}. Folds: {args.folds} (split by frame, seed {args.seed}). Machine: {machine}.", ""]
    md = list(header)
    per_run = {}
    for label, bundle in runs:
        t0 = time.perf_counter()
        tagged = None

        def rows(predict):
            nonlocal tagged
            tagged = methods_for(predict)
            return [m for _, m in tagged]

        scores = cross_validate(
            images, masks, rows, folds=args.folds, seed=args.seed, instances=instances, bundle=bundle,
            baseline=baseline, train_fold=_fold_trainer(args, out, class_names) if args.train_folds else None,
            on_frame=None if args.quiet else (lambda name, i, n: print(f"  {name}: frame {i + 1}/{n}", file=sys.stderr)),
        )
        ptype = bundle.card.prediction_type if bundle is not None else args.prediction_type
        seconds = time.perf_counter() - t0
        per_run[label] = dict(zip([(t, m.name) for t, m in tagged], scores))
        for t in tables:
            ts = [s for (tt, _), s in per_run[label].items() if tt == t]
            if not ts:
                continue
            title = f"{_TABLE_TITLES[t]}: {label} (LDM-S predicts {ptype}; inversion {args.inversion_steps} / sampling {args.sampling_steps} steps)"
            table = markdown_table(ts, title)
            md.append(table)
            print(table, flush=True)
            stem = f"{_slug(label)}_{t}"
            text = csv_text(ts, {"run": label, "prediction_type": ptype, "table": t})
            atomic_write(out / f"{stem}.csv", lambda tmp, text=text: Path(tmp).write_text(text))
        md.append(f"({label}: {seconds:.0f} s)\n")
    if len(runs) > 1 and "table2" in tables:
        rows = []
        for label, res in per_run.items():
            for (t, name), s in res.items():
                if t == "table2" and name in ("Prior x1", "Random x1", "Random x5"):
                    rows.append(dataclasses.replace(s, name=f"{label}: {name}"))
        table = markdown_table(rows, "LDM-S parameterisation, side by side", reference=None)
        md.append(table)
        print(table)
    if "nfe" in tables:
        from .figure import nfe_curve_figure

        curves = {}
        for label, res in per_run.items():
            nfe_rows = [(name, s) for (t, name), s in res.items() if t == "nfe"]
            prefix = f"{label}: " if len(per_run) > 1 else ""
            curves[prefix + "Prior x1"] = [s for n, s in nfe_rows if n.startswith("Prior ")]
            curves[prefix + "Random x1"] = [s for n, s in nfe_rows if n.startswith("Random x1 ")]
            curves[prefix + "Random x5"] = [s for n, s in nfe_rows if n.startswith("Random x5 ")]
        nfe_curve_figure(out / "nfe_curve.png", curves, title=data_desc)
        md.append("![mIoU against NFE](nfe_curve.png)\n")
    text = "\n".join(md)
    atomic_write(out / "tables.md", lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {out / 'tables.md'}")
    return 0


_TABLE_TITLES = {"table2": "Table 2 (segmentation)", "table3": "Table 3 (starting noise)",
                 "variants": "Noise variants", "nfe": "Quality against NFE"}


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "_", Path(text).name if "/" in text else text).strip("_")[:60] or "run"


def _add_data_args(p: argparse.ArgumentParser, *, synthetic_seed: int, difficulty: float, data_help: str) -> None:
    """--data/--masks folders, --label-map, --classes and --synthetic frames: shared by train, train-baseline, evaluate."""
    from .core.data import LABEL_MAP_NAMES
    from .core.generators import SYNTHETIC_KINDS

    p.add_argument("--data", nargs="*", default=[], help=data_help)
    p.add_argument("--masks", nargs="*", default=None, metavar="DIR",
                   help="a mask folder per --data folder, masks named like the images (e.g. HeLa/ with HeLa-labels/)")
    p.add_argument("--label-map", default=None,
                   help=f"mask value mapping: {', '.join(LABEL_MAP_NAMES)} or pairs like '0:1,1:1,2:2,3:0'")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names, background first (default: the model's, or background,live,dead)")
    p.add_argument("--synthetic", type=int, default=0, help="add N synthetic frames with masks")
    p.add_argument("--synthetic-kind", default="classic", choices=SYNTHETIC_KINDS,
                   help="synthetic frames: classic (whole cells, live/dead), slim (SLIM-like, nuclei live/dead), "
                        "holo (holographic phase in radians, whole cells)")
    p.add_argument("--synthetic-seed", type=int, default=synthetic_seed, help="seed of the synthetic frames")
    p.add_argument("--synthetic-difficulty", type=float, default=difficulty,
                   help="difficulty of the classic synthetic frames (0..1)")
    p.add_argument("--brightness", type=float, default=0.1,
                   help="augmentation: offset b ~ U(-B, B) added to the normalised image (training only)")
    p.add_argument("--contrast", type=float, default=0.1,
                   help="augmentation: gain c ~ U(1 - C, 1 + C) of the normalised image (training only)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="augmentation: add smoothed Gaussian noise of SD ~ U(0, N) to the normalised image, "
                        "for set-ups with a noisier background (training only)")


def _augment(args):
    from .core.data import Augment

    return Augment(brightness=args.brightness, contrast=args.contrast, noise=args.noise)


def _add_card_args(p: argparse.ArgumentParser) -> None:
    """What a trained model labels, recorded in its card: shared by train and evaluate --train-folds."""
    from .core.bundle import MASK_DEFINITIONS
    from .core.preprocess import NORMALIZATION_METHODS

    p.add_argument("--mask-definition", default=None, choices=MASK_DEFINITIONS,
                   help="what one labelled object is, recorded in the card (default: the start model's)")
    p.add_argument("--modality", default=None, help="the imaging the model is for, recorded in the card")
    p.add_argument("--input-scale", type=float, default=None, metavar="S",
                   help="model pixels per frame pixel: frames are resized by S before tiling, e.g. 0.5 so a "
                        "256 px tile sees 512 px of a frame (default: the start model's, or 1)")
    # "range" needs the calibrated interval, which only the Python API takes.
    p.add_argument("--normalization", default=None, choices=tuple(m for m in NORMALIZATION_METHODS if m != "range"),
                   help="how frames are mapped to the networks' range, recorded in the card: percentiles 1/99.8, "
                        "or the background phase (histogram peak) to -0.95 and percentile 99.8 to 1 "
                        "(default: the start model's)")
    p.add_argument("--instances", default=None, metavar="KEY=VALUE,...",
                   help="how labels become one id per cell, e.g. method=watershed,min_distance=16,min_area=100 "
                        "(methods: components, watershed; default: the start model's)")


def _card_from_args(args, card):
    """`card` with --mask-definition, --modality, --input-scale, --normalization and --instances applied."""
    from .core.preprocess import Normalization, check_input_scale
    from .core.summary import InstanceConfig

    instances = dict(card.instances)
    if args.instances:
        for part in args.instances.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise PGDiffSegError(f"--instances: expected KEY=VALUE pairs, got {part!r}")
            key = key.strip()
            value = value.strip()
            try:
                instances[key] = value if key == "method" else float(value) if key in ("smooth", "h") else int(value)
            except ValueError:
                raise PGDiffSegError(f"--instances: {key} must be a number, got {value!r}") from None
    instances = InstanceConfig.from_dict(instances).to_dict()
    scale = card.input_scale if args.input_scale is None else check_input_scale(args.input_scale)
    norm = card.normalization
    if args.normalization is not None and args.normalization != norm.method:
        norm = Normalization(method=args.normalization)
    return dataclasses.replace(card, mask_definition=args.mask_definition or card.mask_definition,
                               modality=args.modality or card.modality, instances=instances, input_scale=scale,
                               normalization=norm)


def _class_names(args, model_card=None) -> tuple[str, ...]:
    from .core.bundle import DEFAULT_CLASS_NAMES

    if args.classes:
        names = tuple(n.strip() for n in args.classes.split(",") if n.strip())
        if len(names) < 2:
            raise PGDiffSegError(f"--classes needs at least two names (background first), got {args.classes!r}")
        return names
    return tuple(model_card.class_names) if model_card is not None else DEFAULT_CLASS_NAMES


def _label_map(args):
    from .core.data import parse_label_map

    if args.label_map:
        parse_label_map(args.label_map)  # a bad spec fails here, before any file is read
    return args.label_map


def build_parser() -> argparse.ArgumentParser:
    # Choices and defaults come from the core's own configs, so the CLI cannot drift from them.
    from .core.baseline import BACKBONES, BaselineConfig
    from .core.devices import DEVICES
    from .core.models import PRESETS
    from .core.training import MIXED_PRECISION, PREDICTION_TYPES, STAGES, TrainConfig

    train, base = TrainConfig(), BaselineConfig()
    device_help = f"{', '.join(DEVICES)} or cuda:N"
    parser = argparse.ArgumentParser(prog="pgdiffseg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment image files or folders into <name>_labels.tif and <name>_cells.tif")
    seg.add_argument("inputs", nargs="+", help="image files (TIFF, PNG) or folders")
    seg.add_argument("--out", required=True, help="output folder")
    _add_model_arg(seg)
    seg.add_argument("--glob", default="*.[tp][in][fg]*", help="file pattern inside folders (TIFF and PNG)")
    seg.add_argument("--overwrite", action="store_true", help="redo files whose output exists")
    seg.add_argument("--min-area", type=int, default=None,
                     help="smallest cell kept in <name>_cells.tif and counted, in pixels (default: the model's)")
    seg.add_argument("--quiet", action="store_true", help="no progress bars")
    seg.add_argument("--scheduler", default=None, metavar="local|ADDRESS",
                     help="spread the files over Dask workers: 'local' starts a LocalCluster on this machine, "
                          "an address (tcp://host:8786) uses a running cluster (default: one file after another here)")
    seg.add_argument("--workers", type=int, default=None,
                     help="worker processes of --scheduler local (default: one per core with one torch thread each; 1 with a GPU)")
    _add_config_args(seg)
    seg.set_defaults(func=cmd_segment)

    demo = sub.add_parser("demo", help="segment the real sample cell (or --image FILE, or --synthetic): labels, "
                                       "cells, figure, summary")
    demo.add_argument("--out", default="pgdiffseg-demo", help="output folder (default: pgdiffseg-demo)")
    demo.add_argument("--image", default=None, help="a frame of your own (TIFF, PNG) instead of the sample")
    demo.add_argument("--synthetic", action="store_true",
                      help="a synthetic frame with truth, segmented with synthetic-demo, instead of the sample")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_arg(demo)
    _add_config_args(demo)
    demo.set_defaults(func=cmd_demo)

    tr = sub.add_parser("train", help="train a bundle: autoencoder, LDM-P, LDM-S (each resumable)")
    _add_data_args(tr, synthetic_seed=0, difficulty=0.25,
                   data_help="folders of images (and masks: images/ + masks/ or NAME_mask.tif)")
    tr.add_argument("--out", required=True, help="bundle folder to write (checkpoints go to OUT.ckpt)")
    tr.add_argument("--preset", default=train.preset, choices=tuple(PRESETS), help="network sizes")
    tr.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to train")
    tr.add_argument("--prediction-type", default=train.prediction_type, choices=PREDICTION_TYPES,
                    help="LDM-S target: epsilon (paper eq. 6) or sample (x0)")
    for stage, flag in (("autoencoder", "autoencoder"), ("ldm_p", "ldm-p"), ("ldm_s", "ldm-s")):
        tr.add_argument(f"--steps-{flag}", type=int, default=getattr(train, stage).steps)
    tr.add_argument("--batch-autoencoder", type=int, default=train.autoencoder.batch_size)
    tr.add_argument("--batch-ldm", type=int, default=train.ldm_s.batch_size)
    tr.add_argument("--crop-autoencoder", type=int, default=train.autoencoder.crop,
                    help="training crop in pixels (autoencoder)")
    tr.add_argument("--crop-ldm", type=int, default=train.ldm_s.crop, help="training crop in pixels (LDMs)")
    tr.add_argument("--lr-autoencoder", type=float, default=train.autoencoder.lr)
    tr.add_argument("--lr-ldm", type=float, default=train.ldm_s.lr)
    tr.add_argument("--seed", type=int, default=train.seed)
    tr.add_argument("--device", default=train.device, help=device_help)
    tr.add_argument("--mixed-precision", default=train.mixed_precision, choices=MIXED_PRECISION,
                    help="accelerate's mixed precision (bf16 also works on CPUs that support it)")
    tr.add_argument("--gradient-accumulation-steps", type=int, default=train.gradient_accumulation_steps,
                    help="accumulate gradients over N batches per optimiser step (accelerate)")
    tr.add_argument("--accelerate", nargs="?", const="", default=None, metavar="FLAGS",
                    help="run under `accelerate launch` (multi-GPU data parallel, mixed precision); FLAGS "
                         "are accelerate's, e.g. --accelerate='--num_processes 4' (default: `accelerate config`)")
    tr.add_argument("--checkpoint-every", type=int, default=train.checkpoint_every)
    tr.add_argument("--start-from", default=None, metavar="NAME|FOLDER",
                    help="a shipped model or bundle folder whose networks start the training (fine-tuning)")
    tr.add_argument("--pretrained-autoencoder", default=None,
                    help="local diffusers VQModel folder (e.g. LDM vq-f4); skips the autoencoder stage")
    tr.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    tr.add_argument("--stride", type=int, default=None, help="px between training tile origins (default: the tile size)")
    _add_card_args(tr)
    tr.set_defaults(func=cmd_train)

    tb = sub.add_parser("train-baseline", help="train the deterministic U-Net baseline (ResNet encoder, Dice loss)")
    _add_data_args(tb, synthetic_seed=0, difficulty=0.25, data_help="folders of image/mask pairs")
    tb.add_argument("--out", required=True, help="baseline folder to write")
    tb.add_argument("--backbone", default=base.backbone, choices=BACKBONES)
    tb.add_argument("--steps", type=int, default=base.steps)
    tb.add_argument("--batch", type=int, default=base.batch_size)
    tb.add_argument("--crop", type=int, default=base.crop,
                    help="training crop in px (multiple of 32; default: whole tiles)")
    tb.add_argument("--lr", type=float, default=base.lr)
    tb.add_argument("--seed", type=int, default=base.seed)
    tb.add_argument("--device", default=base.device, help=device_help)
    tb.set_defaults(func=cmd_train_baseline)

    ev = sub.add_parser("evaluate", help="score methods on labelled frames: the paper's Tables 2 and 3, mean (SD)")
    # Seed 9001: disjoint from the seed-1 frames the shipped bundle was trained on.
    _add_data_args(ev, synthetic_seed=9001, difficulty=0.5, data_help="folders of image/mask pairs")
    ev.add_argument("--synthetic-size", type=int, default=256, help="side of the synthetic frames in px")
    _add_model_arg(ev, nargs="*")
    ev.add_argument("--baseline", default=None, help="a trained U-Net baseline folder (pgdiffseg train-baseline)")
    ev.add_argument("--tables", nargs="+", default=["table2", "table3"], help="table2 table3 variants nfe")
    ev.add_argument("--methods", nargs="*", default=None, help="only these rows (method names as in the tables)")
    ev.add_argument("--folds", type=int, default=1, help="k folds split by frame: mean (SD) over folds (1: over frames)")
    ev.add_argument("--train-folds", action="store_true", help="train a bundle (and baseline) per fold first")
    ev.add_argument("--preset", default="tiny", choices=tuple(PRESETS), help="networks trained per fold")
    ev.add_argument("--prediction-type", default=train.prediction_type, choices=PREDICTION_TYPES)
    for stage, flag in (("autoencoder", "autoencoder"), ("ldm_p", "ldm-p"), ("ldm_s", "ldm-s")):
        ev.add_argument(f"--steps-{flag}", type=int, default=getattr(train, stage).steps)
    ev.add_argument("--baseline-steps", type=int, default=0, help="train the U-Net baseline per fold (0: none)")
    ev.add_argument("--baseline-crop", type=int, default=None, help="U-Net training crop in px (default: whole tiles)")
    ev.add_argument("--start-from", default=None, metavar="NAME|FOLDER",
                    help="with --train-folds: fine-tune this model per fold instead of training from scratch")
    ev.add_argument("--stages", default=",".join(STAGES), help="stages trained per fold (e.g. ldm_s)")
    ev.add_argument("--train-synthetic", type=int, default=0,
                    help="with --train-folds: add N synthetic frames (--synthetic-kind) to each fold's training frames")
    ev.add_argument("--crop-ldm", type=int, default=train.ldm_s.crop, help="LDM-S training crop in px per fold")
    ev.add_argument("--lr-ldm", type=float, default=train.ldm_s.lr, help="LDM-S learning rate per fold")
    ev.add_argument("--stride", type=int, default=None, help="px between training tile origins per fold")
    ev.add_argument("--otsu", action="store_true", help="add an Otsu-threshold reference row to table2")
    _add_card_args(ev)
    ev.add_argument("--tile-size", type=int, default=256, help="training tile size per fold")
    ev.add_argument("--inversion-steps", type=int, default=100, help="prior inversion steps (paper: 100)")
    ev.add_argument("--sampling-steps", type=int, default=200, help="LDM-S sampling steps (paper: 200)")
    ev.add_argument("--nfe-sampling", type=int, nargs="+", default=[200, 100, 50, 20, 10])
    ev.add_argument("--nfe-inversion", type=int, nargs="+", default=[100, 50, 20, 10])
    ev.add_argument("--mix", type=float, default=0.5, help="lambda of the mixed-noise variant")
    ev.add_argument("--tile-batch", type=int, default=8)
    ev.add_argument("--device", default="cpu", help=device_help)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--quiet", action="store_true", help="no per-frame progress")
    ev.add_argument("--out", required=True, help="output folder: tables.md, one CSV per table, nfe_curve.png")
    ev.set_defaults(func=cmd_evaluate)

    info = sub.add_parser("info", help="print a bundle's card and parameter counts")
    _add_model_arg(info)
    info.set_defaults(func=cmd_info)

    models = sub.add_parser("models", help="list the shipped models: what each labels, imaging, classes, scores")
    models.add_argument("--json", action="store_true", help="print JSON instead of text")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except SegmentationCancelled:
        print("pgdiffseg: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("pgdiffseg: interrupted", file=sys.stderr)
        return 130
    except (PGDiffSegError, OSError) as e:
        print(f"pgdiffseg: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

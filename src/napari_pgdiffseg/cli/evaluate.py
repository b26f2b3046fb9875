"""`pgdiffseg evaluate`: the paper's tables on labelled frames, k-fold by frame, optionally training per fold."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ..core.errors import PGDiffSegError
from ..core.config import DEFAULT_SPEED, FLIPS, SPEED_PRESETS, SegmentConfig
from ._args import (
    add_card_args,
    add_data_args,
    add_model_arg,
    add_lr_schedule_arg,
    add_timestep_power_arg,
    augment_from_args,
    card_from_args,
    class_names_from_args,
    label_map_from_args,
    slug,
    synthetic_config_from_args,
)


_TABLE_TITLES = {"table2": "Table 2 (segmentation)", "table3": "Table 3 (starting noise)",
                 "variants": "Noise variants", "nfe": "Quality against NFE"}


def _evaluation_frames(args, class_names):
    """(images, masks, true instances, description) from --data/--masks folders and/or --synthetic frames.

    The same loader as training (`data.read_frames`), so a frame is read one way everywhere.
    """
    from ..core.training import mask_instances, read_frames
    from ..core.generators import make_synthetic

    images, masks, instances, parts = [], [], [], []
    if args.data:
        frames = read_frames(args.data, args.masks, label_map=label_map_from_args(args), n_classes=len(class_names),
                             labelled_only=True)
        images, masks, instances = list(frames.images), list(frames.masks), list(frames.instances)
        parts.append(f"{len(frames)} labelled frames of {', '.join(args.data)}"
                     + (f" (masks {', '.join(args.masks)})" if args.masks else ""))
    if args.synthetic:
        size = (args.synthetic_size, args.synthetic_size)
        si, sm, _ = make_synthetic(args.synthetic_kind, args.synthetic, args.synthetic_seed, synthetic_config_from_args(args),
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
    from ..core.bundle import load_model
    from ..core.training import FrameSet
    from ..core.training import StageConfig, TrainConfig, build_training_data, train_bundle, with_classes

    cfg = TrainConfig(
        preset=args.preset, prediction_type=args.prediction_type,
        autoencoder=StageConfig(args.steps_autoencoder, 16, 64, 1e-3),
        ldm_p=StageConfig(args.steps_ldm_p, 16, 128, 2e-4),
        ldm_s=StageConfig(args.steps_ldm_s, 16, args.crop_ldm, args.lr_ldm, timestep_power=args.timestep_power,
                          lr_schedule=args.lr_schedule),
        seed=args.seed, device=args.device,
    )
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())

    def train_fold(images, masks, fold):
        frames = FrameSet(list(images), list(masks), [None] * len(images), [f"train frame {i}" for i in range(len(images))])
        start = None
        if args.start_from:
            start = with_classes(_fold_start(args, fold, len(images)), tuple(class_names))
        if start is None:
            from ..core.bundle import BundleCard, default_colors

            card = BundleCard(class_names=tuple(class_names), colors=default_colors(tuple(class_names)))
        else:
            card = start.card
        card = card_from_args(args, card)
        unlabelled, labelled, desc = build_training_data(
            frames=frames, synthetic_frames=args.train_synthetic, synthetic_seed=args.synthetic_seed + 1000,
            synthetic_kind=args.synthetic_kind, synthetic_config=synthetic_config_from_args(args),
            n_classes=len(class_names), tile_size=args.tile_size, stride=args.stride, seed=args.seed,
            augment=augment_from_args(args), input_scale=card.input_scale, normalization=card.normalization,
        )
        bundle, _ = train_bundle(cfg, unlabelled, labelled, out / f"fold{fold}" / "bundle", stages=stages,
                                 start_from=start, card=card,
                                 provenance={"command": "pgdiffseg " + " ".join(args.argv), "fold": fold,
                                             "folds": args.folds, "split_seed": args.seed, "data": desc})
        predict = None
        if args.baseline_steps:
            from ..core.training import BaselineConfig, train_baseline

            bcfg = BaselineConfig(steps=args.baseline_steps, seed=args.seed, device=args.device,
                                  crop=args.baseline_crop)
            model, _ = train_baseline(labelled, bcfg, out / f"fold{fold}" / "unet_baseline",
                                      input_scale=card.input_scale)
            predict = _baseline_predict(model, args)
        return bundle.to("cpu"), predict

    return train_fold


FOLD_FIELD = "{fold}"


def _fold_model(pattern: str, fold: int, args, n_train: int, option: str):
    """Fold `fold`'s own model: `pattern` with "{fold}" replaced, checked against its card.

    Used by --fold-models (score each fold's model on that fold's test frames) and by a
    per-fold --start-from (continue each fold model on the same frames). The card must show
    the model is fold `fold`'s of the same split: at least one training run records that
    fold and none another one (runs of `pgdiffseg evaluate --train-folds` record it; a
    `pgdiffseg train` continuation on the fold's own frames records none), with the same
    --folds and --seed where recorded and as many labelled frames as this fold trains on.
    Anything else would score frames the model trained on, and is refused.
    """
    from ..core.bundle import load_model

    path = pattern.replace(FOLD_FIELD, str(fold))
    bundle = load_model(path)
    prov = bundle.card.provenance if isinstance(bundle.card.provenance, dict) else {}
    runs = [r for r in prov.get("training_runs", []) if isinstance(r, dict) and "fold" in r]
    how = (f"{option} {pattern}: fold {fold}'s model {path} must be fold {fold}'s of an earlier "
           f"'pgdiffseg evaluate --train-folds' run with the same --folds {args.folds} and --seed {args.seed}")
    folds = sorted({r["fold"] for r in runs}, key=str)
    if folds != [fold]:
        raise PGDiffSegError(f"{how}; its card records fold(s) {folds or 'none'} (scores on frames it trained on "
                             "would not be held out)")
    for run in runs:
        for key, want in (("folds", args.folds), ("split_seed", args.seed)):
            if key in run and run[key] != want:
                raise PGDiffSegError(f"{how}; its card records {key} {run[key]!r}")
        had = (run.get("data") or {}).get("files_with_masks")
        if had is not None and had != n_train:
            raise PGDiffSegError(f"{how}; it trained on {had} labelled frames, this fold has {n_train}: "
                                 "another data set or split")
    return bundle


def _fold_start(args, fold: int, n_train: int):
    """The model fold `fold` fine-tunes: --start-from, or with "{fold}" in it that fold's own model."""
    from ..core.bundle import load_model

    if FOLD_FIELD not in args.start_from:
        return load_model(args.start_from)
    return _fold_model(args.start_from, fold, args, n_train, "--start-from")


def _baseline_predict(baseline, args):
    """The U-Net's labels of a frame (at the pixel size it was trained at: its card's input scale)."""
    from ..core.training import segment_baseline

    device = "cpu" if args.device == "auto" else args.device

    def predict(image):
        return segment_baseline(image, baseline, tile_batch=args.tile_batch, device=device)

    return predict


def cmd_evaluate(args) -> int:
    import platform
    import time

    import torch

    from ..core.bundle import DEFAULT_MODEL, load_model, peek_bundle, resolve_model
    from ..core.evaluation import TABLES, cross_validate, method_tables
    from ..core.files import atomic_write

    tables = list(dict.fromkeys(args.tables))
    bad = set(tables) - set(TABLES)
    if bad:
        raise PGDiffSegError(f"unknown table(s) {', '.join(sorted(bad))}; choose from {', '.join(TABLES)}")
    if args.train_folds and args.folds < 2:
        raise PGDiffSegError("--train-folds needs --folds 2 or more")
    if args.fold_models is not None:
        if args.train_folds or args.model:
            raise PGDiffSegError("--fold-models scores fold models already trained: leave out --train-folds and "
                                 "--model/--bundle")
        if args.folds < 2 or FOLD_FIELD not in args.fold_models:
            raise PGDiffSegError(f"--fold-models needs --folds 2 or more and {FOLD_FIELD} in the path, e.g. "
                                 f"out/cv/fold{FOLD_FIELD}/bundle")
    speed = dataclasses.replace(SegmentConfig(), **SPEED_PRESETS[args.speed])
    if args.inversion_steps is None:
        args.inversion_steps = speed.inversion_steps
    if args.sampling_steps is None:
        args.sampling_steps = speed.sampling_steps
    models = args.model or [None]
    if args.fold_models is not None:
        card = peek_bundle(resolve_model(args.fold_models.replace(FOLD_FIELD, "0")))[0]
    elif args.train_folds:
        card = peek_bundle(resolve_model(args.start_from.replace(FOLD_FIELD, "0")))[0] if args.start_from else None
    else:
        card = peek_bundle(resolve_model(models[0]))[0]
    class_names = class_names_from_args(args, card)
    images, masks, instances, data_desc = _evaluation_frames(args, class_names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = SegmentConfig(device=args.device, tile_batch=args.tile_batch, seed=args.seed)

    baseline = None
    if args.baseline and not args.train_folds:
        from ..core.training import load_baseline

        baseline = _baseline_predict(load_baseline(args.baseline), args)

    def all_rows(predict):
        rows = method_tables(args.inversion_steps, args.sampling_steps, base, baseline=predict,
                             nfe_sampling=args.nfe_sampling, nfe_inversion=args.nfe_inversion, mix=args.mix,
                             otsu=args.otsu, flips=args.flips, sampling_flips=args.sampling_flips)
        return [(t, m) for t in tables for m in rows[t]]

    def methods_for(predict):
        return [(t, m) for t, m in all_rows(predict) if not args.methods or m.name in args.methods]

    if args.methods:
        _check_methods(args, tables, all_rows)

    train_fold = None  # (fold's train images, masks, fold) -> (fold's bundle, baseline or None)
    if args.fold_models is not None:
        runs = [(f"fold models {args.fold_models}", None)]

        def train_fold(images, masks, fold):  # the fold's own model, trained before: nothing is trained
            return _fold_model(args.fold_models, fold, args, len(images), "--fold-models").to("cpu"), None
    elif args.train_folds:
        what = f"fine-tuned from {args.start_from} ({args.stages})" if args.start_from else f"{args.preset}, from scratch"
        runs = [(f"trained per fold ({what}, LDM-S predicts {args.prediction_type})", None)]
        train_fold = _fold_trainer(args, out, class_names)
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
            baseline=baseline, train_fold=train_fold,
            on_frame=None if args.quiet else (lambda name, i, n: print(f"  {name}: frame {i + 1}/{n}", file=sys.stderr)),
        )
        ptype = (bundle.card.prediction_type if bundle is not None
                 else card.prediction_type if args.fold_models is not None else args.prediction_type)
        per_run[label] = dict(zip([(t, m.name) for t, m in tagged], scores))
        md += _write_run_tables(args, out, tables, label, ptype, per_run[label])
        md.append(f"({label}: {time.perf_counter() - t0:.0f} s)\n")
    if len(runs) > 1 and "table2" in tables:
        md.append(_side_by_side(per_run))
    if "nfe" in tables:
        md.append(_nfe_figure(out, per_run, data_desc))
    text = "\n".join(md)
    atomic_write(out / "tables.md", lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {out / 'tables.md'}")
    return 0


def _check_methods(args, tables, all_rows) -> None:
    """--methods names rows that exist, or a one-line error listing those that do."""
    has_baseline = bool(args.baseline or (args.train_folds and args.baseline_steps))
    known = list(dict.fromkeys(m.name for _, m in all_rows((lambda image: image) if has_baseline else None)))
    unknown = [m for m in args.methods if m not in known]
    if unknown:
        hint = "" if has_baseline else " (the U-Net row needs --baseline, or --train-folds with --baseline-steps)"
        raise PGDiffSegError(f"no row named {', '.join(map(repr, unknown))} in the tables {', '.join(tables)}{hint}; "
                             f"rows: {', '.join(known)}")


def _write_run_tables(args, out: Path, tables, label: str, ptype: str, results: dict) -> list[str]:
    """One markdown table (printed) and one CSV per table of a run; returns the markdown."""
    from ..core.evaluation import csv_text, markdown_table
    from ..core.files import atomic_write

    md = []
    for t in tables:
        ts = [s for (tt, _), s in results.items() if tt == t]
        if not ts:
            continue
        title = (f"{_TABLE_TITLES[t]}: {label} (LDM-S predicts {ptype}; inversion {args.inversion_steps} / "
                 f"sampling {args.sampling_steps} steps)")
        table = markdown_table(ts, title)
        md.append(table)
        print(table, flush=True)
        text = csv_text(ts, {"run": label, "prediction_type": ptype, "table": t})
        atomic_write(out / f"{slug(label)}_{t}.csv", lambda tmp, text=text: Path(tmp).write_text(text))
    return md


def _side_by_side(per_run: dict) -> str:
    """Prior x1 / Random x1 / Random x5 of every model in one table (printed)."""
    from ..core.evaluation import markdown_table

    rows = []
    for label, res in per_run.items():
        for (t, name), s in res.items():
            if t == "table2" and name in ("Prior x1", "Random x1", "Random x5"):
                rows.append(dataclasses.replace(s, name=f"{label}: {name}"))
    table = markdown_table(rows, "LDM-S parameterisation, side by side", reference=None)
    print(table)
    return table


def _nfe_figure(out: Path, per_run: dict, data_desc: str) -> str:
    """nfe_curve.png: mIoU against NFE per run; returns its markdown link."""
    from ..figure import nfe_curve_figure

    curves = {}
    for label, res in per_run.items():
        nfe_rows = [(name, s) for (t, name), s in res.items() if t == "nfe"]
        prefix = f"{label}: " if len(per_run) > 1 else ""
        curves[prefix + "Prior x1"] = [s for n, s in nfe_rows if n.startswith("Prior ")]
        curves[prefix + "Random x1"] = [s for n, s in nfe_rows if n.startswith("Random x1 ")]
        curves[prefix + "Random x5"] = [s for n, s in nfe_rows if n.startswith("Random x5 ")]
    nfe_curve_figure(out / "nfe_curve.png", curves, title=data_desc)
    return "![mIoU against NFE](nfe_curve.png)\n"


def add_parsers(sub, defaults) -> None:
    from ..core.models import PRESETS
    from ..core.training import PREDICTION_TYPES, STAGES

    train, device_help = defaults["train"], defaults["device_help"]
    ev = sub.add_parser("evaluate", help="score methods on labelled frames: the paper's Tables 2 and 3, mean (SD)")
    # Seed 9001: disjoint from the seed-1 frames the shipped bundle was trained on.
    add_data_args(ev, synthetic_seed=9001, difficulty=0.5, data_help="folders of image/mask pairs")
    ev.add_argument("--synthetic-size", type=int, default=256, help="side of the synthetic frames in px")
    add_model_arg(ev, nargs="*")
    ev.add_argument("--baseline", default=None, help="a trained U-Net baseline folder (pgdiffseg train-baseline)")
    ev.add_argument("--tables", nargs="+", default=["table2", "table3"], help="table2 table3 variants nfe")
    ev.add_argument("--methods", nargs="*", default=None, help="only these rows (method names as in the tables)")
    ev.add_argument("--folds", type=int, default=1, help="k folds split by frame: mean (SD) over folds (1: over frames)")
    ev.add_argument("--train-folds", action="store_true", help="train a bundle (and baseline) per fold first")
    ev.add_argument("--fold-models", default=None, metavar="PATTERN",
                    help="score each fold's own model, trained before, on that fold's test frames: a path with "
                         "{fold} (e.g. out/cv/fold{fold}/bundle); each card must record that fold of the same split")
    ev.add_argument("--preset", default="tiny", choices=tuple(PRESETS), help="networks trained per fold")
    ev.add_argument("--prediction-type", default=train.prediction_type, choices=PREDICTION_TYPES)
    for stage, flag in (("autoencoder", "autoencoder"), ("ldm_p", "ldm-p"), ("ldm_s", "ldm-s")):
        ev.add_argument(f"--steps-{flag}", type=int, default=getattr(train, stage).steps)
    ev.add_argument("--baseline-steps", type=int, default=0, help="train the U-Net baseline per fold (0: none)")
    ev.add_argument("--baseline-crop", type=int, default=None, help="U-Net training crop in px (default: whole tiles)")
    ev.add_argument("--start-from", default=None, metavar="NAME|FOLDER",
                    help="with --train-folds: fine-tune this model per fold instead of training from scratch; "
                         "with {fold} in it (e.g. out/cv/fold{fold}/bundle), continue each fold model of an "
                         "earlier --train-folds run of the same split")
    ev.add_argument("--stages", default=",".join(STAGES), help="stages trained per fold (e.g. ldm_s)")
    ev.add_argument("--train-synthetic", type=int, default=0,
                    help="with --train-folds: add N synthetic frames (--synthetic-kind) to each fold's training frames")
    ev.add_argument("--crop-ldm", type=int, default=train.ldm_s.crop, help="LDM-S training crop in px per fold")
    ev.add_argument("--lr-ldm", type=float, default=train.ldm_s.lr, help="LDM-S learning rate per fold")
    add_timestep_power_arg(ev, train.ldm_s.timestep_power)
    add_lr_schedule_arg(ev, train.ldm_s.lr_schedule)
    ev.add_argument("--stride", type=int, default=None, help="px between training tile origins per fold")
    ev.add_argument("--otsu", action="store_true", help="add an Otsu-threshold reference row to table2")
    add_card_args(ev)
    ev.add_argument("--tile-size", type=int, default=256, help="training tile size per fold")
    ev.add_argument("--speed", default=DEFAULT_SPEED, choices=tuple(SPEED_PRESETS),
                    help="the step counts of the rows, as `segment --speed` (default: fast, what segment runs)")
    ev.add_argument("--inversion-steps", type=int, default=None,
                    help="prior inversion steps (default: the speed preset's; paper: 100)")
    ev.add_argument("--sampling-steps", type=int, default=None,
                    help="LDM-S sampling steps (default: the speed preset's; paper: 200)")
    ev.add_argument("--nfe-sampling", type=int, nargs="+", default=[200, 100, 50, 20, 10])
    ev.add_argument("--nfe-inversion", type=int, nargs="+", default=[100, 50, 20, 10])
    ev.add_argument("--mix", type=float, default=0.5, help="lambda of the mixed-noise variant")
    ev.add_argument("--flips", type=int, nargs="*", default=[], choices=FLIPS,
                    help="add table2 rows 'Prior x1, N views': test-time mirrored views (segment --flips)")
    ev.add_argument("--sampling-flips", type=int, nargs="*", default=[], choices=FLIPS,
                    help="add table2 rows 'Prior x1, N sampling views': the views of the sampling alone "
                         "(segment --flips N --flip-scope sampling)")
    ev.add_argument("--tile-batch", type=int, default=8)
    ev.add_argument("--device", default="cpu", help=device_help)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--quiet", action="store_true", help="no per-frame progress")
    ev.add_argument("--out", required=True, help="output folder: tables.md, one CSV per table, nfe_curve.png")
    ev.set_defaults(func=cmd_evaluate)

"""`pgdiffseg train` and `pgdiffseg train-baseline`."""

from __future__ import annotations

import sys

from ..core.errors import PGDiffSegError
from ._args import (
    add_card_args,
    add_data_args,
    add_lr_schedule_arg,
    add_timestep_power_arg,
    augment_from_args,
    card_from_args,
    class_names_from_args,
    label_map_from_args,
    synthetic_config_from_args,
)


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
    if args.minutes is not None or args.holdout is not None:
        return _fine_tune(args)

    from ..core.bundle import BundleCard, default_colors, load_model
    from ..core.training import (
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
        ldm_p=StageConfig(args.steps_ldm_p, args.batch_ldm, args.crop_ldm, args.lr_ldm,
                          lr_schedule=args.lr_schedule),
        ldm_s=StageConfig(args.steps_ldm_s, args.batch_ldm, args.crop_ldm, args.lr_ldm,
                          timestep_power=args.timestep_power, lr_schedule=args.lr_schedule),
        seed=args.seed,
        device=args.device,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        checkpoint_every=args.checkpoint_every,
    )
    start = load_model(args.start_from) if args.start_from else None
    names = class_names_from_args(args, start.card if start is not None else None)
    if start is not None:
        card = with_classes(start, names).card
    else:
        card = BundleCard(class_names=names, colors=default_colors(names))
    card = card_from_args(args, card)
    labeller = None
    if args.pseudo_labels:
        from ..core.training.pseudo import pseudo_labeller

        views = {} if args.pseudo_flips is None else {"flips": args.pseudo_flips, "flip_scope": "sampling"}
        labeller = pseudo_labeller(load_model(args.pseudo_labels), **views)
    elif args.pseudo_flips is not None:
        raise PGDiffSegError("--pseudo-flips sets the teacher's views: give the teacher with --pseudo-labels NAME|FOLDER")
    unlabelled, labelled, desc = build_training_data(
        args.data, masks=args.masks, synthetic_frames=args.synthetic, synthetic_seed=args.synthetic_seed,
        synthetic_config=synthetic_config_from_args(args), synthetic_kind=args.synthetic_kind, label_map=label_map_from_args(args),
        n_classes=len(names), seed=args.seed, stride=args.stride, augment=augment_from_args(args),
        input_scale=card.input_scale, normalization=card.normalization, pseudo_labeller=labeller,
    )
    main_process = process_state(args.device).is_main_process  # one of several under `accelerate launch`
    if main_process:
        print(f"training data: {desc['tiles_unlabelled']} tiles for autoencoder/LDM-P, "
              f"{desc['tiles_labelled']} labelled tiles for LDM-S"
              + (f" ({desc['pseudo_labels']['frames']} frame(s) pseudo-labelled by {args.pseudo_labels})"
                 if "pseudo_labels" in desc else ""))
    provenance = {"command": "pgdiffseg " + " ".join(shlex.quote(a) for a in args.argv), "data": desc}
    _, reports = train_bundle(cfg, unlabelled, labelled, args.out, stages=stages, start_from=start,
                              pretrained_autoencoder=args.pretrained_autoencoder, provenance=provenance,
                              card=card, resume=not args.no_resume)
    if main_process:
        print(f"bundle written to {args.out}")
    return 0


def _fine_tune(args) -> int:
    """`train --start-from M --data DIR --minutes N [--holdout F]`: the Train widget's fine-tune
    (`core.training.fine_tune`): a time budget, a hold-out part scored before and after."""
    import shlex
    from dataclasses import fields

    from ..core.bundle import load_model
    from ..core.training import FineTuneConfig, TrainConfig, fine_tune, read_frames

    if not args.start_from:
        raise PGDiffSegError("--minutes / --holdout fine-tune a model: give the model to start from with "
                             "--start-from NAME|FOLDER (e.g. --start-from slim-viability)")
    if not args.data:
        raise PGDiffSegError("a fine-tune needs --data folders of image/mask pairs (images/ + masks/, or NAME_mask.tif)")
    if args.pseudo_labels or args.pseudo_flips is not None:
        raise PGDiffSegError("--pseudo-labels is not used by a fine-tune (--minutes / --holdout); train without "
                             "--minutes / --holdout to self-train")
    if args.synthetic:
        raise PGDiffSegError("--synthetic is not used by a fine-tune (--minutes / --holdout); leave it out, or train "
                             "without --minutes")
    start = load_model(args.start_from)
    names = class_names_from_args(args, start.card)
    pairs = read_frames(args.data, args.masks, label_map=label_map_from_args(args), n_classes=len(names),
                        labelled_only=True)
    d = FineTuneConfig()
    base = TrainConfig()
    cfg = FineTuneConfig(
        train=args.train, minutes=args.minutes, steps=args.max_steps, holdout=d.holdout if args.holdout is None
        else args.holdout, seed=args.seed, device=args.device, checkpoint_every=min(args.checkpoint_every, 50),
        # the fine-tune's own defaults unless the stage flags were given other values than train's
        batch_size=d.batch_size if args.batch_ldm == base.ldm_s.batch_size else args.batch_ldm,
        crop=d.crop if args.crop_ldm == base.ldm_s.crop else args.crop_ldm,
        lr=d.lr if args.lr_ldm == base.ldm_s.lr else args.lr_ldm,
    )
    card = card_from_args(args, start.card)
    updates = {f.name: getattr(card, f.name) for f in fields(card)
               if f.name not in ("class_names", "colors") and getattr(card, f.name) != getattr(start.card, f.name)}
    provenance = {"command": "pgdiffseg " + " ".join(shlex.quote(a) for a in args.argv)}
    print(f"fine-tuning {args.start_from} on {len(pairs)} labelled frame(s) "
          f"({'no time limit' if cfg.minutes is None else f'{cfg.minutes:g} min'}"
          f"{'' if cfg.steps is None else f', at most {cfg.steps} steps'}) ...")
    result = fine_tune(start, pairs, cfg, args.out, class_names=names, card_updates=updates or None,
                       augment=augment_from_args(args), provenance=provenance)
    print(result.text())
    return 0


def cmd_train_baseline(args) -> int:
    from ..core.training import BaselineConfig, train_baseline
    from ..core.training import build_training_data

    cfg = BaselineConfig(backbone=args.backbone, steps=args.steps, batch_size=args.batch, lr=args.lr,
                         seed=args.seed, crop=args.crop, device=args.device)
    _, labelled, desc = build_training_data(
        args.data, masks=args.masks, synthetic_frames=args.synthetic, synthetic_seed=args.synthetic_seed,
        synthetic_config=synthetic_config_from_args(args), synthetic_kind=args.synthetic_kind, label_map=label_map_from_args(args),
        n_classes=len(class_names_from_args(args)), seed=args.seed, augment=augment_from_args(args),
    )
    if labelled is None:
        raise PGDiffSegError("the U-Net baseline needs labelled frames: give --data folders with masks or --synthetic N")
    print(f"training data: {len(labelled)} labelled tiles")
    train_baseline(labelled, cfg, args.out)
    print(f"baseline written to {args.out}")
    return 0


def add_parsers(sub, defaults) -> None:
    from ..core.training import BACKBONES
    from ..core.models import PRESETS
    from ..core.training import MIXED_PRECISION, PREDICTION_TYPES, STAGES, TRAIN_CHOICES

    train, base, device_help = defaults["train"], defaults["baseline"], defaults["device_help"]
    tr = sub.add_parser("train", help="train a bundle: autoencoder, LDM-P, LDM-S (each resumable)")
    add_data_args(tr, synthetic_seed=0, difficulty=0.25,
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
    add_timestep_power_arg(tr, train.ldm_s.timestep_power)
    add_lr_schedule_arg(tr, train.ldm_s.lr_schedule)
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
    tr.add_argument("--pseudo-labels", default=None, metavar="NAME|FOLDER",
                    help="self-training: this teacher model segments every --data frame without a mask (with its "
                         "card's settings) and LDM-S trains on those labels too; true masks are kept")
    tr.add_argument("--pseudo-flips", type=int, default=None, metavar="N",
                    help="mirrored views of the sampling the teacher votes over (flip scope 'sampling'; default: its card's views)")
    ft = tr.add_argument_group("fine-tuning with a time budget and a hold-out check (as the napari Train widget)")
    ft.add_argument("--minutes", type=float, default=None, metavar="N",
                    help="fine-tune --start-from on the --data pairs for N minutes (0: no time limit, then give "
                         "--max-steps); scores a held-out part before and after and warns when the new model is "
                         "not better")
    ft.add_argument("--holdout", type=float, default=None, metavar="F",
                    help="share held out for that check (default 0.2: whole frames from 5 frames on, else the "
                         "bottom rows of every frame; 0: no check); implies a fine-tune")
    ft.add_argument("--max-steps", type=int, default=None, metavar="N", help="a fine-tune's step limit")
    ft.add_argument("--train", default="ldm_s", choices=tuple(TRAIN_CHOICES),
                    help="what a fine-tune trains: LDM-S, LDM-P + LDM-S, or the U-Net baseline (a comparison)")
    add_card_args(tr)
    tr.set_defaults(func=cmd_train)

    tb = sub.add_parser("train-baseline", help="train the deterministic U-Net baseline (ResNet encoder, Dice loss)")
    add_data_args(tb, synthetic_seed=0, difficulty=0.25, data_help="folders of image/mask pairs")
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

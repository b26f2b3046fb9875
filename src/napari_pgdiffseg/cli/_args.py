"""Arguments the commands share: segmentation settings, the model, data folders, the card."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..core.errors import PGDiffSegError
from ..core.noise import STRATEGIES
from ..core.config import DEFAULT_SPEED, FLIP_SCOPES, FLIPS, SETTINGS_HELP, SPEED_PRESETS, SegmentConfig, model_config
from ..core.engine import BATCH_INVARIANT_CHOICES, PRECISIONS


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--speed and one flag per `SegmentConfig` setting; unset flags take the speed preset's value,
    else the model card's (``card.segment``), else `SegmentConfig`'s default."""
    defaults = SegmentConfig()
    p.add_argument("--speed", default=DEFAULT_SPEED, choices=tuple(SPEED_PRESETS),
                   help="speed/quality: 'fast' = the model's own settings (the fewest steps that lose no "
                        "accuracy, README 'Fast by default'); 'paper' = the paper's 100 + 200 steps, one view "
                        f"(about 15x slower) (default: {DEFAULT_SPEED})")
    for f in dataclasses.fields(SegmentConfig):
        if f.name == "return_scores":
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        text = f"{SETTINGS_HELP[f.name]} (default: the model's, else {default})"
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            choices = {"strategy": STRATEGIES, "batch_invariant": BATCH_INVARIANT_CHOICES, "flips": FLIPS,
                       "flip_scope": FLIP_SCOPES, "precision": PRECISIONS}
            kw = {"choices": choices[f.name]} if f.name in choices else {}
            p.add_argument(flag, type=type(default), default=None, help=text, **kw)


def config_from_args(args, card) -> SegmentConfig:
    """The settings of a run: the model card's (`config.model_config`), then the flags given."""
    names = {f.name for f in dataclasses.fields(SegmentConfig)} - {"return_scores"}
    return model_config(card, getattr(args, "speed", DEFAULT_SPEED),
                        **{n: getattr(args, n) for n in names if getattr(args, n) is not None})


def add_model_arg(p: argparse.ArgumentParser, nargs=None) -> None:
    from ..core.bundle import DEFAULT_MODEL

    kw = {"nargs": nargs} if nargs else {}
    p.add_argument("--model", "--bundle", dest="model", default=None, metavar="NAME|FOLDER", **kw,
                   help=f"a shipped model (`pgdiffseg models`) or a bundle folder (default: {DEFAULT_MODEL}); "
                        "--bundle is the old name")


def load_model_arg(model: str | None):
    from ..core.bundle import load_model

    return load_model(model)


def synthetic_config_from_args(args):
    """The classic generator's config from --synthetic-difficulty; the others use their defaults."""
    if args.synthetic_kind != "classic":
        return None
    from ..core.synthetic import SyntheticConfig

    return SyntheticConfig(difficulty=args.synthetic_difficulty)


def slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "_", Path(text).name if "/" in text else text).strip("_")[:60] or "run"


def add_data_args(p: argparse.ArgumentParser, *, synthetic_seed: int, difficulty: float, data_help: str) -> None:
    """--data/--masks folders, --label-map, --classes and --synthetic frames: shared by train, train-baseline, evaluate."""
    from ..core.training import LABEL_MAP_NAMES
    from ..core.generators import SYNTHETIC_KINDS

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
                        "holo (holographic phase in radians, whole cells), holo-varied (the same as other "
                        "set-ups show them: larger cells, dark rings, fringes, sparse fields)")
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


def add_timestep_power_arg(p: argparse.ArgumentParser, default: float) -> None:
    p.add_argument("--timestep-power", type=float, default=default, metavar="P",
                   help="LDM-S training timesteps t = T-1-floor(T u^P): 1 = uniform (paper); 3 puts 46%% of "
                        "draws at t >= 900, where few-step x0 sampling makes its segmentation")


def add_lr_schedule_arg(p: argparse.ArgumentParser, default: str) -> None:
    from ..core.training.diffusion import LR_SCHEDULES

    p.add_argument("--lr-schedule", default=default, choices=LR_SCHEDULES,
                   help="learning rate over the LDM stages' steps (diffusers' schedules): constant, or cosine "
                        "decay to 0 at the last step")


def augment_from_args(args):
    from ..core.training import Augment

    return Augment(brightness=args.brightness, contrast=args.contrast, noise=args.noise)


def add_card_args(p: argparse.ArgumentParser) -> None:
    """What a trained model labels, recorded in its card: shared by train and evaluate --train-folds."""
    from ..core.bundle import MASK_DEFINITIONS
    from ..core.preprocess import NORMALIZATION_METHODS

    p.add_argument("--mask-definition", default=None, choices=MASK_DEFINITIONS,
                   help="what one labelled object is, recorded in the card (default: the start model's)")
    p.add_argument("--modality", default=None, help="the imaging the model is for, recorded in the card")
    p.add_argument("--input-scale", type=float, default=None, metavar="S",
                   help="model pixels per frame pixel: frames are resized by S before tiling, e.g. 0.5 so a "
                        "256 px tile sees 512 px of a frame (default: the start model's, or 1; a fine-tune (--minutes) on "
                        "frames unlike the start model's training images uses 1)")
    # "range" needs the calibrated interval, which only the Python API takes.
    p.add_argument("--normalization", default=None, choices=tuple(m for m in NORMALIZATION_METHODS if m != "range"),
                   help="how frames are mapped to the networks' range, recorded in the card: percentiles 1/99.8, "
                        "or the background phase (histogram peak) to -0.95 and percentile 99.8 to 1 "
                        "(default: the start model's)")
    p.add_argument("--instances", default=None, metavar="KEY=VALUE,...",
                   help="how labels become one id per cell, e.g. method=watershed,min_distance=16,min_area=100 "
                        "(methods: components, watershed; default: the start model's)")
    p.add_argument("--refine", default=None, metavar="KEY=VALUE,...",
                   help="how class scores become labels, recorded in the card, e.g. margin=-0.3 (foreground "
                        "wins unless background beats it by 0.3) or snap=4 (outlines snapped to image edges "
                        "within 4 px); default: the start model's")


def key_values(text: str, flag: str, parse) -> dict:
    """'a=1,b=x' -> {'a': parse('a', '1'), ...}, with a one-line error naming `flag`."""
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise PGDiffSegError(f"{flag}: expected KEY=VALUE pairs, got {part!r}")
        key, value = key.strip(), value.strip()
        try:
            out[key] = parse(key, value)
        except ValueError:
            raise PGDiffSegError(f"{flag}: {key} must be a number, got {value!r}") from None
    return out


def card_from_args(args, card):
    """`card` with --mask-definition, --modality, --input-scale, --normalization, --instances
    and --refine applied."""
    from ..core.postprocess import Refine
    from ..core.preprocess import Normalization, check_input_scale
    from ..core.cells import InstanceConfig

    instances = dict(card.instances)
    if args.instances:
        instances.update(key_values(args.instances, "--instances", lambda k, v: v if k == "method" else
                                    float(v) if k in ("smooth", "h") else int(v)))
    instances = InstanceConfig.from_dict(instances).to_dict()
    refine = dict(card.refine)
    if args.refine:
        refine.update(key_values(args.refine, "--refine", lambda k, v: int(v) if k == "snap" else float(v)))
    refine = Refine.from_dict(refine).to_dict() if Refine.from_dict(refine).active else {}
    scale = card.input_scale if args.input_scale is None else check_input_scale(args.input_scale)
    norm = card.normalization
    if args.normalization is not None and args.normalization != norm.method:
        norm = Normalization(method=args.normalization)
    return dataclasses.replace(card, mask_definition=args.mask_definition or card.mask_definition,
                               modality=args.modality or card.modality, instances=instances, input_scale=scale,
                               normalization=norm, refine=refine)


def class_names_from_args(args, model_card=None) -> tuple[str, ...]:
    from ..core.bundle import DEFAULT_CLASS_NAMES

    if args.classes:
        names = tuple(n.strip() for n in args.classes.split(",") if n.strip())
        if len(names) < 2:
            raise PGDiffSegError(f"--classes needs at least two names (background first), got {args.classes!r}")
        return names
    return tuple(model_card.class_names) if model_card is not None else DEFAULT_CLASS_NAMES


def label_map_from_args(args):
    from ..core.training import parse_label_map

    if args.label_map:
        parse_label_map(args.label_map)  # a bad spec fails here, before any file is read
    return args.label_map

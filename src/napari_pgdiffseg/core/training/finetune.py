"""Fine-tuning a model on the user's own labelled frames, guarded by a hold-out.

    segment -> correct the labels (napari) -> `fine_tune` -> segment better

The one path of the Train widget and of `pgdiffseg train --minutes/--holdout`:

1. `check_pairs`: the (image, labels) pairs against the model's classes: shapes, values,
   no labelled object at all; stacks become planes.
2. `holdout_split`: part of the pairs is put aside before training, whole frames when
   there are at least `MIN_FRAMES_FOR_FRAME_HOLDOUT` of them, else the bottom strip of
   every frame (so a single labelled frame still has a check).
3. The starting model is scored on the held-out part, the stages train on the rest for a
   time budget and/or a step cap (`train_bundle` / `train_baseline`), the new model is
   scored on the same part, and the card records both side by side with a warning when
   the new one is not better (a fine-tune that made things worse is never silent).
4. The bundle folder is written once, atomically, at the end; Cancel leaves the last
   checkpoint in ``OUT.ckpt`` (the next run into the same folder resumes from it) and no
   bundle.
"""

from __future__ import annotations

import math
import os
import shutil

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputImageError
from .frames import FrameSet, map_labels, mask_instances
from .loop import StepReport, TrainControl

#: What a fine-tune trains: LDM-S only (the default: the segmentation network, minutes on a
#: CPU), LDM-P + LDM-S (also the prior, for images unlike the model's training images), or
#: the deterministic U-Net baseline (a comparison; it is not a bundle the widgets segment with).
TRAIN_CHOICES = {"ldm_s": ("ldm_s",), "ldm_p+ldm_s": ("ldm_p", "ldm_s"), "unet": ()}
#: How label images are read: class ids as they are, or instance ids (every object, any
#: value > 0, is of the first foreground class; touching objects stay apart when scored).
LABELS_ARE = ("classes", "instances")
#: At least this many frames: whole frames are held out, else a strip of every frame.
MIN_FRAMES_FOR_FRAME_HOLDOUT = 5
#: Held-out strips are at least this many rows (the smallest frame `segment` accepts is 16).
MIN_STRIP = 16
#: From this many frames on, the new model's card gets an unlike-the-training-data reference
#: (`core.ood`) of them; from fewer it would flag most new frames of the same kind.
MIN_FRAMES_FOR_OOD = 3
#: Training tiles without any labelled object are kept up to this many per labelled tile:
#: they teach the background, but a frame that is mostly empty would teach little else.
EMPTY_TILES_PER_LABELLED = 1.0


@dataclass(frozen=True)
class FineTuneConfig:
    """A fine-tune's settings. minutes and/or steps bound it (0 / None: that bound is off)."""

    train: str = "ldm_s"
    minutes: float | None = 5.0
    steps: int | None = None
    holdout: float = 0.2
    batch_size: int = 8
    crop: int = 128
    lr: float = 5e-4  # the shipped slim-viability recipe's fine-tuning rate (scripts/train_real.sh)
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 50
    baseline_backbone: str = "resnet18"
    #: The new model's input scale (its pixels per frame pixel); None: `fine_tune_input_scale`.
    input_scale: float | None = None

    def __post_init__(self):
        if self.train not in TRAIN_CHOICES:
            raise ConfigError(f"'train' must be one of {', '.join(TRAIN_CHOICES)}, got {self.train!r}")
        minutes = self.minutes or None
        steps = self.steps or None
        if minutes is not None and not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
            raise ConfigError(f"'minutes' must be a number > 0 (or 0 for no time limit), got {self.minutes!r}")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
            raise ConfigError(f"'steps' must be a whole number >= 1 (or 0 for no step limit), got {self.steps!r}")
        if minutes is None and steps is None:
            raise ConfigError("give a time budget ('minutes') or a number of 'steps', or both: training needs an end")
        object.__setattr__(self, "minutes", None if minutes is None else float(minutes))
        object.__setattr__(self, "steps", None if steps is None else int(steps))
        if not (isinstance(self.holdout, (int, float)) and 0 <= self.holdout <= 0.5):
            raise ConfigError(f"'holdout' must be a fraction in [0, 0.5] (0: no check), got {self.holdout!r}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"'checkpoint_every' must be >= 1, got {self.checkpoint_every}")
        if self.input_scale is not None:
            from ..preprocess import check_input_scale

            object.__setattr__(self, "input_scale", check_input_scale(self.input_scale))

    @property
    def step_cap(self) -> int:
        """The step limit of each trained stage (no limit: so many that the time ends first)."""
        return self.steps if self.steps is not None else 10**9

    @property
    def seconds(self) -> float | None:
        return None if self.minutes is None else 60.0 * self.minutes

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- pairs


def class_text(class_names: Sequence[str]) -> str:
    return ", ".join(f"{i} {n}" for i, n in enumerate(class_names))


def check_pairs(images: Sequence, labels: Sequence, names: Sequence[str], class_names: Sequence[str],
                labels_are: str = "classes") -> FrameSet:
    """(image, labels) pairs as a `FrameSet` of 2D frames with class masks and true instances.

    A stack (n, H, W) with labels of the same shape gives n frames. Raises
    `InputImageError` naming the pair and the fix for: shapes that differ, label values
    that are not classes of the model (``labels_are="classes"``), no labelled object in
    any pair. labels_are="instances": every id > 0 is one object of class 1.
    """
    if labels_are not in LABELS_ARE:
        raise ConfigError(f"labels_are must be one of {', '.join(LABELS_ARE)}, got {labels_are!r}")
    if not (len(images) == len(labels) == len(names)):
        raise ConfigError(f"got {len(images)} images, {len(labels)} label images and {len(names)} names")
    if not images:
        raise InputImageError("no training pairs: add an image with its labels (or a training folder)")
    n_classes = len(class_names)
    out = FrameSet([], [], [], [])
    for img, lab, name in zip(images, labels, names):
        img, lab = np.asarray(img), np.asarray(lab)
        if img.shape != lab.shape:
            raise InputImageError(
                f"{name}: the image is {'x'.join(map(str, img.shape))} but its labels are "
                f"{'x'.join(map(str, lab.shape))}; labels must cover the image pixel for pixel (in napari: "
                "select the image, then make a new Labels layer, or segment the image and correct the result)")
        if img.ndim < 2:
            raise InputImageError(f"{name}: an image must be 2D or a stack of 2D planes, got shape {img.shape}")
        if lab.dtype.kind not in "biu":
            if lab.dtype.kind == "f" and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)):
                lab = lab.astype(np.int64)
            else:
                raise InputImageError(f"{name}: labels must be whole numbers (class or cell ids), got {lab.dtype}")
        planes_i = img.reshape((-1,) + img.shape[-2:])
        planes_l = lab.reshape((-1,) + lab.shape[-2:])
        for k, (pi, pl) in enumerate(zip(planes_i, planes_l)):
            pname = name if len(planes_i) == 1 else f"{name} [plane {k + 1}]"
            if pl.min() < 0:
                raise InputImageError(f"{pname}: labels hold negative values; use 0 for background")
            if labels_are == "instances":
                mask = (pl > 0).astype(np.uint8)
                ids = mask_instances(pl)
            else:
                bad = np.unique(pl[pl >= n_classes])
                if bad.size:
                    shown = ", ".join(str(int(v)) for v in bad[:6]) + (" ..." if bad.size > 6 else "")
                    raise InputImageError(
                        f"{pname}: labels hold value(s) {shown}, but the model's classes are "
                        f"{class_text(class_names)}. If these are cell ids (one value per cell), read the labels "
                        "as cell ids; otherwise repaint them with a class value")
                mask = map_labels(pl, None, n_classes, name=pname)
                ids = mask_instances(mask)
            out.images.append(np.asarray(pi))
            out.masks.append(mask)
            out.instances.append(ids)
            out.names.append(pname)
    if not any(m.any() for m in out.masks):
        raise InputImageError("the labels hold no object (every pixel is background 0): paint at least one cell "
                              "or nucleus with a class value, or add a pair that has some")
    return out


def pairs_from_folder(folder: str | os.PathLike, class_names: Sequence[str], labels_are: str = "classes") -> FrameSet:
    """The image/mask pairs of a training folder (`find_frames` layouts: images/ + masks/, as
    "Add to training set" writes them, or NAME_mask.*), checked as `check_pairs`."""
    from ..files import read_image
    from .frames import find_frames

    frames = [f for f in find_frames(folder) if f.mask_path is not None]
    if not frames:
        raise InputImageError(f"{folder} holds no image/mask pairs (images/ + masks/ with the same file names, "
                              "or NAME_mask.tif beside NAME.tif)")
    return check_pairs([read_image(f.image_path) for f in frames], [read_image(f.mask_path) for f in frames],
                       [Path(f.image_path).name for f in frames], class_names, labels_are)


def merge_pairs(*sets: FrameSet) -> FrameSet:
    out = FrameSet([], [], [], [])
    for s in sets:
        for key in ("images", "masks", "instances", "names"):
            getattr(out, key).extend(getattr(s, key))
    return out


# --------------------------------------------------------------------------- hold-out


@dataclass
class HoldoutSplit:
    train: FrameSet
    held: FrameSet
    how: str  # in words, for the report and the card


def holdout_split(pairs: FrameSet, fraction: float, seed: int = 0) -> HoldoutSplit:
    """Put part of `pairs` aside: whole frames (>= MIN_FRAMES_FOR_FRAME_HOLDOUT frames) chosen
    by `seed`, else the bottom `fraction` of every frame's rows (at least MIN_STRIP rows;
    frames too small to split train whole and are not checked)."""
    n = len(pairs)
    if fraction <= 0:
        return HoldoutSplit(pairs, FrameSet([], [], [], []), "none (no check of the new model)")
    if n >= MIN_FRAMES_FOR_FRAME_HOLDOUT:
        k = max(1, int(round(n * fraction)))
        held_idx = set(np.random.default_rng(seed).permutation(n)[:k].tolist())
        pick = lambda keep: FrameSet(*([getattr(pairs, a)[i] for i in range(n) if (i in held_idx) == keep]  # noqa: E731
                                       for a in ("images", "masks", "instances", "names")))
        held = pick(True)
        return HoldoutSplit(pick(False), held, f"{k} of {n} frames held out ({', '.join(held.names)})")
    train, held = FrameSet([], [], [], []), FrameSet([], [], [], [])
    whole = []
    for img, m, ids, name in zip(pairs.images, pairs.masks, pairs.instances, pairs.names):
        h = img.shape[0]
        rows = max(MIN_STRIP, int(math.ceil(h * fraction)))
        if h - rows < MIN_STRIP:
            whole.append(name)
            for a, v in zip(("images", "masks", "instances", "names"), (img, m, ids, name)):
                getattr(train, a).append(v)
            continue
        cut = h - rows
        for s, sl in ((train, slice(0, cut)), (held, slice(cut, h))):
            s.images.append(img[sl])
            s.masks.append(m[sl])
            s.instances.append(mask_instances(ids[sl]))  # cells cut by the line are renumbered
            s.names.append(f"{name} (rows {sl.start}-{sl.stop - 1})")
    how = (f"the bottom {100 * fraction:.0f} % of every frame's rows held out (fewer than "
           f"{MIN_FRAMES_FOR_FRAME_HOLDOUT} frames)")
    if whole:
        how += f"; too small to split, trained whole and not checked: {', '.join(whole)}"
    return HoldoutSplit(train, held, how)


# --------------------------------------------------------------------------- scoring


def _summary(fg: list[float], obj: list[float], miou: list[float]) -> dict:
    def mean(v):
        v = [x for x in v if np.isfinite(x)]
        return float(np.mean(v)) if v else float("nan")

    return {"fg_iou": mean(fg), "object_f1": mean(obj), "miou": mean(miou), "frames": len(fg)}


def score_bundle(bundle, held: FrameSet, class_names: Sequence[str], device: str = "cpu",
                 cancel=None) -> dict:
    """Mean foreground IoU, object F1 (IoU >= 0.5) and mIoU (only when the model's classes are
    `class_names`) of `bundle` at its own fast settings on the held-out frames."""
    from ..cells import InstanceConfig, cell_instances
    from ..config import model_config
    from ..metrics import foreground_iou, mean_iou, object_f1
    from ..pipeline import segment

    cfg = replace(model_config(bundle.card), device=device, noise_metrics=False)
    icfg = InstanceConfig.from_dict(bundle.card.instances)
    same = tuple(bundle.card.class_names) == tuple(class_names)
    fg, obj, miou = [], [], []
    for img, m, ids in zip(held.images, held.masks, held.instances):
        r = segment(img, bundle, cfg, cancel=cancel)
        fg.append(foreground_iou(r.labels, m))
        obj.append(object_f1(cell_instances(r.labels, img, bundle.card.class_names, icfg), ids))
        miou.append(mean_iou(r.labels, m, len(class_names)) if same else float("nan"))
    return _summary(fg, obj, miou)


def score_baseline(baseline, held: FrameSet, class_names: Sequence[str], instances: dict,
                   device: str = "cpu") -> dict:
    """As `score_bundle`, for a U-Net baseline (instances as the starting model's card says)."""
    from ..cells import InstanceConfig, cell_instances
    from ..metrics import foreground_iou, mean_iou, object_f1
    from .baseline import segment_baseline

    icfg = InstanceConfig.from_dict(instances)
    fg, obj, miou = [], [], []
    for img, m, ids in zip(held.images, held.masks, held.instances):
        lab = segment_baseline(img, baseline, device=device)
        fg.append(foreground_iou(lab, m))
        obj.append(object_f1(cell_instances(lab, img, class_names, icfg), ids))
        miou.append(mean_iou(lab, m, len(class_names)))
    return _summary(fg, obj, miou)


def score_text(s: dict) -> str:
    if not s or not s.get("frames"):
        return "not checked"
    parts = [f"foreground IoU {s['fg_iou']:.3f}", f"object F1 {s['object_f1']:.3f}"]
    if np.isfinite(s.get("miou", float("nan"))):
        parts.append(f"mIoU {s['miou']:.3f}")
    return ", ".join(parts)


def verdict(before: dict, after: dict) -> tuple[bool | None, str]:
    """(better, warning): better by foreground IoU (ties broken by object F1); None: not checked."""
    if not before.get("frames") or not after.get("frames"):
        return None, "no part was held out: the new model was not checked against the starting model"
    key_b = (round(before["fg_iou"], 3), round(before["object_f1"], 3))
    key_a = (round(after["fg_iou"], 3), round(after["object_f1"], 3))
    if key_a > key_b:
        return True, ""
    return False, (f"the new model is not better than the starting model on the held-out part "
                   f"({score_text(after)} against {score_text(before)}): keep using the starting model, or "
                   "label more frames and train longer")


# --------------------------------------------------------------------------- the fine-tune


@dataclass(frozen=True)
class FineTuneProgress:
    """What a fine-tune is doing: a phase ("scoring the starting model", "training",
    "scoring the new model", "saving") and, while training, the last `StepReport`."""

    phase: str
    step: StepReport | None = None
    done: int = 0  # frames scored so far in a scoring phase
    total: int = 0


@dataclass
class FineTuneResult:
    out: Path
    kind: str  # "bundle" (the Segment widget can use it) or "baseline" (U-Net)
    before: dict
    after: dict
    better: bool | None
    warning: str
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    holdout: str = ""
    messages: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The hold-out report in a few lines (widget, CLI)."""
        lines = [f"held out: {self.holdout}",
                 f"starting model: {score_text(self.before)}",
                 f"new model:      {score_text(self.after)}"]
        if self.warning:
            lines.append(f"warning: {self.warning}")
        elif self.better:
            lines.append("the new model is better on the held-out part")
        lines += [f"note: {m}" for m in self.messages]
        lines.append(f"{self.steps} training steps in {self.seconds:.0f} s; written to {self.out}")
        return "\n".join(lines)


def _limit_empty_tiles(dataset, seed: int) -> str:
    """Keep at most EMPTY_TILES_PER_LABELLED empty tiles per tile with a labelled object."""
    t = dataset.tile_size
    has = np.array([dataset.frame_mask(int(f))[y : y + t, x : x + t].any() for f, y, x in dataset.tiles])
    n_full, n_empty = int(has.sum()), int((~has).sum())
    keep_empty = min(n_empty, max(1, int(EMPTY_TILES_PER_LABELLED * n_full)))
    if keep_empty >= n_empty:
        return ""
    empty_idx = np.flatnonzero(~has)
    chosen = np.random.default_rng(seed).choice(empty_idx, keep_empty, replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(has), chosen]))
    dataset.keep_tiles(keep)
    return (f"{n_empty} of {n_full + n_empty} training tiles hold no labelled object; {keep_empty} of them "
            "were kept (as many as the labelled tiles), so the background does not swamp the cells")


#: At most this many of the training frames are compared with the starting model's reference.
MAX_FRAMES_FOR_SCALE_CHECK = 8


def fine_tune_input_scale(bundle, images: Sequence[np.ndarray], requested: float | None = None) -> tuple[float, str]:
    """The input scale a fine-tune trains the new model at, and a note saying why.

    requested: a scale set by the user (kept as it is). Otherwise the starting model's scale
    is kept when the frames are like its training images, or when its card has no reference
    to tell. Frames unlike them (`core.ood`: the median frame's unlikeness above the card's
    warning threshold) are another kind of image, for which the starting model's pixel size
    (chosen for its own images, e.g. 0.5 for 832 px SLIM frames) has no grounds: the model is
    trained at the frames' own pixels (scale 1), which keeps the cells' outlines at full
    detail. On qpi-cells, 2 frames, 5 minutes from slim-viability, this scored a test
    foreground IoU of about 0.87 against 0.85 at 0.5 (README, benchmarks/finetune_qpi_cells.py).
    """
    from ..ood import OODReference, frame_features, frame_score

    start = float(bundle.card.input_scale)
    if requested is not None:
        return float(requested), (f"input scale {requested:g}, as set" if requested != start else "")
    ref = OODReference.from_dict(bundle.card.ood)
    if start == 1.0 or ref is None or not len(images):
        return start, ""
    scores = [frame_score(frame_features(im, bundle), ref) for im in list(images)[:MAX_FRAMES_FOR_SCALE_CHECK]]
    score = float(np.median(scores))
    if not score > ref.threshold:
        return start, ""
    return 1.0, (f"your frames are unlike the starting model's training images (unlikeness {score:.1f}, warning "
                 f"above {ref.threshold:.1f}): the new model works at their own pixel size (input scale 1, not the "
                 f"starting model's {start:g}); set an input scale to choose another")


def _class_notes(train: FrameSet, class_names: Sequence[str]) -> list[str]:
    counts = np.zeros(len(class_names), np.int64)
    for m in train.masks:
        counts += np.bincount(m.ravel(), minlength=len(class_names))[: len(class_names)]
    notes = [f"no '{n}' pixel is labelled: the model's '{n}' class is not trained further"
             for n, c in zip(class_names[1:], counts[1:]) if c == 0]
    total = counts.sum()
    fg = counts[1:].sum() / total if total else 0.0
    if 0 < fg < 0.02:
        notes.append(f"only {100 * fg:.1f} % of the labelled pixels are objects: the model may learn to call "
                     "most things background; label more cells or crop the images to the labelled part")
    return notes


def fine_tune(
    start,
    pairs: FrameSet,
    cfg: FineTuneConfig,
    out: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    card_updates: dict | None = None,
    augment=None,
    on_progress: Callable[[FineTuneProgress], None] | None = None,
    cancel=None,
    log: Callable[[str], None] = print,
    provenance: dict | None = None,
) -> FineTuneResult:
    """Fine-tune `start` (a Bundle, a shipped model's name or a bundle folder) on `pairs` and
    write the result to `out` (a bundle folder; a U-Net baseline folder for ``train="unet"``).

    class_names: the classes of the new model (default: the starting model's; others get a
    new LDM-S head, `with_classes`). `pairs` hold class ids of those classes (`check_pairs`).
    card_updates: BundleCard fields to set (e.g. instances, description; the U-Net's check
    counts objects with these instances too). A `Bundle` passed in is trained in place. Raises
    `TrainingCancelled` (nothing written, checkpoints kept) when `cancel` is set.
    """
    from ..bundle import Bundle, load_model, peek_bundle, resolve_model, save_bundle
    from ..models import PRESETS
    from ..devices import resolve_device
    from .dataset import Augment
    from .diffusion import StageConfig, TrainConfig, build_training_data, train_bundle, with_classes

    out = Path(out).expanduser()
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / "pgdiffseg.json").is_file()
                                                or (out / "unet_baseline.json").is_file())):
        raise ConfigError(f"{out} exists and is not an empty folder or a model folder: choose a new folder for the model")
    notify = on_progress or (lambda p: None)
    if isinstance(start, Bundle):
        bundle, parent = start, str(start.path or start.card.name or "a bundle")
    else:
        path = resolve_model(start)
        peek_bundle(path)
        bundle, parent = load_model(path), str(start)
    device = str(resolve_device(cfg.device))
    names = tuple(class_names) if class_names else tuple(bundle.card.class_names)
    split = holdout_split(pairs, cfg.holdout, cfg.seed)
    if not any(m.any() for m in split.train.masks):
        raise InputImageError("after the hold-out, the training part holds no labelled object: label more of the "
                              "image (cells in its upper part too) or add another pair")
    messages = _class_notes(split.train, names)

    def scoring(phase: str, score):
        notify(FineTuneProgress(phase, total=len(split.held)))
        return score() if len(split.held) else {}

    before = scoring("scoring the starting model", lambda: score_bundle(bundle, split.held, names, device, cancel))
    if cancel is not None and cancel.is_set():
        from ..errors import TrainingCancelled

        raise TrainingCancelled("training cancelled before it started; nothing was written")

    losses: list[float] = []

    def on_step(r: StepReport) -> None:
        losses.append(r.loss)
        notify(FineTuneProgress("training", r))

    control = TrainControl(cancel=cancel, on_step=on_step)
    bundle = with_classes(bundle, names)
    card = bundle.card if not card_updates else replace(bundle.card, **card_updates)
    requested = cfg.input_scale if cfg.input_scale is not None else (card_updates or {}).get("input_scale")
    scale, scale_note = fine_tune_input_scale(bundle, split.train.images, requested)
    card = replace(card, input_scale=scale)
    if scale_note:
        messages.append(scale_note)
    augment = Augment() if augment is None else augment
    _, labelled, desc = build_training_data(
        frames=split.train, n_classes=len(names), seed=cfg.seed, augment=augment,
        input_scale=card.input_scale, normalization=card.normalization, tile_size=card.tile_size,
    )
    note = _limit_empty_tiles(labelled, cfg.seed)
    if note:
        messages.append(note)
    desc.update(frames=list(split.train.names), held_out=list(split.held.names), holdout=split.how,
                tiles_labelled=len(labelled))
    if cfg.train == "unet":
        from .baseline import BaselineConfig, train_baseline

        bcfg = BaselineConfig(backbone=cfg.baseline_backbone, steps=cfg.step_cap, batch_size=cfg.batch_size,
                              lr=1e-3, seed=cfg.seed, crop=cfg.crop, device=device)
        net, report = train_baseline(labelled, bcfg, None, log, class_names=names, control=control,
                                     seconds=cfg.seconds, input_scale=card.input_scale)
        after = scoring("scoring the new model", lambda: score_baseline(net, split.held, names, card.instances, device))
        better, warning = verdict(before, after)
        net.card.training.update(parent=parent, fine_tune=cfg.to_dict(), data=desc,
                                 holdout={"before": before, "after": after, "better": better, "warning": warning})
        notify(FineTuneProgress("saving"))
        from .baseline import save_baseline

        save_baseline(net, out, overwrite=True)
        return FineTuneResult(out, "baseline", before, after, better, warning, report.steps,
                              report.seconds, losses, split.how, messages)

    stages = TRAIN_CHOICES[cfg.train]
    scfg = StageConfig(cfg.step_cap, cfg.batch_size, cfg.crop, cfg.lr)
    tcfg = TrainConfig(preset=card.preset if card.preset in PRESETS else "small",
                       prediction_type=card.prediction_type, ldm_p=scfg, ldm_s=scfg, seed=cfg.seed,
                       device=cfg.device, checkpoint_every=cfg.checkpoint_every)
    prov = {"command": "fine-tune", "parent": parent, "data": desc, "fine_tune": cfg.to_dict(), **(provenance or {})}
    trained, reports = train_bundle(tcfg, labelled, labelled, out, stages=stages, start_from=bundle, card=card,
                                    provenance=prov, log=log, control=control, seconds=cfg.seconds, save=False)
    after = scoring("scoring the new model", lambda: score_bundle(trained, split.held, names, device, cancel))
    better, warning = verdict(before, after)
    steps = sum(r.steps for r in reports)
    seconds = sum(r.seconds for r in reports)
    # The parent's held-out scores describe the parent: the card keeps only this check's.
    scores = {}
    if after.get("frames"):
        part = f"over {after['frames']} held-out part(s)"
        scores = {
            "hold-out: fg_iou": f"{after['fg_iou']:.3f} {part} (card setting)",
            "hold-out: object_f1": f"{after['object_f1']:.3f} {part} (card setting)",
            "hold-out, starting model: fg_iou": f"{before['fg_iou']:.3f} {part}",
            "hold-out, starting model: object_f1": f"{before['object_f1']:.3f} {part}",
            "hold-out": split.how,
        }
    prov_all = dict(trained.card.provenance)
    runs = list(prov_all.get("training_runs", []))
    if runs:
        runs[-1] = {**runs[-1], "holdout": {"before": before, "after": after, "better": better, "warning": warning}}
        prov_all["training_runs"] = runs
    description = (f"Fine-tuned from {Path(parent).name} on {len(split.train)} frame part(s) of your own "
                   f"({', '.join(Path(n).name for n in split.train.names[:4])}{' ...' if len(split.train) > 4 else ''}), "
                   f"{steps} steps in {seconds:.0f} s.")
    if warning:
        description += " Warning: " + warning
    ood = {}
    if len(pairs) >= MIN_FRAMES_FOR_OOD:  # the unlike-the-training-data reference of the user's frames
        from ..ood import frame_features, reference_from_features

        ood = reference_from_features([frame_features(im, trained) for im in pairs.images],
                                      f"fine-tune frames ({len(pairs)})").to_dict()
    else:
        messages.append(f"fewer than {MIN_FRAMES_FOR_OOD} frames: the new model has no reference of its training "
                        "images, so it cannot warn when an image is unlike them")
    trained.card = replace(trained.card, scores=scores, provenance=prov_all, ood=ood,
                           name=out.name, description=description if not (card_updates or {}).get("description")
                           else card_updates["description"])
    notify(FineTuneProgress("saving"))
    save_bundle(trained.to("cpu"), out, overwrite=True)
    ckpt = out.with_name(out.name + ".ckpt")
    shutil.rmtree(ckpt, ignore_errors=True)  # the bundle holds the weights; a new run starts afresh
    return FineTuneResult(out, "bundle", before, after, better, warning, steps, seconds, losses, split.how, messages)


__all__ = ["EMPTY_TILES_PER_LABELLED", "FineTuneConfig", "FineTuneProgress", "FineTuneResult", "HoldoutSplit",
           "LABELS_ARE", "MIN_FRAMES_FOR_FRAME_HOLDOUT", "TRAIN_CHOICES", "check_pairs", "fine_tune", "fine_tune_input_scale",
           "holdout_split", "merge_pairs", "pairs_from_folder", "score_bundle", "score_text", "verdict"]

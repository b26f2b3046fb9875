"""The paper's deterministic baseline (Sec. 4.4.1): a U-Net with a ResNet encoder, Dice loss.

PG-DiffSeg is compared with deterministic segmentation networks trained on the same 256 px
tiles with the same augmentation. This module trains that baseline from scratch (monai's
`FlexibleUNet`, ``pretrained=False``: nothing is downloaded), saves it as a folder of two
files, loads it back with the same kind of checks as `bundle.load_bundle`, and segments
frames of any size through the same checks, normalisation and overlapping tiling as
`pipeline.segment`, so both methods can be scored by one harness::

    baseline/
      unet_baseline.safetensors   the state dict (safetensors, never pickle)
      unet_baseline.json          backbone, classes, input normalisation, tile size,
                                  training config and report, machine

Training reuses `training.loop`'s batch iterator and cropping, so the baseline sees exactly
the tiles, shuffling and augmentation draws that the diffusion stages see.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..devices import DEVICES, resolve_device
from ..engine import TileRun
from ..errors import BundleError, ConfigError, TrainingCancelled
from ..files import atomic_replace_dir
from ..preprocess import (
    Normalization, check_frame, check_input_scale, normalize, replace_outliers, rescale_frame, rescale_labels,
)
from ..tiling import Stitcher, TileGrid
from .dataset import TileDataset
from .loop import TrainControl, machine_info, random_crop, tile_batches

__all__ = [
    "BACKBONES",
    "Baseline",
    "BaselineCard",
    "BaselineConfig",
    "BaselineReport",
    "build_unet",
    "load_baseline",
    "save_baseline",
    "segment_baseline",
    "train_baseline",
]

FORMAT = "pgdiffseg-unet-baseline"
FORMAT_VERSION = 1
WEIGHTS_FILE = "unet_baseline.safetensors"
CARD_FILE = "unet_baseline.json"
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
# The ResNet encoder halves the resolution five times; tiles and crops must divide by 32
# (monai's decoder pads odd sizes, but then skip connections no longer line up exactly).
_NET_MULTIPLE = 32
# Smallest training crop: at 32 px the bottleneck is 1x1, and BatchNorm in training mode
# fails on a batch of one tile with a single value per channel.
_MIN_CROP = 64


# --------------------------------------------------------------------------- config


def _is_int(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, np.integer))


@dataclass(frozen=True)
class BaselineConfig:
    """Settings of one baseline training run, validated when the config is made.

    backbone: ResNet encoder depth (`BACKBONES`). steps: optimiser steps. batch_size: tiles
    per step. lr: RAdam learning rate. seed: weight initialisation, batch order and crops
    (the augmentation draws are seeded by the dataset's own seed, as for the diffusion
    stages). crop: side of the random training crop in px (a multiple of 32, >= 64), or
    None for whole tiles, as the paper trained; crops are cheaper on a CPU and the network
    is fully convolutional, so it still segments whole tiles. device: auto/cpu/cuda/mps.
    num_workers: DataLoader worker processes.
    """

    backbone: str = "resnet18"
    steps: int = 2000
    batch_size: int = 16
    # 1e-3, not the paper's 1e-4 (Lookahead + RAdam; torch has no Lookahead): measured on
    # this project's 2-core CPU (resnet18, 8 synthetic 256 px frames, batch 8, 96 px crops,
    # 120 steps), 1e-3 reached a Dice loss of 0.30 where 1e-4 was still at 0.59, and
    # segmented held-out frames better (pixel accuracy 0.92-0.96 against 0.87-0.93). On a
    # CPU budget of a few thousand steps that matters; pass lr=1e-4 for the paper's value.
    lr: float = 1e-3
    seed: int = 0
    crop: int | None = None
    device: str = "auto"
    num_workers: int = 0

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        for name, lo in (("steps", 1), ("batch_size", 1), ("seed", 0), ("num_workers", 0)):
            v = getattr(self, name)
            if not _is_int(v) or v < lo:
                raise ConfigError(f"BaselineConfig.{name} must be an integer >= {lo}, got {v!r}")
            object.__setattr__(self, name, int(v))
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)) \
                or not math.isfinite(lr) or not 0 < lr < 1:
            raise ConfigError(f"BaselineConfig.lr must be a number in (0, 1), got {lr!r}")
        object.__setattr__(self, "lr", float(lr))
        if self.crop is not None:
            if not _is_int(self.crop) or self.crop < _MIN_CROP or self.crop % _NET_MULTIPLE:
                raise ConfigError(
                    f"BaselineConfig.crop must be None (whole tiles) or a multiple of {_NET_MULTIPLE} "
                    f">= {_MIN_CROP} px, got {self.crop!r}"
                )
            object.__setattr__(self, "crop", int(self.crop))
        if not isinstance(self.device, str) or self.device.split(":")[0] not in DEVICES:
            raise ConfigError(f"BaselineConfig.device must be one of {', '.join(DEVICES)}, got {self.device!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BaselineReport:
    """What a training run did: steps, wall time, Dice loss at the start and the end."""

    steps: int
    seconds: float
    first_loss: float
    last_loss: float  # mean of the last 50 steps, as `training.StageReport`
    seconds_per_step: float
    losses: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["losses"] = [round(v, 6) for v in self.losses]
        return d


@dataclass
class BaselineCard:
    """The JSON half of a saved baseline: everything that is not a weight."""

    backbone: str
    class_names: tuple[str, ...]
    normalization: Normalization
    tile_size: int
    training: dict = field(default_factory=dict)
    #: The frames' pixel size the network was trained at (its pixels per frame pixel), as a
    #: bundle card's: `segment_baseline` resizes a frame by it and the labels back.
    input_scale: float = 1.0

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": "monai.networks.nets.FlexibleUNet",
            "backbone": self.backbone,
            "in_channels": 1,
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
            # The same rule (and dict form) as a bundle card's normalization.
            "normalization": self.normalization.to_dict(),
            "tile_size": self.tile_size,
            "input_scale": self.input_scale,
            "training": self.training,
        }

    @classmethod
    def from_dict(cls, d, file: Path) -> "BaselineCard":
        fix = "re-create the folder with train_baseline"
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BundleError(f"{file} is not a U-Net baseline card (its 'format' is not {FORMAT!r}); {fix}")
        if d.get("format_version") != FORMAT_VERSION:
            raise BundleError(
                f"{file}: format_version {d.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
            )
        try:
            card = cls(
                backbone=d["backbone"],
                class_names=tuple(str(s) for s in d["class_names"]),
                normalization=Normalization.from_dict(d["normalization"]),
                tile_size=d["tile_size"],
                training=dict(d.get("training", {})),
                input_scale=check_input_scale(d.get("input_scale", 1.0)),
            )
            n_classes = d["n_classes"]
        except (KeyError, TypeError, ValueError) as e:  # ConfigError is a ValueError
            raise BundleError(f"{file} is invalid ({type(e).__name__}: {e}); {fix}") from None
        if card.backbone not in BACKBONES:
            raise BundleError(f"{file}: unknown backbone {card.backbone!r} (known: {', '.join(BACKBONES)}); {fix}")
        if not 2 <= card.n_classes <= 255 or n_classes != card.n_classes:
            raise BundleError(
                f"{file}: n_classes {n_classes!r} does not match its {card.n_classes} class names; {fix}"
            )
        if not _is_int(card.tile_size) or card.tile_size < _MIN_CROP or card.tile_size % _NET_MULTIPLE:
            raise BundleError(f"{file}: tile_size must be a multiple of {_NET_MULTIPLE} >= {_MIN_CROP}, "
                              f"got {card.tile_size!r}; {fix}")
        return card


@dataclass
class Baseline:
    """A U-Net baseline ready to segment: the network, its card, and where it was loaded from."""

    model: torch.nn.Module
    card: BaselineCard
    path: Path | None = None

    @property
    def n_classes(self) -> int:
        return self.card.n_classes


def build_unet(backbone: str = "resnet18", n_classes: int = 3) -> torch.nn.Module:
    """An untrained FlexibleUNet: 1 input channel, `n_classes` logits, ResNet encoder, 2D.

    ``pretrained=False``: weights are initialised locally, never downloaded (monai's
    pretrained ResNets are 3D MedicalNet weights anyway, not usable in 2D).
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    from monai.networks.nets import FlexibleUNet  # imported here: monai takes seconds to import

    return FlexibleUNet(in_channels=1, out_channels=int(n_classes), backbone=backbone, pretrained=False,
                        spatial_dims=2)


# --------------------------------------------------------------------------- training


def _default_class_names(n: int) -> tuple[str, ...]:
    from ..bundle import DEFAULT_CLASS_NAMES

    return DEFAULT_CLASS_NAMES if n == len(DEFAULT_CLASS_NAMES) else tuple(f"class_{i}" for i in range(n))


def _check_out_dir(out: Path) -> None:
    """Refuse, before training, a folder that would lose files other than a baseline's."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder; choose another output folder")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in (WEIGHTS_FILE, CARD_FILE))
        if other:
            raise ConfigError(
                f"{out} already holds other files ({', '.join(other[:5])}); saving the baseline replaces the "
                "whole folder, so choose an empty or new folder (an earlier baseline folder is replaced)"
            )


def _dataset_summary(dataset: TileDataset) -> dict:
    aug = dataset.augment
    return {
        "frames": dataset.n_frames,
        "tiles": len(dataset),
        "tile_size": dataset.tile_size,
        "stride": dataset.stride,
        "seed": dataset.seed,
        "augment": None if aug is None else asdict(aug),
        "label_map": None if dataset.label_map is None else {str(k): v for k, v in dataset.label_map.items()},
    }


def _check_training_inputs(dataset, cfg, class_names) -> tuple[int, tuple[str, ...]]:
    """(crop in px, class names) after checking the config, the dataset and the names."""
    if not isinstance(cfg, BaselineConfig):
        raise ConfigError(f"cfg must be a BaselineConfig, got {type(cfg).__name__}")
    if not isinstance(dataset, TileDataset):
        raise ConfigError(f"dataset must be a TileDataset, got {type(dataset).__name__}")
    if not dataset.has_masks:
        raise ConfigError("the U-Net baseline trains on image/mask pairs: every frame of the dataset needs a mask")
    tile = dataset.tile_size
    if tile % _NET_MULTIPLE or tile < _MIN_CROP:
        raise ConfigError(
            f"the dataset's tile_size {tile} must be a multiple of {_NET_MULTIPLE} >= {_MIN_CROP} px for the "
            "U-Net (the paper's is 256)"
        )
    crop = tile if cfg.crop is None else cfg.crop
    if crop > tile:
        raise ConfigError(f"crop {crop} is larger than the dataset's {tile} px tiles; use crop <= {tile} or None")
    names = _default_class_names(dataset.n_classes) if class_names is None else tuple(str(s) for s in class_names)
    if len(names) != dataset.n_classes:
        raise ConfigError(f"{len(names)} class names for a dataset of {dataset.n_classes} classes")
    return crop, names


def _trained_card(dataset, cfg: "BaselineConfig", names, report: "BaselineReport",
                  input_scale: float = 1.0) -> "BaselineCard":
    """The card of a freshly trained baseline: its settings, data, machine and loss curve."""
    import monai


    return BaselineCard(
        backbone=cfg.backbone,
        class_names=names,
        normalization=dataset.normalization,  # the rule the tiles were normalised with
        tile_size=dataset.tile_size,
        input_scale=input_scale,
        training={
            "config": cfg.to_dict(),
            "report": report.to_dict(),
            "dataset": _dataset_summary(dataset),
            "machine": machine_info(),
            "monai": monai.__version__,
            "loss": "monai DiceLoss(softmax=True, to_onehot_y=True, batch=True)",
            "optimizer": f"torch.optim.RAdam(lr={cfg.lr}) (the paper: Lookahead + RAdam)",
        },
    )


def train_baseline(
    dataset: TileDataset,
    cfg: BaselineConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    *,
    class_names: tuple[str, ...] | None = None,
    control: TrainControl | None = None,
    seconds: float | None = None,
    input_scale: float = 1.0,
) -> tuple[Baseline, BaselineReport]:
    """Train the U-Net baseline on `dataset`'s labelled tiles and save it to `out_dir`.

    The tiles, their order and their augmentation come from `training.tile_batches`, exactly as
    for the diffusion stages. Loss: monai's soft Dice on softmax outputs. Optimiser: RAdam.
    control / seconds: cancel, per-step reports and a time budget, as for `train_bundle`
    (`cfg.steps` is then a cap; cancelling raises `TrainingCancelled` and saves nothing).
    `out_dir` (None: not saved) is written atomically with `save_baseline`; it must be new,
    empty or an earlier baseline folder (checked before training starts). `class_names`
    defaults to background/live/dead for 3 classes. `input_scale`: the scale the dataset's
    frames were resized by (`build_training_data`), kept in the card so that
    `segment_baseline` resizes new frames the same way. Returns the trained `Baseline` (in eval
    mode, on the training device) and its `BaselineReport`.
    """
    from monai.losses import DiceLoss
    from tqdm import tqdm


    cfg = BaselineConfig() if cfg is None else cfg
    crop, names = _check_training_inputs(dataset, cfg, class_names)
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        _check_out_dir(out)
    device = resolve_device(cfg.device)

    torch.manual_seed(cfg.seed)  # the network's initial weights
    net = build_unet(cfg.backbone, dataset.n_classes).to(device)
    # batch=True sums intersections over the whole batch before dividing (the Dice of the
    # batch, not the mean of per-tile Dice). Per tile, a class missing from the tile (dead
    # cells are absent from many tiles) scores a loss of ~1 whatever the network does,
    # which adds noise but no signal; segmentation_models_pytorch's DiceLoss, the usual
    # companion of Lookahead+RAdam U-Nets, pools over the batch too.
    loss_fn = DiceLoss(softmax=True, to_onehot_y=True, batch=True)
    # The paper used Lookahead(RAdam). torch has RAdam but no Lookahead (it lives only in
    # third-party packages), so plain RAdam here.
    opt = torch.optim.RAdam(net.parameters(), lr=cfg.lr)
    # Plain torch device placement, not accelerate as in training.diffusion: one network on one
    # device needs nothing more, and the loop stays easy to time.
    batches = tile_batches(dataset, cfg.batch_size, cfg.seed, cfg.num_workers)
    g = torch.Generator().manual_seed(cfg.seed + 1)  # crop positions
    losses: list[float] = []
    net.train()
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="unet baseline", unit="step", disable=None)
    control = TrainControl() if control is None else control
    if seconds is not None:
        end = time.monotonic() + float(seconds)
        control = replace(control, deadline=end if control.deadline is None else min(end, control.deadline))
    t0_monotonic = time.monotonic()
    for _ in range(cfg.steps):
        if control.cancelled():
            bar.close()
            raise TrainingCancelled(f"U-Net training cancelled at step {len(losses)}; nothing was saved")
        if control.out_of_time():
            break
        batch = random_crop(next(batches), crop, g)
        x = batch["image"].to(device)
        y = batch["mask"][:, None].to(device)  # (B, 1, h, w) class ids: DiceLoss one-hots them
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        control.report("unet", len(losses), cfg.steps, losses[-1], t0_monotonic)
    bar.close()
    if not losses:
        raise ConfigError("the U-Net trained no step in its time budget: give it more time")
    seconds = time.perf_counter() - t0
    net.eval()
    report = BaselineReport(
        steps=len(losses),
        seconds=seconds,
        first_loss=losses[0],
        last_loss=float(np.mean(losses[-50:])),
        seconds_per_step=seconds / len(losses),
        losses=losses,
    )
    log(f"unet baseline ({cfg.backbone}): {report.steps} steps in {seconds:.0f} s "
        f"({report.seconds_per_step:.2f} s/step), Dice loss {report.first_loss:.4f} -> {report.last_loss:.4f}")
    baseline = Baseline(net, _trained_card(dataset, cfg, names, report, check_input_scale(input_scale)))
    if out is not None:
        save_baseline(baseline, out, overwrite=True)
        log(f"unet baseline saved to {out}")
    return baseline, report


# --------------------------------------------------------------------------- save / load


def save_baseline(baseline: Baseline, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``unet_baseline.safetensors`` + ``unet_baseline.json`` as one folder, atomically.

    Both files go into a temporary sibling folder that is then renamed into place, so a
    crash never leaves new weights beside an old card (the pair would load, mismatched).
    `overwrite` replaces an existing folder holding only a baseline's two files.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        _check_out_dir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # contiguous CPU copies: safetensors refuses shared or non-contiguous storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in baseline.model.state_dict().items()}

    def fill(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        (tmp / CARD_FILE).write_text(json.dumps(baseline.card.to_dict(), indent=2) + "\n")

    atomic_replace_dir(path, fill)
    baseline.path = path
    return path


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        state = load_file(str(file))  # reads every tensor: a truncated file fails here
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise BundleError(
            f"{file} is not a valid safetensors file ({type(e).__name__}: {e}); it may be truncated or corrupt: "
            "re-run train_baseline to re-create the folder, or restore the file from a backup"
        ) from None
    if not state:
        raise BundleError(f"{file} holds no tensors; re-run train_baseline to re-create the folder")
    return state


def _check_state(state: dict, net: torch.nn.Module, file: Path, card: BaselineCard) -> None:
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise BundleError(
            f"{file} does not fit the network that {CARD_FILE} describes (FlexibleUNet, {card.backbone}, "
            f"{card.n_classes} classes): {'; '.join(problems)}. The two files come from different models; "
            "keep the pair that train_baseline wrote together, or re-train"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise BundleError(
            f"{file} has NaN/inf values in {len(bad)} tensor(s) (e.g. {', '.join(bad[:3])}): the training diverged; "
            "re-train with a lower lr"
        )


def load_baseline(path: str | os.PathLike, device: str | torch.device = "cpu") -> Baseline:
    """Load and validate a baseline folder; every problem names the file and the fix.

    Raises `BundleError` for a missing folder or file, a card that is not valid JSON or
    not a baseline card, a truncated or corrupt safetensors file, or weights whose names
    or shapes do not fit the card's network. Weights are read with safetensors only.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"U-Net baseline {path} does not exist or is not a folder; train one with train_baseline")
    missing = [name for name in (CARD_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if missing:
        raise BundleError(
            f"U-Net baseline {path} is missing {', '.join(missing)}; re-run train_baseline to re-create the folder "
            "(or copy the whole folder again)"
        )
    card_file = path / CARD_FILE
    try:
        d = json.loads(card_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{card_file} cannot be read as JSON ({e}); re-run train_baseline") from None
    card = BaselineCard.from_dict(d, card_file)
    state = _read_weights(path / WEIGHTS_FILE)
    net = build_unet(card.backbone, card.n_classes)
    _check_state(state, net, path / WEIGHTS_FILE, card)
    net.load_state_dict(state)
    net.eval().to(resolve_device(device))
    return Baseline(net, card, path)


# --------------------------------------------------------------------------- segmentation


def segment_baseline(
    image,
    baseline: Baseline,
    *,
    overlap: int = 32,
    tile_batch: int = 8,
    device: str = "cpu",
) -> np.ndarray:
    """Segment one 2D frame with the U-Net baseline: (H, W) uint8 class ids.

    As `pipeline.segment`: `check_frame`, the card's input scale (the frame resized to the
    pixel size the network was trained at, the labels resized back), the baseline's stored normalisation, tiles of
    the baseline's tile size overlapping by `overlap` px (0 to half a tile), frames
    smaller than a tile reflect-padded, softmax class scores blended over the overlaps
    (`tiling.Stitcher`), then the arg-max, cropped exactly to the frame. The network
    runs in eval mode under `torch.inference_mode`, `tile_batch` tiles per call.
    """
    if not isinstance(baseline, Baseline):
        raise ConfigError(f"baseline must be a Baseline (see load_baseline), got {type(baseline).__name__}")
    t = baseline.card.tile_size
    if not _is_int(overlap) or not 0 <= overlap <= t // 2:
        raise ConfigError(f"overlap must be an integer between 0 and {t // 2} px, got {overlap!r}")
    if not _is_int(tile_batch) or tile_batch < 1:
        raise ConfigError(f"tile_batch must be an integer >= 1, got {tile_batch!r}")
    frame = check_frame(image)
    full_shape = frame.shape
    scale = baseline.card.input_scale
    if scale != 1.0:  # as `pipeline.segment`: hot pixels out, then the frame at the network's pixel size
        frame = frame.copy()
        replace_outliers(frame, baseline.card.normalization)
        frame = rescale_frame(frame, scale)
    frame = normalize(frame, baseline.card.normalization)
    dev = resolve_device(device)
    net = baseline.model.to(dev).eval()
    n = baseline.n_classes
    H, W = frame.shape
    # multiple=1: the U-Net needs no latent alignment of tile origins (segment uses 4, the
    # autoencoder's factor); tiles are always t x t, which divides by 32.
    grid = TileGrid(H, W, t, int(overlap), 1)
    padded = grid.pad(frame)
    labels = np.zeros((H, W), np.uint8)

    def sink(y0: int, y1: int, block: np.ndarray) -> None:
        labels[y0:y1] = np.argmax(block, axis=0)

    stitch = Stitcher(grid, n, sink)
    run = TileRun(len(grid), tile_batch, 1)
    with torch.inference_mode():
        for _, batch, tiles in run.batches(grid.origins(), lambda y, x: padded[y : y + t, x : x + t]):
            probs = torch.softmax(net(torch.from_numpy(tiles).to(dev)).float(), dim=1).cpu().numpy()
            for origin, p in zip(batch, probs):
                stitch.add(origin, p)
    stitch.finish()
    return labels if scale == 1.0 else rescale_labels(labels, full_shape)

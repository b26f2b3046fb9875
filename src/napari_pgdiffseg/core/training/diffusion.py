"""Training a whole bundle in three stages: autoencoder, LDM-P (eq. 3), LDM-S (eq. 6).

The loop is Hugging Face `accelerate`'s: `Accelerator.prepare` places models, optimisers and
data loaders, `accelerator.backward` handles mixed precision and gradient accumulation, so
the same code runs on a CPU, one GPU or many (`accelerate launch`). Each stage checkpoints
to ``<out>.ckpt/<stage>/`` (safetensors weights, optimiser state loaded with
``weights_only=True``) and resumes from there.

The U-Nets and the autoencoder are fully convolutional (UNet2DModel has no positional
embedding), so stages train on random crops of the 256 px tiles (`crop`), which is much
cheaper on a CPU, and segment whole tiles.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..bundle import Bundle, BundleCard, create_bundle, save_bundle
from ..errors import ConfigError, TrainingCancelled
from ..files import atomic_replace_dir
from ..models import encode_latents, get_preset
from ..sampling import mask_to_latent
from .dataset import TileDataset
from .frames import FrameSet
from .loop import TrainControl, machine_info, random_crop, tile_batches

STAGES = ("autoencoder", "ldm_p", "ldm_s")
#: What LDM-S predicts: epsilon (the paper's eq. 6) or the clean sample x0.
PREDICTION_TYPES = ("epsilon", "sample")
#: accelerate's mixed-precision modes.
MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class StageConfig:
    """Settings of one training stage."""

    steps: int
    batch_size: int = 16
    crop: int = 128  # image pixels; a multiple of 32 so U-Net latents halve cleanly
    lr: float = 2e-4
    weight_decay: float = 0.0
    ema_decay: float | None = None
    # LDM-S only: training timesteps t = T - 1 - floor(T * u ** p), u ~ U(0, 1). p = 1 is the
    # paper's uniform t; p > 1 draws large t more often (p = 3: 46 % of draws at t >= 900,
    # against 10 %). An x0-predicting LDM-S sampled in few DDIM steps from t = T - 1 makes
    # its segmentation in the first, noisiest steps, which uniform t trains on 1 draw in 10.
    timestep_power: float = 1.0
    # Learning-rate schedule over the stage's steps, from diffusers.optimization: "constant"
    # (earlier bundles, bit-identical) or "cosine" (decays to 0 at the last step, so the last
    # weights are not one noisy point of a constant-lr walk; see the README's HeLa probes).
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ConfigError(f"a stage's steps must be >= 0, got {self.steps}")
        if self.batch_size < 1:
            raise ConfigError(f"a stage's batch_size must be >= 1, got {self.batch_size}")
        if self.crop % 32 or self.crop < 32:
            raise ConfigError(f"a stage's crop must be a multiple of 32 (>= 32), got {self.crop}")
        if not self.lr > 0:
            raise ConfigError(f"a stage's lr must be > 0, got {self.lr}")
        if isinstance(self.timestep_power, bool) or not (isinstance(self.timestep_power, (int, float))
                                                          and 0.25 <= self.timestep_power <= 10):
            raise ConfigError(f"a stage's timestep_power must be a number in [0.25, 10] (1 = uniform t), "
                              f"got {self.timestep_power!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"a stage's lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                              f"got {self.lr_schedule!r}")


@dataclass(frozen=True)
class TrainConfig:
    """One training run of a bundle (every stage's settings, seed, device)."""

    preset: str = "small"
    prediction_type: str = "epsilon"
    autoencoder: StageConfig = field(default_factory=lambda: StageConfig(steps=600, batch_size=16, crop=64, lr=1e-3))
    ldm_p: StageConfig = field(default_factory=lambda: StageConfig(steps=1000))
    ldm_s: StageConfig = field(default_factory=lambda: StageConfig(steps=1000))
    seed: int = 0
    device: str = "auto"
    mixed_precision: str = "no"
    gradient_accumulation_steps: int = 1
    checkpoint_every: int = 200
    num_workers: int = 0

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if self.prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, "
                              f"got {self.prediction_type!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                              f"got {self.mixed_precision!r}")
        for name in STAGES:
            if not isinstance(getattr(self, name), StageConfig):
                raise ConfigError(f"{name} must be a StageConfig, got {type(getattr(self, name)).__name__}")
        for name in ("autoencoder", "ldm_p"):  # LDM-P must learn every t: DDIM inversion visits them all
            if getattr(self, name).timestep_power != 1.0:
                raise ConfigError(f"timestep_power applies to ldm_s only; {name} must keep 1.0, "
                                  f"got {getattr(self, name).timestep_power}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")

    def to_dict(self) -> dict:
        return asdict(self)


# Seed offset of process i of a multi-process (data-parallel) run: i x this prime.
_RANK_SEED = 100_003


def process_state(device: str = "auto"):
    """accelerate's PartialState: this process's rank among the processes of a launch.

    One process normally; under `accelerate launch` or `torchrun` several (data parallel,
    gloo on CPUs). Created with the same `cpu` flag as the Accelerator, which shares it.
    """
    from accelerate import PartialState

    from ..devices import resolve_device

    return PartialState(cpu=resolve_device(device).type == "cpu")


def _accelerator(cfg: TrainConfig):
    from accelerate import Accelerator

    from ..devices import resolve_device

    device = resolve_device(cfg.device)
    if process_state(cfg.device).num_processes == 1:
        # accelerate keeps one AcceleratorState per process and refuses another mixed
        # precision later (e.g. a bf16 training after an fp32 one in the same Python
        # session); a single process may start afresh.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    return Accelerator(
        cpu=device.type == "cpu",
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
    )


class _Checkpoint:
    """Weights (save_pretrained, safetensors), optimiser state and step of one stage."""

    def __init__(self, root: Path, stage: str):
        self.dir = root / stage

    def exists(self) -> bool:
        return (self.dir / "state.json").is_file()

    def save(self, model, optimizer, step: int, losses: list[float], seconds: float, ema=None) -> None:
        def fill(tmp: Path) -> None:
            model.save_pretrained(tmp / "model", safe_serialization=True)
            if ema is not None:
                ema.save_pretrained(tmp / "ema")
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses, "seconds": seconds}))

        atomic_replace_dir(self.dir, fill)

    def load(self, model, optimizer) -> tuple[int, list[float], float]:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(self.dir / "model" / "diffusion_pytorch_model.safetensors"))
        optimizer.load_state_dict(torch.load(self.dir / "optimizer.pt", weights_only=True))
        state = json.loads((self.dir / "state.json").read_text())
        return int(state["step"]), list(state["losses"]), float(state.get("seconds", float("nan")))


@dataclass
class StageReport:
    stage: str
    steps: int
    seconds: float
    first_loss: float
    last_loss: float  # mean of the last 50 steps

    def to_dict(self) -> dict:
        return asdict(self)


def _fit(
    stage: str,
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, dict, torch.Generator], torch.Tensor],
    dataset: TileDataset,
    scfg: StageConfig,
    cfg: TrainConfig,
    ckpt_root: Path | None,
    log: Callable[[str], None],
    control: TrainControl | None = None,
) -> StageReport:
    """Train one stage to `scfg.steps`, or until `control`'s deadline (the checkpoint is then
    saved at the last whole step) or its cancel (checkpoint saved, `TrainingCancelled`)."""
    from tqdm import tqdm

    control = TrainControl() if control is None else control

    accelerator = _accelerator(cfg)
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=scfg.lr, weight_decay=scfg.weight_decay)
    ckpt = _Checkpoint(ckpt_root, stage) if ckpt_root is not None else None
    step, losses, done_seconds = 0, [], 0.0  # seconds of earlier runs of this stage (resume)
    if ckpt is not None and ckpt.exists():
        step, losses, done_seconds = ckpt.load(model, opt)
        log(f"{stage}: resumed from {ckpt.dir} at step {step}")
    from diffusers.optimization import get_scheduler

    # Not passed to accelerator.prepare: it steps once per loop step on every process, as the
    # optimiser's step count does; a resumed run winds it forward to its step (pure arithmetic).
    sched = get_scheduler(scfg.lr_schedule, opt, num_warmup_steps=0, num_training_steps=max(scfg.steps, 1))
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(step):
            sched.step()
    ema = None
    if scfg.ema_decay:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(model.parameters(), decay=scfg.ema_decay)
    model, opt = accelerator.prepare(model, opt)
    model.train()
    # Under `accelerate launch` each process draws its own crops, noise and batches (data
    # parallel: the effective batch is batch_size x processes); process 0 draws exactly
    # what a single-process run draws, so one process reproduces earlier bundles.
    rank_seed = _RANK_SEED * accelerator.process_index
    g = torch.Generator().manual_seed(cfg.seed + 1000 * (STAGES.index(stage) + 1) + step + rank_seed)
    batches = tile_batches(dataset, scfg.batch_size, cfg.seed + step + rank_seed, cfg.num_workers)
    t0 = time.perf_counter()
    t0_monotonic = time.monotonic()
    bar = tqdm(total=scfg.steps, initial=step, desc=stage, unit="step",
               disable=None if accelerator.is_main_process else True)

    def save_now() -> None:
        if ckpt is not None:
            if accelerator.is_main_process:  # the weights are the same on every process
                ckpt.save(accelerator.unwrap_model(model), opt, step, losses,
                          done_seconds + time.perf_counter() - t0, ema)
            accelerator.wait_for_everyone()

    while step < scfg.steps:
        if control.cancelled():
            save_now()
            bar.close()
            raise TrainingCancelled(f"{stage} training cancelled at step {step}"
                                    + (f"; its checkpoint is kept in {ckpt.dir}" if ckpt is not None else ""))
        if control.out_of_time():
            save_now()
            log(f"{stage}: time budget reached at step {step}")
            break
        batch = random_crop(next(batches), scfg.crop, g)
        batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with accelerator.accumulate(model):
            loss = loss_fn(model, batch, g)
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
        sched.step()
        if ema is not None:
            ema.step(accelerator.unwrap_model(model).parameters())
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        control.report(stage, step, scfg.steps, losses[-1], t0_monotonic)
        if step % cfg.checkpoint_every == 0 or step == scfg.steps:
            save_now()
    bar.close()
    model = accelerator.unwrap_model(model)
    if ema is not None:
        ema.copy_to(model.parameters())
    model.eval()
    seconds = done_seconds + time.perf_counter() - t0  # wall time of the stage over all its runs
    return StageReport(
        stage, step, seconds,
        float(losses[0]) if losses else float("nan"),
        float(np.mean(losses[-50:])) if losses else float("nan"),
    )


# --- losses -------------------------------------------------------------------------------


def _ae_loss(model, batch, g):
    x = batch["image"]
    out = model(x)
    rec = out.sample
    return F.l1_loss(rec, x) + F.mse_loss(rec, x) + out.commit_loss.mean()




def training_timesteps(n: int, num_train_timesteps: int, g: torch.Generator, power: float = 1.0) -> torch.Tensor:
    """`n` training timesteps in 0..T-1 (int64): uniform for ``power == 1`` (the paper's eq. 3
    and 6, bit-identical to earlier bundles), else ``T - 1 - floor(T * u ** power)``."""
    T = num_train_timesteps
    if power == 1.0:
        return torch.randint(0, T, (n,), generator=g)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    return (T - 1 - torch.floor(T * u ** power)).clamp(0, T - 1).to(torch.int64)


def _noised(scheduler, x0, g, power: float = 1.0):
    noise = torch.randn(x0.shape, generator=g).to(x0.device)
    t = training_timesteps(x0.shape[0], scheduler.config.num_train_timesteps, g, power).to(x0.device)
    return scheduler.add_noise(x0, noise, t), noise, t


def _ldm_p_loss(autoencoder, scheduler):
    def loss(model, batch, g):  # eq. 3
        z = encode_latents(autoencoder, batch["image"])
        zt, noise, t = _noised(scheduler, z, g)
        return F.mse_loss(model(zt, t).sample, noise)

    return loss


def _ldm_s_loss(autoencoder, scheduler, n_classes, prediction_type, timestep_power: float = 1.0):
    def loss(model, batch, g):  # eq. 6 (epsilon) or its x0 counterpart
        z = encode_latents(autoencoder, batch["image"])
        y = mask_to_latent(batch["mask"], n_classes, tuple(z.shape[-2:]))
        yt, noise, t = _noised(scheduler, y, g, timestep_power)
        target = noise if prediction_type == "epsilon" else y
        return F.mse_loss(model(torch.cat([yt, z], dim=1), t).sample, target)

    return loss


def stage_model_and_loss(bundle: Bundle, stage: str, prediction_type: str = "epsilon", timestep_power: float = 1.0):
    """The network a stage trains and its loss ``loss(model, batch, generator)``.

    The generator draws the noise and timesteps, so a fixed generator gives a fixed loss
    (used to check that training lowers the loss on a fixed batch).
    """
    if stage == "autoencoder":
        bundle.autoencoder.requires_grad_(True)
        return bundle.autoencoder, _ae_loss
    bundle.autoencoder.requires_grad_(False).eval()  # frozen for the LDM stages
    scheduler = bundle.make_scheduler("epsilon")
    if stage == "ldm_p":
        return bundle.ldm_p, _ldm_p_loss(bundle.autoencoder, scheduler)
    if stage == "ldm_s":
        return bundle.ldm_s, _ldm_s_loss(bundle.autoencoder, scheduler, bundle.n_classes, prediction_type,
                                          timestep_power)
    raise ConfigError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")


@torch.no_grad()
def with_classes(bundle: Bundle, class_names: tuple[str, ...], colors: tuple | None = None) -> Bundle:
    """The bundle with an LDM-S for `class_names` (fine-tuning a model to another class list).

    Every LDM-S weight is kept except the mask channels of the first and last
    convolutions: new class i starts from old class min(i, n_old - 1) (background stays
    background, a single "cell" class starts from "live"), so a fine-tune starts from a
    network that already segments. The card's colours are `colors` or the first n of the old.
    """
    from diffusers import UNet2DModel

    n_old, n = bundle.n_classes, len(class_names)
    if n < 2:
        raise ConfigError(f"a model needs at least 2 classes (background and one more), got {class_names}")
    colors = tuple(colors) if colors is not None else tuple(bundle.card.colors[min(i, n_old - 1)] for i in range(n))
    card = replace(bundle.card, class_names=tuple(class_names), colors=colors)
    if n == n_old:
        bundle.card = card
        return bundle
    old = bundle.ldm_s
    new = UNet2DModel.from_config({**old.config, "in_channels": n + (old.config.in_channels - n_old),
                                   "out_channels": n})
    state = old.state_dict()
    src = [min(i, n_old - 1) for i in range(n)]
    w_in = state["conv_in.weight"]  # (C, n_old + 3, k, k): mask channels first, then the image latent
    state["conv_in.weight"] = torch.cat([w_in[:, src], w_in[:, n_old:]], dim=1)
    state["conv_out.weight"] = state["conv_out.weight"][src]
    state["conv_out.bias"] = state["conv_out.bias"][src]
    new.load_state_dict(state)
    bundle.ldm_s = new.eval()
    bundle.card = card
    bundle.check_consistency()
    return bundle


@torch.no_grad()
def latent_scaling_factor(autoencoder, dataset: TileDataset, n_tiles: int = 64) -> float:
    """1 / std of the encoder's latents over up to `n_tiles` tiles, so LDMs see unit variance."""
    autoencoder.eval()
    idx = np.linspace(0, len(dataset) - 1, min(n_tiles, len(dataset))).astype(int)
    x = torch.stack([dataset[int(i)]["image"] for i in idx]).to(next(autoencoder.parameters()).device)
    z = torch.cat([autoencoder.encode(x[i : i + 8]).latents for i in range(0, len(x), 8)])
    return float(1.0 / z.std().clamp_min(1e-6))


def train_bundle(
    cfg: TrainConfig,
    unlabelled: TileDataset,
    labelled: TileDataset | None,
    out: str | os.PathLike,
    *,
    stages: tuple[str, ...] = STAGES,
    start_from: Bundle | None = None,
    pretrained_autoencoder: str | os.PathLike | None = None,
    card: BundleCard | None = None,
    provenance: dict | None = None,
    resume: bool = True,
    log: Callable[[str], None] = print,
    control: TrainControl | None = None,
    seconds: float | None = None,
    save: bool = True,
) -> tuple[Bundle, list[StageReport]]:
    """Train the stages named in `stages` and save the bundle to `out`.

    control: a `TrainControl` (cancel, per-step reports). seconds: a time budget for all
    stages together, shared among them in proportion to their step caps (a stage stops at
    its cap or its share of the time, whichever comes first). save: False returns the
    trained bundle without writing `out` (its checkpoints are still written).

    unlabelled: tiles for the autoencoder and LDM-P (masks optional).
    labelled: tiles with masks for LDM-S (required when 'ldm_s' is in `stages`).
    start_from: a bundle whose networks are the starting point (a stage not trained keeps
    them); otherwise fresh networks of `cfg.preset`.
    pretrained_autoencoder: a local diffusers VQModel folder (e.g. LDM's vq-f4); the
    autoencoder stage is then skipped.
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ConfigError(f"unknown stage(s) {sorted(unknown)}; stages are {', '.join(STAGES)}")
    if "ldm_s" in stages and (labelled is None or len(labelled) == 0):
        raise ConfigError("the ldm_s stage needs labelled tiles (image/mask pairs)")
    out = Path(out)
    ckpt_root = out.with_name(out.name + ".ckpt")
    if not resume and ckpt_root.exists():
        import shutil

        shutil.rmtree(ckpt_root)
    n_classes = labelled.n_classes if labelled is not None else 3
    if start_from is None:
        bundle = create_bundle(cfg.preset, n_classes=n_classes, seed=cfg.seed, prediction_type=cfg.prediction_type,
                               card=card)
    else:
        bundle = start_from
        bundle.card = replace(bundle.card, prediction_type=cfg.prediction_type)
    if card is not None:
        bundle.card = replace(card, prediction_type=cfg.prediction_type)
    if pretrained_autoencoder is not None:
        from diffusers import VQModel

        bundle.autoencoder = VQModel.from_pretrained(pretrained_autoencoder, use_safetensors=True,
                                                     local_files_only=True)
        stages = tuple(s for s in stages if s != "autoencoder")
    state = process_state(cfg.device)  # one process, or this process of an `accelerate launch`
    if not state.is_main_process:
        log = _silent
    reports: list[StageReport] = []
    control = TrainControl() if control is None else control
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ConfigError(f"a training time budget must be a number of seconds > 0, got {seconds!r}")
    end = None if seconds is None else time.monotonic() + float(seconds)
    todo = [s for s in STAGES if s in stages]
    for i, stage in enumerate(todo):
        scfg = getattr(cfg, stage)
        deadline = control.deadline
        if end is not None:  # this stage's share of the time left
            caps = [getattr(cfg, s).steps for s in todo[i:]]
            share = scfg.steps / max(sum(caps), 1)
            deadline = time.monotonic() + max(0.0, end - time.monotonic()) * share
            if control.deadline is not None:
                deadline = min(deadline, control.deadline)
        stage_control = replace(control, deadline=deadline)
        model, loss_fn = stage_model_and_loss(bundle, stage, cfg.prediction_type, scfg.timestep_power)
        data = labelled if stage == "ldm_s" else unlabelled
        rep = _fit(stage, model, loss_fn, data, scfg, cfg, ckpt_root, log, stage_control)
        if stage == "autoencoder":
            bundle.autoencoder.register_to_config(scaling_factor=latent_scaling_factor(bundle.autoencoder, unlabelled))
        log(f"{stage}: {rep.steps} steps in {rep.seconds:.0f} s, loss {rep.first_loss:.4f} -> {rep.last_loss:.4f}")
        reports.append(rep)
    bundle.autoencoder.requires_grad_(True)
    # Each training run appends its record, so a bundle trained in several commands keeps
    # the whole history (which command trained which stage, on what, for how long, where).
    prov = dict(bundle.card.provenance)
    run = dict(provenance or {})
    run.update({"config": cfg.to_dict(), "stages": [r.to_dict() for r in reports], "machine": machine_info(),
                "processes": state.num_processes})
    prov["training_runs"] = list(prov.get("training_runs", [])) + [run]
    # The parent's unlike-the-training-data reference (`core.ood`) describes the parent's
    # training images, not these: it is dropped rather than left to flag the new data
    # (scripts/card_ood_reference.py makes one for the new bundle).
    bundle.card = replace(bundle.card, provenance=prov, preset=cfg.preset, ood={} if reports else bundle.card.ood)
    bundle.eval()
    if save and state.is_main_process:
        save_bundle(bundle.to("cpu"), out, overwrite=True)
    state.wait_for_everyone()
    return bundle, reports


def _silent(_: str) -> None:
    pass


def build_training_data(
    data_dirs: list[str | os.PathLike] = (),
    *,
    masks: list[str | os.PathLike | None] | None = None,
    synthetic_frames: int = 0,
    synthetic_seed: int = 0,
    synthetic_config=None,
    synthetic_kind: str = "classic",
    label_map=None,
    n_classes: int = 3,
    tile_size: int = 256,
    stride: int | None = None,
    augment=None,
    seed: int = 0,
    frames: FrameSet | None = None,
    input_scale: float = 1.0,
    normalization=None,
    pseudo_labeller=None,
) -> tuple[TileDataset, TileDataset | None, dict]:
    """Tiles for the unsupervised stages (every frame) and for LDM-S (frames with masks).

    Frames come from image folders (`data.read_frames`; `masks`: a separate mask folder per
    data folder, masks optional), from an already-read `frames` set (e.g. one fold's
    training frames), and from `synthetic_frames` synthetic frames with masks of
    `synthetic_kind` (`generators.SYNTHETIC_KINDS`). input_scale: the model's pixels per
    frame pixel (the card's `input_scale`): every frame and mask is resized by it first, as
    `segment` resizes frames, and synthetic frames are made at tile_size / input_scale so
    that their cells keep the real frames' pixel size. normalization: the card's
    `preprocess.Normalization` (default: percentiles), so tiles are normalised as `segment`
    normalises frames. pseudo_labeller: self-training (`pseudo.pseudo_labeller`): every
    frame of `data_dirs` without a mask gets the teacher's labels (classes in our order) and
    joins the labelled tiles; frames with a mask keep it. Returns (unlabelled, labelled or
    None, description for the bundle's provenance).
    """
    from ..preprocess import check_input_scale, rescale_frame, rescale_labels

    input_scale = check_input_scale(input_scale)
    from .dataset import Augment
    from .frames import read_frames
    from ..generators import make_synthetic

    augment = Augment() if augment is None else augment
    images, masks_, names = [], [], []
    if data_dirs:
        read = read_frames(data_dirs, masks, label_map=label_map, n_classes=n_classes)
        images, masks_, names = list(read.images), list(read.masks), list(read.names)
    if frames is not None:
        images += list(frames.images)
        masks_ += list(frames.masks)
        names += list(frames.names)
    n_files = len(images)
    n_file_masks = sum(m is not None for m in masks_)
    pseudo = None
    if pseudo_labeller is not None:
        todo = [i for i, m in enumerate(masks_) if m is None]
        if not todo:
            raise ConfigError("self-training (pseudo-labels) needs frames without a mask in the --data folders; "
                              "every frame there has one")
        for i in todo:
            labels = np.asarray(pseudo_labeller(images[i]))
            if labels.shape != np.shape(images[i])[:2] or labels.max(initial=0) >= n_classes:
                raise ConfigError(f"the teacher's labels of {names[i]} do not fit the training classes "
                                  f"({n_classes}); give a teacher with the same classes")
            masks_[i] = labels.astype(np.uint8)
        pseudo = {**getattr(pseudo_labeller, "description", {}), "frames": len(todo),
                  "names": [os.path.basename(names[i]) for i in todo]}
    if synthetic_frames:
        side = int(round(tile_size / input_scale))
        simg, smask, scfg = make_synthetic(synthetic_kind, synthetic_frames, synthetic_seed, synthetic_config,
                                           shape=(side, side), n_classes=n_classes)
        images += list(simg)
        masks_ += list(smask)
        names += [f"synthetic {synthetic_kind}[{synthetic_seed}:{i}]" for i in range(synthetic_frames)]
    if not images:
        raise ConfigError("no training frames: give --data folders and/or --synthetic N")
    if input_scale != 1.0:
        images = [rescale_frame(np.asarray(im, np.float32), input_scale) for im in images]
        masks_ = [None if m is None else rescale_labels(m, im.shape) for m, im in zip(masks_, images)]
    from ..preprocess import Normalization

    normalization = Normalization() if normalization is None else normalization
    common = dict(tile_size=tile_size, stride=stride, augment=augment, seed=seed, normalization=normalization)
    unlabelled = TileDataset.from_arrays(images, None, names=names, load_masks=False, **common)
    lab_idx = [i for i, m in enumerate(masks_) if m is not None]
    labelled = None
    if lab_idx:
        labelled = TileDataset.from_arrays([images[i] for i in lab_idx], [masks_[i] for i in lab_idx],
                                           names=[names[i] for i in lab_idx], n_classes=n_classes,
                                           require_masks=True, **common)
    desc = {
        "data_dirs": [str(d) for d in data_dirs],
        "mask_dirs": None if masks is None else [None if m is None else str(m) for m in masks],
        "files": n_files,
        "files_with_masks": n_file_masks,
        "synthetic_frames": synthetic_frames,
        "synthetic_seed": synthetic_seed,
        "synthetic_kind": synthetic_kind if synthetic_frames else None,
        "synthetic_config": None if not synthetic_frames else asdict(scfg),
        "tiles_unlabelled": len(unlabelled),
        "tiles_labelled": 0 if labelled is None else len(labelled),
        "label_map": None if label_map is None else str(label_map),
        "input_scale": input_scale,
        "normalization": normalization.to_dict(),
    }
    if pseudo is not None:
        desc["pseudo_labels"] = pseudo
    return unlabelled, labelled, desc


def summarize_reports(reports: list[StageReport]) -> str:
    return "; ".join(f"{r.stage} {r.steps} steps {r.seconds:.0f} s loss {r.first_loss:.3f}->{r.last_loss:.3f}"
                     for r in reports) or "nothing trained"


__all__ = ["STAGES", "StageConfig", "TrainConfig", "StageReport", "build_training_data", "train_bundle",
           "latent_scaling_factor", "summarize_reports", "with_classes", "process_state",
           "MIXED_PRECISION", "PREDICTION_TYPES", "stage_model_and_loss"]

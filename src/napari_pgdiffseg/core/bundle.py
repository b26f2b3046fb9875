"""Model bundles: a folder holding the autoencoder, LDM-P, LDM-S, the noise schedule and a JSON card.

Layout (diffusers `save_pretrained`, safetensors only)::

    bundle/
      pgdiffseg.json                      class names, colours, normalisation, provenance
      autoencoder/config.json, diffusion_pytorch_model.safetensors
      ldm_p/config.json, diffusion_pytorch_model.safetensors
      ldm_s/config.json, diffusion_pytorch_model.safetensors
      scheduler/scheduler_config.json

`load_bundle` checks every file before diffusers sees it, so a missing or truncated file is
reported by name instead of as a deep traceback. Weights are never read with pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DModel, VQModel
from safetensors import safe_open

from .errors import BundleError, ConfigError
from .files import atomic_replace_dir
from .models import LATENT_CHANNELS, build_autoencoder, build_ldm_p, build_ldm_s, build_scheduler, get_preset
from .ood import OODReference
from .postprocess import Refine
from .preprocess import Normalization, check_input_scale

FORMAT_VERSION = 1
CARD_NAME = "pgdiffseg.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
MODEL_DIRS = ("autoencoder", "ldm_p", "ldm_s")
SCHEDULER_FILE = "scheduler/scheduler_config.json"

DEFAULT_CLASS_NAMES = ("background", "live", "dead")
#: What one labelled object of a model is (its card's ``mask_definition``).
MASK_DEFINITIONS = ("whole cells", "nuclei")
# Class colours (RGBA 0-255). Live/dead assays show live green and dead red/magenta; green
# against magenta stays apart under the common colour-vision deficiencies (deuteranopia,
# protanopia), unlike the paper's red/orange. Other foreground classes take the Okabe-Ito
# colour-blind-safe palette in order; background is transparent.
CLASS_COLORS = {"background": (0, 0, 0, 0), "live": (0, 190, 110, 255), "dead": (230, 40, 200, 255),
                "cell": (86, 180, 233, 255), "injured": (230, 159, 0, 255)}
OKABE_ITO = ((86, 180, 233, 255), (230, 159, 0, 255), (240, 228, 66, 255), (0, 114, 178, 255),
             (213, 94, 0, 255), (0, 158, 115, 255), (204, 121, 167, 255))
DEFAULT_COLORS = tuple(CLASS_COLORS[n] for n in DEFAULT_CLASS_NAMES)


def default_colors(class_names) -> tuple[tuple[int, int, int, int], ...]:
    """Label colours for a class list: by name where the name is known (live green, dead
    magenta, background transparent), otherwise the Okabe-Ito palette in order.

    `class_names` may also be a class count (names unknown: background first, then palette).
    """
    if isinstance(class_names, int):
        class_names = ("background",) + tuple(f"class {i}" for i in range(1, class_names))
    out, k = [], 0
    for i, name in enumerate(class_names):
        key = str(name).strip().lower()
        if key in CLASS_COLORS and (i == 0) == (key == "background"):
            out.append(CLASS_COLORS[key])
        elif i == 0:
            out.append(CLASS_COLORS["background"])
        else:
            out.append(OKABE_ITO[k % len(OKABE_ITO)])
            k += 1
    return tuple(out)


@dataclass
class BundleCard:
    """The bundle's JSON card: everything about the models that is not a weight."""

    class_names: tuple[str, ...] = DEFAULT_CLASS_NAMES
    colors: tuple[tuple[int, int, int, int], ...] = DEFAULT_COLORS
    normalization: Normalization = field(default_factory=Normalization)
    prediction_type: str = "epsilon"  # of LDM-S; LDM-P always predicts epsilon
    tile_size: int = 256
    # Model pixels per frame pixel: frames are resized by it before tiling and the labels
    # come back at the frame's size (0.5: a 256 px tile sees 512 frame px of context).
    input_scale: float = 1.0
    preset: str = "custom"
    mask_encoding: str = "one-hot scaled to [-1, 1], area-resized to the latent size"
    provenance: dict = field(default_factory=dict)
    # What the model labels, for whom: shown by `pgdiffseg models` and the widgets.
    name: str = ""
    mask_definition: str = "whole cells"  # or "nuclei": what one labelled object is
    modality: str = ""  # the imaging the model was trained for, e.g. "SLIM, 8-bit"
    description: str = ""
    # How labels become one id per object (`summary.InstanceConfig`): cells touch, nuclei rarely do.
    instances: dict = field(default_factory=dict)
    # Headline held-out scores (frames never seen in training), with the command that made them.
    scores: dict = field(default_factory=dict)
    # How class scores become labels (`postprocess.Refine`, e.g. {"margin": -0.3}); {} = argmax.
    refine: dict = field(default_factory=dict)
    # The segmentation settings this model was scored with, where they differ from
    # `SegmentConfig`'s defaults (e.g. {"flips": 8}); the CLI and the widgets start from them.
    segment: dict = field(default_factory=dict)
    # The training tiles' latent statistics and a threshold (`ood.OODReference`): runs flag
    # images unlike the training data. {} = no check.
    ood: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def headline_scores(self) -> str:
        """The held-out scores of the model's own setting, as one line ('' if the card has none):
        the entries marked "card setting" when there are any, else the last of each metric."""
        metrics = {"fg_iou": "foreground IoU", "object_f1": "object F1", "miou": "mIoU"}
        keys = [k for k in self.scores if ": " in k and k.rsplit(": ", 1)[1] in metrics]
        marked = [k for k in keys if "card setting" in k]
        chosen = {}
        for k in marked or keys:
            chosen[k.rsplit(": ", 1)[1]] = k  # the last one of each metric wins
        parts = []
        for m, label in metrics.items():
            if m in chosen:
                value = str(self.scores[chosen[m]]).split(" over ")[0]
                parts.append(f"{label} {value}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "class_names": list(self.class_names),
            "colors": [list(c) for c in self.colors],
            "normalization": self.normalization.to_dict(),
            "prediction_type": self.prediction_type,
            "tile_size": self.tile_size,
            "input_scale": self.input_scale,
            "preset": self.preset,
            "mask_encoding": self.mask_encoding,
            "name": self.name,
            "mask_definition": self.mask_definition,
            "modality": self.modality,
            "description": self.description,
            "instances": self.instances,
            "refine": self.refine,
            "segment": self.segment,
            "ood": self.ood,
            "scores": self.scores,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "BundleCard":
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"{CARD_NAME}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
        try:
            card = cls(
                class_names=tuple(d["class_names"]),
                colors=tuple(tuple(int(v) for v in c) for c in d["colors"]),
                normalization=Normalization.from_dict(d["normalization"]),
                prediction_type=d["prediction_type"],
                tile_size=int(d["tile_size"]),
                input_scale=check_input_scale(d.get("input_scale", 1.0)),
                preset=d.get("preset", "custom"),
                mask_encoding=d.get("mask_encoding", cls.mask_encoding),
                provenance=dict(d.get("provenance", {})),
                name=str(d.get("name", "")),
                mask_definition=str(d.get("mask_definition", cls.mask_definition)),
                modality=str(d.get("modality", "")),
                description=str(d.get("description", "")),
                instances=dict(d.get("instances", {})),
                scores=dict(d.get("scores", {})),
                refine=Refine.from_dict(d.get("refine", {})).to_dict() if d.get("refine") else {},
                segment=dict(d.get("segment", {})),
                ood=OODReference.from_dict(d["ood"]).to_dict() if d.get("ood") else {},
            )
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise BundleError(f"{CARD_NAME} is invalid: {type(e).__name__}: {e}") from None
        if len(card.colors) != card.n_classes:
            raise BundleError(f"{CARD_NAME}: {len(card.colors)} colours for {card.n_classes} classes")
        if card.prediction_type not in ("epsilon", "sample"):
            raise BundleError(f"{CARD_NAME}: prediction_type must be 'epsilon' or 'sample', got {card.prediction_type!r}")
        return card


@dataclass
class Bundle:
    """The three networks, the noise schedule and the card, ready to segment."""

    autoencoder: VQModel
    ldm_p: UNet2DModel
    ldm_s: UNet2DModel
    scheduler_config: dict
    card: BundleCard
    path: Path | None = None

    @property
    def n_classes(self) -> int:
        return self.card.n_classes

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler_config["num_train_timesteps"])

    def make_scheduler(self, prediction_type: str | None = None) -> DDIMScheduler:
        """A fresh DDIM scheduler (schedulers hold per-run state: one per run or thread)."""
        return DDIMScheduler.from_config(
            self.scheduler_config, prediction_type=prediction_type or self.card.prediction_type
        )

    def to(self, device: torch.device | str) -> "Bundle":
        for m in (self.autoencoder, self.ldm_p, self.ldm_s):
            m.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.ldm_s.parameters()).device

    def eval(self) -> "Bundle":
        for m in (self.autoencoder, self.ldm_p, self.ldm_s):
            m.eval()
        return self

    def check_consistency(self) -> None:
        """Raise BundleError when the three configs do not fit together."""
        n = self.n_classes
        ae, p, s = self.autoencoder.config, self.ldm_p.config, self.ldm_s.config
        problems = []
        if ae.latent_channels != LATENT_CHANNELS:
            problems.append(f"autoencoder has {ae.latent_channels} latent channels, expected {LATENT_CHANNELS}")
        if p.in_channels != LATENT_CHANNELS or p.out_channels != LATENT_CHANNELS:
            problems.append(f"ldm_p maps {p.in_channels}->{p.out_channels} channels, expected 3->3")
        if s.in_channels != n + LATENT_CHANNELS or s.out_channels != n:
            problems.append(
                f"ldm_s maps {s.in_channels}->{s.out_channels} channels, expected {n + LATENT_CHANNELS}->{n} "
                f"for {n} classes"
            )
        if ae.in_channels not in (1, 3):
            problems.append(f"autoencoder takes {ae.in_channels} channels, expected 1 (or 3 for RGB vq-f4)")
        if problems:
            raise BundleError("inconsistent bundle: " + "; ".join(problems))


def create_bundle(preset: str = "tiny", n_classes: int = 3, seed: int = 0, prediction_type: str = "epsilon",
                  card: BundleCard | None = None) -> Bundle:
    """A bundle of untrained networks of a preset (tests, benchmarks, the start of training)."""
    p = get_preset(preset)
    torch.manual_seed(seed)
    if card is None:
        names = DEFAULT_CLASS_NAMES if n_classes == 3 else tuple(f"class_{i}" for i in range(n_classes))
        card = BundleCard(class_names=names, colors=default_colors(names), prediction_type=prediction_type,
                          tile_size=p.tile_size, preset=p.name)
    sched = build_scheduler(p.num_train_timesteps, card.prediction_type)
    bundle = Bundle(
        autoencoder=build_autoencoder(p),
        ldm_p=build_ldm_p(p),
        ldm_s=build_ldm_s(p, card.n_classes),
        scheduler_config=dict(sched.config),
        card=card,
    )
    bundle.check_consistency()
    return bundle.eval()


def save_bundle(bundle: Bundle, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a bundle folder atomically: into a temporary sibling folder, then renamed."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")

    def fill(tmp: Path) -> None:
        for name in MODEL_DIRS:
            getattr(bundle, name).save_pretrained(tmp / name, safe_serialization=True)
        DDIMScheduler.from_config(bundle.scheduler_config).save_pretrained(tmp / "scheduler")
        (tmp / CARD_NAME).write_text(json.dumps(bundle.card.to_dict(), indent=2) + "\n")

    atomic_replace_dir(path, fill)
    bundle.path = path
    return path


def _check_safetensors(file: Path) -> None:
    try:
        with safe_open(str(file), framework="pt") as f:
            keys = list(f.keys())
            for k in keys:  # reads each tensor: a truncated file fails here
                f.get_slice(k)
    except Exception as e:  # safetensors raises its own SafetensorError/OSError types
        raise BundleError(f"{file} is not a valid safetensors file ({e}); re-create or re-download the bundle") from None
    if not keys:
        raise BundleError(f"{file} holds no tensors")


def _read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{file} cannot be read as JSON ({e})") from None


def _own_aligned_memory(model: torch.nn.Module) -> None:
    """Give every weight its own, allocator-aligned copy.

    safetensors hands out tensors at their (unaligned) offsets in the file; oneDNN's
    batch-1 kernels round differently for weights at other alignments (1e-6 differences,
    measured), so without this a loaded bundle would not reproduce the labels of the same
    bundle made in memory. The copy also lets go of the file.
    """
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.data = t.data.clone()


def load_bundle(path: str | os.PathLike, device: str | torch.device = "cpu") -> Bundle:
    """Load and validate a bundle folder; every problem names the file concerned."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"model bundle {path} does not exist or is not a folder")
    required = [path / CARD_NAME, path / SCHEDULER_FILE]
    for name in MODEL_DIRS:
        required += [path / name / "config.json", path / name / WEIGHTS_NAME]
    missing = [str(f.relative_to(path)) for f in required if not f.is_file()]
    if missing:
        raise BundleError(f"model bundle {path} is missing {', '.join(missing)}")
    card = BundleCard.from_dict(_read_json(path / CARD_NAME))
    scheduler_config = _read_json(path / SCHEDULER_FILE)
    if "num_train_timesteps" not in scheduler_config:
        raise BundleError(f"{path / SCHEDULER_FILE} has no num_train_timesteps")
    models = {}
    for name, cls in zip(MODEL_DIRS, (VQModel, UNet2DModel, UNet2DModel)):
        _read_json(path / name / "config.json")
        _check_safetensors(path / name / WEIGHTS_NAME)
        try:
            models[name] = cls.from_pretrained(path / name, use_safetensors=True, local_files_only=True)
        except Exception as e:  # diffusers raises many types for shape/config mismatches
            raise BundleError(f"cannot load {path / name}: {type(e).__name__}: {e}") from None
        _own_aligned_memory(models[name])
    scheduler_config = dict(DDIMScheduler.from_config(scheduler_config).config)
    bundle = Bundle(scheduler_config=scheduler_config, card=card, path=path, **models)
    bundle.check_consistency()
    return bundle.eval().to(device)


def peek_bundle(path: str | os.PathLike) -> tuple[BundleCard, int]:
    """(card, num_train_timesteps) of a bundle folder from its JSON files only (milliseconds).

    Raises BundleError naming the problem; weights are checked later by `load_bundle`.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"model bundle {path} does not exist or is not a folder")
    for rel in (CARD_NAME, SCHEDULER_FILE):
        if not (path / rel).is_file():
            raise BundleError(f"{path} is not a PG-DiffSeg bundle: {rel} is missing")
    try:
        card_dict = json.loads((path / CARD_NAME).read_text())
        sched = json.loads((path / SCHEDULER_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path}: cannot read the bundle's JSON files ({e})") from None
    card = BundleCard.from_dict(card_dict)
    try:
        timesteps = int(sched["num_train_timesteps"])
    except (KeyError, TypeError, ValueError):
        raise BundleError(f"{path / SCHEDULER_FILE} has no valid num_train_timesteps") from None
    return card, timesteps


MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
#: The shipped model a run uses when none is named: SLIM frames -> live/dead nuclei.
DEFAULT_MODEL = "slim-viability"


def shipped_models() -> list[str]:
    """Names of the models shipped inside the package (folders of `MODELS_DIR` with a card)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / CARD_NAME).is_file())


def resolve_model(model: str | os.PathLike | None = None) -> Path:
    """The bundle folder of `model`: a shipped model's name, a bundle folder, or None (the default).

    The one place where "a name or a folder" is decided: the CLI, the widgets, Dask
    workers and the evaluation all call it. A folder wins over a name only when it exists.
    Raises `BundleError` naming the shipped models when `model` is neither.
    """
    name = DEFAULT_MODEL if model is None else model
    if isinstance(name, str) and name in shipped_models():
        return MODELS_DIR / name
    path = Path(name)
    if path.is_dir():
        return path
    names = ", ".join(shipped_models()) or "none installed"
    if model is None:
        raise BundleError(f"the default model {DEFAULT_MODEL!r} is not installed in {MODELS_DIR}; reinstall "
                          f"napari-pgdiffseg or pass a bundle folder (shipped: {names})")
    text = str(model)
    if "/" in text or os.sep in text or text.startswith("."):  # meant as a folder
        raise BundleError(f"model bundle folder {text} does not exist (or pick a shipped model: {names})")
    raise BundleError(f"{text!r} is neither a shipped model ({names}) nor a bundle folder; "
                      "`pgdiffseg models` lists the shipped ones")


def load_model(model: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Bundle:
    """Load a shipped model by name, a bundle folder, or (None) the default model; nothing is downloaded."""
    return load_bundle(resolve_model(model), device)

"""Training data: folders of QPI frames with optional label masks, tiles, folds, augmentation.

Folder layouts (`find_frames`), TIFF (``.tif``/``.tiff``), PNG or JPEG files:

* ``DIR/images/NAME.tif`` with ``DIR/masks/NAME.tif`` (or ``NAME_mask.*``/``NAME_labels.*``
  in ``masks/``): the layout `synthetic.write_dataset` writes;
* one folder with ``NAME.tif`` and ``NAME_mask.tif`` (or ``NAME_labels.tif``).

Masks hold integer classes, ours being 0 background, 1 live, 2 dead; datasets with another
class order are mapped with a label map (`LABEL_MAPS`, `parse_label_map`). Frames without a
mask are valid: the autoencoder and LDM-P train on images alone.

`TileDataset` loads every frame once, normalises it with the bundle's `Normalization`
(whole frame, as at segmentation time), symmetric-pads frames smaller than a tile, and cuts
tiles of ``tile_size`` at ``stride``; the last tile of a row or column is flush with the
frame's far edge, so every pixel is in some tile (832 px, tile 256: origins 0, 256, 512,
576 at stride 256; 0, 192, 384, 576 at stride 192). Folds are made over frames, never over
tiles (`kfold_split`, `split_frames`), so no frame leaks from training into testing.
Augmentation (`Augment`): 90-degree rotations, flips, brightness and contrast jitter, as in
the paper; masks follow the geometric transforms exactly.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, InputImageError, PGDiffSegError
from .preprocess import MIN_SIZE, Normalization, check_frame, normalize
from .tiling import tile_origins

__all__ = [
    "IMAGE_SUFFIXES",
    "LABEL_MAPS",
    "MASK_SUFFIXES",
    "Augment",
    "Frame",
    "TileDataset",
    "find_frames",
    "FrameSet",
    "read_frames",
    "kfold_split",
    "map_labels",
    "parse_label_map",
    "read_image",
    "read_mask",
    "mask_instances",
    "INSTANCES_MAP",
    "LABEL_MAP_NAMES",
    "split_frames",
    "tile_origins",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
_TIFF_SUFFIXES = (".tif", ".tiff")
MASK_SUFFIXES = ("_mask", "_labels")

#: Class orders of the study's datasets mapped to ours (0 background, 1 live, 2 dead).
#: hela: the study's training PNGs, 0 live, 1 injured, 2 dead, 3 background (injured
#: cells count as live, as in the paper's 3-class task). cho: 0 live, 1 dead, 2 background.
#: viability4: the study's published ground-truth maps (Hu et al. 2022; HeLa-labels/),
#: 0 background, 1 live, 2 injured, 3 dead (injured -> live).
LABEL_MAPS: dict[str, dict[int, int]] = {
    "hela": {0: 1, 1: 1, 2: 2, 3: 0},
    "cho": {0: 1, 1: 2, 2: 0},
    "viability4": {0: 0, 1: 1, 2: 1, 3: 2},
}
#: Instance masks (one grey value per cell, 0 background; e.g. qpi-cells): every value
#: above 0 is class 1. Not a finite table, so it is a name of its own.
INSTANCES_MAP = "instances"
LABEL_MAP_NAMES = (*LABEL_MAPS, INSTANCES_MAP)

_CLASS_HINT = "0 background, 1 live, 2 dead"
_MAX_LABEL = 65535  # masks are at most 16-bit label images


# --------------------------------------------------------------------------- reading files


def _same_channels(arr: np.ndarray) -> bool:
    c0 = arr[..., 0]
    return all(np.array_equal(c0, arr[..., c]) for c in range(1, 3))


def _first_line(exc: BaseException) -> str:
    """A reader's message cut to its first line (imageio appends install hints on more lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as a numpy array of its stored dtype.

    TIFF is read with tifffile, PNG/JPEG with imageio.v3 (a palette PNG gives its palette
    indices, as label masks are often saved). Singleton dimensions are squeezed down to 2D,
    so a (1, h, w) TIFF gives (h, w) and a 1x1 image stays (1, 1). An RGB/RGBA image (last axis 3 or 4) whose R, G and B
    channels are equal (a grey image saved as RGB, like the study's original PNGs) gives
    channel 0, (..., h, w); alpha is ignored. Stacks (n, h, w) are returned as they are.

    Raises `InputImageError` naming the file when it does not exist, has an unsupported
    suffix, cannot be decoded (truncated or corrupt), or is RGB with different channels.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputImageError(
            f"{p}: unsupported file type {p.suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}"
        )
    if not p.is_file():
        raise InputImageError(f"{p}: no such file")
    try:
        if suffix in _TIFF_SUFFIXES:
            import tifffile

            arr = tifffile.imread(p)
        else:
            try:
                import imageio.v3 as iio
            except ImportError:  # pragma: no cover - imageio comes with napari
                raise InputImageError(
                    f"{p}: reading PNG/JPEG needs the 'imageio' package (pip install imageio), "
                    "or convert the file to TIFF"
                ) from None
            palette = False
            if suffix == ".png":
                try:
                    palette = iio.immeta(p).get("mode") == "P"
                except Exception:  # noqa: BLE001 - the read below reports the real problem
                    palette = False
            arr = iio.imread(p, mode="P") if palette else iio.imread(p)
    except PGDiffSegError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader error becomes one clear message
        kind = "TIFF" if suffix in _TIFF_SUFFIXES else suffix[1:].upper()
        raise InputImageError(
            f"{p}: cannot read the file ({type(exc).__name__}: {_first_line(exc)}); it may be truncated, "
            f"corrupt or not really a {kind} file"
        ) from exc
    arr = np.asarray(arr)
    if arr.size == 0:
        raise InputImageError(f"{p}: the image is empty (shape {arr.shape})")
    # Drop singleton axes, but never below 2D: a 1x1 or 20000x1 image stays a (tiny) frame
    # and gets the frame-size message, not a "0-D array" one.
    while arr.ndim > 2 and 1 in arr.shape:
        arr = np.squeeze(arr, axis=arr.shape.index(1))
    if arr.ndim >= 3 and arr.shape[-1] in (3, 4):
        if not _same_channels(arr):
            raise InputImageError(
                f"{p}: an RGB{'A' if arr.shape[-1] == 4 else ''} image (shape {arr.shape}) with "
                "different colour channels; a single-channel image is expected (QPI phase, or "
                "integer class labels for a mask). Save one channel, not a colour rendering"
            )
        arr = np.ascontiguousarray(arr[..., 0])
    return arr


def parse_label_map(spec) -> dict[int, int]:
    """Turn a label map spec into ``{dataset value: our class}``.

    `spec` is a dict (``{3: 0, 0: 1}``), a name in `LABEL_MAPS` (``"hela"``, ``"cho"``,
    ``"viability4"``), ``"instances"`` (instance masks: every value above 0 is class 1), or
    a string of ``value:class`` pairs separated by commas (``"0:1,1:1,2:2,3:0"``). Values
    and classes are integers in [0, 65535]; a value may appear once. Raises `ConfigError`.
    """
    if isinstance(spec, str):
        s = spec.strip()
        if s.lower() in LABEL_MAPS:
            return dict(LABEL_MAPS[s.lower()])
        if s.lower() == INSTANCES_MAP:
            return {0: 0, **dict.fromkeys(range(1, _MAX_LABEL + 1), 1)}
        if not s:
            raise ConfigError("label map is empty; give pairs like '0:1,1:1,2:2,3:0' or a name "
                              f"({', '.join(LABEL_MAP_NAMES)})")
        pairs = []
        for part in s.split(","):
            m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", part)
            if not m:
                raise ConfigError(
                    f"label map {spec!r}: cannot parse {part.strip()!r}; expected comma-separated "
                    f"'value:class' pairs like '0:1,1:1,2:2,3:0', or a name ({', '.join(LABEL_MAP_NAMES)})"
                )
            pairs.append((int(m.group(1)), int(m.group(2))))
        keys = [k for k, _ in pairs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ConfigError(f"label map {spec!r} maps value(s) {dup} more than once")
        out = dict(pairs)
    elif isinstance(spec, Mapping):
        out = {}
        for k, v in spec.items():
            for x in (k, v):
                if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
                    raise ConfigError(
                        f"label map entries must be integers (value: class), got {k!r}: {v!r}"
                    )
            out[int(k)] = int(v)
        if not out:
            raise ConfigError("label map is empty")
    else:
        raise ConfigError(
            f"label map must be a dict, a name ({', '.join(LABEL_MAP_NAMES)}) or a string like "
            f"'0:1,1:1,2:2,3:0', got {type(spec).__name__}"
        )
    for k, v in out.items():
        if not (0 <= k <= _MAX_LABEL and 0 <= v <= _MAX_LABEL):
            raise ConfigError(f"label map entries must be in [0, {_MAX_LABEL}], got {k}: {v}")
    return out


def _check_n_classes(n_classes) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or not 2 <= n_classes <= 255:
        raise ConfigError(f"n_classes must be an integer in [2, 255], got {n_classes!r}")
    return int(n_classes)


def _lookup_table(label_map, n_classes: int) -> np.ndarray | None:
    """uint8 LUT (255 = unmapped) for a label map, or None for the identity."""
    if label_map is None:
        return None
    mapping = parse_label_map(label_map)
    bad = {k: v for k, v in mapping.items() if v >= n_classes}
    if bad:
        raise ConfigError(
            f"label map sends values to class(es) {sorted(set(bad.values()))}, outside the "
            f"{n_classes} classes 0..{n_classes - 1} ({_CLASS_HINT})"
        )
    lut = np.full(max(mapping) + 1, 255, np.uint8)
    keys = np.fromiter(mapping.keys(), np.int64, len(mapping))
    lut[keys] = np.fromiter(mapping.values(), np.int64, len(mapping))
    return lut


def _fmt_values(vals) -> str:
    vals = [int(v) if float(v).is_integer() else float(v) for v in vals]
    s = ", ".join(str(v) for v in vals[:10])
    return s + (f", ... ({len(vals)} values)" if len(vals) > 10 else "")


def map_labels(mask, label_map=None, n_classes: int = 3, *, name: str = "mask") -> np.ndarray:
    """Validate a 2D label mask and return it as uint8 classes in ``0..n_classes-1``.

    `mask`: (h, w) integer, bool, or float with integral values. `label_map` (see
    `parse_label_map`) is applied through a lookup table; without one, values must already
    be classes. Raises `InputImageError` naming `name` and the offending values.
    """
    n_classes = _check_n_classes(n_classes)
    lut = _lookup_table(label_map, n_classes)
    return _apply_lut(np.asarray(mask), lut, n_classes, name, label_map)


def _apply_lut(arr: np.ndarray, lut, n_classes: int, name: str, label_map) -> np.ndarray:
    if arr.ndim != 2:
        raise InputImageError(f"{name}: a mask must be 2D (height, width), got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputImageError(f"{name}: the mask has NaN/inf values; masks hold integer classes")
        if not np.array_equal(arr, np.round(arr)):
            raise InputImageError(
                f"{name}: the mask has non-integer values (dtype {arr.dtype}); masks hold "
                "integer classes, not probabilities or an image"
            )
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputImageError(f"{name}: mask dtype {arr.dtype} is not an integer type")
    values = np.unique(arr)
    if lut is None:
        bad = values[(values < 0) | (values >= n_classes)]
        if bad.size:
            raise InputImageError(
                f"{name}: label value(s) {_fmt_values(bad)} are outside the classes "
                f"0..{n_classes - 1} ({_CLASS_HINT}); if the dataset orders its classes "
                "differently, give a label map (e.g. 'hela', 'cho' or '0:1,1:1,2:2,3:0')"
            )
        return arr.astype(np.uint8)
    inside = (values >= 0) & (values < lut.size)
    bad = values[~inside]
    idx = values[inside].astype(np.int64)
    bad = np.concatenate([bad, values[inside][lut[idx] == 255]])
    if bad.size:
        raise InputImageError(
            f"{name}: label value(s) {_fmt_values(np.sort(bad))} are not in the label map "
            f"{_map_text(label_map)}; add them to the map"
        )
    return lut[arr.astype(np.int64)]


def _map_text(label_map) -> str:
    if isinstance(label_map, str) and label_map.strip().lower() in LABEL_MAP_NAMES:
        return repr(label_map)
    return ",".join(f"{k}:{v}" for k, v in sorted(parse_label_map(label_map).items()))


def read_mask(path: str | os.PathLike, *, label_map=None, n_classes: int = 3) -> np.ndarray:
    """Read a label mask file: (h, w) uint8 classes (see `read_image`, `map_labels`)."""
    return map_labels(read_image(path), label_map, n_classes, name=str(path))


def mask_instances(mask) -> np.ndarray:
    """Instance ids of a label or instance mask: (h, w) int32, 0 background, 1..N.

    An instance is a 4-connected region of one value, so a class map gives one id per
    separate object of each class, and an instance mask whose touching cells have
    different grey values (qpi-cells) gives one id per cell.
    """
    from skimage.measure import label

    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise InputImageError(f"a mask must be 2D (height, width), got shape {arr.shape}")
    return label(arr.astype(np.int64, copy=False), background=0, connectivity=1).astype(np.int32)


# --------------------------------------------------------------------------- folders


@dataclass
class Frame:
    """One frame of a dataset: its image file and its mask file (None when unlabelled)."""

    image_path: Path
    mask_path: Path | None = None

    def __post_init__(self):
        self.image_path = Path(self.image_path)
        if self.mask_path is not None:
            self.mask_path = Path(self.mask_path)

    @property
    def name(self) -> str:
        return self.image_path.stem


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir()
         if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )


def _strip_mask_suffix(stem: str) -> str | None:
    low = stem.lower()
    for suf in MASK_SUFFIXES:
        if low.endswith(suf) and len(stem) > len(suf):
            return stem[: -len(suf)]
    return None


def _list(paths, n: int = 5) -> str:
    names = [p.name if isinstance(p, Path) else str(p) for p in paths]
    s = ", ".join(names[:n])
    return s + (f" and {len(names) - n} more" if len(names) > n else "")


def find_frames(root: str | os.PathLike, masks: str | os.PathLike | None = None) -> list[Frame]:
    """Find image/mask pairs under `root`, sorted by image file name.

    If ``root/images`` is a folder, its image files are the frames and their masks are
    ``root/masks/STEM.*`` (or ``STEM_mask.*``/``STEM_labels.*``); otherwise the files of
    `root` itself are the frames, except ``STEM_mask.*``/``STEM_labels.*``, which are the
    masks of ``STEM.*``. With `masks` (a folder), the masks are that folder's
    ``STEM.*`` (or ``STEM_mask.*``/``STEM_labels.*``) instead, e.g. ``HeLa/`` with
    ``HeLa-labels/``; images without one stay unlabelled. A frame with no mask has
    ``mask_path=None``. Hidden files are skipped. Raises `InputImageError` for a missing
    or empty folder (naming the patterns looked for), two images with one stem, two masks
    for one image, or masks whose image is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputImageError(f"{root}: no such folder")
    pats = "|".join(f"*{s}" for s in IMAGE_SUFFIXES)
    img_dir = root / "images"
    if masks is not None:
        mask_dir = Path(masks)
        if not mask_dir.is_dir():
            raise InputImageError(f"{mask_dir}: no such mask folder")
        images = _image_files(img_dir if img_dir.is_dir() else root)
        images = [p for p in images if _strip_mask_suffix(p.stem) is None]
        mask_files = _image_files(mask_dir)
        looked = f"{img_dir if img_dir.is_dir() else root}/{{{pats}}} with masks in {mask_dir}"
        paired_by_stem = True
    elif img_dir.is_dir():
        images = _image_files(img_dir)
        mask_dir = root / "masks"
        mask_files = _image_files(mask_dir) if mask_dir.is_dir() else []
        looked = (f"{img_dir}/{{{pats}}} (layout images/ + masks/, since {img_dir} exists)")
        paired_by_stem = True
    else:
        files = _image_files(root)
        images = [p for p in files if _strip_mask_suffix(p.stem) is None]
        mask_files = [p for p in files if _strip_mask_suffix(p.stem) is not None]
        looked = (f"{root}/images/{{{pats}}} with masks/ beside it, and {root}/{{{pats}}} "
                  "with NAME_mask.* or NAME_labels.* masks")
        paired_by_stem = False
    if not images:
        raise InputImageError(f"no images found in {root}: looked for {looked}")

    by_stem: dict[str, list[Path]] = {}
    for p in images:
        by_stem.setdefault(p.stem, []).append(p)
    dup = {s: ps for s, ps in by_stem.items() if len(ps) > 1}
    if dup:
        s, ps = next(iter(dup.items()))
        raise InputImageError(
            f"{len(dup)} image name(s) in {ps[0].parent} have more than one file, e.g. "
            f"{_list(ps)}; keep one file per frame"
        )
    masks_of: dict[str, list[Path]] = {}
    for m in mask_files:
        key = m.stem if m.stem in by_stem and paired_by_stem else _strip_mask_suffix(m.stem)
        if key is None:
            key = m.stem
        masks_of.setdefault(key, []).append(m)
    orphans = sorted((m for k, ms in masks_of.items() if k not in by_stem for m in ms),
                     key=lambda p: p.name)
    if orphans:
        raise InputImageError(
            f"{len(orphans)} mask file(s) in {orphans[0].parent} have no matching image: "
            f"{_list(orphans)} (a mask pairs with the image of the same name, or the name plus "
            "'_mask'/'_labels')"
        )
    frames = []
    for p in images:
        ms = masks_of.get(p.stem, [])
        if len(ms) > 1:
            raise InputImageError(f"image {p} has {len(ms)} masks: {_list(ms)}; keep one")
        frames.append(Frame(p, ms[0] if ms else None))
    return frames


@dataclass
class FrameSet:
    """Frames read from folders: images, class masks and true instance ids (None: unlabelled)."""

    images: list[np.ndarray]
    masks: list[np.ndarray | None]
    instances: list[np.ndarray | None]
    names: list[str]

    @property
    def labelled(self) -> "FrameSet":
        """Only the frames with a mask."""
        keep = [i for i, m in enumerate(self.masks) if m is not None]
        return FrameSet([self.images[i] for i in keep], [self.masks[i] for i in keep],
                        [self.instances[i] for i in keep], [self.names[i] for i in keep])

    def __len__(self) -> int:
        return len(self.images)


def read_frames(data_dirs: Sequence[str | os.PathLike], masks: Sequence[str | os.PathLike | None] | None = None,
                *, label_map=None, n_classes: int = 3, labelled_only: bool = False) -> FrameSet:
    """Read every frame of `data_dirs` (`find_frames` layouts); the one loader of training and evaluation.

    masks: per data folder, a separate mask folder (or None: masks beside the images).
    Class masks go through `label_map` (`map_labels`); the true instances are the masks'
    own connected regions of one value (`mask_instances`), read before mapping, so an
    instance mask keeps touching cells apart. labelled_only: skip frames without a mask
    (and fail when a folder has none).
    """
    masks = [None] * len(data_dirs) if masks is None else list(masks)
    if len(masks) != len(data_dirs):
        raise ConfigError(f"got {len(data_dirs)} data folder(s) but {len(masks)} mask folder(s); give one per folder")
    out = FrameSet([], [], [], [])
    for d, m in zip(data_dirs, masks):
        frames = find_frames(d, masks=m)
        if labelled_only:
            frames = [f for f in frames if f.mask_path is not None]
            if not frames:
                where = f"mask folder {m}" if m is not None else "masks/ beside images/, or NAME_mask.*"
                raise InputImageError(f"{d} holds no image/mask pairs ({where})")
        for f in frames:
            out.images.append(read_image(f.image_path))
            raw = None if f.mask_path is None else read_image(f.mask_path)
            out.masks.append(None if raw is None else map_labels(raw, label_map, n_classes, name=str(f.mask_path)))
            out.instances.append(None if raw is None else mask_instances(raw))
            out.names.append(str(f.image_path))
    return out


# --------------------------------------------------------------------------- folds


def _check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def kfold_split(n_frames: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-fold split of frame indices: ``[(train_idx, test_idx)] * k``, int64 arrays, sorted.

    Frames are shuffled with ``np.random.default_rng(seed)`` and cut into k folds whose
    sizes differ by at most one; every frame is in exactly one test fold, and in the
    training part of every other fold. Deterministic for a given (n_frames, k, seed).
    """
    n = _check_int("n_frames", n_frames, 0)
    k = _check_int("k (number of folds)", k, 2)
    seed = _check_int("seed", seed, 0)
    if n < k:
        raise ConfigError(f"{k}-fold cross-validation needs at least {k} frames, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(perm, k)
    out = []
    for i in range(k):
        test = np.sort(folds[i]).astype(np.int64)
        train = np.sort(np.concatenate([folds[j] for j in range(k) if j != i])).astype(np.int64)
        out.append((train, test))
    return out


def split_frames(frames: Sequence[Frame], k: int, fold: int, seed: int = 0) -> tuple[list, list]:
    """``(train_frames, test_frames)`` of fold `fold` (0..k-1) of `kfold_split`."""
    frames = list(frames)
    k = _check_int("k (number of folds)", k, 2)
    fold = _check_int("fold", fold, 0)
    if fold >= k:
        raise ConfigError(f"fold must be in 0..{k - 1}, got {fold}")
    train, test = kfold_split(len(frames), k, seed)[fold]
    return [frames[i] for i in train], [frames[i] for i in test]


# --------------------------------------------------------------------------- augmentation


def _unit_draws(rng) -> list[float]:
    if isinstance(rng, torch.Generator):
        return torch.rand(5, generator=rng, dtype=torch.float64).tolist()
    if isinstance(rng, np.random.Generator):
        return rng.random(5).tolist()
    if not isinstance(rng, bool) and isinstance(rng, (int, np.integer)) and rng >= 0:
        return np.random.default_rng(int(rng)).random(5).tolist()
    raise ConfigError(
        f"augmentation needs a numpy Generator, a torch.Generator or a seed, got {type(rng).__name__}"
    )


@dataclass(frozen=True)
class Augment:
    """The paper's augmentation: 90-degree rotations, flips, brightness and contrast.

    Per call: ``k ~ {0,1,2,3}`` quarter turns (`rot90`), then a left-right and an up-down
    flip, each with probability 1/2 (`flip`): all 8 symmetries of the square. Then, on the
    image only (expected normalised to [-1, 1]), ``x * c + b`` with
    ``c ~ U(1 - contrast, 1 + contrast)`` and ``b ~ U(-brightness, brightness)``. The mask
    follows the geometric transforms exactly and is never jittered.

    With ``noise > 0``, Gaussian noise of standard deviation ``s ~ U(0, noise)`` (normalised
    units), smoothed by a Gaussian of ``sigma ~ U(0.5, 2.5)`` px and rescaled to ``s``, is
    added last: the speckle and shot noise of other set-ups (scikit-image's cell has about
    3x the background texture of the holographic frames), so that a model does not take a
    textured background for cells.

    Calling: ``aug(image, mask, rng) -> (image, mask)``; `image` is (h, w) or (C, h, w),
    `mask` (h, w) or None; numpy arrays or torch tensors (outputs keep the type, dtype and
    device, and are new arrays); `rng` a numpy Generator, a torch.Generator or an int seed.
    Five uniforms are drawn per call whatever the settings (the noise draws its own after
    them, only when ``noise > 0``, so the other draws do not depend on it).
    """

    rot90: bool = True
    flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.1
    noise: float = 0.0

    def __post_init__(self):
        for name in ("rot90", "flip"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"Augment.{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        for name, hi in (("brightness", 1.0), ("contrast", 1.0), ("noise", 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(v) or not 0.0 <= v < hi:
                raise ConfigError(f"Augment.{name} must be a number in [0, {hi}), got {v!r}")
            object.__setattr__(self, name, float(v))

    def params(self, rng) -> tuple[int, bool, bool, float, float]:
        """The draws of one call: (quarter turns k, flip left-right, flip up-down, c, b)."""
        u = _unit_draws(rng)
        k = min(int(u[0] * 4), 3) if self.rot90 else 0
        flip_lr = self.flip and u[1] < 0.5
        flip_ud = self.flip and u[2] < 0.5
        c = 1.0 + self.contrast * (2.0 * u[3] - 1.0)
        b = self.brightness * (2.0 * u[4] - 1.0)
        return k, flip_lr, flip_ud, c, b

    def __call__(self, image, mask=None, rng=None):
        if rng is None:
            raise ConfigError("Augment needs a random generator (numpy or torch) or a seed")
        if image.ndim not in (2, 3):
            raise InputImageError(f"augmentation expects an image (h, w) or (C, h, w), got shape {tuple(image.shape)}")
        if mask is not None and tuple(mask.shape) != tuple(image.shape[-2:]):
            raise InputImageError(
                f"augmentation: mask shape {tuple(mask.shape)} does not match image {tuple(image.shape)}"
            )
        k, flip_lr, flip_ud, c, b = self.params(rng)
        image = _geometric(image, k, flip_lr, flip_ud)
        if c != 1.0 or b != 0.0:
            if isinstance(image, torch.Tensor):
                image = image * c + b
            else:
                image = (image * image.dtype.type(c) + image.dtype.type(b)).astype(image.dtype, copy=False)
        if self.noise > 0:
            image = self._add_noise(image, rng)
        if mask is not None:
            mask = _geometric(mask, k, flip_lr, flip_ud)
        return image, mask

    def _add_noise(self, image, rng):
        from scipy import ndimage

        if isinstance(rng, torch.Generator):
            g = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=rng)))
        elif isinstance(rng, np.random.Generator):
            g = rng
        else:
            g = np.random.default_rng([int(rng), 1])
        std, sigma = self.noise * g.random(), 0.5 + 2.0 * g.random()
        shape = tuple(image.shape[-2:])
        field = ndimage.gaussian_filter(g.standard_normal(shape), sigma)
        field *= std / max(float(field.std()), 1e-12)
        if isinstance(image, torch.Tensor):
            return image + torch.from_numpy(field).to(image.device, image.dtype)
        return (image + field.astype(image.dtype)).astype(image.dtype, copy=False)


def _geometric(x, k: int, flip_lr: bool, flip_ud: bool):
    if isinstance(x, torch.Tensor):
        if k:
            x = torch.rot90(x, k, dims=(-2, -1))
        dims = [d for d, f in ((-1, flip_lr), (-2, flip_ud)) if f]
        if dims:
            x = torch.flip(x, dims=dims)
        return x.clone(memory_format=torch.contiguous_format)
    x = np.asarray(x)
    if k:
        x = np.rot90(x, k, axes=(-2, -1))
    if flip_lr:
        x = x[..., :, ::-1]
    if flip_ud:
        x = x[..., ::-1, :]
    return np.array(x, order="C", copy=True)


# --------------------------------------------------------------------------- tiles


def _pad_to(arr: np.ndarray, tile: int) -> np.ndarray:
    h, w = arr.shape
    ph, pw = max(tile - h, 0), max(tile - w, 0)
    if not (ph or pw):
        return arr
    # The same padding as segmentation (tiling.TileGrid.pad).
    return np.pad(arr, ((0, ph), (0, pw)), mode="symmetric")


class TileDataset(torch.utils.data.Dataset):
    """Tiles of QPI frames (and masks) for training, all frames held in memory.

    Parameters
    ----------
    frames
        `Frame`s (e.g. from `find_frames` or `split_frames`); all are read at construction.
    tile_size, stride
        Tile side in px (>= 16) and the step between tile origins (1..tile_size; default
        tile_size, i.e. no overlap except the last tile, which is flush with the far edge).
    normalization
        Applied to each whole frame after `check_frame` (float32, usually [-1, 1]).
    label_map
        None (masks already hold 0 background, 1 live, 2 dead), a dict, a `LABEL_MAPS`
        name or a ``"value:class,..."`` string (`parse_label_map`).
    n_classes
        Number of classes; mask values (after mapping) must lie in 0..n_classes-1.
    augment
        An `Augment`, or None for plain tiles.
    require_masks
        Refuse frames without a mask (supervised training, LDM-S). Otherwise frames without
        masks give items without a ``"mask"`` key (mix them with labelled frames only with
        ``load_masks=False``, or the default collate will fail).
    seed
        Augmentation of item ``i`` in epoch ``e`` uses
        ``np.random.default_rng(SeedSequence(seed, spawn_key=(e, i)))``, so results do not
        depend on worker count or order. Call `set_epoch` before each epoch (DataLoader
        workers copy the dataset when an epoch's iterator starts, so it reaches them unless
        ``persistent_workers=True``).
    load_masks
        False ignores masks entirely (autoencoder / LDM-P training): faster, and bad masks
        do not stop image-only training.

    Frames smaller than a tile are reflect-padded at the bottom/right (masks too). Frames
    are padded, not resized, so tiles keep the data's pixel scale.

    Items: ``{"image": float32 tensor (1, T, T), "mask": int64 tensor (T, T) (only for
    frames with a mask), "frame": int index into the dataset's frames}``.

    Raises `InputImageError` for bad files (naming them) and `ConfigError` for bad settings.
    """

    def __init__(
        self,
        frames: Sequence[Frame],
        tile_size: int = 256,
        stride: int | None = None,
        normalization: Normalization = Normalization(),
        label_map=None,
        n_classes: int = 3,
        augment: Augment | None = None,
        require_masks: bool = False,
        seed: int = 0,
        *,
        load_masks: bool = True,
    ):
        frames = [f if isinstance(f, Frame) else Frame(f) for f in frames]
        self._configure(tile_size, stride, normalization, label_map, n_classes, augment,
                        require_masks, seed, load_masks, len(frames))
        if self.require_masks:
            missing = [f.image_path for f in frames if f.mask_path is None]
            if missing:
                raise InputImageError(
                    f"{len(missing)} of {len(frames)} frame(s) have no mask, but this training "
                    f"stage needs masks: {_list(missing)} (masks are looked for as masks/NAME.* "
                    "beside images/, or NAME_mask.* / NAME_labels.* beside the image)"
                )
        self.frames: list[Frame] | None = frames

        def load():
            for f in frames:
                img = read_image(f.image_path)
                m = read_image(f.mask_path) if self.load_masks and f.mask_path is not None else None
                yield img, m, (str(f.image_path), str(f.mask_path))

        self._build(load())

    @classmethod
    def from_folder(cls, root: str | os.PathLike, **kwargs) -> "TileDataset":
        """``TileDataset(find_frames(root), **kwargs)``."""
        return cls(find_frames(root), **kwargs)

    @classmethod
    def from_arrays(cls, images, masks=None, *, names: Sequence[str] | None = None,
                    tile_size: int = 256, stride: int | None = None,
                    normalization: Normalization = Normalization(), label_map=None,
                    n_classes: int = 3, augment: Augment | None = None,
                    require_masks: bool = False, seed: int = 0,
                    load_masks: bool = True) -> "TileDataset":
        """A dataset over in-memory frames, with the same checks as the file path.

        `images`: (n, h, w) array or a sequence of (h, w) arrays (one (h, w) array is one
        frame), e.g. the phases of `synthetic.make_dataset`. `masks`: None, (n, h, w) or a
        sequence of (h, w) arrays or None. `names` (default ``images[i]``) name frames in
        error messages. `frames` is None on the result.
        """
        if isinstance(images, np.ndarray) and images.ndim == 2:
            images = images[None]
            if isinstance(masks, np.ndarray) and masks.ndim == 2:
                masks = masks[None]
        images = list(images)
        n = len(images)
        if masks is None:
            masks = [None] * n
        else:
            masks = list(masks)
            if len(masks) != n:
                raise InputImageError(f"got {n} images but {len(masks)} masks")
        if names is None:
            labels = [(f"images[{i}]", f"masks[{i}]") for i in range(n)]
        else:
            names = [str(s) for s in names]
            if len(names) != n:
                raise ConfigError(f"got {n} images but {len(names)} names")
            labels = [(s, f"mask of {s}") for s in names]
        obj = cls.__new__(cls)
        obj._configure(tile_size, stride, normalization, label_map, n_classes, augment,
                       require_masks, seed, load_masks, n)
        if obj.require_masks:
            missing = [labels[i][0] for i in range(n) if masks[i] is None]
            if missing:
                raise InputImageError(
                    f"{len(missing)} of {n} frame(s) have no mask, but this training stage needs "
                    f"masks: {_list(missing)}"
                )
        obj.frames = None
        obj._build(
            (np.asarray(img), None if m is None or not obj.load_masks else np.asarray(m), lab)
            for img, m, lab in zip(images, masks, labels)
        )
        return obj

    # -- shared set-up ----------------------------------------------------------------

    def _configure(self, tile_size, stride, normalization, label_map, n_classes, augment,
                   require_masks, seed, load_masks, n_frames):
        self.tile_size = _check_int("tile_size", tile_size, MIN_SIZE)
        stride = self.tile_size if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) \
                or not 1 <= stride <= self.tile_size:
            raise ConfigError(
                f"stride must be an integer in [1, tile_size={self.tile_size}], got {stride!r}"
            )
        self.stride = int(stride)
        if not isinstance(normalization, Normalization):
            raise ConfigError(f"normalization must be a Normalization, got {type(normalization).__name__}")
        self.normalization = normalization
        self.n_classes = _check_n_classes(n_classes)
        self.label_map = None if label_map is None else parse_label_map(label_map)
        self._label_spec = label_map
        self._lut = _lookup_table(self.label_map, self.n_classes)
        if augment is not None and not isinstance(augment, Augment):
            raise ConfigError(f"augment must be an Augment or None, got {type(augment).__name__}")
        self.augment = augment
        for name, v in (("require_masks", require_masks), ("load_masks", load_masks)):
            if not isinstance(v, (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {v!r}")
        self.require_masks = bool(require_masks)
        self.load_masks = bool(load_masks)
        if self.require_masks and not self.load_masks:
            raise ConfigError("require_masks=True needs load_masks=True")
        self.seed = _check_int("seed", seed, 0)
        self.epoch = 0
        if n_frames == 0:
            raise ConfigError("no frames given: the dataset would be empty")

    def _build(self, items):
        """Check, normalise, pad and index frames from ``(image, mask | None, (image name,
        mask name))`` items, one at a time (so only one raw frame is held at once)."""
        t = self.tile_size
        self.names: list[str] = []
        self._images: list[np.ndarray] = []
        self._masks: list[np.ndarray | None] = []
        self.frame_shapes: list[tuple[int, int]] = []
        index = []
        for i, (img, m, (img_name, mask_name)) in enumerate(items):
            frame = normalize(check_frame(img, name=img_name), self.normalization)
            if m is not None:
                if m.shape != frame.shape:
                    raise InputImageError(
                        f"image and mask sizes differ: {img_name} is {_shape(frame)}, "
                        f"{mask_name} is {_shape(m)}"
                    )
                m = _pad_to(_apply_lut(m, self._lut, self.n_classes, mask_name, self._label_spec), t)
            self.frame_shapes.append(frame.shape)
            frame = _pad_to(frame, t)
            self.names.append(img_name)
            self._images.append(frame)
            self._masks.append(m)
            ys = tile_origins(frame.shape[0], t, self.stride)
            xs = tile_origins(frame.shape[1], t, self.stride)
            index.extend((i, y, x) for y in ys for x in xs)
        self.tiles = np.asarray(index, dtype=np.int64).reshape(-1, 3)
        self.tiles.setflags(write=False)

    # -- public -----------------------------------------------------------------------

    @property
    def n_frames(self) -> int:
        return len(self._images)

    @property
    def has_masks(self) -> bool:
        """True when every frame has a mask (items always carry ``"mask"``)."""
        return all(m is not None for m in self._masks)

    def frame_image(self, i: int) -> np.ndarray:
        """Normalised, padded float32 frame ``i`` (read-only view)."""
        v = self._images[i].view()
        v.setflags(write=False)
        return v

    def frame_mask(self, i: int) -> np.ndarray | None:
        """Mapped, padded uint8 mask of frame ``i`` (read-only view), or None."""
        m = self._masks[i]
        if m is None:
            return None
        v = m.view()
        v.setflags(write=False)
        return v

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of `epoch` (see the class docstring)."""
        self.epoch = _check_int("epoch", epoch, 0)

    def item_rng(self, index: int) -> np.random.Generator:
        """The generator that augments item `index` in the current epoch."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, int(index))))

    def __len__(self) -> int:
        return int(self.tiles.shape[0])

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"TileDataset index must be an integer, got {type(index).__name__}")
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"tile index {index} out of range for {n} tiles")
        f, y, x = (int(v) for v in self.tiles[i])
        t = self.tile_size
        image = self._images[f][y : y + t, x : x + t]
        m = self._masks[f]
        mask = None if m is None else m[y : y + t, x : x + t]
        if self.augment is not None:
            image, mask = self.augment(image, mask, self.item_rng(i))
        item = {"image": torch.from_numpy(np.array(image, np.float32, order="C")[None]), "frame": f}
        if mask is not None:
            item["mask"] = torch.from_numpy(mask.astype(np.int64))
        return item

    def __repr__(self) -> str:
        return (f"TileDataset({self.n_frames} frames, {len(self)} tiles of {self.tile_size} px, "
                f"stride {self.stride}, masks: {sum(m is not None for m in self._masks)}/{self.n_frames})")


def _shape(a: np.ndarray) -> str:
    return "x".join(str(s) for s in a.shape)

"""Training and evaluation frames: folders of QPI frames with optional label masks, label
maps, folds.

Folder layouts (`find_frames`), TIFF (``.tif``/``.tiff``), PNG or JPEG files:

* ``DIR/images/NAME.tif`` with ``DIR/masks/NAME.tif`` (or ``NAME_mask.*``/``NAME_labels.*``
  in ``masks/``): the layout `synthetic.write_dataset` writes;
* one folder with ``NAME.tif`` and ``NAME_mask.tif`` (or ``NAME_labels.tif``).

Masks hold integer classes, ours being 0 background, 1 live, 2 dead; datasets with another
class order are mapped with a label map (`LABEL_MAPS`, `parse_label_map`). Frames without a
mask are valid: the autoencoder and LDM-P train on images alone. Folds are made over frames,
never over tiles (`kfold_split`, `split_frames`), so no frame leaks from training into
testing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputImageError
from ..files import IMAGE_SUFFIXES, read_image

__all__ = [
    "LABEL_MAPS",
    "MASK_SUFFIXES",
    "Frame",
    "find_frames",
    "FrameSet",
    "read_frames",
    "kfold_split",
    "map_labels",
    "parse_label_map",
    "read_mask",
    "mask_instances",
    "INSTANCES_MAP",
    "LABEL_MAP_NAMES",
    "split_frames",
]

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


def check_n_classes(n_classes) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or not 2 <= n_classes <= 255:
        raise ConfigError(f"n_classes must be an integer in [2, 255], got {n_classes!r}")
    return int(n_classes)


def lookup_table(label_map, n_classes: int) -> np.ndarray | None:
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
    n_classes = check_n_classes(n_classes)
    lut = lookup_table(label_map, n_classes)
    return apply_lut(np.asarray(mask), lut, n_classes, name, label_map)


def apply_lut(arr: np.ndarray, lut, n_classes: int, name: str, label_map) -> np.ndarray:
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


def name_list(paths, n: int = 5) -> str:
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
            f"{name_list(ps)}; keep one file per frame"
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
            f"{name_list(orphans)} (a mask pairs with the image of the same name, or the name plus "
            "'_mask'/'_labels')"
        )
    frames = []
    for p in images:
        ms = masks_of.get(p.stem, [])
        if len(ms) > 1:
            raise InputImageError(f"image {p} has {len(ms)} masks: {name_list(ms)}; keep one")
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




def check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def kfold_split(n_frames: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-fold split of frame indices: ``[(train_idx, test_idx)] * k``, int64 arrays, sorted.

    Frames are shuffled with ``np.random.default_rng(seed)`` and cut into k folds whose
    sizes differ by at most one; every frame is in exactly one test fold, and in the
    training part of every other fold. Deterministic for a given (n_frames, k, seed).
    """
    n = check_int("n_frames", n_frames, 0)
    k = check_int("k (number of folds)", k, 2)
    seed = check_int("seed", seed, 0)
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
    k = check_int("k (number of folds)", k, 2)
    fold = check_int("fold", fold, 0)
    if fold >= k:
        raise ConfigError(f"fold must be in 0..{k - 1}, got {fold}")
    train, test = kfold_split(len(frames), k, seed)[fold]
    return [frames[i] for i in train], [frames[i] for i in test]

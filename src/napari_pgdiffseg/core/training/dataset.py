"""Training tiles: `TileDataset` and the paper's augmentation (`Augment`).

`TileDataset` loads every frame once, normalises it with the bundle's `Normalization`
(whole frame, as at segmentation time), symmetric-pads frames smaller than a tile, and cuts
tiles of ``tile_size`` at ``stride``; the last tile of a row or column is flush with the
frame's far edge, so every pixel is in some tile (832 px, tile 256: origins 0, 256, 512,
576 at stride 256; 0, 192, 384, 576 at stride 192). Augmentation (`Augment`): 90-degree
rotations, flips, brightness and contrast jitter, as in the paper; masks follow the
geometric transforms exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, InputImageError
from ..preprocess import MIN_SIZE, Normalization, check_frame, normalize
from ..tiling import tile_origins
from ..files import read_image
from .frames import Frame, apply_lut, check_int, check_n_classes, find_frames, lookup_table, name_list, parse_label_map

__all__ = ["Augment", "TileDataset"]

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
                    f"stage needs masks: {name_list(missing)} (masks are looked for as masks/NAME.* "
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
                    f"masks: {name_list(missing)}"
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
        self.tile_size = check_int("tile_size", tile_size, MIN_SIZE)
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
        self.n_classes = check_n_classes(n_classes)
        self.label_map = None if label_map is None else parse_label_map(label_map)
        self._label_spec = label_map
        self._lut = lookup_table(self.label_map, self.n_classes)
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
        self.seed = check_int("seed", seed, 0)
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
                m = _pad_to(apply_lut(m, self._lut, self.n_classes, mask_name, self._label_spec), t)
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

    def keep_tiles(self, keep) -> None:
        """Keep only the tiles at indices `keep` (e.g. to drop most tiles without any object)."""
        keep = np.asarray(keep, dtype=np.int64)
        if keep.size == 0:
            raise ConfigError("keep_tiles: at least one tile must be kept")
        tiles = self.tiles[keep]
        tiles.setflags(write=False)
        self.tiles = tiles

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of `epoch` (see the class docstring)."""
        self.epoch = check_int("epoch", epoch, 0)

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

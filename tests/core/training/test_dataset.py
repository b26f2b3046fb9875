"""Tests of napari_pgdiffseg.core.training.dataset: tiles and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_pgdiffseg.core.tiling import tile_origins
from napari_pgdiffseg.core.training import Augment, TileDataset
from napari_pgdiffseg.core.errors import ConfigError, InputImageError
from napari_pgdiffseg.core.preprocess import Normalization, normalize
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset, write_dataset

SMALL = SyntheticConfig(shape=(64, 64))
RANGE = Normalization(method="range", in_range=(0.0, 1.0))


def _rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@pytest.fixture
def synth_dir(tmp_path):
    write_dataset(tmp_path / "ds", 4, seed=1, config=SMALL)
    return tmp_path / "ds"




def _coords(h=24, w=24):
    """An image whose every pixel encodes its own coordinates (all values distinct)."""
    return np.arange(h * w, dtype=np.float32).reshape(h, w)


def test_size_mismatch_names_both_files_and_shapes(synth_dir):
    m = synth_dir / "masks" / "synth_1_0001.tif"
    tifffile.imwrite(m, np.zeros((60, 64), np.uint8))
    with pytest.raises(InputImageError, match=r"images/synth_1_0001\.tif is 64x64.*masks/synth_1_0001\.tif is 60x64"):
        TileDataset.from_folder(synth_dir, tile_size=32)
    with pytest.raises(InputImageError, match=r"images\[1\] is 64x64, masks\[1\] is 60x64"):
        TileDataset.from_arrays([_rand((64, 64)), _rand((64, 64))],
                                [np.zeros((64, 64), np.uint8), np.zeros((60, 64), np.uint8)], tile_size=32)


def test_labels_outside_the_classes_name_file_and_values(synth_dir):
    m = synth_dir / "masks" / "synth_1_0003.tif"
    lab = tifffile.imread(m)
    lab[:2, :2] = 7
    lab[5, 5] = 4
    tifffile.imwrite(m, lab)
    with pytest.raises(InputImageError, match=r"synth_1_0003\.tif: label value\(s\) 4, 7 are outside the classes 0\.\.2"):
        TileDataset.from_folder(synth_dir, tile_size=32)
    # Image-only training ignores masks altogether.
    assert TileDataset.from_folder(synth_dir, tile_size=32, load_masks=False).n_frames == 4


def test_require_masks_lists_frames_without_masks(synth_dir):
    for i in range(4):
        (synth_dir / "masks" / f"synth_1_{i:04d}.tif").unlink()
    (synth_dir / "masks" / "x").mkdir()  # folders in masks/ are ignored
    with pytest.raises(InputImageError, match=r"4 of 4 frame\(s\) have no mask.*synth_1_0000\.tif"):
        TileDataset.from_folder(synth_dir, tile_size=32, require_masks=True)
    imgs = [_rand((32, 32), s) for s in range(7)]
    with pytest.raises(InputImageError, match=r"7 of 7.*images\[4\] and 2 more"):
        TileDataset.from_arrays(imgs, tile_size=32, require_masks=True)


@pytest.mark.parametrize(
    "shape,tile,stride,n",
    [
        ((832, 832), 256, None, 16),  # origins 0, 256, 512, 576
        ((832, 832), 256, 192, 16),  # origins 0, 192, 384, 576
        ((832, 832), 256, 128, 36),
        ((768, 768), 256, None, 9),
        ((300, 200), 256, None, 2),  # rows 0, 44; width padded to 256
        ((100, 80), 128, None, 1),
    ],
)
def test_tile_count(shape, tile, stride, n):
    ds = TileDataset.from_arrays([_rand(shape)], tile_size=tile, stride=stride)
    assert len(ds) == n
    assert ds[0]["image"].shape == (1, tile, tile)


def test_tile_origins_cover_the_frame():
    assert tile_origins(832, 256, 256) == [0, 256, 512, 576]
    assert tile_origins(832, 256, 192) == [0, 192, 384, 576]
    assert tile_origins(256, 256, 64) == [0]


def test_tiles_are_crops_of_the_normalised_frame_and_masks_align():
    imgs, masks = make_dataset(2, seed=3, config=SyntheticConfig(shape=(200, 160)))
    ds = TileDataset.from_arrays(imgs, masks, tile_size=64, stride=48)
    assert len(ds) == 2 * 4 * 3
    for i in range(len(ds)):
        f, y, x = ds.tiles[i]
        item = ds[i]
        ref = normalize(imgs[f], Normalization())[y : y + 64, x : x + 64]
        np.testing.assert_array_equal(item["image"][0].numpy(), ref)
        np.testing.assert_array_equal(item["mask"].numpy(), masks[f][y : y + 64, x : x + 64])
        assert item["frame"] == f
        assert item["image"].dtype == torch.float32 and item["mask"].dtype == torch.int64


def test_small_frame_is_padded_like_segmentation():
    img = _rand((40, 24))
    mask = (np.arange(40 * 24).reshape(40, 24) % 3).astype(np.uint8)
    ds = TileDataset.from_arrays(img, mask, tile_size=64, normalization=RANGE)
    assert len(ds) == 1
    item = ds[0]
    exp_img = np.pad(normalize(img, RANGE), ((0, 24), (0, 40)), mode="symmetric")
    np.testing.assert_array_equal(item["image"][0].numpy(), exp_img)
    np.testing.assert_array_equal(item["mask"].numpy(), np.pad(mask, ((0, 24), (0, 40)), mode="symmetric"))
    assert ds.frame_shapes == [(40, 24)]


def test_bad_settings_are_config_errors():
    img = [_rand((64, 64))]
    for kw, msg in [
        (dict(tile_size=8), "tile_size"),
        (dict(tile_size=32, stride=0), "stride"),
        (dict(tile_size=32, stride=33), "stride"),
        (dict(n_classes=1), "n_classes"),
        (dict(augment="yes"), "augment"),
        (dict(seed=-1), "seed"),
        (dict(label_map={0: 5}), "outside"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            TileDataset.from_arrays(img, **kw)
    with pytest.raises(ConfigError, match="no frames"):
        TileDataset([])
    with pytest.raises(IndexError):
        TileDataset.from_arrays(img, tile_size=64)[1]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_mask_follows_geometry_exactly_and_all_symmetries_are_reached(backend):
    aug = Augment(brightness=0.0, contrast=0.0)
    img = _coords()
    mask = img.astype(np.int64)
    if backend == "torch":
        img, mask = torch.from_numpy(img), torch.from_numpy(mask)
        rng = torch.Generator().manual_seed(0)
    else:
        rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        a, m = aug(img, mask, rng)
        a_np = a.numpy() if backend == "torch" else a
        m_np = m.numpy() if backend == "torch" else m
        assert type(a) is type(img) and a.dtype == img.dtype and m.dtype == mask.dtype
        np.testing.assert_array_equal(m_np, a_np.astype(np.int64))  # still aligned
        seen.add(a_np.tobytes())
    # The 8 symmetries of the square: 4 rotations x with/without a flip.
    base = _coords()
    expected = {np.ascontiguousarray(np.rot90(t, k)).tobytes() for k in range(4) for t in (base, base[:, ::-1])}
    assert seen == expected


def test_switches_off_give_identity_and_outputs_are_copies():
    img = _coords()
    mask = (img > 200).astype(np.uint8)
    a, m = Augment(rot90=False, flip=False, brightness=0, contrast=0)(img, mask, np.random.default_rng(1))
    np.testing.assert_array_equal(a, img)
    np.testing.assert_array_equal(m, mask)
    a[0, 0] = -5
    assert img[0, 0] == 0
    only_rot = Augment(flip=False, brightness=0, contrast=0)
    outs = {only_rot(img, None, np.random.default_rng(s))[0].tobytes() for s in range(40)}
    assert outs == {np.ascontiguousarray(np.rot90(img, k)).tobytes() for k in range(4)}


def test_brightness_contrast_touch_the_image_only_within_range():
    a_, b_ = 0.2, 0.15
    aug = Augment(rot90=False, flip=False, brightness=b_, contrast=a_)
    x = np.linspace(-1, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    mask = (x > 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    cs, bs = [], []
    for _ in range(100):
        y, m = aug(x, mask, rng)
        np.testing.assert_array_equal(m, mask)
        c, b = np.polyfit(x.ravel(), y.ravel(), 1)
        np.testing.assert_allclose(y, x * c + b, atol=1e-5)
        cs.append(c)
        bs.append(b)
    assert 1 - a_ <= min(cs) < 1 - a_ / 2 and 1 + a_ / 2 < max(cs) <= 1 + a_
    assert -b_ <= min(bs) < -b_ / 2 and b_ / 2 < max(bs) <= b_
    # Channel-first images and torch on the same draws give the same result.
    y_np, _ = aug(x[None], None, np.random.default_rng(3))
    y_t, _ = aug(torch.from_numpy(x[None]), None, np.random.default_rng(3))
    np.testing.assert_allclose(y_t.numpy(), y_np, atol=1e-6)
    assert y_np.shape == (1, 32, 32) and y_np.dtype == np.float32


def test_augment_settings_are_checked():
    with pytest.raises(ConfigError, match="contrast"):
        Augment(contrast=1.0)
    with pytest.raises(ConfigError, match="brightness"):
        Augment(brightness=-0.1)
    with pytest.raises(ConfigError, match="rot90"):
        Augment(rot90=1)
    with pytest.raises(ConfigError, match="Generator"):
        Augment()(_coords(), None, "seed")
    with pytest.raises(InputImageError, match="does not match"):
        Augment()(_coords(), np.zeros((3, 3)), 0)


def test_dataset_augmentation_is_deterministic_per_seed_epoch_index():
    imgs, masks = make_dataset(2, seed=5, config=SMALL)
    kw = dict(tile_size=32, augment=Augment(), seed=7)
    d1 = TileDataset.from_arrays(imgs, masks, **kw)
    d2 = TileDataset.from_arrays(imgs, masks, **kw)
    stack = lambda d, key: torch.stack([d[i][key] for i in range(len(d))])  # noqa: E731
    assert torch.equal(stack(d1, "image"), stack(d2, "image"))
    assert torch.equal(stack(d1, "mask"), stack(d2, "mask"))
    # Reverse order of access does not matter.
    assert torch.equal(torch.stack([d2[i]["image"] for i in reversed(range(len(d2)))]).flip(0), stack(d1, "image"))
    e0 = stack(d1, "image")
    d1.set_epoch(1)
    assert not torch.equal(stack(d1, "image"), e0)
    d1.set_epoch(0)
    assert torch.equal(stack(d1, "image"), e0)
    d3 = TileDataset.from_arrays(imgs, masks, tile_size=32, augment=Augment(), seed=8)
    assert not torch.equal(stack(d3, "image"), e0)


def test_dataloader_workers_match_serial_and_collate():
    imgs, masks = make_dataset(3, seed=6, config=SMALL)
    ds = TileDataset.from_arrays(imgs, masks, tile_size=32, augment=Augment(), seed=1)
    ds.set_epoch(2)
    serial = torch.stack([ds[i]["image"] for i in range(len(ds))])
    dl = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    batches = list(dl)
    assert torch.equal(torch.cat([b["image"] for b in batches]), serial)
    assert batches[0]["mask"].shape == (5, 32, 32) and batches[0]["frame"].dtype == torch.int64


def test_augment_noise_adds_smoothed_noise_of_bounded_sd_and_keeps_masks():
    x = np.zeros((64, 64), np.float32)
    mask = (np.arange(64 * 64).reshape(64, 64) % 3).astype(np.uint8)
    plain = Augment(rot90=False, flip=False, brightness=0.0, contrast=0.0)
    noisy = Augment(rot90=False, flip=False, brightness=0.0, contrast=0.0, noise=0.1)
    y0, m0 = plain(x, mask, np.random.default_rng(4))
    assert np.array_equal(y0, x) and np.array_equal(m0, mask)
    sds = []
    for seed in range(30):
        y, m = noisy(x, mask, np.random.default_rng(seed))
        assert y.dtype == np.float32 and np.array_equal(m, mask)
        sds.append(float(y.std()))
        # smoothed: neighbouring pixels are correlated (white noise would give ~0)
        assert np.corrcoef(y[:, :-1].ravel(), y[:, 1:].ravel())[0, 1] > 0.2
    assert 0 < min(sds) and max(sds) <= 0.1 + 1e-6 and max(sds) > 0.05
    a, _ = noisy(x, None, np.random.default_rng(9))
    b, _ = noisy(x, None, np.random.default_rng(9))
    assert np.array_equal(a, b)  # same draws, same noise
    t, _ = noisy(torch.zeros(1, 64, 64), None, torch.Generator().manual_seed(2))
    assert t.shape == (1, 64, 64) and t.dtype == torch.float32 and float(t.std()) > 0
    with pytest.raises(ConfigError, match="noise"):
        Augment(noise=-0.1)


def test_a_corrupt_file_in_a_dataset_folder_stops_loading_with_its_name(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "broken.tif").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputImageError, match=r"broken\.tif: cannot read"):
        TileDataset.from_folder(tmp_path, tile_size=32)

"""Tests of the training data module (napari_pgdiffseg.core.data)."""

from __future__ import annotations

import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from napari_pgdiffseg.core.data import (
    LABEL_MAPS,
    Augment,
    Frame,
    TileDataset,
    find_frames,
    kfold_split,
    map_labels,
    parse_label_map,
    read_image,
    read_mask,
    split_frames,
    tile_origins,
)
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


# --------------------------------------------------------------------------- pairing


def test_images_masks_layout_pairs_by_stem_and_keeps_unlabelled_frames(synth_dir):
    frames = find_frames(synth_dir)
    assert [f.image_path.name for f in frames] == [f"synth_1_{i:04d}.tif" for i in range(4)]
    assert all(f.mask_path == synth_dir / "masks" / f.image_path.name for f in frames)
    (synth_dir / "masks" / "synth_1_0002.tif").unlink()
    frames = find_frames(synth_dir)
    assert frames[2].mask_path is None and frames[1].mask_path is not None
    # A mask named NAME_mask.* in masks/ pairs too.
    shutil.move(synth_dir / "masks" / "synth_1_0001.tif", synth_dir / "masks" / "synth_1_0001_mask.tif")
    assert find_frames(synth_dir)[1].mask_path.name == "synth_1_0001_mask.tif"


def test_flat_layout_with_mask_and_labels_suffixes_tiff_and_png(tmp_path):
    imgs, masks = make_dataset(3, seed=2, config=SMALL)
    tifffile.imwrite(tmp_path / "b.tif", imgs[1])
    tifffile.imwrite(tmp_path / "b_mask.tif", masks[1])
    iio.imwrite(tmp_path / "a.png", (imgs[0] * 1000 + 2000).astype(np.uint16))
    iio.imwrite(tmp_path / "a_labels.png", masks[0])
    tifffile.imwrite(tmp_path / "c.tiff", imgs[2])  # no mask
    (tmp_path / ".hidden.tif").write_bytes(b"junk")  # hidden files are skipped
    frames = find_frames(tmp_path)
    assert [(f.image_path.name, f.mask_path and f.mask_path.name) for f in frames] == [
        ("a.png", "a_labels.png"),
        ("b.tif", "b_mask.tif"),
        ("c.tiff", None),
    ]
    np.testing.assert_array_equal(read_mask(frames[0].mask_path), masks[0])
    np.testing.assert_array_equal(read_image(frames[1].image_path), imgs[1])
    ds = TileDataset(frames, tile_size=64, load_masks=True)
    assert [("mask" in ds[i]) for i in range(3)] == [True, True, False]


def test_orphan_mask_and_duplicate_stems_are_errors(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _rand((32, 32)))
    tifffile.imwrite(tmp_path / "x_mask.tif", np.zeros((32, 32), np.uint8))
    with pytest.raises(InputImageError, match=r"no matching image: x_mask\.tif"):
        find_frames(tmp_path)
    (tmp_path / "x_mask.tif").unlink()
    tifffile.imwrite(tmp_path / "a.tiff", _rand((32, 32)))
    with pytest.raises(InputImageError, match="more than one file"):
        find_frames(tmp_path)


def test_empty_folder_names_the_patterns(tmp_path):
    with pytest.raises(InputImageError, match=r"no images found.*images/.*\*\.tif.*_mask"):
        find_frames(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(InputImageError, match=r"no images found.*images/\{\*\.tif"):
        find_frames(tmp_path)
    with pytest.raises(InputImageError, match="no such folder"):
        find_frames(tmp_path / "nope")


# --------------------------------------------------------------------------- reading


def test_read_image_png_rgb_equal_channels_palette_and_squeeze(tmp_path):
    gray = (np.arange(32 * 32).reshape(32, 32) % 251).astype(np.uint8)
    iio.imwrite(tmp_path / "rgb.png", np.stack([gray] * 3, -1))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), gray)
    iio.imwrite(tmp_path / "rgba.png", np.dstack([gray] * 3 + [np.full_like(gray, 255)]))
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), gray)
    # A palette PNG gives its indices (label masks are often saved that way).
    lab = (gray % 3).astype(np.uint8)
    im = Image.fromarray(lab, mode="P")
    im.putpalette([0, 0, 0, 0, 255, 0, 255, 0, 0] + [0] * (3 * 253))
    im.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png"), lab)
    tifffile.imwrite(tmp_path / "one.tif", gray[None, :, :, None])
    assert read_image(tmp_path / "one.tif").shape == (32, 32)


def test_rgb_with_different_channels_is_refused(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "c.png", rgb)
    with pytest.raises(InputImageError, match=r"c\.png.*RGB.*different colour channels"):
        read_image(tmp_path / "c.png")
    tifffile.imwrite(tmp_path / "c.tif", rgb)
    with pytest.raises(InputImageError, match=r"c\.tif.*RGB"):
        read_image(tmp_path / "c.tif")


def test_corrupt_missing_and_unsupported_files_are_named(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputImageError, match=r"broken\.tif: cannot read.*corrupt"):
        read_image(bad)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputImageError, match=r"broken\.png: cannot read"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(InputImageError, match="no such file"):
        read_image(tmp_path / "missing.tif")
    with pytest.raises(InputImageError, match="unsupported file type"):
        read_image(tmp_path / "x.npy")
    # A corrupt file inside a dataset folder stops loading with its name.
    (tmp_path / "images").mkdir()
    shutil.move(bad, tmp_path / "images" / "broken.tif")
    with pytest.raises(InputImageError, match=r"broken\.tif"):
        TileDataset.from_folder(tmp_path, tile_size=32)


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


def test_mask_dtypes(tmp_path):
    assert map_labels(np.ones((4, 4), bool)).dtype == np.uint8
    np.testing.assert_array_equal(map_labels(np.full((4, 4), 2.0)), np.full((4, 4), 2, np.uint8))
    with pytest.raises(InputImageError, match="non-integer"):
        map_labels(np.full((4, 4), 0.5))
    with pytest.raises(InputImageError, match=r"-1"):
        map_labels(np.full((4, 4), -1, np.int16))
    with pytest.raises(InputImageError, match="2D"):
        map_labels(np.zeros((2, 4, 4), np.uint8))


def test_require_masks_lists_frames_without_masks(synth_dir):
    for i in range(4):
        (synth_dir / "masks" / f"synth_1_{i:04d}.tif").unlink()
    (synth_dir / "masks" / "x").mkdir()  # folders in masks/ are ignored
    with pytest.raises(InputImageError, match=r"4 of 4 frame\(s\) have no mask.*synth_1_0000\.tif"):
        TileDataset.from_folder(synth_dir, tile_size=32, require_masks=True)
    imgs = [_rand((32, 32), s) for s in range(7)]
    with pytest.raises(InputImageError, match=r"7 of 7.*images\[4\] and 2 more"):
        TileDataset.from_arrays(imgs, tile_size=32, require_masks=True)


# --------------------------------------------------------------------------- tiles


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


# --------------------------------------------------------------------------- folds


@pytest.mark.parametrize("n,k", [(10, 3), (9, 3), (5, 5), (7, 2)])
def test_kfold_every_frame_tested_once_no_leak(n, k):
    splits = kfold_split(n, k, seed=4)
    assert len(splits) == k
    tests = [set(te.tolist()) for _, te in splits]
    for train, test in splits:
        assert set(train.tolist()).isdisjoint(test.tolist())
        assert set(train.tolist()) | set(test.tolist()) == set(range(n))
        assert len(test) in (n // k, -(-n // k))
    assert sorted(i for t in tests for i in t) == list(range(n))  # each frame tested exactly once
    for a in range(k):
        for b in range(a + 1, k):
            assert tests[a].isdisjoint(tests[b])
    again = kfold_split(n, k, seed=4)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))


def test_kfold_seed_changes_split_and_bad_arguments():
    a = [t.tolist() for _, t in kfold_split(30, 3, 0)]
    b = [t.tolist() for _, t in kfold_split(30, 3, 1)]
    assert a != b
    with pytest.raises(ConfigError, match="at least 4 frames"):
        kfold_split(3, 4, 0)
    with pytest.raises(ConfigError, match="k"):
        kfold_split(10, 1, 0)


def test_split_frames_splits_by_frame_so_no_tile_leaks(synth_dir):
    frames = find_frames(synth_dir)
    seen_test = []
    for fold in range(2):
        train, test = split_frames(frames, 2, fold, seed=0)
        assert {f.image_path for f in train}.isdisjoint(f.image_path for f in test)
        assert len(train) + len(test) == 4
        tr = TileDataset(train, tile_size=32, stride=16)
        te = TileDataset(test, tile_size=32, stride=16)
        assert set(tr.names).isdisjoint(te.names)
        seen_test += [f.image_path for f in test]
    assert sorted(seen_test) == sorted(f.image_path for f in frames)
    with pytest.raises(ConfigError, match="fold"):
        split_frames(frames, 2, 2)


# --------------------------------------------------------------------------- augmentation


def _coords(h=24, w=24):
    """An image whose every pixel encodes its own coordinates (all values distinct)."""
    return np.arange(h * w, dtype=np.float32).reshape(h, w)


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


# --------------------------------------------------------------------------- label maps


def test_label_maps_hela_and_cho():
    hela = np.array([[0, 1, 2, 3]] * 4, np.uint8)
    np.testing.assert_array_equal(map_labels(hela, "hela")[0], [1, 1, 2, 0])
    cho = np.array([[0, 1, 2, 2]] * 4, np.uint16)
    np.testing.assert_array_equal(map_labels(cho, "cho")[0], [1, 2, 0, 0])
    np.testing.assert_array_equal(map_labels(cho, LABEL_MAPS["cho"])[0], [1, 2, 0, 0])
    img = _rand((32, 32))
    m = np.tile(np.array([0, 1, 2, 3], np.uint8), (32, 8))
    ds = TileDataset.from_arrays(img, m, tile_size=32, label_map="0:1,1:1,2:2,3:0")
    np.testing.assert_array_equal(ds[0]["mask"][0, :4].numpy(), [1, 1, 2, 0])


def test_parse_label_map():
    assert parse_label_map("0:1,1:1,2:2,3:0") == LABEL_MAPS["hela"]
    assert parse_label_map(" 0 : 1 , 1:2, 2:0 ") == LABEL_MAPS["cho"]
    assert parse_label_map("HeLa") == LABEL_MAPS["hela"]
    assert parse_label_map({np.int64(255): 0, 1: 1}) == {255: 0, 1: 1}
    p = parse_label_map("hela")
    p[0] = 9
    assert LABEL_MAPS["hela"][0] == 1  # a copy
    for bad, msg in [("0-1", "cannot parse"), ("0:1,0:2", "more than once"), ("", "empty"),
                     ("mouse", "cannot parse"), ({0: "a"}, "integers"), (3, "dict"),
                     ("0:70000", r"\[0, 65535\]")]:
        with pytest.raises(ConfigError, match=msg):
            parse_label_map(bad)


def test_unmapped_value_is_an_error_naming_file_and_value(synth_dir):
    with pytest.raises(InputImageError, match=r"masks\[0\]: label value\(s\) 3 are not in the label map 'cho'"):
        map_labels(np.array([[0, 1, 2, 3]] * 4, np.uint8), "cho", name="masks[0]")
    # A map that forgets a value present in a mask file names the file.
    m = synth_dir / "masks" / "synth_1_0000.tif"
    lab = tifffile.imread(m)
    lab[:3, :3] = 2
    tifffile.imwrite(m, lab)
    with pytest.raises(InputImageError, match=r"synth_1_0000\.tif: label value\(s\) 2 are not in the label map 0:0,1:1"):
        TileDataset.from_folder(synth_dir, tile_size=32, label_map={0: 0, 1: 1})


def test_frame_dataclass():
    f = Frame("a/b.tif")
    assert f.mask_path is None and f.name == "b" and f.image_path.suffix == ".tif"


# ---- real label sets: the study's 4-value maps, instance masks, separate mask folders -------

from napari_pgdiffseg.core.data import mask_instances, read_frames  # noqa: E402


def test_viability4_maps_injured_to_live_and_dead_to_dead():
    raw = np.array([[0, 1, 2, 3]], np.uint8)  # background, live, injured, dead (Hu et al. 2022 maps)
    np.testing.assert_array_equal(map_labels(raw, "viability4"), [[0, 1, 1, 2]])


def test_instances_map_sends_every_cell_value_to_class_one():
    raw = np.array([[0, 25, 50], [75, 0, 65535]], np.uint16)
    np.testing.assert_array_equal(map_labels(raw, "instances", n_classes=2), [[0, 1, 1], [1, 0, 1]])
    assert parse_label_map("instances")[40000] == 1


def test_mask_instances_are_connected_regions_of_one_value():
    raw = np.zeros((6, 9), np.uint8)
    raw[1:5, 1:4] = 25
    raw[1:5, 4:7] = 50  # touches the 25-cell: still a cell of its own
    raw[0, 8] = 25      # the same value elsewhere: another cell
    ids = mask_instances(raw)
    assert ids.dtype == np.int32 and ids.max() == 3
    assert ids[2, 2] != ids[2, 5] and ids[0, 8] not in (0, ids[2, 2])
    with pytest.raises(InputImageError, match="2D"):
        mask_instances(np.zeros((2, 3, 4)))


def test_separate_mask_folder_pairs_by_name_and_keeps_unlabelled_frames(tmp_path):
    images, masks = tmp_path / "HeLa", tmp_path / "HeLa-labels"
    images.mkdir()
    masks.mkdir()
    for name in ("0000", "0001", "0002"):
        iio.imwrite(images / f"{name}.png", _rand((40, 40)).astype(np.uint8))
    m = np.zeros((40, 40), np.uint8)
    m[5:15, 5:15] = 2  # injured -> live
    m[20:30, 20:30] = 1
    iio.imwrite(masks / "0001.png", m)
    frames = find_frames(images, masks=masks)
    assert [f.name for f in frames] == ["0000", "0001", "0002"]
    assert [f.mask_path is not None for f in frames] == [False, True, False]
    fs = read_frames([images], [masks], label_map="viability4", labelled_only=True)
    assert len(fs) == 1 and fs.names[0].endswith("0001.png")
    assert set(np.unique(fs.masks[0])) == {0, 1} and fs.instances[0].max() == 2
    every = read_frames([images], [masks], label_map="viability4")
    assert len(every) == 3 and len(every.labelled) == 1
    with pytest.raises(InputImageError, match="no such mask folder"):
        find_frames(images, masks=tmp_path / "nope")
    with pytest.raises(ConfigError, match="one per folder"):
        read_frames([images, images], [masks])
    iio.imwrite(masks / "9999.png", m)
    with pytest.raises(InputImageError, match="no matching image"):
        find_frames(images, masks=masks)


def test_lzw_compressed_tiff_reads(tmp_path):
    """imagecodecs is a dependency: LZW TIFFs (qpi-cells, many microscopes) read."""
    phase = _rand((30, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "lzw.tif", phase, compression="lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif"), phase)


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

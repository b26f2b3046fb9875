"""Tests of napari_pgdiffseg.core.training.frames: folder layouts, label maps, folds."""

from __future__ import annotations

import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_pgdiffseg.core.files import read_image
from napari_pgdiffseg.core.training import (
    LABEL_MAPS,
    Frame,
    TileDataset,
    find_frames,
    kfold_split,
    map_labels,
    mask_instances,
    parse_label_map,
    read_frames,
    read_mask,
    split_frames,
)
from napari_pgdiffseg.core.errors import ConfigError, InputImageError
from napari_pgdiffseg.core.preprocess import Normalization
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset, write_dataset

SMALL = SyntheticConfig(shape=(64, 64))
RANGE = Normalization(method="range", in_range=(0.0, 1.0))


def _rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@pytest.fixture
def synth_dir(tmp_path):
    write_dataset(tmp_path / "ds", 4, seed=1, config=SMALL)
    return tmp_path / "ds"




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


def test_mask_dtypes(tmp_path):
    assert map_labels(np.ones((4, 4), bool)).dtype == np.uint8
    np.testing.assert_array_equal(map_labels(np.full((4, 4), 2.0)), np.full((4, 4), 2, np.uint8))
    with pytest.raises(InputImageError, match="non-integer"):
        map_labels(np.full((4, 4), 0.5))
    with pytest.raises(InputImageError, match=r"-1"):
        map_labels(np.full((4, 4), -1, np.int16))
    with pytest.raises(InputImageError, match="2D"):
        map_labels(np.zeros((2, 4, 4), np.uint8))


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

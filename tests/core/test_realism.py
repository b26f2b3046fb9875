"""Tests of the realism scores (napari_pgdiffseg.core.realism)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from napari_pgdiffseg.core import realism
from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.synthetic_real import HoloConfig, frame_rng, make_holo_frame


def _blobs(rng, n, size=64, sigma=3.0):
    """Tiles of smoothed noise: one distribution, parametrised by its correlation length."""
    t = ndi.gaussian_filter(rng.standard_normal((n, size, size)), (0, sigma, sigma))
    t /= t.std(axis=(1, 2), keepdims=True)
    return (0.3 * t).astype(np.float32)


def test_features_shape_and_finiteness():
    rng = np.random.default_rng(0)
    f = realism.tile_features(_blobs(rng, 5))
    assert f.shape == (5, len(realism.FEATURE_NAMES)) and f.dtype == np.float64
    assert np.isfinite(f).all()
    # A constant tile must not give NaN (zero energies are floored in the logs).
    assert np.isfinite(realism.tile_features(np.zeros((1, 32, 32)))).all()


def test_obviously_different_sets_are_separable():
    rng = np.random.default_rng(1)
    s = realism.realism_scores(_blobs(rng, 40, sigma=1.0), _blobs(rng, 40, sigma=6.0), seed=0)
    assert s["accuracy"] >= 0.95
    assert s["n_tiles"] == 40


def test_same_distribution_is_near_chance():
    rng = np.random.default_rng(2)
    a, b = _blobs(rng, 60), _blobs(rng, 60)
    s = realism.realism_scores(a, b, seed=0)
    assert 0.3 <= s["accuracy"] <= 0.7
    assert s["intensity_w1"] < 0.02 and s["gradient_w1"] < 0.01


def test_identical_sets_have_zero_w1_and_unbalanced_sets_are_subsampled():
    rng = np.random.default_rng(3)
    a = _blobs(rng, 12)
    s = realism.realism_scores(a, a.copy(), seed=0, pixels_per_tile=64 * 64)
    assert s["intensity_w1"] == 0.0 and s["gradient_w1"] == 0.0
    s = realism.realism_scores(a, _blobs(rng, 30), seed=0)
    assert s["n_tiles"] == 12 and s["n_real"] == 12 and s["n_synthetic"] == 30


def test_cv_accuracy_needs_enough_tiles():
    with pytest.raises(ConfigError, match="at least 5"):
        realism.cv_accuracy(np.zeros((3, 4)), np.ones((10, 4)))


def test_frame_tiles_cover_and_normalise_the_frame():
    frame = np.arange(600 * 600, dtype=np.float32).reshape(600, 600)
    tiles = realism.frame_tiles(frame, 256)
    assert tiles.shape == (9, 256, 256)  # starts 0, 172, 344 on each axis
    assert tiles[0, 0, 0] < -0.9 and tiles[-1, -1, -1] > 0.9  # whole-frame percentiles
    with pytest.raises(ConfigError, match="smaller than the tile"):
        realism.frame_tiles(np.ones((100, 300), np.float32) * np.arange(300), 256)


def test_real_and_synthetic_tile_helpers(tmp_path):
    paths = []
    for i in range(2):
        img, _ = make_holo_frame(i, HoloConfig(shape=(80, 80)))
        p = tmp_path / f"f{i}.tif"
        tifffile.imwrite(p, img)
        paths.append(p)
    real = realism.real_tiles_from_files(paths, tile=64)
    assert real.shape == (8, 64, 64)  # 2 x 2 overlapping tiles per 80 px frame
    assert realism.real_tiles_from_files(paths, tile=64, max_tiles=3).shape == (3, 64, 64)
    syn = realism.synthetic_tiles(make_holo_frame, 2, seed=0, tile=64,
                                  configs=[HoloConfig(shape=(80, 80))])
    assert syn.shape == (8, 64, 64) and syn.dtype == np.float32
    # Frame i is generated from frame_rng(seed, i), normalised whole, then tiled.
    first = realism.frame_tiles(make_holo_frame(frame_rng(0, 1), HoloConfig(shape=(80, 80)))[0], 64)
    np.testing.assert_array_equal(syn[4:], first)
    with pytest.raises(ConfigError, match="no real frames"):
        realism.real_tiles_from_files([])

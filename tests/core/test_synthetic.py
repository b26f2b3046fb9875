"""Tests of the seeded synthetic QPI generator (napari_pgdiffseg.core.synthetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage import measure

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.synthetic import (
    SyntheticConfig,
    frame_rng,
    make_dataset,
    make_frame,
    write_dataset,
)


def test_same_seed_same_frame_different_seed_different_frame():
    a_phase, a_lab = make_frame(3)
    b_phase, b_lab = make_frame(3)
    np.testing.assert_array_equal(a_phase, b_phase)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_phase, _ = make_frame(4)
    assert not np.array_equal(a_phase, c_phase)


def test_generator_seed_is_accepted_and_matches_int_seed():
    p1, l1 = make_frame(np.random.default_rng(11))
    p2, l2 = make_frame(11)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(l1, l2)


@pytest.mark.parametrize("shape", [(256, 256), (100, 300), (64, 48)])
def test_shapes_and_dtypes(shape):
    phase, labels = make_frame(0, SyntheticConfig(shape=shape))
    assert phase.shape == shape and labels.shape == shape
    assert phase.dtype == np.float32 and labels.dtype == np.uint8
    assert np.isfinite(phase).all()
    assert set(np.unique(labels)) <= {0, 1, 2}


def test_both_classes_appear_in_default_frames():
    seen = set()
    for seed in range(5):
        _, labels = make_frame(seed)
        assert set(np.unique(labels)) <= {0, 1, 2}
        assert (labels == 0).any()
        seen |= set(np.unique(labels).tolist())
    assert seen == {0, 1, 2}


def test_live_fraction_extremes():
    cfg_live = SyntheticConfig(live_fraction=(1.0, 1.0), density=(6, 6))
    cfg_dead = SyntheticConfig(live_fraction=(0.0, 0.0), density=(6, 6))
    for seed in range(3):
        assert 2 not in make_frame(seed, cfg_live)[1]
        assert 1 not in make_frame(seed, cfg_dead)[1]


def test_cells_are_brighter_than_background():
    phase, labels = make_frame(1, SyntheticConfig(difficulty=0.0))
    assert phase[labels > 0].mean() > phase[labels == 0].mean() + 0.3


def _class_stats(difficulty: float, n: int = 8):
    """Per-component (mean phase above background, area) of live and dead masks."""
    cfg = SyntheticConfig(difficulty=difficulty)
    stats = {1: ([], []), 2: ([], [])}
    for seed in range(n):
        phase, labels = make_frame(100 + seed, cfg)
        bg = np.median(phase[labels == 0])
        for k in (1, 2):
            comp = measure.label(labels == k)
            for region in measure.regionprops(comp, intensity_image=phase - bg):
                if region.area >= 20:
                    stats[k][0].append(region.intensity_mean)
                    stats[k][1].append(region.area)
    return {k: (np.array(v[0]), np.array(v[1])) for k, v in stats.items()}


def _standardized_difference(a: np.ndarray, b: np.ndarray) -> float:
    pooled = math.sqrt(0.5 * (a.var(ddof=1) + b.var(ddof=1)))
    return float((b.mean() - a.mean()) / pooled)


def test_dead_cells_are_higher_and_smaller_and_contrast_shrinks_with_difficulty():
    easy = _class_stats(0.0)
    hard = _class_stats(1.0)
    (live_mean, live_area), (dead_mean, dead_area) = easy[1], easy[2]
    assert dead_mean.mean() > live_mean.mean()
    assert dead_area.mean() < live_area.mean()
    d_easy = _standardized_difference(live_mean, dead_mean)
    d_hard = _standardized_difference(hard[1][0], hard[2][0])
    assert d_easy > 1.5
    assert d_easy > 2 * abs(d_hard)


def _background_noise(difficulty: float) -> float:
    cfg = SyntheticConfig(difficulty=difficulty)
    vals = []
    for seed in range(4):
        phase, labels = make_frame(seed, cfg)
        far = ~ndi.binary_dilation(labels > 0, iterations=6)
        resid = phase.astype(np.float64) - ndi.gaussian_filter(phase.astype(np.float64), 3)
        vals.append(np.median(np.abs(resid[far])) / 0.6745)  # robust to debris
    return float(np.mean(vals))


def test_background_noise_grows_with_difficulty():
    n0, n5, n1 = (_background_noise(d) for d in (0.0, 0.5, 1.0))
    assert n0 < n5 < n1
    assert n1 > 2 * n0


def test_wrap_keeps_values_in_half_open_interval_and_matches_unwrapped():
    base = dict(dead_peak=(5.0, 8.0), live_peak=(3.0, 5.0), max_offset=3.0)
    unwrapped, lab_u = make_frame(5, SyntheticConfig(**base))
    wrapped, lab_w = make_frame(5, SyntheticConfig(wrap=True, **base))
    assert unwrapped.max() > math.pi  # the test means something
    assert wrapped.dtype == np.float32
    assert (wrapped > -np.pi).all() and (wrapped <= np.pi).all()
    w64 = wrapped.astype(np.float64)
    assert (w64 > -math.pi).all() and (w64 <= math.pi).all()
    np.testing.assert_array_equal(lab_u, lab_w)
    u64 = unwrapped.astype(np.float64)
    np.testing.assert_allclose(np.exp(1j * w64), np.exp(1j * u64), atol=1e-5)


def test_dataset_frames_do_not_depend_on_length_and_seeds_are_disjoint():
    cfg = SyntheticConfig(shape=(64, 64))
    img2, msk2 = make_dataset(2, 7, cfg)
    img4, msk4 = make_dataset(4, 7, cfg)
    assert img2.shape == (2, 64, 64) and img2.dtype == np.float32
    assert msk4.shape == (4, 64, 64) and msk4.dtype == np.uint8
    np.testing.assert_array_equal(img2, img4[:2])
    np.testing.assert_array_equal(msk2, msk4[:2])
    p1, _ = make_frame(frame_rng(7, 1), cfg)
    np.testing.assert_array_equal(p1, img4[1])
    other, _ = make_dataset(4, 8, cfg)
    for i in range(4):
        for j in range(4):
            assert not np.array_equal(img4[i], other[j])
    assert not np.array_equal(img4[0], img4[1])
    empty_img, empty_msk = make_dataset(0, 7, cfg)
    assert empty_img.shape == (0, 64, 64) and empty_msk.shape == (0, 64, 64)


def test_write_dataset_round_trip(tmp_path):
    cfg = SyntheticConfig(shape=(48, 80))
    paths = write_dataset(tmp_path / "out", 3, 5, cfg)
    images, masks = make_dataset(3, 5, cfg)
    assert [p.name for p in paths] == [f"synth_5_{i:04d}.tif" for i in range(3)]
    for i, p in enumerate(paths):
        assert p.parent == tmp_path / "out" / "images"
        img = tifffile.imread(p)
        msk = tifffile.imread(tmp_path / "out" / "masks" / p.name)
        assert img.dtype == np.float32 and msk.dtype == np.uint8
        np.testing.assert_array_equal(img, images[i])
        np.testing.assert_array_equal(msk, masks[i])
    for sub in ("images", "masks"):
        names = sorted(q.name for q in (tmp_path / "out" / sub).iterdir())
        assert names == [f"synth_5_{i:04d}.tif" for i in range(3)]
    # Writing again replaces the files in place.
    write_dataset(tmp_path / "out", 3, 5, cfg)
    assert len(list((tmp_path / "out" / "images").iterdir())) == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("shape", (10, 10)),
        ("shape", (256,)),
        ("shape", (256.0, 256)),
        ("density", (-1.0, 2.0)),
        ("density", (5.0, 2.0)),
        ("live_fraction", (0.8, 0.2)),
        ("live_fraction", (0.2, 1.5)),
        ("live_radius", (0.0, 5.0)),
        ("dead_radius", "small"),
        ("live_peak", (0.0, 1.0)),
        ("dead_peak", (2.0, float("nan"))),
        ("difficulty", 1.5),
        ("difficulty", -0.1),
        ("wrap", "yes"),
        ("max_offset", -1.0),
        ("halo", 2.0),
        ("label_threshold", 0.0),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        SyntheticConfig(**{field: value})
    assert issubclass(ConfigError, ValueError)


def test_invalid_seed_and_count():
    with pytest.raises(ConfigError, match="seed"):
        make_frame(-1)
    with pytest.raises(ConfigError, match="n_frames"):
        make_dataset(-2, 0)
    with pytest.raises(ConfigError, match="config"):
        make_frame(0, config={"shape": (64, 64)})


def test_config_accepts_lists_and_is_frozen():
    cfg = SyntheticConfig(shape=[64, 96], density=[1, 2])
    assert cfg.shape == (64, 96) and cfg.density == (1.0, 2.0)
    with pytest.raises(AttributeError):
        cfg.difficulty = 0.5  # type: ignore[misc]


def test_written_files_have_normal_permissions(tmp_path):
    import os
    import stat

    from napari_pgdiffseg.core.files import write_tiff

    umask = os.umask(0o022)
    try:
        path = write_tiff(tmp_path / "x.tif", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

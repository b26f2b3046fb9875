"""Tests of the real-data-like generators (napari_pgdiffseg.core.synthetic_real)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.synthetic_real import (
    HoloConfig,
    SlimConfig,
    frame_rng,
    make_holo_dataset,
    make_holo_frame,
    make_slim_dataset,
    make_slim_frame,
)

SMALL = (96, 112)
GENERATORS = [
    (make_slim_frame, SlimConfig),
    (make_holo_frame, HoloConfig),
]


@pytest.mark.parametrize("make, cfg_cls", GENERATORS)
@pytest.mark.parametrize("shape", [(256, 256), SMALL, (40, 24)])
def test_shapes_dtypes_and_label_values(make, cfg_cls, shape):
    img, lab, inst = make(1, cfg_cls(shape=shape), return_instances=True)
    assert img.shape == lab.shape == inst.shape == shape
    assert img.dtype == np.float32 and lab.dtype == np.uint8 and inst.dtype == np.uint16
    assert np.isfinite(img).all()
    assert set(np.unique(lab)) <= {0, 1, 2}


@pytest.mark.parametrize("make, cfg_cls", GENERATORS)
def test_same_seed_same_frame_and_generator_seed_matches(make, cfg_cls):
    cfg = cfg_cls(shape=SMALL)
    a = make(5, cfg, return_instances=True)
    b = make(np.random.default_rng(5), cfg, return_instances=True)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = make(6, cfg)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("make, cfg_cls, dataset", [
    (make_slim_frame, SlimConfig, make_slim_dataset),
    (make_holo_frame, HoloConfig, make_holo_dataset),
])
def test_dataset_frame_i_uses_frame_rng(make, cfg_cls, dataset):
    cfg = cfg_cls(shape=(64, 64))
    imgs, labs = dataset(3, 7, cfg)
    assert imgs.shape == (3, 64, 64) and imgs.dtype == np.float32 and labs.dtype == np.uint8
    img2, lab2 = make(frame_rng(7, 2), cfg)
    np.testing.assert_array_equal(imgs[2], img2)
    np.testing.assert_array_equal(labs[2], lab2)
    # Frame i does not depend on the number of frames.
    np.testing.assert_array_equal(dataset(1, 7, cfg)[0][0], imgs[0])
    imgs3, labs3, inst3 = dataset(2, 7, cfg, return_instances=True)
    assert inst3.shape == (2, 64, 64) and inst3.dtype == np.uint16
    np.testing.assert_array_equal(imgs3[1], imgs[1])
    assert dataset(0, 7, cfg)[0].shape == (0, 64, 64)


def test_slim_defaults_give_live_and_dead_nuclei_in_plausible_amounts():
    cover, seen = [], set()
    for seed in range(6):
        _, lab = make_slim_frame(seed, SlimConfig(shape=(256, 256), density=(2.0, 3.0)))
        seen |= set(np.unique(lab).tolist())
        cover.append(float((lab > 0).mean()))
    assert {1, 2} <= seen
    assert 0.01 < float(np.mean(cover)) < 0.3  # nuclei: ~7-12 % of the real HeLa frames


def test_slim_cho_preset_has_small_packed_nuclei():
    _, lab, inst = make_slim_frame(0, SlimConfig.cho(shape=(256, 256), density=(20.0, 20.0)),
                                   return_instances=True)
    areas = np.bincount(inst.ravel())[1:]
    areas = areas[areas > 0]
    assert areas.size >= 5
    assert np.median(areas) < 900  # nuclei ~8-13 px in radius


def _clean(cfg_cls, **kw):
    """A config whose frames are exactly the background level plus the cells."""
    if cfg_cls is SlimConfig:
        return SlimConfig(shape=(128, 128), background=(100.0, 100.0), halo=(0.0, 0.0),
                          noise=(0.0, 0.0), quantize=False, **kw)
    return HoloConfig(shape=(128, 128), noise=(0.0, 0.0), background_variation=(0.0, 0.0),
                      tilt=0.0, **kw)


def test_slim_nuclei_lie_inside_cells():
    # Without halo and noise the image is background (plus a faint smooth field, rings and
    # debris, all small) plus the cells' thickness: every nucleus pixel must be clearly
    # above the background, i.e. on a cell.
    for seed in range(4):
        img, lab = make_slim_frame(seed, _clean(SlimConfig, density=(2.0, 3.0)))
        if lab.any():
            assert float(img[lab > 0].min()) > 100.0 + 5.0
    # Dead nuclei lie on their (rounded) cell too.
    img, lab = make_slim_frame(0, _clean(SlimConfig, density=(3.0, 3.0), dead_fraction=1.0))
    assert (lab == 2).any() and not (lab == 1).any()
    assert float(img[lab == 2].min()) > 100.0 + 5.0


def test_holo_labels_are_the_cells():
    img, lab = make_holo_frame(0, _clean(HoloConfig, density=(10.0, 10.0)))
    # Background pixels hold only the offset (|offset| <= 0.02) and rare debris;
    # cell pixels carry the domes (peak 1-2.8 rad, mask above 6 % of each peak).
    offset = float(np.median(img[lab == 0]))
    assert abs(offset) <= 0.02 + 1e-6
    assert float(img[lab > 0].min()) > offset
    assert float(np.median(img[lab > 0])) > offset + 0.3
    assert float(np.percentile(img[lab == 0], 90)) < offset + 0.2


@pytest.mark.parametrize("make, cfg", [
    (make_slim_frame, SlimConfig(shape=(200, 200), density=(3.0, 3.0))),
    (make_slim_frame, SlimConfig.cho(shape=(160, 160))),
    (make_holo_frame, HoloConfig(shape=(160, 160), density=(15.0, 15.0), dead_fraction=0.3)),
])
def test_instances_are_consistent_with_labels(make, cfg):
    _, lab, inst = make(2, cfg, return_instances=True)
    np.testing.assert_array_equal(inst > 0, lab > 0)
    ids = np.unique(inst)
    ids = ids[ids > 0]
    assert ids.size >= 2
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))  # consecutive ids
    for i in ids:
        assert np.unique(lab[inst == i]).size == 1  # one class per object


def test_holo_touching_cells_get_different_ids():
    _, lab, inst = make_holo_frame(0, HoloConfig(shape=(160, 160), density=(30.0, 30.0)),
                                   return_instances=True)
    # Some pair of 4-neighbours belongs to two different cells (touching cells).
    a, b = inst[:, :-1], inst[:, 1:]
    assert np.any((a > 0) & (b > 0) & (a != b))
    assert set(np.unique(lab)) == {0, 1}  # no dead class by default


def test_holo_dead_fraction_gives_dead_cells_with_high_peak():
    img, lab = make_holo_frame(1, HoloConfig(shape=(192, 192), density=(12.0, 12.0),
                                             dead_fraction=1.0))
    assert set(np.unique(lab)) == {0, 2}
    assert float(img[lab == 2].max()) > 2.5


@pytest.mark.parametrize("kw, msg", [
    (dict(shape=(8, 8)), "shape"),
    (dict(density=(3.0, 1.0)), "density"),
    (dict(dead_fraction=1.5), "dead_fraction"),
    (dict(dead_fraction=True), "dead_fraction"),
    (dict(cell_radius="big"), "cell_radius"),
    (dict(nucleus_radius=(50.0, 120.0)), "nucleus_radius"),
    (dict(halo=(0.5, 1.5)), "halo"),
    (dict(body_contrast=(0.0, 10.0)), "body_contrast"),
    (dict(noise=(float("nan"), 1.0)), "noise"),
    (dict(quantize=1), "quantize"),
])
def test_slim_config_validation(kw, msg):
    with pytest.raises(ConfigError, match=f"SlimConfig.{msg}"):
        SlimConfig(**kw)


@pytest.mark.parametrize("kw, msg", [
    (dict(shape=(16,)), "shape"),
    (dict(peak=(0.0, 1.0)), "peak"),
    (dict(aspect=(0.5, 1.0)), "aspect"),
    (dict(elongated_fraction=-0.1), "elongated_fraction"),
    (dict(tilt=1.0), "tilt"),
    (dict(size_scale=(0.0, 2.0)), "size_scale"),
    (dict(halo=(-0.1, 0.5)), "halo"),
    (dict(halo_sigma=(0.0, 4.0)), "halo_sigma"),
    (dict(fringes=(0.2, 0.1)), "fringes"),
    (dict(halo_inner=(0.0, 1.0)), "halo_inner"),
])
def test_holo_config_validation(kw, msg):
    with pytest.raises(ConfigError, match=f"HoloConfig.{msg}"):
        HoloConfig(**kw)


def test_bad_seeds_and_configs_are_refused():
    with pytest.raises(ConfigError, match="seed"):
        make_slim_frame(-1)
    with pytest.raises(ConfigError, match="seed"):
        make_holo_frame(1.5)
    with pytest.raises(ConfigError, match="HoloConfig"):
        make_holo_frame(0, SlimConfig())
    with pytest.raises(ConfigError, match="n_frames"):
        make_slim_dataset(-1, 0)
    with pytest.raises(ConfigError, match="seed"):
        make_holo_dataset(0, -3)


def test_config_values_are_canonicalised():
    cfg = SlimConfig(shape=(np.int64(64), 80), density=[1, 2], dead_fraction=np.float32(0.5))
    assert cfg.shape == (64, 80) and cfg.density == (1.0, 2.0)
    assert isinstance(cfg.dead_fraction, float)
    assert SlimConfig.hela() == SlimConfig()
    assert SlimConfig.cho(dead_fraction=0.0).dead_fraction == 0.0


def test_quantized_slim_frames_look_like_uint8_exports():
    img, _ = make_slim_frame(3, SlimConfig(shape=(128, 128)))
    assert img.min() >= 0 and img.max() <= 255
    np.testing.assert_array_equal(img, np.rint(img))


def _fixed(**kw) -> HoloConfig:
    return HoloConfig(shape=(192, 192), density=(6.0, 6.0), **kw)


def test_holo_size_scale_makes_larger_cells_and_keeps_coverage():
    areas, cover = {}, {}
    for scale in (1.0, 2.5):
        a, c = [], []
        for seed in range(4):
            cfg = HoloConfig(shape=(384, 384), density=(10.0, 10.0), size_scale=(scale, scale))
            _, lab, inst = make_holo_frame(seed, cfg, return_instances=True)
            ids, counts = np.unique(inst[inst > 0], return_counts=True)
            a += counts.tolist()
            c.append((lab > 0).mean())
        areas[scale], cover[scale] = np.median(a), np.mean(c)
    # Radii x 2.5: areas about x 6 (cells cut by the frame edge pull the ratio down).
    assert 3.5 < areas[2.5] / areas[1.0] < 9.0
    # Density falls with the area, so the share of cell pixels stays of the same order.
    assert 0.4 < cover[2.5] / cover[1.0] < 2.5


def test_holo_halo_darkens_a_ring_outside_the_cells_and_keeps_the_masks():
    from scipy import ndimage as ndi

    plain, lab0 = make_holo_frame(3, _fixed(noise=(0.0, 0.0)))
    ringed, lab1 = make_holo_frame(3, _fixed(noise=(0.0, 0.0), halo=(1.0, 1.0), halo_sigma=(6.0, 6.0)))
    np.testing.assert_array_equal(lab0, lab1)  # the ring is drawn after the cells: same cells
    fg = lab0 > 0
    dist = ndi.distance_transform_edt(~fg)
    ring, far = (dist > 0) & (dist <= 6), dist > 30
    drop = ringed - plain
    assert drop[ring].mean() < -0.1  # rad: a dark moat beside every cell
    assert abs(drop[far].mean()) < 0.01  # the far background keeps its level
    assert drop.max() <= 1e-6  # the moat only darkens


def test_holo_halo_inner_blur_moves_the_ring_out_from_the_outline():
    from scipy import ndimage as ndi

    cfg = dict(shape=(256, 256), density=(3.0, 3.0), size_scale=(3.5, 3.5), noise=(0.0, 0.0),
               halo=(1.0, 1.0), halo_sigma=(8.0, 8.0))
    plain, lab = make_holo_frame(4, HoloConfig(**{**cfg, "halo": (0.0, 0.0)}))
    drops = {}
    for inner in (0.0, 0.5):
        img, lab1 = make_holo_frame(4, HoloConfig(**cfg, halo_inner=(inner, inner)))
        np.testing.assert_array_equal(lab, lab1)
        dist = ndi.distance_transform_edt(lab == 0)
        drop = img - plain
        drops[inner] = [float(drop[(dist > a) & (dist <= a + 2)].mean()) for a in (0, 12)]
    # Without an inner blur the ring is deepest at the outline; with one it is shallow there
    # and deepest further out.
    assert drops[0.0][0] < drops[0.0][1] < 0
    assert drops[0.5][1] < drops[0.5][0] < 0 and drops[0.0][0] < drops[0.5][0]


def test_holo_fringes_add_background_texture():
    plain, lab = make_holo_frame(5, _fixed(noise=(0.0, 0.0)))
    fringed, lab1 = make_holo_frame(5, _fixed(noise=(0.0, 0.0), fringes=(0.05, 0.05)))
    np.testing.assert_array_equal(lab, lab1)
    diff = (fringed - plain)[lab == 0]
    assert 0.01 < diff.std() < 0.05 and np.abs(diff).max() <= 0.05 + 1e-6


def test_holo_varied_preset_and_generator_by_name():
    from napari_pgdiffseg.core.generators import make_synthetic

    cfg = HoloConfig.varied(shape=(128, 128))
    assert cfg.size_scale[1] > 1.0 and cfg.halo[1] > 0 and cfg.fringes[1] > 0
    assert HoloConfig.varied(halo=(0.0, 0.0)).halo == (0.0, 0.0)
    images, labels, used = make_synthetic("holo-varied", 3, 11, shape=(128, 128), n_classes=2)
    assert used == cfg and images.shape == labels.shape == (3, 128, 128)
    assert set(np.unique(labels)) <= {0, 1}
    # The defaults are untouched by the new options: no draw is spent on them.
    a, _ = make_holo_frame(2, HoloConfig(shape=(64, 64)))
    b, _ = make_holo_frame(2, HoloConfig(shape=(64, 64), size_scale=(1.0, 1.0), halo=(0.0, 0.0), fringes=(0.0, 0.0)))
    np.testing.assert_array_equal(a, b)

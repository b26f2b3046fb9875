import math

import numpy as np

from napari_pgdiffseg.core.cells import count_cells, summarize


def test_counts_and_viability_by_hand():
    lab = np.zeros((40, 40), np.uint8)
    lab[2:10, 2:10] = 1      # live, 64 px
    lab[20:30, 20:30] = 1    # live, 100 px
    lab[2:8, 30:36] = 2      # dead, 36 px
    lab[35:37, 35:37] = 2    # dead speck, 4 px: below min_area
    assert count_cells(lab, 1, 30) == 2 and count_cells(lab, 2, 30) == 1
    s = summarize(lab, ("background", "live", "dead"), 30)
    assert s["live_cells"] == 2 and s["dead_cells"] == 1
    assert s["viability_percent"] == 100 * 2 / 3
    assert s["fraction_live"] == 164 / 1600 and s["fraction_dead"] == 40 / 1600
    assert math.isnan(summarize(np.zeros((5, 5), np.uint8), ("b", "l", "d"))["viability_percent"])


def test_diagonal_touching_pixels_are_one_cell():
    lab = np.zeros((10, 10), np.uint8)
    lab[np.arange(10), np.arange(10)] = 1
    assert count_cells(lab, 1, 1) == 1


# ---- one id per cell (the <stem>_cells.tif files) ------------------------------------------

import pytest  # noqa: E402

from napari_pgdiffseg.core.errors import ConfigError  # noqa: E402
from napari_pgdiffseg.core.cells import InstanceConfig, cell_instances, instance_dtype, summarize_planes  # noqa: E402


def _two_touching_domes():
    yy, xx = np.mgrid[:80, :120]
    d1, d2 = np.hypot(yy - 40, xx - 40), np.hypot(yy - 40, xx - 75)
    phase = np.maximum(np.clip(1 - d1 / 20, 0, None), np.clip(1 - d2 / 20, 0, None)).astype(np.float32)
    return phase, (phase > 0).astype(np.uint8)


def test_cell_instances_watershed_splits_touching_cells_components_does_not():
    phase, labels = _two_touching_domes()
    split = cell_instances(labels, phase, ("background", "cell"), InstanceConfig("watershed", min_distance=10))
    assert split.dtype == np.uint32 and set(np.unique(split)) == {0, 1, 2}
    assert split[40, 40] != split[40, 75]
    np.testing.assert_array_equal(split > 0, labels > 0)
    joined = cell_instances(labels, phase, ("background", "cell"), InstanceConfig("components"))
    assert set(np.unique(joined)) == {0, 1}


def test_cell_instances_ids_follow_class_order_and_drop_small_objects():
    lab = np.zeros((40, 40), np.uint8)
    lab[2:10, 2:10] = 1      # live, 64 px
    lab[20:30, 20:30] = 2    # dead, 100 px
    lab[35:37, 35:37] = 1    # 4 px speck
    ids = cell_instances(lab, None, ("background", "live", "dead"), InstanceConfig(min_area=30))
    assert ids[5, 5] == 1 and ids[25, 25] == 2 and ids[36, 36] == 0
    s = summarize_planes([lab], ("background", "live", "dead"), instances=[ids])
    assert (s["live_cells"], s["dead_cells"], s["viability_percent"]) == (1, 1, 50.0)


def test_two_class_model_counts_cells_without_viability():
    lab = np.zeros((20, 20), np.uint8)
    lab[2:12, 2:12] = 1
    s = summarize_planes([lab], ("background", "cell"))
    assert s["cell_cells"] == 1 and s["fraction_cell"] == 0.25 and math.isnan(s["viability_percent"])


def test_instance_config_validation_and_dtype():
    assert InstanceConfig.from_dict({"method": "watershed", "min_distance": 5}).min_distance == 5
    with pytest.raises(ConfigError, match="instance method"):
        InstanceConfig(method="blobs")
    with pytest.raises(ConfigError, match="unknown instance setting"):
        InstanceConfig.from_dict({"min_dist": 3})
    with pytest.raises(ConfigError, match="needs the image"):
        cell_instances(np.ones((4, 4), np.uint8), None, ("b", "c"), InstanceConfig("watershed"))
    assert instance_dtype(65535) == np.uint16 and instance_dtype(65536) == np.uint32


def test_h_maxima_markers_split_touching_cells_but_not_one_textured_cell():
    yy, xx = np.mgrid[:120, :200]
    rng = np.random.default_rng(0)
    texture = 0.03 * np.sin(xx / 4.0) * np.cos(yy / 4.0) + 0.01 * rng.normal(size=yy.shape)
    # Flat-topped cells (as adherent cells are) with texture on top; the two touch.
    one = np.exp(-(np.hypot(yy - 60, xx - 100) / 35.0) ** 4) + texture
    two = (np.exp(-(np.hypot(yy - 60, xx - 68) / 32.0) ** 4)
           + np.exp(-(np.hypot(yy - 60, xx - 132) / 32.0) ** 4) + texture)
    assert (two > 0.3)[60, 60:140].all()  # one connected region
    names = ("background", "cell")
    h_cfg = InstanceConfig(method="watershed", smooth=2.0, h=0.1, min_area=20)
    peak_cfg = InstanceConfig(method="watershed", smooth=2.0, min_distance=5, min_area=20)
    for phase, n_true in ((one, 1), (two, 2)):
        labels = (phase > 0.3).astype(np.uint8)
        assert cell_instances(labels, phase, names, h_cfg).max() == n_true
    # The peak markers (min_distance 5) cut the one textured cell into pieces.
    assert cell_instances((one > 0.3).astype(np.uint8), one, names, peak_cfg).max() > 1
    with pytest.raises(ConfigError, match=r"instances.h must be a number in \[0, 1\)"):
        InstanceConfig(method="watershed", h=1.5)
    assert InstanceConfig.from_dict(h_cfg.to_dict()) == h_cfg


def test_merge_joins_the_pieces_of_one_textured_cell_but_not_two_touching_cells():
    yy, xx = np.mgrid[:120, :200]
    rng = np.random.default_rng(0)
    texture = 0.03 * np.sin(xx / 4.0) * np.cos(yy / 4.0) + 0.01 * rng.normal(size=yy.shape)
    one = np.exp(-(np.hypot(yy - 60, xx - 100) / 35.0) ** 4) + texture
    # Two domes touching in a valley half as high as their tops.
    two = (np.exp(-(np.hypot(yy - 60, xx - 70) / 26.0) ** 2)
           + np.exp(-(np.hypot(yy - 60, xx - 130) / 26.0) ** 2)) + texture
    names = ("background", "cell")
    peaks = InstanceConfig(method="watershed", smooth=2.0, min_distance=5, min_area=20)
    merged = InstanceConfig(method="watershed", smooth=2.0, min_distance=5, min_area=20, merge=0.7)
    one_lab, two_lab = (one > 0.3).astype(np.uint8), (two > 0.3).astype(np.uint8)
    assert cell_instances(one_lab, one, names, peaks).max() > 1  # texture cuts it without merging
    assert cell_instances(one_lab, one, names, merged).max() == 1
    ids = cell_instances(two_lab, two, names, merged)
    assert ids.max() == 2 and ids[60, 70] != ids[60, 130]
    np.testing.assert_array_equal(ids > 0, two_lab > 0)  # merging never changes the foreground
    assert "merge 0.7" in merged.describe()
    with pytest.raises(ConfigError, match=r"instances.merge must be a number in \[0, 1\)"):
        InstanceConfig(method="watershed", merge=1.0)

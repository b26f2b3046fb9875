import math

import numpy as np

from napari_pgdiffseg.core.summary import count_cells, summarize


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

"""Time-lapse viability (core.tracking): tracks and live -> dead transitions on a synthetic time-lapse."""

from __future__ import annotations

import numpy as np
import pytest

from napari_pgdiffseg.core.cells import InstanceConfig, cell_instances
from napari_pgdiffseg.core.measure import Calibration, cell_table
from napari_pgdiffseg.core.tracking import (
    iou_matrix, link_frames, track_rows, tracks_csv_text, tracks_layer_data, viability_figure, viability_over_time,
)

NAMES = ("background", "live", "dead")
# (y, x, dy, dx per frame, frame it dies at (1-based) or None)
CELLS = ((30, 30, 0.6, 0.4, 8), (30, 100, 0.5, -0.5, None), (90, 40, -0.4, 0.8, 15), (100, 110, 0.0, -0.7, 3),
         (60, 70, 0.7, 0.0, None), (140, 140, -0.6, -0.6, 20))


def _time_lapse(n=20, size=170):
    yy, xx = np.mgrid[:size, :size].astype(float)
    frames, labels = [], []
    for t in range(1, n + 1):
        phase = np.zeros((size, size), np.float32)
        lab = np.zeros((size, size), np.uint8)
        for y, x, dy, dx, dies in CELLS:
            dead = dies is not None and t >= dies
            r = 7.0 if dead else 10.0  # dead nuclei condense
            cy, cx = y + dy * t, x + dx * t
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            phase[inside] += 2.5 if dead else 1.0
            lab[inside] = 2 if dead else 1
        frames.append(phase)
        labels.append(lab)
    return frames, labels


def test_tracks_and_transition_frames_match_the_truth(tmp_path):
    frames, labels = _time_lapse()
    cfg = InstanceConfig.from_dict({"method": "components", "min_area": 20})
    ids = [cell_instances(lab, ph, NAMES, cfg) for lab, ph in zip(labels, frames)]
    rows = []
    for t, (i, lab, ph) in enumerate(zip(ids, labels, frames), 1):
        rows += cell_table(i, lab, ph, NAMES, Calibration(wavelength_nm=600, pixel_size_um=0.5), plane=t)
    links = link_frames(ids)
    tracks = track_rows(links, rows)
    assert len(tracks) == len(CELLS) and all(tr["frames"] == 20 for tr in tracks)
    # each track's start position tells which cell it is
    by_start = {}
    for tr in tracks:
        first = next(r for r in rows if r["plane"] == 1 and links[0][r["cell_id"]] == tr["track_id"])
        k = min(range(len(CELLS)), key=lambda k: (CELLS[k][0] + CELLS[k][2] - first["centroid_y"]) ** 2
                + (CELLS[k][1] + CELLS[k][3] - first["centroid_x"]) ** 2)
        by_start[k] = tr
    assert sorted(by_start) == list(range(len(CELLS)))
    for k, (*_, dies) in enumerate(CELLS):
        assert by_start[k]["dead_from_frame"] == dies
        assert by_start[k]["last_class"] == ("dead" if dies else "live")
        masses = [float(m) for m in by_start[k]["dry_mass_pg_by_frame"].split(";")]
        assert len(masses) == 20 and all(m > 0 for m in masses)
    via = viability_over_time(rows, 20)
    assert [v["dead_cells"] for v in via] == [sum(d is not None and t >= d for *_, d in CELLS) for t in range(1, 21)]
    assert via[0]["viability_percent"] == pytest.approx(100.0) and via[-1]["viability_percent"] == pytest.approx(100 * 2 / 6)
    data = tracks_layer_data(links, rows)
    assert data.shape == (20 * len(CELLS), 4) and set(data[:, 1]) == set(range(20))
    text = tracks_csv_text(tracks)
    assert text.splitlines()[0].startswith("track_id,first_frame,last_frame")
    viability_figure(tmp_path / "v.png", via, "test")
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"


def test_iou_matrix_and_unmatched_cells_start_new_tracks():
    a = np.zeros((10, 10), int)
    b = np.zeros((10, 10), int)
    a[0:4, 0:4] = 1
    b[0:4, 1:5] = 2  # overlaps cell 1 of a: IoU 12 / 20
    b[6:9, 6:9] = 1  # new cell
    iou = iou_matrix(a, b)
    assert iou.shape == (1, 2) and iou[0, 1] == pytest.approx(12 / 20) and iou[0, 0] == 0
    links = link_frames([a, b, np.zeros((10, 10), int), b])
    assert links[0] == {1: 1} and links[1] == {2: 1, 1: 2} and links[2] == {} and links[3] == {1: 3, 2: 4}

"""Per-cell measures in the Segment widget: the cell layers carry the table as features, the
summary gives the dry mass, Save cells writes it, and the cell table sorts and selects cells."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from qtpy.QtCore import Qt

from napari_pgdiffseg._widgets._cell_table import KEY_ROLE
from widget_helpers import SEGMENT, fast_settings, open_widget, wait_idle


@pytest.fixture
def measured(make_napari_viewer, tiny_bundle_dir, fast_config, synthetic_frame, qtbot, errors):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    fast_settings(w, tiny_bundle_dir, fast_config)
    viewer.add_image(synthetic_frame[0].astype(np.float32), name="cells")
    w.labels_output.value = "both"
    w.measures.measure.value = True
    w.measures.wavelength.value, w.measures.pixel_size.value = 633.0, 0.25
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    return viewer, w


def test_cell_layers_carry_the_per_cell_table(measured):
    viewer, w = measured
    per_cell = w.last_outcome.summary["cells"]
    for name in ("live", "dead"):
        layer = viewer.layers[f"cells pgdiffseg {name}"]
        ids = np.unique(layer.data[layer.data > 0])
        feats = layer.features
        assert sorted(feats["index"]) == sorted(int(i) for i in ids)  # one row per cell, by its id
        assert set(feats["class"]) <= {name}
        for _, row in feats.iterrows():
            assert row["area_px"] == (layer.data == row["index"]).sum()
            assert row["area_um2"] == pytest.approx(row["area_px"] * 0.0625)
            assert row["dry_mass_pg"] == pytest.approx(
                0.633 / (2 * np.pi * 0.18) * row["integrated_phase_rad"] * 0.0625)
    assert len(per_cell) == sum(len(viewer.layers[f"cells pgdiffseg {n}"].features) for n in ("live", "dead"))
    assert per_cell, "the tiny model finds cells in the synthetic frame"
    assert "dry mass:" in w.summary.value
    assert not w.cell_plot.isHidden()  # histograms of area and dry mass per class
    axes = w.cell_plot.figure.axes
    assert [a.get_xlabel() for a in axes] == ["area (um^2)", "dry mass (pg)"]
    assert sum(len(a.patches) for a in axes) > 0


def test_save_cells_and_the_cell_table(measured, tmp_path, qtbot):
    viewer, w = measured
    out = w.save_cells(tmp_path / "cells")
    assert out.name == "cells.csv"
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(w.last_outcome.summary["cells"])
    assert rows == [] or set(rows[0]) >= {"cell_id", "class", "area_px", "dry_mass_pg"}
    assert w.cell_table_button.enabled  # the tiny model finds cells in this frame (first test)
    w.cell_table_button.native.click()
    from qtpy.QtCore import Qt

    from napari_pgdiffseg._widgets._cell_table import DOCK_NAME, CellTable

    table = viewer.window.dock_widgets[DOCK_NAME]
    assert isinstance(table, CellTable) and table.proxy.rowCount() == len(rows)
    # Sorting by a column orders the rows by its numbers (not by their text).
    headers = [table.model.horizontalHeaderItem(k).text() for k in range(table.model.columnCount())]
    table.view.sortByColumn(headers.index("area (px)"), Qt.SortOrder.AscendingOrder)
    areas = table.sorted_column("area_px")
    assert areas == sorted(areas)
    # A selected row selects that cell in its layer, makes the layer active and centres the view.
    table.view.selectRow(len(areas) - 1)
    cls, cell_id = table.selected_key()
    layer = viewer.layers[f"cells pgdiffseg {cls}"]
    assert viewer.layers.selection.active is layer and layer.selected_label == cell_id
    assert (layer.data == cell_id).sum() == max(areas)  # the biggest cell, by its own pixels
    ys, xs = np.nonzero(layer.data == cell_id)
    assert np.allclose(viewer.camera.center[-2:], (ys.mean(), xs.mean()), atol=1.0)
    # Picking a cell in the viewer selects its row.
    others = [(r["class"], int(r["cell_id"])) for r in w.last_outcome.summary["cells"]
              if int(r["cell_id"]) != viewer.layers[f"cells pgdiffseg {r['class']}"].selected_label]
    assert others, "the tiny model finds more than one cell in the synthetic frame"
    viewer.layers[f"cells pgdiffseg {others[0][0]}"].selected_label = others[0][1]
    assert table.selected_key() == others[0]
    # A second run refills the same dock.
    again = w.show_cell_table()  # (the same Qt widget; PySide may hand out another Python wrapper)
    assert isinstance(again, CellTable) and again.proxy.rowCount() == len(rows)
    assert [n for n in viewer.window.dock_widgets if n.startswith(DOCK_NAME)] == [DOCK_NAME]


def test_without_a_calibration_the_table_says_why(make_napari_viewer, tiny_bundle_dir, fast_config,
                                                   synthetic_frame, qtbot, errors, tmp_path):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    fast_settings(w, tiny_bundle_dir, fast_config)
    viewer.add_image(synthetic_frame[0].astype(np.float32), name="cells")
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert "wavelength" in w.last_outcome.summary["mass_note"] and "dry mass:" not in w.summary.value
    text = w.save_cells(tmp_path / "c.csv").read_text()
    assert text.startswith("# dry mass needs the wavelength")


def test_batch_writes_per_cell_tables_with_the_widgets_calibration(make_napari_viewer, qtbot, tmp_path,
                                                                   tiny_bundle_dir, fast_config, errors):
    import tifffile

    from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

    from widget_helpers import BATCH

    inp, out = tmp_path / "frames", tmp_path / "out"
    inp.mkdir()
    tifffile.imwrite(inp / "f.tif", make_frame(1, SyntheticConfig(shape=(96, 96)))[0].astype(np.float32))
    viewer = make_napari_viewer()
    w = open_widget(viewer, BATCH)
    fast_settings(w, tiny_bundle_dir, fast_config)
    w.input_dir.value, w.output_dir.value = inp, out
    w.measures.measure.value = True
    w.measures.wavelength.value, w.measures.pixel_size.value = 550.0, 0.5
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    cells = list(csv.DictReader((out / "f_cells.csv").open()))
    results = list(csv.DictReader((out / "pgdiffseg_results.csv").open()))
    assert results[0]["cells_table"] == "f_cells.csv" and results[0]["mass_note"] == ""
    for c in cells:
        assert float(c["dry_mass_pg"]) == pytest.approx(
            0.55 / (2 * np.pi * 0.18) * float(c["integrated_phase_rad"]) * 0.25, rel=1e-4)


def test_a_time_lapse_stack_gets_a_tracks_layer(make_napari_viewer, tiny_bundle_dir, fast_config, synthetic_frame,
                                                qtbot, errors):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    fast_settings(w, tiny_bundle_dir, fast_config)
    frame = synthetic_frame[0][:128, :128].astype(np.float32)
    viewer.add_image(np.stack([frame, np.roll(frame, 2, axis=1), np.roll(frame, 4, axis=1)]), name="movie")
    w.labels_output.value = "cells"
    w.time_lapse.value = True
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    s = w.last_outcome.summary
    assert "tracks" in s and len(s["viability_over_time"]) == 3
    assert s["tracks"], "the tiny model finds cells in this frame"
    tracks = viewer.layers["movie pgdiffseg tracks"]
    assert tracks._type_string == "tracks" and set(tracks.data[:, 1]) <= {0, 1, 2}
    assert f"tracks: {len(s['tracks'])} cells followed over 3 frames" in w.summary.value
    assert "viability (%)" in [a.get_ylabel() for a in w.cell_plot.figure.axes]  # viability over time
    # the track table: one row per track, sortable, a selected row moves the time slider to its frame
    assert w.track_table_button.enabled
    w.track_table_button.native.click()
    table = viewer.window.dock_widgets["PG-DiffSeg tracks"]
    assert table.model.rowCount() == len(s["tracks"])
    table.view.sortByColumn(table.columns.index("frames"), Qt.SortOrder.DescendingOrder)
    frames = table.sorted_column("frames")
    assert frames == sorted(frames, reverse=True) and frames[0] <= 3
    first = next(t for t in s["tracks"] if t["first_frame"] == 1 and not t["dead_from_frame"])
    viewer.dims.set_point(0, 2)
    assert viewer.dims.current_step[0] == 2
    for i in range(table.proxy.rowCount()):  # select the track's row as a user would
        if table.proxy.index(i, 0).data(KEY_ROLE) == first["track_id"]:
            table.view.selectRow(i)
    assert viewer.dims.current_step[0] == 0 and table.selected_key() == first["track_id"]
    y, x = next((r[2], r[3]) for r in tracks.data if r[0] == first["track_id"] and r[1] == 0)
    assert viewer.camera.center[-2:] == pytest.approx((y, x))
    w.time_lapse.value = False  # a plain stack: no tracks
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert "tracks" not in w.last_outcome.summary and not w.track_table_button.enabled

"""The "Batch segment folder" dock widget: files through core.batch, CSV, resume, errors."""

from __future__ import annotations

import csv

import numpy as np
import tifffile

from napari_pgdiffseg.core.batch import CSV_NAME
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

from widget_helpers import BATCH, fast_settings, open_widget, wait_idle


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_batch_folder_writes_labels_csv_and_resumes(make_napari_viewer, qtbot, tmp_path, tiny_bundle_dir,
                                                   fast_config, errors):
    inp, out = tmp_path / "frames", tmp_path / "labels"
    inp.mkdir()
    for i in range(3):
        phase, _ = make_frame(i, SyntheticConfig(shape=(64, 80)))
        tifffile.imwrite(inp / f"frame{i}.tif", phase)
    (inp / "corrupt.tif").write_bytes(b"II*\x00 this is not a tiff")
    (inp / "notes.txt").write_text("ignored: does not match the pattern")

    viewer = make_napari_viewer()
    w = open_widget(viewer, BATCH)
    fast_settings(w, tiny_bundle_dir, fast_config)
    assert not w.run_button.enabled and "input folder" in w.status.value
    w.input_dir.value = inp
    w.output_dir.value = out
    assert w.run_button.enabled
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert len(errors) == 1 and errors[0].startswith("corrupt.tif: the image is empty") and "1 of 4 files failed" in errors[0]

    labels = sorted(p.name for p in out.glob("*_labels.tif"))
    assert labels == ["frame0_labels.tif", "frame1_labels.tif", "frame2_labels.tif"]
    lab = tifffile.imread(out / "frame0_labels.tif")
    assert lab.shape == (64, 80) and lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1, 2}
    rows = _read_csv(out / CSV_NAME)
    assert len(rows) == 4
    status = {r["file"].split("/")[-1]: r["status"] for r in rows}
    assert status["corrupt.tif"].startswith("error:")
    assert all(status[f"frame{i}.tif"] == "ok" for i in range(3))
    assert rows[1]["nfe"] == "10" and rows[1]["device"] == "cpu"
    assert "3 segmented · 0 skipped · 1 failed" in w.status.value
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*_labels.tif")}

    # A second run skips the files that are done (the bad one is tried again).
    w.run_button.native.click()
    wait_idle(qtbot, w)
    rows = _read_csv(out / CSV_NAME)
    assert len(rows) == 4
    assert sum(r["status"].startswith("skipped") for r in rows) == 3
    assert {p: p.stat().st_mtime_ns for p in out.glob("*_labels.tif")} == mtimes
    assert "0 segmented · 3 skipped · 1 failed" in w.status.value

    # Overwrite: segmented again.
    w.overwrite.value = True
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert sum(r["status"] == "ok" for r in _read_csv(out / CSV_NAME)) == 3


def test_batch_cancel_and_empty_folder(make_napari_viewer, qtbot, tmp_path, tiny_bundle_dir, fast_config, errors):
    inp = tmp_path / "frames"
    inp.mkdir()
    viewer = make_napari_viewer()
    w = open_widget(viewer, BATCH)
    fast_settings(w, tiny_bundle_dir, fast_config)
    w.input_dir.value = inp
    w.run_button.native.click()
    assert len(errors) == 1 and "no file" in errors[0] and not w.running

    for i in range(2):
        tifffile.imwrite(inp / f"frame{i}.tif", make_frame(i, SyntheticConfig(shape=(64, 64)))[0])
    w.settings.sampling_steps.value = 1000
    w.run_button.native.click()
    qtbot.waitUntil(lambda: w.bars is not None and w.bars.inner.n > 0, timeout=20_000)
    w.cancel_button.native.click()
    wait_idle(qtbot, w, timeout=10_000)
    assert len(errors) == 1
    out = inp / "pgdiffseg"  # the default output folder
    assert (out / CSV_NAME).is_file() and not list(out.glob("*_labels.tif"))
    assert "cancelled" in w.status.value and w.run_button.enabled


def test_batch_on_a_local_dask_cluster(make_napari_viewer, qtbot, tmp_path, tiny_bundle_dir, fast_config, errors):
    inp, out = tmp_path / "frames", tmp_path / "labels"
    inp.mkdir()
    for i in range(2):
        tifffile.imwrite(inp / f"frame{i}.tif", make_frame(i, SyntheticConfig(shape=(64, 72)))[0])
    viewer = make_napari_viewer()
    w = open_widget(viewer, BATCH)
    fast_settings(w, tiny_bundle_dir, fast_config)
    w.input_dir.value = inp
    w.output_dir.value = out
    w.scheduler.value = "not a scheduler"
    assert not w.run_button.enabled and "neither 'local' nor an address" in w.status.value
    w.scheduler.value = "local"
    w.workers.value = 1
    assert w.run_button.enabled
    w.run_button.native.click()
    wait_idle(qtbot, w, timeout=120_000)
    assert errors == []
    assert sorted(p.name for p in out.glob("*_labels.tif")) == ["frame0_labels.tif", "frame1_labels.tif"]
    rows = _read_csv(out / CSV_NAME)
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["nfe"] == "10"
    assert "2 segmented · 0 skipped · 0 failed" in w.status.value


def test_batch_results_open_as_labels_with_class_colours(make_napari_viewer, qtbot, tmp_path, tiny_bundle_dir,
                                                         fast_config, errors):
    from napari_pgdiffseg.core.bundle import load_bundle

    inp, out = tmp_path / "frames", tmp_path / "labels"
    inp.mkdir()
    for i in range(2):
        phase, _ = make_frame(i, SyntheticConfig(shape=(64, 80)))
        tifffile.imwrite(inp / f"frame{i}.tif", phase)
    viewer = make_napari_viewer()
    w = open_widget(viewer, BATCH)
    fast_settings(w, tiny_bundle_dir, fast_config)
    assert not w.scheduler.native.isVisibleTo(w.native)  # Dask fields sit under the advanced settings
    w.settings.advanced.value = True
    assert w.scheduler.native.isVisibleTo(w.native) and w.workers.native.isVisibleTo(w.native)
    w.input_dir.value, w.output_dir.value = inp, out
    assert not w.open_button.enabled
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == [] and w.open_button.enabled
    w.open_button.native.click()
    assert [ly.name for ly in viewer.layers] == ["frame0", "frame0_labels", "frame1", "frame1_labels"]
    labels = viewer.layers["frame0_labels"]
    assert labels._type_string == "labels"
    np.testing.assert_array_equal(labels.data, tifffile.imread(out / "frame0_labels.tif"))
    colors = np.asarray(load_bundle(tiny_bundle_dir).card.colors, float) / 255
    np.testing.assert_allclose(labels.colormap.map(np.array([0, 1, 2], np.uint8)), colors, atol=1e-3)
    assert list(labels.features["class_name"]) == ["background", "live", "dead"]


def test_the_reader_opens_only_the_plugins_outputs(make_napari_viewer, tmp_path, tiny_bundle_dir, fast_config):
    from napari_pgdiffseg._reader import get_reader
    from napari_pgdiffseg.core.batch import segment_files

    phase, _ = make_frame(0, SyntheticConfig(shape=(64, 80)))
    tifffile.imwrite(tmp_path / "frame.tif", phase)
    tifffile.imwrite(tmp_path / "other_labels.tif", np.zeros((8, 8), np.uint8))  # someone else's file
    segment_files([tmp_path / "frame.tif"], tiny_bundle_dir, fast_config, tmp_path / "out")
    assert get_reader(str(tmp_path / "other_labels.tif")) is None
    assert get_reader(str(tmp_path / "frame.tif")) is None
    assert get_reader(str(tmp_path / "out" / "frame_labels.tif")) is not None

    viewer = make_napari_viewer()
    viewer.open(tmp_path / "out" / "frame_cells.tif", plugin="napari-pgdiffseg")
    viewer.open(tmp_path / "out" / "frame_labels.tif", plugin="napari-pgdiffseg")
    cells, labels = viewer.layers["frame_cells"], viewer.layers["frame_labels"]
    assert cells._type_string == labels._type_string == "labels"
    ids = np.unique(cells.data[cells.data > 0])
    if ids.size:  # each cell a shade of its class's colour: live green, dead magenta for the default classes
        cls = {int(i): int(np.bincount(labels.data[cells.data == i]).argmax()) for i in ids}
        rgba = cells.colormap.map(ids.astype(cells.data.dtype))
        for i, c in zip(ids, rgba):
            assert (c[1] > max(c[0], c[2])) if cls[int(i)] == 1 else (min(c[0], c[2]) > c[1])

"""Every file variant (tests/file_variants.py) segments from the Batch widget."""

from __future__ import annotations

import csv

from file_variants import write_variants
from widget_helpers import BATCH, fast_settings, open_widget, wait_idle


def _rows(out):
    with open(out / "pgdiffseg_results.csv") as f:
        return {r["file"].split("/")[-1]: r for r in csv.DictReader(f)}


def test_every_variant_segments_from_the_batch_widget(make_napari_viewer, qtbot, tiny_bundle_dir, tmp_path, errors):
    from napari_pgdiffseg import SegmentConfig

    expected = write_variants(tmp_path / "in")
    viewer = make_napari_viewer()
    w = open_widget(viewer, BATCH)
    fast_settings(w, tiny_bundle_dir, SegmentConfig(inversion_steps=2, sampling_steps=2, device="cpu"))
    w.input_dir.value, w.output_dir.value = tmp_path / "in", tmp_path / "out"
    w.pattern.value = "*.tif; *.png; *.npy; *.h5"
    w.run_button.native.click()
    wait_idle(qtbot, w)
    rows = _rows(tmp_path / "out")
    assert set(rows) == set(expected) and all(r["status"] == "ok" for r in rows.values())
    assert errors == []

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


def test_every_variant_opens_in_the_viewer_and_segments(make_napari_viewer, qtbot, tiny_bundle_dir, tmp_path,
                                                         errors):
    from napari_pgdiffseg import SegmentConfig

    from widget_helpers import SEGMENT

    expected = write_variants(tmp_path / "in")
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    fast_settings(w, tiny_bundle_dir, SegmentConfig(inversion_steps=2, sampling_steps=2, device="cpu"))
    outcomes = {}
    for name, planes in expected.items():
        if name.startswith("SID PHA"):
            # npe2 matches reader patterns against lower-cased patterns but the file's own case,
            # so no pattern can claim Phasics' "SID PHA*.tif" names without claiming every TIFF;
            # in the viewer a Phasics file is napari's 3-page stack (README, Files)
            continue
        plugin = "napari-pgdiffseg" if name.endswith(".h5") else "napari"  # .h5: the plugin's qpformat reader
        [layer] = viewer.open(str(tmp_path / "in" / name), plugin=plugin)
        w.image.value = layer
        w.run_button.native.click()
        wait_idle(qtbot, w)
        assert errors == [], name
        out = viewer.layers[f"{layer.name} pgdiffseg"]
        assert out.data.shape == ((planes, 64, 64) if planes > 1 else (64, 64)), name
        outcomes[name] = w.last_outcome
    import pytest

    h5 = viewer.layers["qpi"]  # the plugin's reader kept the file's calibration for the cell measures
    assert h5.metadata["pgdiffseg_calibration"]["pixel_size_um"] == pytest.approx(0.3)
    assert outcomes["qpi.h5"].source == "qpi" and outcomes["qpi.h5"].summary["mass_note"] == ""  # no field set
    holo = viewer.layers["holo"]  # a raw hologram, reconstructed by qpretrieve: phase in radians, calibrated
    assert holo.metadata["pgdiffseg_calibration"]["wavelength_nm"] == pytest.approx(633.0)
    assert outcomes["holo.h5"].summary["mass_note"] == ""

"""Per-cell QPI measurements (core.measure): dry mass against the analytic value, units, metadata."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.measure import Calibration, cell_table, cells_csv_text, mass_summary, read_calibration

NAMES = ("background", "live", "dead")
CAPS = ((40, 40, 18, 2.0, 1), (40, 110, 12, 1.2, 2), (110, 70, 25, 3.0, 1))  # y, x, radius px, peak rad, class


def _caps(offset: float):
    """Spherical-cap-like paraboloids phi = p (1 - r^2 / R^2) on a flat background at `offset`."""
    yy, xx = np.mgrid[:150, :150].astype(float)
    phase = np.full((150, 150), offset)
    ids = np.zeros((150, 150), np.int32)
    labels = np.zeros((150, 150), np.uint8)
    for i, (cy, cx, r, p, cls) in enumerate(CAPS, 1):
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        inside = r2 < r * r
        phase[inside] += p * (1 - r2[inside] / (r * r))
        ids[inside], labels[inside] = i, cls
    return phase.astype(np.float32), ids, labels


@pytest.mark.parametrize("offset", [0.0, 1.7, -4.2])
def test_dry_mass_matches_the_analytic_value_whatever_the_background(offset):
    cal = Calibration(wavelength_nm=650, pixel_size_um=0.5, refractive_increment=0.18)
    phase, ids, labels = _caps(offset)
    rows = cell_table(ids, labels, phase, NAMES, cal)
    assert [r["cell_id"] for r in rows] == [1, 2, 3] and [r["class"] for r in rows] == ["live", "dead", "live"]
    for row, (cy, cx, r, p, _) in zip(rows, CAPS):
        # integral of p (1 - r^2/R^2) over the disc = p pi R^2 / 2 (px^2 rad); m = lambda/(2 pi alpha) * that * px^2
        analytic = 0.65 / (2 * math.pi * 0.18) * p * math.pi * r * r / 2 * 0.25
        assert row["dry_mass_pg"] == pytest.approx(analytic, rel=0.02)
        assert row["area_um2"] == pytest.approx(row["area_px"] * 0.25)
        assert (row["centroid_y"], row["centroid_x"]) == pytest.approx((cy, cx), abs=0.01)
        assert row["integrated_phase_rad"] == pytest.approx(row["mean_phase_rad"] * row["area_px"])
    s = mass_summary(rows, NAMES)
    assert s["live_dry_mass_total_pg"] == pytest.approx(rows[0]["dry_mass_pg"] + rows[2]["dry_mass_pg"])
    assert s["dead_dry_mass_mean_pg"] == pytest.approx(rows[1]["dry_mass_pg"])


def test_grey_levels_need_a_phase_scale_and_say_so():
    phase, ids, labels = _caps(0.5)
    grey = np.round(phase * 50).astype(np.uint8)  # 50 grey levels per radian
    cal = Calibration(wavelength_nm=650, pixel_size_um=0.5)
    rows = cell_table(ids, labels, grey, NAMES, cal)
    assert rows[0]["dry_mass_pg"] is None and rows[0]["mean_phase_rad"] is None and rows[0]["area_px"] > 0
    assert "phase scale" in cal.why_no_mass(grey.dtype)
    scaled = Calibration(wavelength_nm=650, pixel_size_um=0.5, phase_scale=1 / 50)
    ref = cell_table(ids, labels, phase, NAMES, cal)
    got = cell_table(ids, labels, grey, NAMES, scaled)
    assert got[0]["dry_mass_pg"] == pytest.approx(ref[0]["dry_mass_pg"], rel=0.02)
    assert scaled.why_no_mass(grey.dtype) == ""
    no_size = Calibration(wavelength_nm=650)
    assert "pixel size" in no_size.why_no_mass(np.float32) and "wavelength" not in no_size.why_no_mass(np.float32)
    text = cells_csv_text(cell_table(ids, labels, phase, NAMES, no_size), no_size.why_no_mass(np.float32))
    lines = text.splitlines()
    assert lines[0].startswith("# dry mass needs the pixel size")
    assert lines[1] == ("cell_id,class,area_px,area_um2,centroid_y,centroid_x,mean_phase_rad,"
                        "integrated_phase_rad,dry_mass_pg")
    assert lines[2].split(",")[3] == "" and lines[2].split(",")[-1] == ""


def test_bad_calibration_values_are_refused():
    for kw in ({"wavelength_nm": -5}, {"pixel_size_um": 0}, {"refractive_increment": float("nan")},
               {"phase_scale": "x"}):
        with pytest.raises(ConfigError, match="must be a number > 0"):
            Calibration(**kw)


def test_pixel_size_is_read_from_ome_and_imagej_tiffs(tmp_path):
    a = np.zeros((32, 32), np.float32)
    tifffile.imwrite(tmp_path / "a.ome.tif", a, metadata={"axes": "YX", "PhysicalSizeX": 0.25,
                                                          "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.25})
    tifffile.imwrite(tmp_path / "b.tif", a, imagej=True, resolution=(1 / 0.3, 1 / 0.3), metadata={"unit": "um"})
    tifffile.imwrite(tmp_path / "c.tif", a)
    assert read_calibration(tmp_path / "a.ome.tif").pixel_size_um == pytest.approx(0.25)
    assert read_calibration(tmp_path / "b.tif").pixel_size_um == pytest.approx(0.3)
    assert read_calibration(tmp_path / "c.tif") is None
    given = Calibration(wavelength_nm=600, pixel_size_um=0.1)
    assert given.merged(read_calibration(tmp_path / "b.tif")).pixel_size_um == 0.1  # the user's value wins
    assert Calibration(wavelength_nm=600).merged(read_calibration(tmp_path / "b.tif")).pixel_size_um == pytest.approx(0.3)

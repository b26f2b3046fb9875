"""The files microscopists have, each written in the test, segmented from the CLI and the Batch
widget: compressed TIFF, BigTIFF, OME-TIFF with a pixel size, ImageJ hyperstack, 16-bit PNG,
qpimage HDF5, raw off-axis holograms (qpformat HDF5), Phasics TIFF and numpy phase (qpformat)."""

from __future__ import annotations

import csv

import tifffile

from napari_pgdiffseg.cli import main

from file_variants import write_variants

FAST = ["--inversion-steps", "2", "--sampling-steps", "2", "--device", "cpu"]


def _rows(out):
    with open(out / "pgdiffseg_results.csv") as f:
        return {r["file"].split("/")[-1]: r for r in csv.DictReader(f)}


def test_every_variant_segments_from_the_cli(tiny_bundle_dir, tmp_path):
    expected = write_variants(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "in"), "--out", str(out), "--bundle", str(tiny_bundle_dir), *FAST,
                 "--wavelength-nm", "600"]) == 0
    rows = _rows(out)
    assert set(rows) == set(expected)
    for name, planes in expected.items():
        assert rows[name]["status"] == "ok" and int(rows[name]["planes"]) == planes, rows[name]
        stem = name[: -len(name.split(".")[-1]) - 1]
        lab = tifffile.imread(out / f"{stem}_labels.tif")
        assert lab.shape == ((planes, 64, 64) if planes > 1 else (64, 64))
    # the pixel size comes from the OME metadata and the qpimage file: dry masses there, a note elsewhere
    assert rows["ome.ome.tif"]["mass_note"] == "" and "pixel size" in rows["lzw.tif"]["mass_note"]
    assert rows["qpi.h5"]["mass_note"] == ""  # qpimage comes with the testing extra
    assert rows["holo.h5"]["mass_note"] == ""  # the hologram file stores both
    assert "pixel size" in rows["SID PHA cells.tif"]["mass_note"]  # Phasics stores the wavelength only
    assert "phase scale" in rows["grey16.png"]["mass_note"]  # grey levels, not radians

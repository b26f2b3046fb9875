"""QPI data files through qpformat: qpimage HDF5 and numpy phase read as radians with their
wavelength and pixel size, segmented from the CLI, opened by the napari reader."""

from __future__ import annotations

import csv

import numpy as np
import pytest

qpimage = pytest.importorskip("qpimage")

from napari_pgdiffseg.core.files import read_image, read_qpi  # noqa: E402
from napari_pgdiffseg.core.measure import read_calibration  # noqa: E402


def _h5(path, phase, wavelength=550e-9, pixel=0.4e-6):
    with qpimage.QPImage(data=phase, which_data="phase", meta_data={"wavelength": wavelength, "pixel size": pixel},
                         h5file=str(path), h5mode="w"):
        pass
    return path


def _phase(seed=0, size=80):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    return (2.0 * np.exp(-((yy - 40) ** 2 + (xx - 35) ** 2) / 120.0) + 0.05 * rng.normal(size=(size, size)) + 0.7)


def test_qpimage_h5_gives_radians_and_its_calibration(tmp_path):
    phase = _phase()
    path = _h5(tmp_path / "cell.h5", phase)
    arr, info = read_qpi(path)
    assert arr.dtype == np.float32 and arr.shape == (80, 80)
    np.testing.assert_allclose(arr, phase, atol=1e-5)
    assert info == pytest.approx({"wavelength_nm": 550.0, "pixel_size_um": 0.4})
    np.testing.assert_allclose(read_image(path), phase, atol=1e-5)
    cal = read_calibration(path)
    assert cal.wavelength_nm == pytest.approx(550.0) and cal.pixel_size_um == pytest.approx(0.4)


def test_cli_segments_h5_files_with_the_files_calibration(tmp_path, tiny_bundle_dir):
    from napari_pgdiffseg.cli import main

    d = tmp_path / "qpi"
    d.mkdir()
    _h5(d / "a.h5", _phase(1))
    out = tmp_path / "out"
    assert main(["segment", str(d), "--out", str(out), "--bundle", str(tiny_bundle_dir), "--inversion-steps", "2",
                 "--sampling-steps", "2", "--device", "cpu"]) == 0
    row = next(csv.DictReader((out / "pgdiffseg_results.csv").open()))
    assert row["status"] == "ok" and row["mass_note"] == ""  # wavelength and pixel size came from the file
    for c in csv.DictReader((out / "a_cells.csv").open()):
        m = 0.55 / (2 * np.pi * 0.18) * float(c["integrated_phase_rad"]) * 0.16
        assert float(c["dry_mass_pg"]) == pytest.approx(m, rel=1e-4)


def test_napari_reader_opens_qpi_files_as_phase_with_their_scale(tmp_path):
    from napari_pgdiffseg._reader import CALIBRATION_KEY, get_reader

    path = _h5(tmp_path / "cell.h5", _phase())
    reader = get_reader(str(path))
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image" and data.shape == (80, 80)
    assert kwargs["scale"] == pytest.approx((0.4, 0.4))
    assert kwargs["metadata"][CALIBRATION_KEY] == pytest.approx({"wavelength_nm": 550.0, "pixel_size_um": 0.4})
    assert get_reader(str(tmp_path / "other.tif")) is None


def _smooth_cell(size=128):
    yy, xx = np.mgrid[:size, :size]
    return 1.8 * np.exp(-((yy - 60) ** 2 + (xx - 66) ** 2) / 300.0)


def test_phasics_tiff_is_read_as_radians_from_its_wavelength(tmp_path):
    from file_variants import write_phasics

    from napari_pgdiffseg._reader import get_reader

    phase = _smooth_cell()
    path = tmp_path / "SID PHA 0001.tif"
    write_phasics(path, phase, wavelength_nm=532.0)
    arr = read_image(path)  # the phase page, not the 3 pages as a stack of grey levels
    assert arr.dtype == np.float32 and arr.shape == phase.shape
    np.testing.assert_allclose(arr, phase, atol=2e-3)  # 16-bit quantisation of the phase page
    assert read_calibration(path).wavelength_nm == pytest.approx(532.0)
    assert get_reader(str(path)) is not None  # the reader function accepts it (see README, Files)
    plain = tmp_path / "plain.tif"  # an ordinary 3-page TIFF stays a stack for napari's own reader
    import tifffile

    tifffile.imwrite(plain, np.zeros((3, 16, 16), np.uint16), photometric="minisblack")
    assert read_image(plain).shape == (3, 16, 16) and get_reader(str(plain)) is None


def test_phasics_tiff_without_its_wavelength_is_one_clear_error(tmp_path):
    from file_variants import write_phasics

    from napari_pgdiffseg.core.errors import InputImageError

    path = tmp_path / "SID PHA 0002.tif"
    write_phasics(path, _smooth_cell(), store_wavelength=False)
    with pytest.raises(InputImageError, match="does not store its wavelength"):
        read_image(path)


def test_raw_hologram_is_reconstructed_to_phase(tmp_path):
    from file_variants import write_hologram

    phase = _smooth_cell()
    path = tmp_path / "holo.h5"
    write_hologram(path, phase, wavelength_nm=650.0, pixel_size_um=0.25)
    arr, info = read_qpi(path)
    assert arr.dtype == np.float32 and arr.shape == phase.shape  # one (h, w) plane, not (1, h, w)
    assert info == pytest.approx({"wavelength_nm": 650.0, "pixel_size_um": 0.25})
    arr = arr - np.median(arr[phase < 0.01])  # qpretrieve leaves an offset
    inner = phase > 0.5
    assert np.corrcoef(arr[inner], phase[inner])[0, 1] > 0.9
    assert arr[60, 66] == pytest.approx(1.8, abs=0.25)  # the peak phase, blurred by the sideband filter

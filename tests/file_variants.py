"""Writes the file variants microscopists have (tests of the CLI and the Batch widget)."""

from __future__ import annotations

import numpy as np
import tifffile


def _phase(seed=0, size=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    return (1.5 * np.exp(-((yy - 30) ** 2 + (xx - 28) ** 2) / 90.0) + 0.05 * rng.normal(size=(size, size))
            ).astype(np.float32)


def write_phasics(path, phase, wavelength_nm=550.0, store_wavelength=True):
    """A Phasics SID4 export as qpformat reads it: page 0 intensity, page 1 phase in
    wavelengths, page 2 phase in nm, each uint16 with its value range in Phasics' tags 61243
    (min) and 61242 (max), the wavelength in the LabVIEW XML of tag 61238."""
    xml = ("<LVData><Cluster><Name>Analyse data</Name><DBL><Name>lambda(nm)</Name><Val>%g</Val></DBL>"
           "</Cluster></LVData>" % wavelength_nm) if store_wavelength else "<LVData></LVData>"
    waves = phase / (2 * np.pi)

    def page(values, lo, hi):
        q = np.round((values - lo) / (hi - lo) * 65535).astype(np.uint16)
        return q, [(61243, "d", 1, lo, True), (61242, "d", 1, hi, True), (281, "H", 1, 65535, True)]

    with tifffile.TiffWriter(path) as tw:
        q, tags = page(np.full(phase.shape, 1000.0), 0.0, 2000.0)
        tw.write(q, extratags=tags + [(61238, "s", 0, xml, True)])
        for values in (waves, waves * wavelength_nm):
            lo, hi = float(values.min()) - 0.05 * float(np.ptp(values)), float(values.max()) * 1.05 + 1e-3
            q, tags = page(values, lo, hi)
            tw.write(q, extratags=tags)


def write_hologram(path, phase, wavelength_nm=633.0, pixel_size_um=0.3):
    """A raw off-axis hologram in qpformat's HDF5 layout (reconstructed by qpretrieve on reading);
    the carrier is chosen so that qpretrieve's default +1 sideband gives +phase."""
    import h5py

    yy, xx = np.mgrid[: phase.shape[0], : phase.shape[1]]
    holo = 1 + np.cos(2 * np.pi * (xx / 4.0 + yy / 6.0) - phase)
    with h5py.File(path, "w") as h5:
        h5.attrs["file_format"] = "qpformat"
        h5.attrs["imaging_modality"] = "off-axis holography"
        ds = h5.create_dataset("0", data=holo.astype(np.float32))
        ds.attrs["wavelength"] = wavelength_nm * 1e-9
        ds.attrs["pixel size"] = pixel_size_um * 1e-6


def write_variants(d):
    import imageio.v3 as iio

    d.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(d / "lzw.tif", _phase(1), compression="lzw")
    tifffile.imwrite(d / "zstd.tif", _phase(2), compression="zstd")
    tifffile.imwrite(d / "big.tif", _phase(3), bigtiff=True)
    tifffile.imwrite(d / "ome.ome.tif", _phase(4), metadata={"axes": "YX", "PhysicalSizeX": 0.5,
                                                             "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.5})
    tifffile.imwrite(d / "imagej_z.tif", np.stack([_phase(5), _phase(6)]), imagej=True, metadata={"axes": "ZYX"})
    iio.imwrite(d / "grey16.png", (np.clip(_phase(7), 0, None) * 20000).astype(np.uint16))
    np.save(d / "phase.npy", _phase(8).astype(np.float64))
    expected = {"lzw.tif": 1, "zstd.tif": 1, "big.tif": 1, "ome.ome.tif": 1, "imagej_z.tif": 2, "grey16.png": 1,
                "phase.npy": 1}
    try:
        import qpimage

        with qpimage.QPImage(data=_phase(9).astype(float), which_data="phase",
                             meta_data={"wavelength": 633e-9, "pixel size": 0.3e-6}, h5file=str(d / "qpi.h5"),
                             h5mode="w"):
            pass
        expected["qpi.h5"] = 1
        write_hologram(d / "holo.h5", _phase(10).astype(float))
        expected["holo.h5"] = 1
        write_phasics(d / "SID PHA cells.tif", _phase(11).astype(float))
        expected["SID PHA cells.tif"] = 1
    except ImportError:
        pass
    return expected



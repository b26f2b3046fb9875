"""Writes the file variants microscopists have (tests of the CLI and the Batch widget)."""

from __future__ import annotations

import numpy as np
import tifffile


def _phase(seed=0, size=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    return (1.5 * np.exp(-((yy - 30) ** 2 + (xx - 28) ** 2) / 90.0) + 0.05 * rng.normal(size=(size, size))
            ).astype(np.float32)


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
    except ImportError:
        pass
    return expected



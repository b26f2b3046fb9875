"""The npe2 manifest is installed with the package and every contribution resolves."""

import numpy as np
from npe2 import PluginManifest

from napari_pgdiffseg._sample_data import real_qpi_cell


def test_manifest_is_installed_and_valid():
    pm = PluginManifest.from_distribution("napari-pgdiffseg")
    assert pm.name == "napari-pgdiffseg"
    assert "Segmentation" in pm.categories
    for cmd in pm.contributions.commands:
        module, func = cmd.python_name.split(":")
        mod = __import__(module, fromlist=[func])
        assert callable(getattr(mod, func)), cmd.python_name


def test_real_qpi_sample_is_skimage_cell():
    [(data, meta, kind)] = real_qpi_cell()
    assert kind == "image" and data.ndim == 2 and data.dtype == np.uint8
    assert meta["name"].startswith("QPI cell")

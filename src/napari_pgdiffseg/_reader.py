"""napari reader for the plugin's own outputs (`<stem>_labels.tif`, `<stem>_cells.tif`) and
for QPI data files through qpformat (qpimage HDF5, raw off-axis holograms in qpformat HDF5,
numpy phase, Phasics SID4 TIFF: `read_qpi_file`).

Both open as Labels layers, not as a black Image (values 0-2): class labels with the model's
class colours and class names as features, cell ids in shades of their class colour when
the class labels lie beside them. The files say what they are in their TIFF metadata
(`core.filejob.output_metadata`); any other TIFF is left to napari's own reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core.filejob import OUTPUT_METADATA_KEY

SUFFIXES = ("_labels.tif", "_cells.tif")


def output_info(path: str | Path) -> dict | None:
    """The plugin's metadata of an output TIFF (kind, class names, colours), or None."""
    import tifffile

    p = Path(path)
    if not p.name.endswith(SUFFIXES) or not p.is_file():
        return None
    try:
        with tifffile.TiffFile(p) as tif:
            meta = tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else {}
    except Exception:  # noqa: BLE001 - not ours to read: napari's reader will say what is wrong
        return None
    info = meta.get(OUTPUT_METADATA_KEY) if isinstance(meta, dict) else None
    if not isinstance(info, dict) or info.get("kind") not in ("classes", "cells"):
        return None
    return info


#: Layer metadata key of the calibration a QPI file stores (the Segment widget's cell measures use it).
CALIBRATION_KEY = "pgdiffseg_calibration"


def get_reader(path):
    """npe2 reader: a function for one of our output TIFFs or a QPI data file, else None."""
    from .core.files import is_qpi_file

    if isinstance(path, (list, tuple)):
        return get_reader(path[0]) if len(path) == 1 else None
    if Path(path).is_file() and is_qpi_file(path):
        return read_qpi_file
    return read_output if output_info(path) is not None else None


def read_qpi_file(path) -> list[tuple]:
    """A qpformat file (qpimage HDF5, raw hologram HDF5, numpy phase, Phasics TIFF) as an Image layer of phase in radians,
    scaled to um when the file stores its pixel size, its calibration in the metadata."""
    from .core.files import read_qpi

    phase, info = read_qpi(path)
    kwargs = {"name": Path(path).stem, "colormap": "gray", "metadata": {CALIBRATION_KEY: info}}
    if info.get("pixel_size_um"):
        kwargs["scale"] = (1.0,) * (phase.ndim - 2) + (info["pixel_size_um"],) * 2
    return [(phase, kwargs, "image")]


def read_output(path) -> list[tuple]:
    """Layer data of one output TIFF (see the module docstring)."""
    import tifffile

    from ._widgets._layers import cell_colormap, class_colormap, class_features

    p = Path(path[0] if isinstance(path, (list, tuple)) else path)
    info = output_info(p)
    data = tifffile.imread(p)
    names, colors = list(info.get("class_names", [])), info.get("colors", [])
    meta = {"pgdiffseg_file": str(p), "class_names": names, "model": info.get("model", "")}
    if info["kind"] == "classes":
        kwargs = {"name": p.stem, "metadata": meta, "opacity": 0.6}
        if names and len(colors) == len(names):
            kwargs.update(colormap=class_colormap(colors), features=class_features(names))
        return [(data, kwargs, "labels")]
    kwargs = {"name": p.stem, "metadata": meta, "opacity": 0.6}
    classes = p.with_name(p.name[: -len("_cells.tif")] + "_labels.tif")
    if len(colors) == len(names) and output_info(classes) is not None:
        labels = tifffile.imread(classes)
        if labels.shape == data.shape:
            kwargs["colormap"] = _cells_by_class(data, labels, colors, cell_colormap)
    return [(data, kwargs, "labels")]


def _cells_by_class(cells: np.ndarray, labels: np.ndarray, colors, cell_colormap):
    """One colormap: each cell id a shade of the colour of the class it lies in."""
    from napari.utils.colormaps import DirectLabelColormap

    color_dict = {None: np.zeros(4, np.float32), 0: np.zeros(4, np.float32)}
    for class_id in range(1, len(colors)):
        ids = np.unique(cells[(labels == class_id) & (cells > 0)])
        color_dict.update({k: v for k, v in cell_colormap(ids, colors[class_id]).color_dict.items()
                           if k not in (None, 0)})
    return DirectLabelColormap(color_dict=color_dict)

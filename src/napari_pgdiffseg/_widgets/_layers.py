"""napari layer data (data, kwargs, type) for segmentation results: names, colours, geometry.

No Qt here: the tuples are added to a viewer by the widgets (`_viewer.replace_layers`) and
returned as they are by the sample data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.models import DOWNSAMPLE_FACTOR

OUTPUT_TAG = "pgdiffseg_output_of"  # metadata key: the image a segment-widget layer belongs to


def class_colormap(colors: Sequence[Sequence[int]]):
    """A napari DirectLabelColormap from a bundle card's RGBA 0-255 colours (label i -> colours[i]).

    Unknown labels are transparent, so the class colours stay fixed whatever the data.
    """
    from napari.utils.colormaps import DirectLabelColormap

    color_dict = {None: np.zeros(4, np.float32)}
    for i, c in enumerate(colors):
        rgba = np.asarray(list(c) + [255] * (4 - len(c)), np.float32) / 255.0
        color_dict[i] = rgba
    return DirectLabelColormap(color_dict=color_dict)


def class_features(class_names: Sequence[str]) -> dict:
    """Labels-layer features: one row per class value."""
    return {"index": list(range(len(class_names))), "class_name": list(class_names)}


def latent_geometry(scale: Sequence[float], translate: Sequence[float], n_spatial: int = 2,
                    offset: Sequence[float] | None = None, input_scale: float = 1.0) -> tuple[tuple, tuple]:
    """scale/translate of a latent-resolution layer over an image with `scale`/`translate`.

    Pixel i of the latent covers image pixels f*i..f*i+f-1, whose centre is f*i + (f-1)/2,
    with f = 4 / input_scale (4 for a model at the frame's pixel size); `offset` is the
    (y, x) pixel origin of a crop inside the image.
    """
    f = DOWNSAMPLE_FACTOR / input_scale
    scale, translate = list(scale), list(translate)
    offset = list(offset) if offset is not None else [0.0] * n_spatial
    new_scale, new_translate = scale[:], translate[:]
    for k in range(n_spatial):
        i = len(scale) - n_spatial + k
        new_scale[i] = scale[i] * f
        new_translate[i] = translate[i] + (offset[k] + (f - 1) / 2.0) * scale[i]
    return tuple(new_scale), tuple(new_translate)


def geometry_kwargs(scale, translate) -> dict:
    return {"scale": tuple(scale), "translate": tuple(translate)}


def class_labels_layer(labels: np.ndarray, name: str, class_names, colors, scale, translate,
                       metadata: dict) -> tuple:
    return (
        labels,
        {
            "name": f"{name} pgdiffseg",
            "colormap": class_colormap(colors),
            "features": class_features(class_names),
            "metadata": {**metadata, "class_names": list(class_names)},
            "opacity": 0.6,
            **geometry_kwargs(scale, translate),
        },
        "labels",
    )


def cell_colormap(ids, color: Sequence[int]):
    """A DirectLabelColormap giving every cell id in `ids` a shade of its class colour.

    Neighbouring ids get different lightness (0.55x-1.25x of the class colour, stepped by
    the golden ratio), so touching cells stay apart while the class reads at a glance.
    """
    from napari.utils.colormaps import DirectLabelColormap

    base = np.asarray(list(color)[:3], np.float32) / 255.0
    color_dict = {None: np.zeros(4, np.float32), 0: np.zeros(4, np.float32)}
    for i in ids:
        i = int(i)
        if i == 0:
            continue
        f = 0.55 + 0.7 * ((i * 0.6180339887) % 1.0)
        rgb = np.clip(base * f if f <= 1 else base + (1 - base) * (f - 1), 0, 1)
        color_dict[i] = np.append(rgb, 1.0).astype(np.float32)
    return DirectLabelColormap(color_dict=color_dict)


def cell_labels_layer(cells: np.ndarray, name: str, class_name: str, scale, translate, metadata: dict,
                      color: Sequence[int] | None = None, n_cells: int | None = None,
                      features: dict | None = None) -> tuple:
    """A Labels layer of one class's cell ids, each a shade of the class colour.

    `n_cells`: the count the summary gives (for a stack, cells counted per plane and summed,
    since each plane's ids start at 1); default: the distinct ids in `cells`. `features`:
    the per-cell table (columns; ``index`` = cell id: napari's status bar shows a hovered
    cell's row; the Cell table dock, `_cell_table`, lists and selects them).
    """
    ids = np.unique(cells)
    ids = ids[ids > 0]
    extra = {"colormap": cell_colormap(ids, color)} if color is not None else {}
    return (
        cells,
        {
            "name": f"{name} pgdiffseg {class_name}",
            **extra,
            **({"features": features} if features is not None else {}),
            "metadata": {**metadata, "class_name": class_name, "n_cells": int(ids.size if n_cells is None else n_cells)},
            "opacity": 0.6,
            **geometry_kwargs(scale, translate),
        },
        "labels",
    )


def image_layer(data: np.ndarray, name: str, scale, translate, metadata: dict, **kwargs) -> tuple:
    return (data, {"name": name, "metadata": dict(metadata), **geometry_kwargs(scale, translate), **kwargs}, "image")


def cell_features(rows: Sequence[dict]) -> dict:
    """napari `features` of a cell layer from `measure.cell_table` rows: ``index`` is the cell
    id (napari matches rows to label values by it), then the measures (NaN where unknown)."""
    from ..core.measure import CELL_COLUMNS

    cols = [c for c in CELL_COLUMNS if c not in ("plane", "cell_id")]
    out = {"index": [int(r["cell_id"]) for r in rows]}
    for c in cols:
        out[c] = [r[c] if c == "class" else (np.nan if r[c] is None else float(r[c])) for r in rows]
    return out

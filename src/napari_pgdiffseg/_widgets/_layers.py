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


def cell_labels_layer(cells: np.ndarray, name: str, class_name: str, scale, translate, metadata: dict) -> tuple:
    n = int(cells.max()) if cells.size else 0
    return (
        cells,
        {
            "name": f"{name} pgdiffseg {class_name}",
            "metadata": {**metadata, "class_name": class_name, "n_cells": n},
            "opacity": 0.6,
            **geometry_kwargs(scale, translate),
        },
        "labels",
    )


def image_layer(data: np.ndarray, name: str, scale, translate, metadata: dict, **kwargs) -> tuple:
    return (data, {"name": name, "metadata": metadata, **geometry_kwargs(scale, translate), **kwargs}, "image")

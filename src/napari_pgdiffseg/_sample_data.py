"""Sample data for napari's File > Open Sample menu (thin: data comes from the core or skimage)."""

from __future__ import annotations


def real_qpi_cell():
    """`skimage.data.cell()`: a real quantitative phase image of a cell that ships with scikit-image."""
    from skimage.data import cell

    return [(cell(), {"name": "QPI cell (scikit-image)", "colormap": "gray"}, "image")]

"""Sample data for napari's File > Open Sample menu (thin: data comes from the core or skimage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SYNTHETIC_SEED = 7
SYNTHETIC_SHAPE = (512, 512)


def synthetic_qpi():
    """A synthetic QPI frame (phase, rad) and its true labels (0 background, 1 live, 2 dead).

    Made by `core.synthetic.make_frame`; the truth layer uses the plugin's class colours.
    """
    from .core.bundle import DEFAULT_CLASS_NAMES, DEFAULT_COLORS
    from .core.synthetic import SyntheticConfig, make_frame
    from ._widgets._layers import class_colormap, class_features

    phase, labels = make_frame(SYNTHETIC_SEED, SyntheticConfig(shape=SYNTHETIC_SHAPE))
    return [
        (phase, {"name": "synthetic QPI", "colormap": "gray", "metadata": {"units": "rad"}}, "image"),
        (
            labels,
            {
                "name": "synthetic QPI truth",
                "colormap": class_colormap(DEFAULT_COLORS),
                "features": class_features(DEFAULT_CLASS_NAMES),
                "metadata": {"class_names": list(DEFAULT_CLASS_NAMES)},
                "opacity": 0.5,
            },
            "labels",
        ),
    ]


#: The one cell of `skimage.data.cell()`, checked by eye against the image (the disk of an Otsu
#: threshold of the 2 px-smoothed image, whose outline lies on the cell's edge): centre (y, x)
#: and radius in px. It covers 3.2 % of the frame. The plugin's reference for whole-cell models.
SKIMAGE_CELL_DISK = (374.4, 428.3, 60.8)
#: The shipped model that fits this sample: a whole cell in a phase image.
SKIMAGE_CELL_MODEL = "qpi-cells"


def skimage_cell_truth() -> "np.ndarray":
    """(660, 550) uint8 mask of the sample's cell: 1 inside `SKIMAGE_CELL_DISK`, 0 elsewhere."""
    import numpy as np

    cy, cx, r = SKIMAGE_CELL_DISK
    yy, xx = np.mgrid[:660, :550]
    return (np.hypot(yy - cy, xx - cx) <= r).astype(np.uint8)


def real_qpi_cell():
    """`skimage.data.cell()`: a real quantitative phase image of a cell that ships with scikit-image
    (segment it with the qpi-cells model: whole cells)."""
    from skimage.data import cell

    return [(cell(), {"name": "QPI cell (scikit-image)", "colormap": "gray"}, "image")]

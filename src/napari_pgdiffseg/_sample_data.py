"""Sample data for napari's File > Open Sample menu (thin: data comes from the core or skimage)."""

from __future__ import annotations

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


def real_qpi_cell():
    """`skimage.data.cell()`: a real quantitative phase image of a cell that ships with scikit-image."""
    from skimage.data import cell

    return [(cell(), {"name": "QPI cell (scikit-image)", "colormap": "gray"}, "image")]

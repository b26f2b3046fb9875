"""napari dock widgets (Qt only): segmentation, noise-quality inspector, batch folder, training.

Each widget collects settings into a `SegmentConfig`, calls the core on a napari thread
worker and shows the results; compute lives in `napari_pgdiffseg.core`.
"""

from ._batch import BatchWidget
from ._inspector import InspectorWidget
from ._segment import SegmentWidget
from ._train import TrainWidget

__all__ = ["BatchWidget", "InspectorWidget", "SegmentWidget", "TrainWidget"]

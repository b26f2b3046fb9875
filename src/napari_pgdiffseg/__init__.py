"""napari-pgdiffseg: segment QPI frames into background, live and dead cells with PG-DiffSeg."""

__version__ = "0.1.0"

from .core import (  # noqa: E402
    Bundle,
    BundleError,
    ConfigError,
    InputImageError,
    SegmentationCancelled,
    SegmentationResult,
    SegmentConfig,
    create_bundle,
    load_bundle,
    save_bundle,
    segment,
    segment_stack,
)

__all__ = [
    "Bundle",
    "BundleError",
    "ConfigError",
    "InputImageError",
    "SegmentConfig",
    "SegmentationCancelled",
    "SegmentationResult",
    "create_bundle",
    "load_bundle",
    "save_bundle",
    "segment",
    "segment_stack",
]

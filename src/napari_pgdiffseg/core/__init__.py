"""Pure compute of napari-pgdiffseg (numpy in, numpy out, torch inside; no Qt, no napari)."""

from .bundle import Bundle, BundleCard, create_bundle, load_bundle, save_bundle
from .errors import BundleError, ConfigError, InputImageError, PGDiffSegError, SegmentationCancelled
from .config import SegmentConfig
from .engine import Progress
from .pipeline import segment, segment_stack, SegmentationResult
from .preprocess import Normalization

__all__ = [
    "Bundle",
    "BundleCard",
    "BundleError",
    "ConfigError",
    "InputImageError",
    "Normalization",
    "PGDiffSegError",
    "Progress",
    "SegmentConfig",
    "SegmentationCancelled",
    "SegmentationResult",
    "create_bundle",
    "load_bundle",
    "save_bundle",
    "segment",
    "segment_stack",
]

"""napari-pgdiffseg: segment QPI frames into background, live and dead cells with PG-DiffSeg."""

__version__ = "0.1.0"

# The package's public API is the core's (numpy in, numpy out), loaded on first use: the
# core imports torch and diffusers (seconds), which napari must not wait for when it only
# reads the plugin's manifest or docks a widget (`_dock`). The names are core's `__all__`
# (tests/test_architecture.py checks that the two lists agree).
__all__ = [
    "Bundle", "BundleCard", "BundleError", "ConfigError", "InputImageError", "Normalization", "PGDiffSegError",
    "Progress", "SegmentConfig", "SegmentationCancelled", "SegmentationResult", "create_bundle", "load_bundle",
    "save_bundle", "segment", "segment_stack",
]


def __getattr__(name):
    if name in __all__:
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)

"""Errors the core raises for bad input, bad model bundles and user cancellation.

Each message names what was wrong and what to do about it; the CLI prints it as one line
and the napari widgets show it as a notification.
"""

from __future__ import annotations


class PGDiffSegError(Exception):
    """Base class of every error this package raises on purpose."""


class InputImageError(PGDiffSegError, ValueError):
    """The image cannot be segmented as given (shape, dtype, NaN/inf, constant, too small)."""


class BundleError(PGDiffSegError, OSError):
    """A model bundle is missing a file, holds a corrupt file or an inconsistent config."""


class ConfigError(PGDiffSegError, ValueError):
    """A segmentation or training setting is out of range or inconsistent with another."""


class SegmentationCancelled(PGDiffSegError):
    """Raised inside `segment` when the caller's cancel check returns True."""


class TrainingCancelled(PGDiffSegError):
    """Raised by a training run whose caller asked it to stop; the last checkpoint is kept
    and no model folder is written."""

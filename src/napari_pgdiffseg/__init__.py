"""napari-pgdiffseg: segment QPI frames into background, live and dead cells with PG-DiffSeg."""

__version__ = "0.1.0"

# The package's public API is the core's (numpy in, numpy out): one list of names, kept in core.
from .core import *  # noqa: E402,F401,F403
from .core import __all__  # noqa: E402,F401

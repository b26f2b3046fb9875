"""`python -m napari_pgdiffseg.cli` (used by `train --accelerate`)."""

import sys

from . import main

sys.exit(main())

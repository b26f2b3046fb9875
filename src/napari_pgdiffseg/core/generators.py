"""The synthetic generators by name, for training and evaluation (`--synthetic-kind`).

"classic" (`synthetic`: whole cells, live/dead, the synthetic-demo model's frames), and the
generators of `synthetic_real` made to look like real frames: "slim" (SLIM, nuclei
live/dead), "holo" (holographic phase in radians, whole cells, like qpi-cells' Q-PHASE frames)
and "holo-varied" (the same cells as other set-ups show them: `HoloConfig.varied`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import synthetic_real
from .errors import ConfigError
from .synthetic import SyntheticConfig, make_dataset

#: The synthetic generators a training run can draw from: `synthetic`'s whole-cell live/dead
#: frames ("classic", the synthetic-demo model's), and those of `synthetic_real` made to look
#: like real SLIM frames (nuclei live/dead) and holographic phase (whole cells).
SYNTHETIC_KINDS = ("classic", "slim", "holo", "holo-varied")


def make_synthetic(kind: str, n_frames: int, seed: int, config=None, *, shape: tuple[int, int] = (256, 256),
                   n_classes: int = 3) -> tuple[np.ndarray, np.ndarray, object]:
    """(images, labels, config) of `n_frames` frames of generator `kind` (`SYNTHETIC_KINDS`).

    config: the generator's own config (None: its defaults at `shape`). Raises ConfigError
    when the generator's labels do not fit `n_classes` classes.
    """
    if kind == "classic":
        cfg = config if config is not None else SyntheticConfig(shape=shape)
        cfg = replace(cfg, shape=shape) if cfg.shape != tuple(shape) else cfg
        images, labels = make_dataset(n_frames, seed, cfg)
    elif kind in ("slim", "holo", "holo-varied"):
        cls, make = ((synthetic_real.SlimConfig, synthetic_real.make_slim_dataset) if kind == "slim"
                     else (synthetic_real.HoloConfig, synthetic_real.make_holo_dataset))
        preset = synthetic_real.HoloConfig.varied if kind == "holo-varied" else cls
        cfg = config if config is not None else preset(shape=tuple(shape))
        images, labels = make(n_frames, seed, cfg)
    else:
        raise ConfigError(f"unknown synthetic generator {kind!r}; choose one of {', '.join(SYNTHETIC_KINDS)}")
    if labels.size and int(labels.max()) >= n_classes:
        raise ConfigError(f"the {kind} generator's labels reach class {int(labels.max())}, but the model has "
                          f"{n_classes} classes; use a generator config without that class")
    return images, labels, cfg

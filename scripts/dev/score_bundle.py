"""Score a bundle on one fold's held-out HeLa frames (a development probe, not a CV row).

    python scripts/dev/score_bundle.py BUNDLE_FOLDER FOLD

FOLD's test frames are those of the 3-fold split by frame (seed 0) that `pgdiffseg evaluate
--folds 3` uses. Rows: Prior 1 + 1 with one view and with 8 sampling views (the shipped
card's setting), scored by `core.evaluation.evaluate` exactly as the CV tables are. Prints
one line per row: per-frame and mean foreground IoU and object F1.
"""

import sys

import numpy as np

from napari_pgdiffseg.core.bundle import load_model
from napari_pgdiffseg.core.config import SegmentConfig
from napari_pgdiffseg.core.evaluation import evaluate, fold_groups
from napari_pgdiffseg.core.training import read_frames

DATA = "../shared/data/qpi-live-dead"


def main(folder: str, fold: int) -> None:
    frames = read_frames([f"{DATA}/HeLa"], [f"{DATA}/HeLa-labels"], label_map="viability4", n_classes=3,
                         labelled_only=True)
    test = np.flatnonzero(fold_groups(len(frames.images), 3, 0) == fold)
    bundle = load_model(folder)
    one = SegmentConfig(strategy="prior", inversion_steps=1, sampling_steps=1, flips=1)
    views = SegmentConfig(strategy="prior", inversion_steps=1, sampling_steps=1, flips=8, flip_scope="sampling")
    rows = {"1+1, 1 view": one, "1+1, 8 sampling views": views}
    scores = evaluate(bundle, [frames.images[i] for i in test], [frames.masks[i] for i in test], rows,
                      instances=[frames.instances[i] for i in test])
    names = [frames.names[i].rsplit("/", 1)[-1] for i in test]
    for name, s in zip(rows, scores):
        print(f"{folder} fold {fold} [{name}] frames {' '.join(names)}: fg IoU {np.round(s.fg_iou, 3).tolist()} "
              f"mean {np.mean(s.fg_iou):.3f}; object F1 {np.round(s.object_f1, 3).tolist()} "
              f"mean {np.mean(s.object_f1):.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

"""Score a bundle on one fold's held-out real frames (a development probe, not a CV row).

    python scripts/dev/score_bundle.py BUNDLE_FOLDER FOLD [hela|qpi-cells]

FOLD's test frames are those of the 3-fold split by frame (seed 0) that `pgdiffseg evaluate
--folds 3` uses. Rows, scored by `core.evaluation.evaluate` exactly as the CV tables are:
hela (default): Prior 1 + 1 with one view and with 8 sampling views (slim-viability's card);
qpi-cells: Prior 2 + 2, one view (qpi-cells' card). Instances follow the bundle's card.
Prints one line per row: per-frame and mean foreground IoU and object F1, mean mIoU, and
the share of true live pixels called dead per frame (NaN without a dead class).
"""

import sys

import numpy as np

from napari_pgdiffseg.core.bundle import load_model
from napari_pgdiffseg.core.config import SegmentConfig
from napari_pgdiffseg.core.evaluation import evaluate, fold_groups
from napari_pgdiffseg.core.training import read_frames

DATA = "../shared/data"


def main(folder: str, fold: int, set_name: str = "hela") -> None:
    if set_name == "hela":
        frames = read_frames([f"{DATA}/qpi-live-dead/HeLa"], [f"{DATA}/qpi-live-dead/HeLa-labels"],
                             label_map="viability4", n_classes=3, labelled_only=True)
        rows = {"1+1, 1 view": SegmentConfig(strategy="prior", inversion_steps=1, sampling_steps=1, flips=1),
                "1+1, 8 sampling views": SegmentConfig(strategy="prior", inversion_steps=1, sampling_steps=1,
                                                       flips=8, flip_scope="sampling")}
    elif set_name == "qpi-cells":
        frames = read_frames([f"{DATA}/qpi-cells"], label_map="instances", n_classes=2, labelled_only=True)
        rows = {"2+2, 1 view": SegmentConfig(strategy="prior", inversion_steps=2, sampling_steps=2, flips=1)}
    else:
        raise SystemExit(f"unknown set {set_name!r}: hela or qpi-cells")
    test = np.flatnonzero(fold_groups(len(frames.images), 3, 0) == fold)
    bundle = load_model(folder)
    scores = evaluate(bundle, [frames.images[i] for i in test], [frames.masks[i] for i in test], rows,
                      instances=[frames.instances[i] for i in test])
    names = [frames.names[i].rsplit("/", 1)[-1] for i in test]
    for name, s in zip(rows, scores):
        print(f"{folder} fold {fold} [{name}] frames {' '.join(names)}: fg IoU {np.round(s.fg_iou, 3).tolist()} "
              f"mean {np.mean(s.fg_iou):.3f}; object F1 {np.round(s.object_f1, 3).tolist()} "
              f"mean {np.mean(s.object_f1):.3f}; mIoU mean {np.mean(s.miou):.3f}; "
              f"true live called dead {np.round(s.dead_share, 4).tolist()}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4])

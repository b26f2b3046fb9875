"""README figures on real frames, each segmented by the cross-validation model that never saw it.

    python scripts/make_real_figures.py [--eval out/eval] [--data ../shared/data] [--models SET=PATTERN ...]

For two HeLa frames (a typical one and the worst) and one holographic qpi-cells frame: finds the fold whose test set holds
the frame (the split of `pgdiffseg evaluate`, seed 0), segments it with that fold's bundle
(scripts/evaluate_real.sh wrote them; --models hela=DIR/fold{fold}/continued names other fold
models, e.g. those of scripts/dev/continue_cv.sh) at the shipped card's settings, and draws image | labels |
truth | outlines into docs/figures/real_hela.png and docs/figures/real_qpi_cells.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_pgdiffseg import segment
from napari_pgdiffseg.core.bundle import load_bundle, peek_bundle, resolve_model
from napari_pgdiffseg.core.config import model_config
from napari_pgdiffseg.core.training import read_frames
from napari_pgdiffseg.core.evaluation import fold_groups
from napari_pgdiffseg.core.metrics import foreground_iou, object_f1
from napari_pgdiffseg.core.cells import InstanceConfig, cell_instances
from napari_pgdiffseg.figure import truth_figure

SETS = {
    # HeLa: a typical frame (0005) and the worst one (0004, whose truth often lies beside the
    # nuclei visible in the phase image).
    "hela": dict(data="qpi-live-dead/HeLa", masks="qpi-live-dead/HeLa-labels", label_map="viability4", n=3,
                 frame="0005.png", out="real_hela.png", model="slim-viability"),
    "hela-worst": dict(data="qpi-live-dead/HeLa", masks="qpi-live-dead/HeLa-labels", label_map="viability4", n=3,
                       frame="0004.png", out="real_hela_worst.png", eval="hela", model="slim-viability"),
    "qpi-cells": dict(data="qpi-cells", masks=None, label_map="instances", n=2, frame="dense_img_003.tif",
                      out="real_qpi_cells.png", model="qpi-cells"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", default="out/eval")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    ap.add_argument("--models", nargs="*", default=[], metavar="SET=PATTERN",
                    help="fold models of a set (hela, qpi-cells) as a path with {fold}; default EVAL/SET/fold{fold}/bundle")
    args = ap.parse_args()
    for name in args.sets:
        s = SETS[name]
        data = Path(args.data)
        fs = read_frames([data / s["data"]], None if s["masks"] is None else [data / s["masks"]],
                         label_map=s["label_map"], n_classes=s["n"], labelled_only=True)
        i = [Path(p).name for p in fs.names].index(s["frame"])
        fold = int(fold_groups(len(fs), args.folds)[i])
        models = dict(m.split("=", 1) for m in args.models)
        pattern = models.get(s.get("eval", name), str(Path(args.eval) / s.get("eval", name) / "fold{fold}" / "bundle"))
        bundle = load_bundle(pattern.replace("{fold}", str(fold)))
        # The settings the shipped model's card names (e.g. slim-viability's 8 mirrored views).
        config = model_config(peek_bundle(resolve_model(s["model"]))[0], device="cpu", noise_metrics=False)
        labels = segment(fs.images[i], bundle, config).labels
        ids = cell_instances(labels, fs.images[i], bundle.card.class_names,
                             InstanceConfig.from_dict(bundle.card.instances))
        title = (f"{s['frame']} ({s.get('eval', name)}, held out: fold {fold + 1} model), Prior x1 "
                 f"{config.inversion_steps}+{config.sampling_steps} steps"
                 f"{f', {config.flips} views' if config.flips > 1 else ''}: foreground IoU "
                 f"{foreground_iou(labels, fs.masks[i]):.3f}, object F1 {object_f1(ids, fs.instances[i]):.3f}")
        out = truth_figure(Path("docs/figures") / s["out"], fs.images[i], labels, fs.masks[i], bundle.card.colors,
                           title)
        print(f"{out}: {title}")


if __name__ == "__main__":
    main()

"""How class scores become labels and cells, studied on the held-out frames of a real-data CV.

    python scripts/postprocess_study.py hela|qpi-cells EVAL_DIR [--margins-only | --merge-only | --instances-only]
        [--steps I,S]

EVAL_DIR is the output of `scripts/evaluate_real.sh SET EVAL_DIR`: it holds each fold's
bundle (EVAL_DIR/fold{f}/bundle), trained without that fold's frames. Every held-out frame
is segmented once by its own fold's bundle (Prior x1, the default settings or `--steps`
inversion,sampling steps, class scores kept); then each post-processing variant (a foreground margin, snapping the outline to the
image's edges, instance settings) is scored on the same scores.

Nested selection, so no test frame picks its own setting: for fold f, the variant is the
one with the best mean (foreground IoU + object F1) over the held-out frames of the *other*
folds (scored by their own fold models), and fold f is then scored with it. The table gives
every variant's mean (SD) over folds and the nested row.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_pgdiffseg.core.bundle import load_bundle
from napari_pgdiffseg.core.training import read_frames
from napari_pgdiffseg.core.evaluation import OBJECT_IOU, fold_groups
from napari_pgdiffseg.core.metrics import foreground_iou, object_f1
from napari_pgdiffseg.core.config import SegmentConfig
from napari_pgdiffseg.core.pipeline import segment
from napari_pgdiffseg.core.postprocess import Refine, refine_labels
from napari_pgdiffseg.core.cells import InstanceConfig, cell_instances

DATA = Path(os.environ.get("PGDIFFSEG_DATA", "../shared/data"))
SETS = {
    "hela": dict(data=[DATA / "qpi-live-dead/HeLa"], masks=[DATA / "qpi-live-dead/HeLa-labels"],
                 label_map="viability4", classes=("background", "live", "dead")),
    "qpi-cells": dict(data=[DATA / "qpi-cells"], masks=None, label_map="instances", classes=("background", "cell")),
}


def variants(card_instances: InstanceConfig, set_name: str, margins_only: bool = False,
             merge_only: bool = False, instances_only: bool = False):
    """(name, Refine, InstanceConfig) for every variant studied (margins_only: margins from
    -0.75 to +0.3 with the card's instance setting; merge_only: the card's labels and
    watershed with each merge threshold of the shallow-saddle merge, `InstanceConfig.merge`;
    instances_only: the card's labels with connected components and phase watersheds)."""
    if instances_only:
        area = card_instances.min_area
        inst = [card_instances, InstanceConfig(method="components", min_area=area)]
        inst += [InstanceConfig(method="watershed", min_distance=d, smooth=sm, min_area=area, merge=m)
                 for d, sm, m in itertools.product((3, 4, 5, 8, 12), (2.0, 3.0, 4.0), (0.0, 0.9))]
        inst += [replace(card_instances, min_area=a) for a in (50, 100, 250, 400, 600)]
        for i in dict.fromkeys(inst):
            yield f"{Refine().describe()} | {i.describe()}", Refine(), i
        return
    if merge_only:
        for m in (0.0, 0.5, 0.6, 0.7, 0.8, 0.9):
            i = replace(card_instances, merge=m)
            yield f"{Refine().describe()} | {i.describe()}", Refine(), i
        return
    if margins_only:
        for m in (-0.75, -0.6, -0.45, -0.3, -0.15, 0.0, 0.15, 0.3):
            r = Refine(margin=m)
            yield f"{r.describe()} | {card_instances.describe()}", r, card_instances
        return
    refines = [Refine()] + [Refine(margin=m) for m in (-0.3, -0.15, 0.15, 0.3)] + \
              [Refine(snap=r, smooth=s) for r, s in itertools.product((2, 4, 8), (1.0, 2.0))]
    inst = [card_instances]
    if set_name == "qpi-cells":
        inst += [InstanceConfig(method="watershed", min_distance=d, smooth=s, min_area=150)
                 for d, s in itertools.product((5, 8, 12), (2.0, 3.0, 4.0)) if (d, s) != (5, 3.0)]
    else:
        inst += [InstanceConfig(method="watershed", min_distance=d, smooth=s, min_area=300)
                 for d, s in itertools.product((8, 16), (2.0, 4.0))]
    for r, i in itertools.product(refines, inst):
        yield f"{r.describe()} | {i.describe()}", r, i


def main(set_name: str, eval_dir: str, margins_only: bool = False, merge_only: bool = False,
         instances_only: bool = False, steps: tuple[int, int] | None = None) -> int:
    spec = SETS[set_name]
    frames = read_frames(spec["data"], spec["masks"], label_map=spec["label_map"], n_classes=len(spec["classes"]),
                         labelled_only=True)
    groups = fold_groups(len(frames.images), 3, 0)
    steps_kw = {} if steps is None else {"inversion_steps": steps[0], "sampling_steps": steps[1]}
    cache = Path(eval_dir) / ("postprocess_scores.npz" if steps is None else f"postprocess_scores_{steps[0]}_{steps[1]}.npz")
    if cache.exists():
        scores = list(np.load(cache)["scores"])
    else:
        scores = [None] * len(frames.images)
        for f in range(3):
            bundle = load_bundle(Path(eval_dir) / f"fold{f}" / "bundle")
            for i in np.flatnonzero(groups == f):
                r = segment(frames.images[i], bundle, SegmentConfig(return_scores=True, noise_metrics=False, **steps_kw))
                scores[i] = r.scores
                print(f"fold {f}: {Path(frames.names[i]).name} segmented", file=sys.stderr)
        np.savez_compressed(cache, scores=np.stack(scores))
    card = load_bundle(Path(eval_dir) / "fold0" / "bundle").card
    base_inst = InstanceConfig.from_dict(card.instances)
    table = {}
    for name, refine, inst in variants(base_inst, set_name, margins_only, merge_only, instances_only):
        per = []
        for img, s, mask, true_ids in zip(frames.images, scores, frames.masks, frames.instances):
            labels = refine_labels(s, img, refine)
            pred_ids = cell_instances(labels, img, spec["classes"], inst)
            per.append((foreground_iou(labels, mask), object_f1(pred_ids, true_ids, OBJECT_IOU)))
        table[name] = np.array(per)
    print(f"# {set_name}: {len(frames.images)} frames, 3 folds; mean (SD) over folds of held-out frames")
    print("| variant | fg IoU | object F1 |\n|---|---|---|")

    def fold_means(per):
        return np.array([per[groups == f].mean(axis=0) for f in range(3)])

    rows = []
    for name, per in table.items():
        fm = fold_means(per)
        rows.append((fm.mean(axis=0).sum(), name, fm))
    for _, name, fm in sorted(rows, reverse=True):
        m, sd = fm.mean(axis=0), fm.std(axis=0, ddof=1)
        print(f"| {name} | {m[0]:.3f} ({sd[0]:.3f}) | {m[1]:.3f} ({sd[1]:.3f}) |")
    nested, chosen = [], []
    for f in range(3):
        best = max(table, key=lambda n: table[n][groups != f].mean(axis=0).sum())
        chosen.append(best)
        nested.append(table[best][groups == f].mean(axis=0))
    nested = np.array(nested)
    m, sd = nested.mean(axis=0), nested.std(axis=0, ddof=1)
    print(f"| **nested selection** | {m[0]:.3f} ({sd[0]:.3f}) | {m[1]:.3f} ({sd[1]:.3f}) |")
    for f, c in enumerate(chosen):
        print(f"fold {f + 1} chose: {c}")
    return 0


if __name__ == "__main__":
    flags = sys.argv[3:]
    steps = None
    if "--steps" in flags:
        steps = tuple(int(v) for v in flags[flags.index("--steps") + 1].split(","))
    sys.exit(main(sys.argv[1], sys.argv[2], "--margins-only" in flags, "--merge-only" in flags,
                  "--instances-only" in flags, steps))

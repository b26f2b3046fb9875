"""The shipped models' "unlike the training data" references (`core.ood`), and how well they
separate the image kinds: prints a Markdown table, and with --write stores each model's
reference in its card (``ood``).

    python scripts/card_ood_reference.py [--data ../shared/data] [--write]

Per model, the reference is made from the frames its networks were trained on:
slim-viability: the 140 HeLa + CHO SLIM frames (its autoencoder and LDM-P data);
qpi-cells: its 15 real training frames (qpi-cells; its 40 holo-varied synthetic training
frames are scored as a row instead); synthetic-demo: 40 frames of its synthetic training set (seed 1,
difficulty 0.5). Rows: the median and maximum frame score of each image set, and the share
of frames flagged. For the training set itself the row is 5-fold held out: each fifth of the
frames scored against a reference made from the other four fifths (the false-alarm rate on
new frames of the same kind).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def _frames(data: Path) -> dict:
    import skimage.data

    from napari_pgdiffseg.core.files import read_image
    from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset
    from napari_pgdiffseg.core.synthetic_real import HoloConfig, make_holo_dataset

    def files(pattern):
        return [read_image(p) for p in sorted(data.glob(pattern))]

    return {
        "HeLa SLIM (qpi-live-dead/HeLa)": lambda: files("qpi-live-dead/HeLa/*.png"),
        "CHO SLIM (qpi-live-dead/CHO)": lambda: files("qpi-live-dead/CHO/*.png"),
        "qpi-cells holographic (15)": lambda: files("qpi-cells/images/*.tif"),
        "holo-varied synthetic (40, seed 10001)": lambda: list(make_holo_dataset(40, 10001, HoloConfig.varied())[0]),
        "scikit-image's cell (the sample)": lambda: [skimage.data.cell()],
        "synthetic-demo training set (40, seed 1)": lambda: list(
            make_dataset(40, 1, SyntheticConfig(difficulty=0.5))[0]),
        "synthetic hard set (16, seed 9001)": lambda: list(make_dataset(16, 9001, SyntheticConfig(difficulty=0.8))[0]),
    }


TRAIN = {
    "slim-viability": ("HeLa SLIM (qpi-live-dead/HeLa)", "CHO SLIM (qpi-live-dead/CHO)"),
    # The real frames only: the 40 holo-varied synthetic frames widen the reference until it
    # flags nothing, not even SLIM frames (first run of this script: 0 of 140 flagged).
    "qpi-cells": ("qpi-cells holographic (15)",),
    "synthetic-demo": ("synthetic-demo training set (40, seed 1)",),
}
SOURCES = {
    "slim-viability": "the 140 HeLa and CHO SLIM frames of qpi-live-dead",
    "qpi-cells": "the 15 qpi-cells frames (its real training frames)",
    "synthetic-demo": "40 frames of its synthetic training set (seed 1, difficulty 0.5)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--write", action="store_true", help="store each reference in its shipped card")
    ap.add_argument("--models", nargs="+", default=list(TRAIN), choices=list(TRAIN))
    args = ap.parse_args()

    import torch

    from napari_pgdiffseg.core.bundle import MODELS_DIR, CARD_NAME, load_model
    from napari_pgdiffseg.core.ood import frame_features, frame_score, reference_from_features

    torch.set_num_threads(max(1, torch.get_num_threads()))
    loaders = _frames(args.data)
    images = {name: load() for name, load in loaders.items()}
    print(f"# Unlike-the-training-data scores (core.ood), {sum(len(v) for v in images.values())} frames\n")
    for model in args.models:
        train_sets = TRAIN[model]
        bundle = load_model(model)
        feats = {name: [frame_features(im, bundle) for im in ims] for name, ims in images.items()}
        train = [f for name in train_sets for f in feats[name]]
        ref = reference_from_features(train, SOURCES[model])
        # 5-fold held out on the training frames: the false alarms on new frames of that kind.
        rng = np.random.default_rng(0)
        order = rng.permutation(len(train))
        held, flagged = np.empty(len(train)), np.zeros(len(train), bool)
        for k in range(5):
            test = set(order[k::5].tolist())
            fold_ref = reference_from_features([train[i] for i in order if i not in test], "fold")
            for i in test:
                held[i] = frame_score(train[i], fold_ref)
                flagged[i] = held[i] > fold_ref.threshold
        print(f"## {model}: reference from {SOURCES[model]}; warning above {ref.threshold:.2f} "
              f"(1.5 x the highest training frame, {ref.train_max:.2f})\n")
        print("| images | frames | median score | max score | flagged |")
        print("|---|---:|---:|---:|---:|")
        print(f"| its training frames, 5-fold held out (each fold's own reference) | {len(train)} | "
              f"{np.median(held):.2f} | {held.max():.2f} | {np.mean(flagged):.0%} |")
        for name, fs in feats.items():
            if name in train_sets:
                continue
            s = np.array([frame_score(f, ref) for f in fs])
            print(f"| {name} | {len(s)} | {np.median(s):.2f} | {s.max():.2f} | {np.mean(s > ref.threshold):.0%} |")
        print()
        if args.write:
            path = MODELS_DIR / model / CARD_NAME
            card = json.loads(path.read_text())
            card["ood"] = ref.to_dict()
            indent = 2 if path.read_text().startswith("{\n  ") else 1
            path.write_text(json.dumps(card, indent=indent) + "\n")
            print(f"wrote the reference into {path}\n")


if __name__ == "__main__":
    main()

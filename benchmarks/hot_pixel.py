"""What one hot pixel (3e38) does to the labels of a real frame, with and without the plugin's
outlier handling (core.preprocess: values beyond 5x the frame's range replaced by their
neighbours' median, normalised values clipped to +-5). Prints a Markdown table.

    python benchmarks/hot_pixel.py [--data ../shared/data]

Per shipped real-data model and frame: pixels whose label changed against the clean frame,
and those farther than 16 px from the hot pixel. The model card's settings except one view
(flips 1), so the two runs of a row differ only in the handling.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np

HERE = Path(__file__).resolve().parent


def changed(model: str, frame: np.ndarray, yx: tuple[int, int], handled: bool) -> tuple[int, int]:
    from napari_pgdiffseg import segment
    from napari_pgdiffseg.core import preprocess
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.config import model_config

    bundle = load_model(model)
    cfg = replace(model_config(bundle.card), flips=1)
    hot = frame.copy()
    hot[yx] = 3e38
    clean = segment(frame, bundle, cfg).labels
    if handled:
        got = segment(hot, bundle, cfg).labels
    else:
        with mock.patch.object(preprocess, "OUTLIER_LIMIT", float("inf")), \
                mock.patch("napari_pgdiffseg.core.source.replace_outliers", lambda f, n: 0), \
                mock.patch("napari_pgdiffseg.core.pipeline.replace_outliers", lambda f, n: 0):
            got = segment(hot, bundle, cfg).labels
    diff = clean != got
    far = diff.copy()
    y, x = yx
    far[max(y - 16, 0):y + 17, max(x - 16, 0):x + 17] = False
    return int(diff.sum()), int(far.sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    args = ap.parse_args()
    from napari_pgdiffseg.core.files import read_image

    hela = read_image(args.data / "qpi-live-dead/HeLa/0000.png").astype(np.float32)
    holo = read_image(sorted((args.data / "qpi-cells/images").glob("*.tif"))[0]).astype(np.float32)
    cases = [("slim-viability", "HeLa 0000.png (832 px)", hela, (400, 400)),
             ("slim-viability", "HeLa 0000.png (832 px)", hela, (100, 700)),
             ("qpi-cells", "first qpi-cells frame (600 px)", holo, (300, 300))]
    print("| model | frame | hot pixel at | labels changed, without the handling | with it | with it, > 16 px away |")
    print("|---|---|---|---:|---:|---:|")
    for model, name, frame, yx in cases:
        before, _ = changed(model, frame, yx, handled=False)
        after, far = changed(model, frame, yx, handled=True)
        print(f"| {model} | {name} | {yx} | {before:,} | {after:,} | {far:,} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

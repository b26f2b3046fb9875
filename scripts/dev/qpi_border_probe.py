"""A development probe (not a shipped path): whole cells as three classes, background / cell
core / touching border, so that touching cells stay apart at the latent's resolution.

    python scripts/dev/qpi_border_probe.py prepare OUT      # carved masks, fold folders
    python scripts/dev/qpi_border_probe.py score OUT FOLD   # a fold model on its held-out frames

Why: a qpi-cells mask (2 classes) that goes through LDM-S's latent (area-resized to 1/4, as
`mask_to_latent` does) and back loses the 1 px gaps between touching cells; even the TRUE
masks then give object F1 0.765 with the card's watershed (0.138 with connected regions).
Marking each cell's pixels within BORDER px of another cell as class 2 keeps the cores
apart: the true masks through the same round trip give object F1 0.935 and foreground IoU
0.928 (BORDER 3). Prepare writes, per fold of the 3-fold split by frame (seed 0, as
`pgdiffseg evaluate --folds 3`), the fold's training frames with 3-class masks, and 40
holo-varied synthetic frames (seed 10001, as the recipe's) with their instances carved the
same way. Score segments a fold's held-out frames with its model (Prior 2 + 2, the card's
steps) and scores foreground = core | border against the true foreground, and cells = cores
grown over the foreground (watershed on the distance to the background) against the true
instances (one-to-one at IoU >= 0.5, cells under 150 px dropped, as the card's min_area).
"""

import os
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as components
from skimage.segmentation import watershed

from napari_pgdiffseg.core.training import kfold_split, read_frames
from napari_pgdiffseg.core.training.frames import mask_instances

DATA = Path(os.environ.get("PGDIFFSEG_DATA", "../shared/data")) / "qpi-cells"
BORDER = 3


def carve(ids: np.ndarray, g: int = BORDER) -> np.ndarray:
    """0 background, 1 cell, 2 cell pixels with another cell within g px (Chebyshev)."""
    fp = np.ones((2 * g + 1, 2 * g + 1), bool)
    big = np.iinfo(np.int64).max
    ids = ids.astype(np.int64)
    hi = ndi.maximum_filter(ids, footprint=fp)
    lo = ndi.minimum_filter(np.where(ids > 0, ids, big), footprint=fp)
    touch = (ids > 0) & (lo < hi) & (lo != big)
    out = (ids > 0).astype(np.uint8)
    out[touch] = 2
    return out


def frames():
    return read_frames([DATA], None, label_map="instances", n_classes=2, labelled_only=True)


def prepare(out: str) -> None:
    from napari_pgdiffseg.core import synthetic_real

    fs = frames()
    syn = Path(out) / "synthetic"
    (syn / "images").mkdir(parents=True, exist_ok=True)
    (syn / "masks").mkdir(exist_ok=True)
    cfg = synthetic_real.HoloConfig.varied(shape=(256, 256))
    imgs, _, inst = synthetic_real.make_holo_dataset(40, 10001, cfg, return_instances=True)
    for i, (im, ids) in enumerate(zip(imgs, inst)):
        iio.imwrite(syn / "images" / f"syn{i:02d}.tif", im.astype(np.float32), extension=".tif")
        iio.imwrite(syn / "masks" / f"syn{i:02d}.png", carve(ids))
    for k, (train, _) in enumerate(kfold_split(len(fs.images), 3, 0)):
        d = Path(out) / f"fold{k}" / "frames"
        (d / "images").mkdir(parents=True, exist_ok=True)
        (d / "masks").mkdir(exist_ok=True)
        for i in train:
            name = Path(fs.names[i]).name
            link = d / "images" / name
            if not link.exists():
                os.symlink(Path(fs.names[i]).resolve(), link)
            iio.imwrite(d / "masks" / (Path(name).stem + ".png"), carve(fs.instances[i]))
    print(f"prepared {out}: 3 folds, 40 synthetic frames, border {BORDER} px")


def object_scores(pred_ids, true_ids):
    from napari_pgdiffseg.core.metrics import object_f1

    return object_f1(pred_ids, true_ids, 0.5)


def score(out: str, fold: int) -> None:
    from napari_pgdiffseg.core import SegmentConfig, segment
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.cells import InstanceConfig, cell_instances

    fs = frames()
    _, test = kfold_split(len(fs.images), 3, 0)[fold]
    bundle = load_model(str(Path(out) / f"fold{fold}" / "bundle"))
    cfg = SegmentConfig(inversion_steps=2, sampling_steps=2)
    card_ws = InstanceConfig(method="watershed", min_distance=5, smooth=3.0, min_area=150, merge=0.9)
    rows = []
    for i in test:
        labels = segment(fs.images[i], bundle, cfg).labels
        fg, truth = labels > 0, fs.masks[i] > 0
        cores = components(labels == 1, connectivity=1)
        cells = watershed(-ndi.distance_transform_edt(fg), cores, mask=fg)
        sizes = np.bincount(cells.ravel())
        small = sizes < 150
        small[0] = False
        cells[small[cells]] = 0
        merged_ws = cell_instances(fg.astype(np.uint8), fs.images[i], ("background", "cell"), card_ws)
        rows.append(((fg & truth).sum() / (fg | truth).sum(), object_scores(cells, fs.instances[i]),
                     object_scores(merged_ws, fs.instances[i])))
        print(f"fold {fold} {Path(fs.names[i]).name}: fg IoU {rows[-1][0]:.3f} object F1 (cores) {rows[-1][1]:.3f} "
              f"(card watershed on the foreground {rows[-1][2]:.3f})", flush=True)
    m = np.mean(rows, axis=0)
    print(f"fold {fold} mean: fg IoU {m[0]:.3f} object F1 cores {m[1]:.3f} card watershed {m[2]:.3f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    else:
        score(sys.argv[2], int(sys.argv[3]))

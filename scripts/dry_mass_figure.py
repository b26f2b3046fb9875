"""Per-cell dry mass of the 15 qpi-cells frames: the hand-drawn cells against the shipped
qpi-cells model's cells, frame by frame (issue 15). Writes a PNG and prints a Markdown table.

    python scripts/dry_mass_figure.py [--data ../shared/data] [--out docs/figures/qpi_cells_dry_mass.png]

Calibration (ASSUMED, the data set does not state it): wavelength 650 nm (Q-PHASE's
illumination filter), pixel size 0.6 um, refractive increment 0.18 mL/g. Masses scale
linearly with the wavelength and with the square of the pixel size. The qpi-cells model was
trained on these frames: this is a measurement figure, not a held-out score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "docs" / "figures" / "qpi_cells_dry_mass.png"))
    ap.add_argument("--wavelength-nm", type=float, default=650.0)
    ap.add_argument("--pixel-size-um", type=float, default=0.6)
    args = ap.parse_args(argv)

    from matplotlib.figure import Figure

    from napari_pgdiffseg import segment
    from napari_pgdiffseg.core.bundle import load_model
    from napari_pgdiffseg.core.cells import InstanceConfig, cell_instances
    from napari_pgdiffseg.core.config import model_config
    from napari_pgdiffseg.core.files import atomic_write, read_image
    from napari_pgdiffseg.core.measure import Calibration, cell_table
    from napari_pgdiffseg.core.training.frames import find_frames, mask_instances

    cal = Calibration(args.wavelength_nm, args.pixel_size_um)
    model = load_model("qpi-cells")
    cfg = model_config(model.card)
    icfg = InstanceConfig.from_dict(model.card.instances)
    names = model.card.class_names
    frames = sorted((f for f in find_frames(Path(args.data) / "qpi-cells") if f.mask_path is not None),
                    key=lambda f: str(f.image_path))
    truth, pred, labels = [], [], []
    print(f"calibration (assumed): {args.wavelength_nm:g} nm, {args.pixel_size_um:g} um/px, alpha 0.18 mL/g\n")
    print("| frame | cells (hand) | cells (model) | median dry mass, hand (pg) | median dry mass, model (pg) |")
    print("|---|---:|---:|---:|---:|")
    for f in frames:
        image = read_image(f.image_path)
        ids = mask_instances(read_image(f.mask_path))
        t = [r["dry_mass_pg"] for r in cell_table(ids, (ids > 0).astype(np.uint8), image, names, cal)]
        lab = segment(image, model, cfg).labels
        p = [r["dry_mass_pg"] for r in cell_table(cell_instances(lab, image, names, icfg), lab, image, names, cal)]
        truth.append(t)
        pred.append(p)
        labels.append(Path(f.image_path).stem.replace("dense_img_", "d"))
        print(f"| {Path(f.image_path).name} | {len(t)} | {len(p)} | {np.median(t):.1f} | "
              f"{np.median(p) if p else float('nan'):.1f} |")
    fig = Figure(figsize=(10, 3.8), tight_layout=True)
    ax = fig.add_subplot(111)
    pos = np.arange(len(frames))
    b1 = ax.boxplot(truth, positions=pos - 0.18, widths=0.32, patch_artist=True, showfliers=False)
    b2 = ax.boxplot([p if p else [np.nan] for p in pred], positions=pos + 0.18, widths=0.32, patch_artist=True,
                    showfliers=False)
    for b, color in ((b1, "#bbbbbb"), (b2, "#56b4e9")):
        for patch in b["boxes"]:
            patch.set_facecolor(color)
    ax.set_xticks(pos, labels, rotation=45, fontsize="small")
    ax.set_ylabel("dry mass per cell (pg)")
    ax.set_title(f"qpi-cells: dry mass per cell, hand-drawn cells (grey) vs the qpi-cells model (blue); assumed "
                 f"{args.wavelength_nm:g} nm, {args.pixel_size_um:g} um/px", fontsize="small")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    allt, allp = np.concatenate(truth), np.concatenate([p for p in pred if p])
    print(f"\nall frames: {allt.size} hand-drawn cells, median {np.median(allt):.1f} pg; {allp.size} model cells, "
          f"median {np.median(allp):.1f} pg; total per frame, model / hand: "
          f"{np.median([sum(p) / sum(t) for p, t in zip(pred, truth)]):.3f} (median over frames)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

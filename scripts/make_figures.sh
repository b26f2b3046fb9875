#!/usr/bin/env bash
# The README's demo figures: synthetic-demo on its synthetic frame with truth, and the plugin's
# real sample (scikit-image's QPI cell) with qpi-cells against its hand-checked mask. The
# figures on real labelled frames come from scripts/make_real_figures.py (held-out fold models).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/figures}
pgdiffseg demo --synthetic --out "$OUT/synthetic" --quiet "$@"
pgdiffseg demo --out "$OUT/sample" --quiet "$@"
mkdir -p docs/figures
cp "$OUT/synthetic/synthetic_qpi_figure.png" docs/figures/demo_synthetic.png
cp "$OUT/sample/skimage_cell_figure.png" docs/figures/demo_skimage_cell.png
cat "$OUT"/*/*_summary.txt

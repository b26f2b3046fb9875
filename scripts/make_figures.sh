#!/usr/bin/env bash
# The README's demo figures: the shipped bundle on one real HeLa and one real CHO frame
# (../shared/data/qpi-live-dead, read in place) and on the synthetic frame with truth.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/qpi-live-dead}
OUT=${OUT:-out/figures}
HELA=${HELA:-$DATA/HeLa/$(ls "$DATA/HeLa" | head -n 1)}
CHO=${CHO:-$DATA/CHO/$(ls "$DATA/CHO" | head -n 1)}
pgdiffseg demo --out "$OUT/synthetic" --quiet "$@"
pgdiffseg demo --image "$HELA" --out "$OUT/hela" --quiet "$@"
pgdiffseg demo --image "$CHO" --out "$OUT/cho" --quiet "$@"
mkdir -p docs/figures
cp "$OUT/synthetic/synthetic_qpi_figure.png" docs/figures/demo_synthetic.png
cp "$OUT/hela/$(basename "${HELA%.*}")_figure.png" docs/figures/demo_hela.png
cp "$OUT/cho/$(basename "${CHO%.*}")_figure.png" docs/figures/demo_cho.png
cat "$OUT"/*/*_summary.txt

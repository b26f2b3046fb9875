#!/usr/bin/env bash
# qpi-cells as background / cell core / touching border (scripts/dev/qpi_border_probe.py):
# 3 folds by frame, each LDM-S fine-tuned from synthetic-demo with the qpi-cells recipe
# (1,200 steps, 40 holo-varied synthetic frames, brightness 0.5 / contrast 0.3 / noise 0.08)
# on 3-class masks; side by side, one torch thread each.
#   bash scripts/dev/qpi_border_probe.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-out/probe/qpi-border}
export OMP_NUM_THREADS=1
python scripts/dev/qpi_border_probe.py prepare "$OUT"
fold_run() {
  local k=$1 t0=$SECONDS
  pgdiffseg train --data "$OUT/fold$k/frames" "$OUT/synthetic" --classes background,cell,border \
    --steps-ldm-s 1200 --brightness 0.5 --contrast 0.3 --noise 0.08 --mask-definition "whole cells" \
    --start-from synthetic-demo --stages ldm_s --prediction-type sample --stride 128 \
    --device cpu --no-resume --out "$OUT/fold$k/bundle" > "$OUT/fold$k/train.log" 2>&1
  echo "fold $k: $((SECONDS - t0)) s of training" | tee -a "$OUT/fold$k/scores.txt"
  python scripts/dev/qpi_border_probe.py score "$OUT" "$k" | tee -a "$OUT/fold$k/scores.txt"
}
for k in 0 1 2; do fold_run "$k" & done
wait
grep mean "$OUT"/fold*/scores.txt

#!/usr/bin/env bash
# Train the shipped synthetic-demo model from scratch on a 2-core CPU (its autoencoder and
# LDM-P are also those of slim-viability and qpi-cells: scripts/train_real.sh).
# Autoencoder and LDM-P: the 140 real HeLa/CHO frames of ../shared/data/qpi-live-dead plus
# 400 synthetic frames (both stages unsupervised, as in the paper). LDM-S: the synthetic
# frames with their masks, trained twice side by side from the same autoencoder, one
# process per core: with the paper's epsilon objective and predicting x0 (same size, same
# steps, same data). The better one on the held-out set is shipped (see README).
# STAGES=ldm_s runs only the LDM-S part (from an existing $OUT/base).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/qpi-live-dead}
OUT=${OUT:-out/train}
STAGES=${STAGES:-all}
SYN="--synthetic 400 --synthetic-seed 1 --synthetic-difficulty 0.5"
mkdir -p "$OUT"
if [ "$STAGES" = all ]; then
  pgdiffseg train --data "$DATA/HeLa" "$DATA/CHO" $SYN --stages autoencoder,ldm_p \
    --steps-autoencoder 3000 --steps-ldm-p 3200 --device cpu --out "$OUT/base"
fi
PIDS=()
for PT in sample epsilon; do
  OMP_NUM_THREADS=1 pgdiffseg train $SYN --stages ldm_s --start-from "$OUT/base" --prediction-type $PT \
    --steps-ldm-s 4000 --device cpu --out "$OUT/ldm_s_$PT" > "$OUT/ldm_s_$PT.log" 2>&1 &
  PIDS+=($!)
done
for pid in "${PIDS[@]}"; do wait "$pid"; done

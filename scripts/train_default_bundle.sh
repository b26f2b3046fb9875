#!/usr/bin/env bash
# Train the shipped default bundle from scratch (CPU, about 55 minutes on 2 cores).
# Autoencoder and LDM-P: the 140 real HeLa/CHO frames of ../shared/data/qpi-live-dead plus
# 400 synthetic frames (both stages unsupervised, as in the paper). LDM-S: the synthetic
# frames with their masks, once with the paper's epsilon objective and once predicting x0.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/qpi-live-dead}
OUT=${OUT:-out/train}
SYN="--synthetic 400 --synthetic-seed 1 --synthetic-difficulty 0.5"
mkdir -p "$OUT"
pgdiffseg train --data "$DATA/HeLa" "$DATA/CHO" $SYN --stages autoencoder,ldm_p \
  --steps-autoencoder 3000 --steps-ldm-p 4000 --device cpu --out "$OUT/base"
pgdiffseg train $SYN --stages ldm_s --start-from "$OUT/base" --prediction-type sample \
  --steps-ldm-s 4000 --device cpu --out "$OUT/x0"
pgdiffseg train $SYN --stages ldm_s --start-from "$OUT/base" --prediction-type epsilon \
  --steps-ldm-s 4000 --device cpu --out "$OUT/eps"

#!/usr/bin/env bash
# Copy the models of scripts/train_real.sh into the package with their cards' texts and the
# held-out scores of scripts/evaluate_real.sh (3-fold CV by frame; skipped while absent).
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN=${TRAIN:-out/train}
EVAL=${EVAL:-out/eval}
# The CV's table2 CSVs: the main run's rows (table2_main.csv) and the reruns that added the
# mirrored-views / refine rows on the same fold models (table2_flips.csv, table2_refine.csv).
scores() { ls "$EVAL/$1"/table2_*.csv 2>/dev/null || true; }
ONLY=${ONLY:-}  # slim-viability or qpi-cells: ship just that one
# QPI_INSTANCES: instance settings chosen after training (scripts/postprocess_study.py --merge-only).
if [ "$ONLY" != qpi-cells ]; then
# slim-viability: the last round of scripts/train_real.sh (SLIM_ROUNDS, default 3: 4500 steps);
# held-out scores from the fold models of the same rounds (scripts/dev/continue_cv.sh twice on the
# folds of scripts/evaluate_real.sh hela, scored by evaluate --fold-models into $EVAL/hela-steps4500).
SLIM=${SLIM:-$TRAIN/slim-viability-r${SLIM_ROUNDS:-3}}
python scripts/ship_model.py slim-viability "$SLIM" \
  --description "SLIM frames like the HeLa/CHO live/dead study: labels NUCLEI, live or dead. The dead class is learnt from synthetic condensed nuclei only (no public real dead labels)." \
  --training-data "LDM-S fine-tuned from synthetic-demo on the 8 labelled HeLa SLIM frames (nuclei; injured counted live) + 40 SLIM-like synthetic frames (core.synthetic_real, seed 10001), at input scale 0.5 (frames halved before tiling), lr 5e-4, 3 rounds of 1500 steps (4500; each round continues the last with a fresh optimizer); autoencoder + LDM-P: 140 real HeLa/CHO frames + 400 synthetic (unsupervised)" \
  --segment '{"flips": 8, "flip_scope": "sampling", "inversion_steps": 1, "sampling_steps": 1}' \
  --scores "$EVAL"/hela-steps4500/*_table2.csv --score-rows "Prior x1, 8 sampling views" "Prior x1" \
  --scores-command "OMP_NUM_THREADS=1 ONLY_PRIOR=1 BASELINE_STEPS=0 STEPS='1 1' FLIPS=8 SAMPLING_FLIPS=8 bash scripts/evaluate_real.sh hela out/eval/hela-constant (round 1); SET=hela FROM=out/eval/hela-constant/fold%/bundle bash scripts/dev/continue_cv.sh out/probe/hela-continue (round 2); SET=hela FROM=out/probe/hela-continue/fold%/continued bash scripts/dev/continue_cv.sh out/probe/hela-continue2 (round 3); pgdiffseg evaluate --data ../shared/data/qpi-live-dead/HeLa --masks ../shared/data/qpi-live-dead/HeLa-labels --label-map viability4 --classes background,live,dead --folds 3 --fold-models 'out/probe/hela-continue2/fold{fold}/continued' --inversion-steps 1 --sampling-steps 1 --sampling-flips 8 --tables table2 --methods 'Prior x1' 'Prior x1, 8 sampling views' --out out/eval/hela-steps4500"
fi
if [ "$ONLY" != slim-viability ]; then
python scripts/ship_model.py qpi-cells "$TRAIN/qpi-cells" \
  ${QPI_INSTANCES:+--instance-settings "$QPI_INSTANCES"} \
  --description "Quantitative phase images in radians (holographic QPI and similar): labels WHOLE CELLS, one class; touching cells are split by a watershed on the phase." \
  --training-data "LDM-S fine-tuned from synthetic-demo on the 15 qpi-cells holographic frames (whole-cell masks, Vicar et al., BSD-3) + 40 holographic synthetic frames as other set-ups show them (core.synthetic_real HoloConfig.varied: cells 0.7-4.5x larger, dark rings, fringes, sparse fields; seed 10001), brightness 0.5 / contrast 0.3 / smoothed-noise (SD <= 0.08) augmentation, 1200 steps; autoencoder + LDM-P: 140 real HeLa/CHO SLIM frames + 400 synthetic (unsupervised)" \
  --segment '{"inversion_steps": 2, "sampling_steps": 2}' \
  --scores $(scores qpi-cells) --score-rows "Prior 2+2" "Prior x1" "Random x5" "U-Net (ResNet-18)" \
  --scores-command "ONLY_PRIOR=1 BASELINE_STEPS=0 bash scripts/evaluate_real.sh qpi-cells (HOLO_KIND holo-varied, the default; Prior x1 at 10 + 10); NFE=1 NFE_NO_PAPER=1 ONLY_PRIOR=1 BASELINE_STEPS=0 bash scripts/evaluate_real.sh qpi-cells (the 'Prior 2+2' row, the card's steps)"
fi

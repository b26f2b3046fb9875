#!/usr/bin/env bash
# Longer LDM-S training on HeLa, cross-validated by continuing each fold model (3 folds by
# frame, the folds of `pgdiffseg evaluate --folds 3`). Per fold: the fold model of the shipped
# recipe's CV (`scripts/evaluate_real.sh hela OUT`, 1500 LDM-S steps on the fold's training
# frames + 40 SLIM-like synthetic frames, seed 10001) is trained STEPS more LDM-S steps on the
# same frames (`train --start-from FOLD_MODEL`: a fresh optimizer, the same learning rate LR),
# so its held-out frames never enter training. Before and after are scored on the fold's
# held-out frames (scripts/dev/score_bundle.py). The 3 folds run side by side, one torch thread each.
#   TEACHERS=out/eval/hela-constant/fold%/bundle STEPS=1500 LR=5e-4 bash scripts/dev/hela_continue_cv.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${PGDIFFSEG_DATA:-../shared/data}/qpi-live-dead
TEACHERS=${TEACHERS:-out/eval/hela-constant/fold%/bundle}; STEPS=${STEPS:-1500}; LR=${LR:-5e-4}
OUT=${1:-out/probe/hela-continue}
export OMP_NUM_THREADS=1
fold_run() {
  local k=$1 F="$OUT/fold$1" start=${TEACHERS//%/$1}
  mkdir -p "$F/frames/images" "$F/frames/masks"
  python - "$k" "$DATA" "$F" <<'PY'
import os, sys
from napari_pgdiffseg.core.training import kfold_split, read_frames
fold, data, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
names = read_frames([f"{data}/HeLa"], [f"{data}/HeLa-labels"], label_map="viability4", labelled_only=True).names
stems = [os.path.basename(n) for n in names]
for i in kfold_split(len(names), 3, 0)[fold][0]:
    for src, d in ((f"{data}/HeLa/{stems[i]}", f"{dst}/frames/images/{stems[i]}"),
                   (f"{data}/HeLa-labels/{stems[i]}", f"{dst}/frames/masks/{stems[i]}")):
        if not os.path.lexists(d):
            os.symlink(os.path.abspath(src), d)
PY
  local t0=$SECONDS
  pgdiffseg train --data "$F/frames" --label-map viability4 \
    --classes background,live,dead --synthetic-kind slim --steps-ldm-s "$STEPS" --input-scale 0.5 --lr-ldm "$LR" \
    --mask-definition nuclei --instances method=components,min_area=300 \
    --start-from "$start" --stages ldm_s --prediction-type sample --stride 128 --synthetic 40 \
    --synthetic-seed 10001 --device cpu --out "$F/continued" > "$F/train.log" 2>&1
  echo "fold $k continued: $((SECONDS - t0)) s ($STEPS more LDM-S steps, lr $LR)" | tee -a "$F/scores.txt"
  python scripts/dev/score_bundle.py "$start" "$k" | tee -a "$F/scores.txt"
  python scripts/dev/score_bundle.py "$F/continued" "$k" | tee -a "$F/scores.txt"
}
for k in 0 1 2; do fold_run "$k" & done
wait
cat "$OUT"/fold*/scores.txt

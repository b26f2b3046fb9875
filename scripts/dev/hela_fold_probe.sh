#!/usr/bin/env bash
# A development probe, not a cross-validation: slim-viability's LDM-S recipe trained on the
# training frames of ONE fold of the HeLa 3-fold split (seed 0), for STEPS steps, with the
# LDM-S checkpoint copied every 500 steps, each copy scored on that fold's held-out frames
# (scripts/dev/score_checkpoint.py). One torch thread, about 0.7-0.9 s per step on this CPU.
#   FOLD=0 STEPS=3000 TIMESTEP_POWER=1 CROP=128 BATCH=16 SCALE=0.5 bash scripts/dev/hela_fold_probe.sh [OUT]
# CROP / BATCH: the LDM-S training crop (px of the scaled frame) and batch; SCALE: input scale.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${PGDIFFSEG_DATA:-../shared/data}/qpi-live-dead
FOLD=${FOLD:-0}; STEPS=${STEPS:-3000}; POWER=${TIMESTEP_POWER:-1}
CROP=${CROP:-128}; BATCH=${BATCH:-16}; SCALE=${SCALE:-0.5}
OUT=${1:-out/probe/hela-fold$FOLD-p$POWER}
mkdir -p "$OUT/frames/images" "$OUT/frames/masks" "$OUT/checkpoints"
# the fold's training frames, as evaluate's k-fold split picks them
python - "$FOLD" "$DATA" "$OUT/frames" <<'PY'
import os, sys
from napari_pgdiffseg.core.training import kfold_split, read_frames
fold, data, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
names = read_frames([f"{data}/HeLa"], [f"{data}/HeLa-labels"], label_map="viability4", labelled_only=True).names
for i in kfold_split(len(names), 3, 0)[fold][0]:
    stem = os.path.basename(names[i])
    for sub, src in (("images", f"{data}/HeLa/{stem}"), ("masks", f"{data}/HeLa-labels/{stem}")):
        link = f"{dst}/{sub}/{stem}"
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(src), link)
PY
OMP_NUM_THREADS=1 pgdiffseg train --data "$OUT/frames/images" --masks "$OUT/frames/masks" --label-map viability4 \
  --classes background,live,dead --synthetic-kind slim --steps-ldm-s "$STEPS" --input-scale "$SCALE" --crop-ldm "$CROP" --batch-ldm "$BATCH" --lr-ldm 5e-4 \
  --mask-definition nuclei --instances method=components,min_area=300 --timestep-power "$POWER" \
  --start-from synthetic-demo --stages ldm_s --prediction-type sample --stride 128 --synthetic 40 \
  --synthetic-seed 10001 --device cpu --no-resume --checkpoint-every 500 --out "$OUT/bundle" > "$OUT/train.log" 2>&1 &
TRAIN=$!
state="$OUT/bundle.ckpt/ldm_s/state.json"
for ((s = 500; s <= STEPS; s += 500)); do
  until [ -f "$state" ] && python -c "import json,sys; sys.exit(json.load(open('$state'))['step'] < $s)"; do
    kill -0 $TRAIN 2> /dev/null || break 2
    sleep 10
  done
  cp -r "$OUT/bundle.ckpt/ldm_s/model" "$OUT/checkpoints/step$s"
done
wait $TRAIN || echo "training stopped before $STEPS steps: scoring the checkpoints it left" >&2
for ((s = 1000; s <= STEPS; s += 500)); do
  [ -d "$OUT/checkpoints/step$s" ] || continue
  PROBE_INPUT_SCALE=$SCALE OMP_NUM_THREADS=1 python scripts/dev/score_checkpoint.py "$OUT/checkpoints/step$s" "$FOLD" | tee -a "$OUT/scores.txt"
done

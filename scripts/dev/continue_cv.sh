#!/usr/bin/env bash
# Longer LDM-S training, cross-validated by continuing each fold model (3 folds by frame, the
# folds of `pgdiffseg evaluate --folds 3`). Per fold, the fold model of a CV run
# (`scripts/evaluate_real.sh SET OUT`: LDM-S trained on the fold's training frames + 40
# synthetic frames, seed 10001) is trained STEPS more LDM-S steps on the same frames with the
# shipped recipe of SET (`train --start-from FOLD_MODEL`: a fresh optimizer, the recipe's
# constant learning rate), so its held-out frames never enter training. Before and after are
# scored on the fold's held-out frames at the card's settings (scripts/dev/score_bundle.py).
# The 3 folds run side by side, one torch thread each.
#   SET=hela FROM=out/eval/hela-constant/fold%/bundle STEPS=1500 bash scripts/dev/continue_cv.sh [OUT]
#   SET=qpi-cells FROM=out/eval/qpi-cells/fold%/bundle STEPS=1200 bash scripts/dev/continue_cv.sh [OUT]
# FROM=OUT_OF_AN_EARLIER_RUN/fold%/continued: one more round.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${PGDIFFSEG_DATA:-../shared/data}
SET=${SET:-hela}
case "$SET" in
  hela)
    FROM=${FROM:-out/eval/hela-constant/fold%/bundle}; STEPS=${STEPS:-1500}
    RECIPE=(--label-map viability4 --classes background,live,dead --synthetic-kind slim --input-scale 0.5
            --lr-ldm 5e-4 --mask-definition nuclei --instances method=components,min_area=300) ;;
  qpi-cells)
    FROM=${FROM:-out/eval/qpi-cells/fold%/bundle}; STEPS=${STEPS:-1200}
    RECIPE=(--label-map instances --classes background,cell --synthetic-kind holo-varied --brightness 0.5
            --contrast 0.3 --noise 0.08 --mask-definition "whole cells"
            --instances method=watershed,min_distance=5,smooth=3,min_area=150) ;;
  *) echo "SET must be hela or qpi-cells" >&2; exit 2 ;;
esac
OUT=${1:-out/probe/$SET-continue}
export OMP_NUM_THREADS=1
fold_run() {
  local k=$1 F="$OUT/fold$1" start=${FROM//%/$1}
  mkdir -p "$F/frames/images" "$F/frames/masks"
  python - "$k" "$DATA" "$F" "$SET" <<'PY'
import os, sys
from napari_pgdiffseg.core.training import find_frames, kfold_split
fold, data, dst, set_name = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
if set_name == "hela":
    frames = find_frames(f"{data}/qpi-live-dead/HeLa", masks=f"{data}/qpi-live-dead/HeLa-labels")
else:
    frames = find_frames(f"{data}/qpi-cells")
frames = [f for f in frames if f.mask_path is not None]  # the order read_frames(labelled_only=True) keeps
for i in kfold_split(len(frames), 3, 0)[fold][0]:
    f = frames[i]
    for src, sub in ((f.image_path, "images"), (f.mask_path, "masks")):
        d = f"{dst}/frames/{sub}/{os.path.basename(src)}"
        if not os.path.lexists(d):
            os.symlink(os.path.abspath(src), d)
PY
  local t0=$SECONDS
  pgdiffseg train --data "$F/frames" "${RECIPE[@]}" --steps-ldm-s "$STEPS" --start-from "$start" --stages ldm_s \
    --prediction-type sample --stride 128 --synthetic 40 --synthetic-seed 10001 --device cpu \
    --out "$F/continued" > "$F/train.log" 2>&1
  echo "fold $k continued: $((SECONDS - t0)) s ($STEPS more LDM-S steps)" | tee -a "$F/scores.txt"
  python scripts/dev/score_bundle.py "$start" "$k" "$SET" | tee -a "$F/scores.txt"
  python scripts/dev/score_bundle.py "$F/continued" "$k" "$SET" | tee -a "$F/scores.txt"
}
for k in 0 1 2; do fold_run "$k" & done
wait
cat "$OUT"/fold*/scores.txt

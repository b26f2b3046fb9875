#!/usr/bin/env bash
# Self-training on HeLa, cross-validated (3 folds by frame, the folds of `pgdiffseg evaluate
# --folds 3`). Per fold: the fold's teacher, a bundle trained on the fold's training frames only
# (the fold models of `scripts/evaluate_real.sh hela OUT`), run at the shipped card's setting
# (Prior 1 + 1, 8 sampling views), labels the 62 HeLa frames without public labels
# (`train --pseudo-labels`: the 8 labelled frames are never pseudo-labelled, so a fold's
# held-out frames stay out of its training); the student is trained with slim-viability's
# recipe (from synthetic-demo, STEPS LDM-S steps, 40 SLIM-like synthetic frames) on the fold's
# labelled frames + the pseudo-labelled ones. Teacher and student are scored on the fold's
# held-out frames (scripts/dev/score_bundle.py). The 3 folds run side by side, one torch thread each.
#   TEACHERS=out/eval/hela-constant STEPS=1500 bash scripts/dev/hela_selftrain_cv.sh [OUT]
# TEACHERS=OUT_OF_AN_EARLIER_RUN/fold%/student: a second round (the students teach).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${PGDIFFSEG_DATA:-../shared/data}/qpi-live-dead
TEACHERS=${TEACHERS:-out/eval/hela-constant/fold%/bundle}; STEPS=${STEPS:-1500}
OUT=${1:-out/probe/hela-selftrain}
export OMP_NUM_THREADS=1
fold_run() {
  local k=$1 F="$OUT/fold$1" teacher=${TEACHERS//%/$1}
  mkdir -p "$F/frames/images" "$F/frames/masks" "$F/unlabelled"
  python - "$k" "$DATA" "$F" "$teacher" <<'PY'
import json, os, shutil, sys
from pathlib import Path
from napari_pgdiffseg.core.training import kfold_split, read_frames
fold, data, dst, teacher = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
names = read_frames([f"{data}/HeLa"], [f"{data}/HeLa-labels"], label_map="viability4", labelled_only=True).names
stems = [os.path.basename(n) for n in names]
def link(src, d):
    if not os.path.lexists(d):
        os.symlink(os.path.abspath(src), d)
for i in kfold_split(len(names), 3, 0)[fold][0]:
    link(f"{data}/HeLa/{stems[i]}", f"{dst}/frames/images/{stems[i]}")
    link(f"{data}/HeLa-labels/{stems[i]}", f"{dst}/frames/masks/{stems[i]}")
for p in sorted(Path(f"{data}/HeLa").glob("*.png")):
    if p.name not in stems:
        link(p, f"{dst}/unlabelled/{p.name}")
# the teacher runs at the shipped card's setting (its own card may hold none)
card_segment = json.load(open("src/napari_pgdiffseg/models/slim-viability/pgdiffseg.json"))["segment"]
if not os.path.isdir(f"{dst}/teacher"):
    shutil.copytree(teacher, f"{dst}/teacher", symlinks=True)
    card = json.load(open(f"{dst}/teacher/pgdiffseg.json"))
    card["segment"] = card_segment
    json.dump(card, open(f"{dst}/teacher/pgdiffseg.json", "w"), indent=1)
PY
  local t0=$SECONDS
  pgdiffseg train --data "$F/frames" "$F/unlabelled" --label-map viability4 --pseudo-labels "$F/teacher" \
    --classes background,live,dead --synthetic-kind slim --steps-ldm-s "$STEPS" --input-scale 0.5 --lr-ldm 5e-4 \
    --mask-definition nuclei --instances method=components,min_area=300 \
    --start-from synthetic-demo --stages ldm_s --prediction-type sample --stride 128 --synthetic 40 \
    --synthetic-seed 10001 --device cpu --out "$F/student" > "$F/train.log" 2>&1
  echo "fold $k student: $((SECONDS - t0)) s (pseudo-labelling + training)" | tee -a "$F/scores.txt"
  python scripts/dev/score_bundle.py "$F/teacher" "$k" | tee -a "$F/scores.txt"
  python scripts/dev/score_bundle.py "$F/student" "$k" | tee -a "$F/scores.txt"
}
for k in 0 1 2; do fold_run "$k" & done
wait
cat "$OUT"/fold*/scores.txt

"""Copy a trained bundle into the package as a shipped model, with what it is for and its held-out scores.

    python scripts/ship_model.py slim-viability out/train/slim-viability \
        --description "..." --modality "..." --training-data "..." \
        --scores out/eval/hela/trained_per_fold_*_table2.csv --score-rows "Prior x1" \
        [--stage-seconds autoencoder=745 ldm_p=1394]

The card gets the model's name, description and modality; `scores` gets the training
data and, from the CSV rows `pgdiffseg evaluate` wrote (held-out frames only: k-fold by
frame), the headline numbers of the chosen rows; the whole rows go to provenance
"held_out". --stage-seconds corrects stage wall times that a resumed run could not see.
The copy is validated (`load_model`) before it replaces the shipped folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil

from napari_pgdiffseg.core.bundle import CARD_NAME, MODELS_DIR, load_bundle

HEADLINE = ("fg_iou", "object_f1", "miou", "dead_share")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("bundle")
    ap.add_argument("--description", required=True)
    ap.add_argument("--modality", default=None)
    ap.add_argument("--training-data", required=True)
    ap.add_argument("--scores", nargs="*", default=[])
    ap.add_argument("--score-rows", nargs="*", default=["Prior x1"])
    ap.add_argument("--scores-command", default="", help="the command that wrote --scores (recorded)")
    ap.add_argument("--stage-seconds", nargs="*", default=[], help="stage=seconds corrections")
    ap.add_argument("--refine", default=None, help="the card's refine, as JSON (e.g. '{\"margin\": -0.3}')")
    ap.add_argument("--segment", default=None, help="the card's segmentation settings, as JSON (e.g. '{\"flips\": 8}')")
    ap.add_argument("--instance-settings", default=None,
                    help="settings to change in the card's instances, as JSON (e.g. '{\"merge\": 0.6}'), chosen "
                         "after training on held-out frames (scripts/postprocess_study.py)")
    args = ap.parse_args()

    load_bundle(args.bundle)  # validate before shipping
    dest = MODELS_DIR / args.name
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.bundle, tmp)
    card = json.loads((tmp / CARD_NAME).read_text())
    card["name"] = args.name
    card["description"] = args.description
    if args.modality:
        card["modality"] = args.modality
    if args.refine is not None:
        card["refine"] = json.loads(args.refine)
    if args.segment is not None:
        card["segment"] = json.loads(args.segment)
    if args.instance_settings is not None:
        from napari_pgdiffseg.core.cells import InstanceConfig

        merged = {**card.get("instances", {}), **json.loads(args.instance_settings)}
        card["instances"] = InstanceConfig.from_dict(merged).to_dict()  # checked before it is written
    prov = card.setdefault("provenance", {})
    fixes = dict(item.split("=") for item in args.stage_seconds)
    for run in prov.get("training_runs", []):
        for stage in run.get("stages", []):
            if stage["stage"] in fixes and stage["seconds"] < 1:
                stage["seconds"] = float(fixes[stage["stage"]])
                stage["seconds_note"] = "measured from the first run's log and checkpoint time stamps"
    rows = []
    for f in args.scores:
        with open(f) as fh:
            rows += list(csv.DictReader(fh))
    scores = {"training_data": args.training_data}
    for row in rows:
        if row.get("method") in args.score_rows:
            for key in HEADLINE:
                value, sd = row.get(key), row.get(f"{key}_sd")
                if value not in (None, "", "nan"):
                    scores[f"{row['method']}: {key}"] = f"{float(value):.3f} (SD {float(sd):.3f}) over {row['units']}"
    if rows:
        prov["held_out"] = rows
        scores["held_out_command"] = args.scores_command
    card["scores"] = scores
    (tmp / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n")
    load_bundle(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"shipped {args.bundle} -> {dest} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

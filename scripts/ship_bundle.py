"""Copy a trained bundle into the package as the shipped default, with its held-out scores.

    python scripts/ship_bundle.py out/train/ldm_s_sample --scores out/eval/sample/*.csv \
        [--stage-seconds autoencoder=745 ldm_p=1394]

The scores (CSV rows written by `pgdiffseg evaluate`) go into the card's provenance under
"held_out". --stage-seconds corrects stage wall times that a resumed run could not see
(runs before checkpoints recorded their time); each correction is marked as such.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil

from napari_pgdiffseg.core.bundle import CARD_NAME, default_bundle_path, load_bundle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--scores", nargs="*", default=[])
    ap.add_argument("--stage-seconds", nargs="*", default=[], help="stage=seconds corrections")
    args = ap.parse_args()

    load_bundle(args.bundle)  # validate before shipping
    dest = default_bundle_path()
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.bundle, tmp)
    card = json.loads((tmp / CARD_NAME).read_text())
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
    if rows:
        prov["held_out"] = rows
    (tmp / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n")
    load_bundle(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"shipped {args.bundle} -> {dest} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

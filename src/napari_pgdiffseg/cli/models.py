"""`pgdiffseg models` and `pgdiffseg info`: what the shipped models are, what a bundle holds."""

from __future__ import annotations

import json

from ..core.errors import PGDiffSegError
from ._args import add_model_arg, load_model_arg


def cmd_models(args) -> int:
    """The shipped models: what each labels, for which imaging, trained on what, held-out scores."""
    from ..core.bundle import DEFAULT_MODEL, MODELS_DIR, peek_bundle, shipped_models

    names = shipped_models()
    if not names:
        raise PGDiffSegError(f"no models are installed in {MODELS_DIR}; reinstall napari-pgdiffseg")
    entries = []
    for name in names:
        card, _ = peek_bundle(MODELS_DIR / name)
        entries.append({"name": name, "default": name == DEFAULT_MODEL, "labels": card.mask_definition,
                        "modality": card.modality, "classes": list(card.class_names),
                        "description": card.description, "training_data": card.scores.get("training_data", ""),
                        "held_out": {k: v for k, v in card.scores.items() if k != "training_data"},
                        "path": str(MODELS_DIR / name)})
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        print(f"{e['name']}{' (default)' if e['default'] else ''}")
        print(f"  labels:    {e['labels']}; classes {', '.join(e['classes'])}")
        print(f"  imaging:   {e['modality']}")
        if e["description"]:
            print(f"  use:       {e['description']}")
        if e["training_data"]:
            print(f"  trained:   {e['training_data']}")
        for k, v in e["held_out"].items():
            print(f"  {k}: {v}")
    return 0


def cmd_info(args) -> int:
    bundle = load_model_arg(args.model)
    from ..core.models import count_parameters

    info = bundle.card.to_dict()
    info["path"] = str(bundle.path)
    info["parameters"] = {n: count_parameters(getattr(bundle, n)) for n in ("autoencoder", "ldm_p", "ldm_s")}
    print(json.dumps(info, indent=2))
    return 0


def add_parsers(sub, defaults) -> None:
    info = sub.add_parser("info", help="print a bundle's card and parameter counts")
    add_model_arg(info)
    info.set_defaults(func=cmd_info)

    models = sub.add_parser("models", help="list the shipped models: what each labels, imaging, classes, scores")
    models.add_argument("--json", action="store_true", help="print JSON instead of text")
    models.set_defaults(func=cmd_models)

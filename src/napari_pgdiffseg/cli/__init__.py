"""`pgdiffseg`: the command line face of the core (segment files, train, evaluate, list models).

One module per command group (`segment`, `train`, `evaluate`, `models`); choices and
defaults come from the core's own configs. Errors the user can fix are printed as one line
(no traceback) with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from ..core.errors import PGDiffSegError, SegmentationCancelled
from . import evaluate, models, segment, train


def build_parser() -> argparse.ArgumentParser:
    from ..core.training import BaselineConfig
    from ..core.devices import DEVICES
    from ..core.training import TrainConfig

    defaults = {"train": TrainConfig(), "baseline": BaselineConfig(), "device_help": f"{', '.join(DEVICES)} or cuda:N"}
    parser = argparse.ArgumentParser(prog="pgdiffseg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (segment, train, evaluate, models):
        group.add_parsers(sub, defaults)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except SegmentationCancelled:
        print("pgdiffseg: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("pgdiffseg: interrupted", file=sys.stderr)
        return 130
    except (PGDiffSegError, OSError) as e:
        print(f"pgdiffseg: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

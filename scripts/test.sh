#!/usr/bin/env bash
# Install (CPU torch first, so pip never pulls a CUDA build) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[testing]"
xvfb-run -a python -m pytest -q "$@"

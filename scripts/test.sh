#!/usr/bin/env bash
# Install everything a new Debian/Ubuntu machine needs (Xvfb + Mesa for napari's OpenGL,
# CPU torch first so pip never pulls a CUDA build, the package with its test extra) and
# run the whole test suite under a virtual X server.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xinput0 libxcb-xfixes0
  libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1"
# shellcheck disable=SC2086
if ! dpkg -s $APT_PACKAGES > /dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq $APT_PACKAGES > /dev/null
fi

python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[testing]"
xvfb-run -a python -m pytest -q "$@"

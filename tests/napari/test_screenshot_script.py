"""docs/screenshot.py runs end to end (tiny bundle, small synthetic frame, own process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile

from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.py"


@pytest.mark.slow
def test_screenshot_script_with_tiny_bundle(tmp_path, tiny_bundle_dir):
    frame = tmp_path / "frame.tif"
    tifffile.imwrite(frame, make_frame(1, SyntheticConfig(shape=(128, 128)))[0])
    out = tmp_path / "shot.png"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--image", str(frame), "--bundle", str(tiny_bundle_dir), "--out", str(out),
         "--inversion-steps", "5", "--sampling-steps", "5", "--device", "cpu", "--size", "1000", "700"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cells live" in proc.stdout and f"wrote {out}" in proc.stdout
    assert out.stat().st_size > 10_000
    import imageio.v3 as iio

    shot = iio.imread(out)
    assert shot.ndim == 3 and shot.shape[0] > 500 and shot.shape[1] > 800

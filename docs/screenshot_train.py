"""Screenshot of napari with the "Train PG-DiffSeg on your labels" widget after a short fine-tune.

    python docs/screenshot_train.py            # qpi-cells frame + its mask, slim-viability -> docs/train.png
    python docs/screenshot_train.py --minutes 1 --out /tmp/train.png

The frame and its whole-cell mask come from ../shared/data/qpi-cells (never copied into the
repository); the mask is opened as a Labels layer (cell ids), the widget starts from
slim-viability with the classes background / cell, trains LDM-S for `--minutes`, and the
window is grabbed with its loss curve and hold-out report. The model is written to a
temporary folder; the widget's settings are kept in a temporary file, not the user's.
Without a DISPLAY it re-runs itself through `xvfb-run`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "qpi-cells"
DEFAULT_OUT = REPO / "docs" / "train.png"
WIDGET = ("napari-pgdiffseg", "Train PG-DiffSeg on your labels")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--frame", default="dense_img_001", help="the frame's file stem in --data")
    p.add_argument("--minutes", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--size", type=int, nargs=2, default=(1500, 1050), metavar=("W", "H"))
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            raise SystemExit("no DISPLAY and no xvfb-run: install xvfb (see scripts/test.sh)")
        return subprocess.call([xvfb, "-a", "-s", "-screen 0 1920x1200x24", sys.executable, __file__,
                                *(argv if argv is not None else sys.argv[1:])])

    tmp = Path(tempfile.mkdtemp(prefix="pgdiffseg-shot-"))
    os.environ["NAPARI_PGDIFFSEG_SETTINGS"] = str(tmp / "settings.json")

    import napari

    try:
        import napari._qt.qt_main_window as qt_main_window

        qt_main_window.SHOW_QT_WARNING = False
    except (ImportError, AttributeError):
        pass
    import napari_pgdiffseg._widgets  # noqa: F401 - the widget itself, not the loading placeholder
    from napari_pgdiffseg.core.training.frames import find_frames
    from napari_pgdiffseg.core.files import read_image

    frames = {Path(f.image_path).stem: f for f in find_frames(args.data) if f.mask_path is not None}
    if args.frame not in frames:
        raise SystemExit(f"no frame {args.frame!r} with a mask in {args.data}")
    f = frames[args.frame]
    viewer = napari.Viewer(title="napari-pgdiffseg", show=True)
    try:
        viewer.window._qt_window.resize(*args.size)
        viewer.add_image(read_image(f.image_path), name=args.frame, colormap="gray")
        viewer.add_labels(read_image(f.mask_path).astype("uint16"), name=f"{args.frame} cells (corrected)",
                          opacity=0.45)
        _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
        w.settings.set_bundle("slim-viability")
        w.use_folder.value = False
        w.labels_are.value = "instances"
        w.class_choice.value = "background,cell"
        w.objects.value = "watershed"
        w.minutes.value = args.minutes
        w.out.value = tmp / "qpi-cells-from-slim"
        if w.problem():
            raise SystemExit(f"cannot train: {w.problem()}")
        w.run()
        app = napari.qt.get_qapp()
        import time

        while w.running:
            app.processEvents()
            time.sleep(0.05)
        if w.last_result is None:
            raise SystemExit(f"training failed: {w.result.value or w.status.value}")
        print(w.result.value)
        end = time.monotonic() + 0.8
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(args.out), canvas_only=False, flash=False)
        print(f"wrote {args.out}")
    finally:
        viewer.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Screenshot of napari with the "Segment QPI (PG-DiffSeg)" widget and a segmented real HeLa frame.

    python docs/screenshot.py                      # first HeLa frame, shipped model -> docs/screenshot.png
    python docs/screenshot.py --bundle my_bundle --image frame.png --out /tmp/shot.png

Runs under a virtual X server: without a DISPLAY it re-runs itself through `xvfb-run`.
The frames are read from ../shared/data/qpi-live-dead/HeLa (never copied into the
repository); the widget's settings are kept in a temporary file, not the user's.
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
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "qpi-live-dead" / "HeLa"
DEFAULT_OUT = REPO / "docs" / "screenshot.png"
WIDGET = ("napari-pgdiffseg", "Segment QPI (PG-DiffSeg)")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGES,
                   help="a QPI frame, or a folder whose first frame (sorted) is used (default: %(default)s)")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle folder (default: the shipped model)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write (default: %(default)s)")
    p.add_argument("--inversion-steps", type=int, default=None, help="override the widget's default")
    p.add_argument("--sampling-steps", type=int, default=None, help="override the widget's default")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--size", type=int, nargs=2, default=(1500, 950), metavar=("W", "H"), help="window size")
    return p.parse_args(argv)


def pick_frame(path: Path) -> Path:
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff"))
        if not frames:
            raise SystemExit(f"no PNG/TIFF frame in {path}")
        return frames[0]
    if not path.is_file():
        raise SystemExit(f"{path} does not exist (pass --image)")
    return path


def settle(app, seconds: float = 0.5) -> None:
    """Let Qt finish layouts and repaints before grabbing the window."""
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            raise SystemExit("no DISPLAY and no xvfb-run: install xvfb (see scripts/test.sh)")
        return subprocess.call([xvfb, "-a", "-s", "-screen 0 1920x1080x24", sys.executable, __file__,
                                *(argv if argv is not None else sys.argv[1:])])

    settings = Path(tempfile.mkdtemp(prefix="pgdiffseg-shot-")) / "settings.json"
    os.environ["NAPARI_PGDIFFSEG_SETTINGS"] = str(settings)  # before the widget reads it

    from dataclasses import replace

    import napari

    try:  # napari 0.9 toasts a PyQt5 deprecation notice over the canvas; not for a screenshot
        import napari._qt.qt_main_window as qt_main_window

        qt_main_window.SHOW_QT_WARNING = False
    except (ImportError, AttributeError):
        pass

    from napari_pgdiffseg.core.files import read_image

    frame_path = pick_frame(args.image)
    image = read_image(frame_path)
    viewer = napari.Viewer(title="napari-pgdiffseg", show=True)
    try:
        viewer.window._qt_window.resize(*args.size)
        viewer.add_image(image, name=frame_path.stem, colormap="gray")
        _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
        if hasattr(widget, "ready"):  # the placeholder shown while the widget modules load (_dock.LazyDock)
            import time

            app = napari.qt.get_qapp()
            while not widget.ready:
                app.processEvents()
                time.sleep(0.02)
            if widget.inner is None:
                raise SystemExit(widget.error)
            widget = widget.inner
        if args.bundle is not None:
            widget.settings.set_bundle(args.bundle.resolve())
        config = widget.settings.config()
        overrides = {"device": args.device}
        if args.inversion_steps is not None:
            overrides["inversion_steps"] = args.inversion_steps
        if args.sampling_steps is not None:
            overrides["sampling_steps"] = args.sampling_steps
        widget.settings.set_config(replace(config, **overrides))
        if widget.settings.problem:
            raise SystemExit(f"cannot segment: {widget.settings.problem}")
        widget.use_thread = False  # the script waits anyway; errors surface here
        widget.run()
        if f"{frame_path.stem} pgdiffseg" not in viewer.layers:
            raise SystemExit("segmentation failed (see the notification above)")
        print(widget.summary.value.replace("\n", " | "))
        viewer.reset_view()
        settle(napari.qt.get_qapp())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(args.out), canvas_only=False, flash=False)
        print(f"wrote {args.out}")
    finally:
        viewer.close()
        shutil.rmtree(settings.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

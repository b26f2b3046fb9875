"""Seconds napari waits when a user docks the Segment widget the first time (a fresh process,
as after starting napari), and until the widget is ready. Prints a Markdown table.

    python benchmarks/dock_time.py       # runs itself under xvfb-run without a DISPLAY

Rows: docking through the manifest (what the Plugins menu does): the time the call blocks
the GUI, then the time until the real widget replaces the placeholder; and, for comparison
in the same run, importing the widget modules directly on the GUI thread (what docking
cost before `_dock`: the whole import blocked napari).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

CHILD = r"""
import json, sys, time
import napari
viewer = napari.Viewer(show=False)
app = napari.qt.get_qapp()
mode = sys.argv[1]
t0 = time.perf_counter()
if mode == "dock":
    _, w = viewer.window.add_plugin_dock_widget("napari-pgdiffseg", "Segment QPI (PG-DiffSeg)")
    blocked = time.perf_counter() - t0
    while not getattr(w, "ready", True):
        app.processEvents(); time.sleep(0.005)
    ready = time.perf_counter() - t0
else:
    from napari_pgdiffseg._widgets import SegmentWidget
    w = SegmentWidget(viewer)
    blocked = ready = time.perf_counter() - t0
print("RESULT " + json.dumps({"blocked": blocked, "ready": ready}))
viewer.close()
"""


def run(mode: str) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def main() -> int:
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        return subprocess.call([shutil.which("xvfb-run") or "xvfb-run", "-a", sys.executable, __file__])
    rows = [("dock through the manifest (placeholder, modules load on a worker)", run("dock")),
            ("import the widget modules on the GUI thread (before)", run("import"))]
    print(f"# Docking the Segment widget in a fresh process ({platform.machine()}, {os.cpu_count()} cores)\n")
    print("| how | GUI blocked (s) | widget ready (s) |")
    print("|---|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['blocked']:.2f} | {r['ready']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

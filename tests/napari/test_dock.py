"""Docking returns at once: the widget modules load on a worker behind a placeholder (`_dock`)."""

from __future__ import annotations

import subprocess
import sys

from napari_pgdiffseg import _dock
from napari_pgdiffseg._widgets import SegmentWidget


def test_lazy_dock_shows_a_placeholder_then_the_widget(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    dock = _dock.LazyDock(viewer, *_dock.WIDGETS["segment"])
    assert dock.inner is None and dock.label.text() == _dock.LOADING_TEXT
    qtbot.waitUntil(lambda: dock.ready, timeout=20_000)
    assert isinstance(dock.inner, SegmentWidget) and dock.error == ""
    assert dock.layout().indexOf(dock.inner.native) >= 0
    # A loaded module: the factory gives the widget itself.
    assert isinstance(_dock.SegmentDock(viewer), SegmentWidget)


def test_a_module_that_fails_to_load_is_said_in_the_dock(make_napari_viewer, qtbot):
    dock = _dock.LazyDock(make_napari_viewer(), "napari_pgdiffseg._no_such_module", "X")
    qtbot.waitUntil(lambda: dock.ready, timeout=20_000)
    assert dock.inner is None and "could not start: ModuleNotFoundError" in dock.label.text()


def test_docking_in_a_fresh_process_does_not_wait_for_torch():
    """What napari runs when the user docks the widget the first time: the factory returns
    before torch and diffusers are imported."""
    code = ("import sys, time; from napari_pgdiffseg import _dock; "
            "print('torch' in sys.modules, 'napari_pgdiffseg._widgets._segment' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_dock_time_benchmark_prints_its_table():
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "dock_time.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=300).stdout
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| how |") and len(lines) == 3  # header + 2 rows ("|---|" is not "| ")
    blocked = [float(line.split("|")[2]) for line in lines[1:]]
    assert all(b > 0 for b in blocked)

"""Helpers of the napari widget tests (a module of its own: `conftest` names are ambiguous)."""

from __future__ import annotations

PLUGIN = "napari-pgdiffseg"
SEGMENT = "Segment QPI (PG-DiffSeg)"
INSPECTOR = "Noise-quality inspector"
BATCH = "Batch segment folder"


def open_widget(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def wait_idle(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def fast_settings(widget, bundle_dir, config):
    widget.settings.set_bundle(bundle_dir)
    widget.settings.set_config(config)
    assert widget.settings.problem == "", widget.settings.problem

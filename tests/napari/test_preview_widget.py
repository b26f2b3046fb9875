"""The Segment widget's live preview in a real viewer: follows the view, cancels stale runs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_pgdiffseg._widgets import _preview
from napari_pgdiffseg.core.bundle import load_bundle
from napari_pgdiffseg.core.errors import SegmentationCancelled
from napari_pgdiffseg.core.preview import PREVIEW_SETTINGS, PreviewBox, segment_region

from widget_helpers import SEGMENT, fast_settings, open_widget


@pytest.fixture
def viewer_widget(make_napari_viewer, tiny_bundle_dir, fast_config):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, SEGMENT)
    fast_settings(widget, tiny_bundle_dir, fast_config)
    return viewer, widget


def _preview_layer(viewer):
    return next((ly for ly in viewer.layers if _preview.PREVIEW_TAG in ly.metadata), None)


def test_preview_segments_the_view_and_follows_it(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    phase = synthetic_frame[0]
    layer = viewer.add_image(phase, name="cells", scale=(2, 2), translate=(10, 5))
    w.preview_toggle.value = True
    qtbot.waitUntil(lambda: _preview_layer(viewer) is not None and w.preview.job is None, timeout=30_000)
    assert errors == []
    prev = _preview_layer(viewer)
    assert prev.name == "cells pgdiffseg preview" and prev.data.dtype == np.uint8
    res = w.preview.last
    # The same labels as the core gives for that box with the preview's settings.
    expected, _ = segment_region(phase, load_bundle(w.settings.bundle_dir()), res.request.box, res.request.config)
    np.testing.assert_array_equal(prev.data, expected)
    assert res.request.config.sampling_steps == PREVIEW_SETTINGS["sampling_steps"] and res.request.config.flips == 1
    # Placed over the box of the image it previews (scale / factor, origin at the box).
    box = res.request.box
    np.testing.assert_allclose(prev.scale, np.array([2, 2]) / box.factor)
    np.testing.assert_allclose(prev.translate[0], 10 + (box.y0 + (1 / box.factor - 1) / 2) * 2)

    # Zoom out onto a part of the frame: the new view is segmented at the screen's resolution.
    layer.corner_pixels = np.array([[32, 64], [223, 255]])  # first and last visible pixel
    runs = w.preview.runs
    viewer.camera.zoom = 0.25  # 0.25 screen px per world unit = 0.5 per frame pixel (scale 2)
    qtbot.waitUntil(lambda: w.preview.runs > runs and w.preview.job is None, timeout=30_000)
    box = w.preview.last.request.box
    assert (box.y0, box.x0, box.y1, box.x1, box.factor) == (32, 64, 224, 256, 0.5)
    assert _preview_layer(viewer).data.shape == (96, 96)
    assert "preview: 192 x 192 px at 0.5 x" in w.status.value

    # Off: the preview layer goes, and moving the view starts nothing.
    w.preview_toggle.value = False
    assert _preview_layer(viewer) is None
    runs = w.preview.runs
    viewer.camera.center = (0, 100, 100)
    qtbot.wait(2 * _preview.DEBOUNCE_MS)
    assert w.preview.runs == runs and errors == []


def test_a_view_change_cancels_the_running_preview(viewer_widget, qtbot, synthetic_frame, monkeypatch, errors):
    viewer, w = viewer_widget
    viewer.add_image(synthetic_frame[0], name="cells")
    started, release = [], threading.Event()

    def slow_region(frame, bundle, box, config, *, value_range=None, cancel=None, progress=None):
        started.append(box)
        if len(started) == 1:  # the first preview waits until it is cancelled
            while not cancel.is_set():
                if time.monotonic() - t0 > 20:
                    raise AssertionError("the first preview was never cancelled")
                time.sleep(0.01)
            raise SegmentationCancelled("cancelled")
        labels = np.ones((box.shape[0], box.shape[1]), np.uint8)
        return labels, type("R", (), {"seconds": 0.0})()

    monkeypatch.setattr(_preview, "segment_region", slow_region)
    t0 = time.monotonic()
    w.preview_toggle.value = True
    qtbot.waitUntil(lambda: len(started) == 1, timeout=10_000)
    assert w.preview.job is not None
    viewer.camera.zoom = viewer.camera.zoom * 2  # the user zooms while it runs
    qtbot.waitUntil(lambda: w.preview.cancelled == 1 and len(started) == 2 and w.preview.job is None, timeout=10_000)
    assert np.all(_preview_layer(viewer).data == 1)  # only the new view's result was shown
    assert errors == []
    # The viewer stays usable: a full run still works with the preview on.
    w.preview_toggle.value = False
    w.run_button.native.click()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert "cells pgdiffseg" in [ly.name for ly in viewer.layers] and errors == []


def test_preview_box_of_a_plane_of_a_stack(viewer_widget, qtbot, synthetic_frame):
    viewer, w = viewer_widget
    stack = np.stack([synthetic_frame[0], synthetic_frame[0][::-1].copy()])
    viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 1)
    req = w.preview.request()
    np.testing.assert_array_equal(req.frame, stack[1])
    assert req.box == PreviewBox(0, 0, 256, 256, req.box.factor)


def test_preview_box_of_a_multiscale_layer_is_in_full_resolution_pixels(viewer_widget, synthetic_frame):
    viewer, w = viewer_widget
    full = synthetic_frame[0]
    layer = viewer.add_image([full, full[::2, ::2].copy()], name="pyramid", multiscale=True)
    layer.corner_pixels = np.array([[10, 20], [59, 99]])  # of the level on screen
    level = layer.data_level
    f = int(layer.downsample_factors[level][-1])
    req = w.preview.request()
    assert req.frame.shape == full.shape  # always the full-resolution plane
    assert (req.box.y0, req.box.x0, req.box.y1, req.box.x1) == (10 * f, 20 * f, 60 * f, 100 * f)

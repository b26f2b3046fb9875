"""The Segment widget's live preview: segment what the canvas shows, following pan and zoom.

With Preview on, every camera move (pan, zoom) or plane change restarts a short timer
(`DEBOUNCE_MS`); when it fires, the visible box of the chosen image (napari's
``layer.corner_pixels``) is segmented at screen resolution with the fast settings
(`core.preview`) on a worker thread, into one Labels layer "<image> pgdiffseg preview"
placed over that box. A move while a preview runs cancels it at its next network
evaluation and starts a new one for the new view. Run still segments the whole frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qtpy.QtCore import QTimer

from ..core.config import SegmentConfig
from ..core.preview import PreviewBox, frame_range, preview_box, preview_config, segment_region
from ._jobs import Job, Runner, qt_alive
from ._layers import class_colormap, class_features

PREVIEW_TAG = "pgdiffseg_preview_of"  # metadata key of the preview layer: its image's name
#: Wait this long after the last camera or plane change before segmenting the view (ms).
DEBOUNCE_MS = 250


@dataclass(frozen=True)
class PreviewRequest:
    frame: object  # the displayed (H, W) plane of the layer's data
    name: str
    box: PreviewBox
    scale: tuple  # the layer's (y, x) scale and translate
    translate: tuple
    bundle_dir: Path
    config: SegmentConfig
    range_key: tuple  # what identifies the frame for the cached value range


@dataclass
class PreviewResult:
    request: PreviewRequest
    labels: np.ndarray
    class_names: tuple
    colors: tuple
    seconds: float


class PreviewRunner(Runner):
    """Segments the request's box (no Qt); the frame's value range is computed once per frame."""

    def __init__(self, request: PreviewRequest, load_bundle, ranges: dict, lock: threading.Lock):
        super().__init__(request, load_bundle)
        self.ranges, self.lock = ranges, lock

    def __call__(self, report, cancel: threading.Event) -> PreviewResult:
        req = self.request
        bundle = self.load_bundle(req.bundle_dir)
        key = req.range_key + (str(req.bundle_dir),)
        with self.lock:
            value_range = self.ranges.get(key)
        if value_range is None:
            value_range = frame_range(req.frame, bundle.card.normalization)
            with self.lock:
                self.ranges[key] = value_range
        labels, result = segment_region(req.frame, bundle, req.box, req.config, value_range=value_range, cancel=cancel)
        return PreviewResult(req, labels, tuple(bundle.card.class_names), tuple(map(tuple, bundle.card.colors)),
                             result.seconds)


class LivePreview:
    """Preview on/off, the debounce timer, one preview job at a time, and the preview layer."""

    def __init__(self, widget):
        self.widget = widget
        self.viewer = widget.viewer
        self.enabled = False
        self.job: Job | None = None
        self.pending = False  # the view moved while a (cancelled) preview was still running
        self.runs = self.cancelled = 0
        self.last: PreviewResult | None = None
        self._ranges: dict = {}
        self._lock = threading.Lock()
        self.timer = QTimer(widget.native)  # deleted with the widget
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.start)

    def _events(self):
        cam, dims = self.viewer.camera.events, self.viewer.dims.events
        return (cam.center, cam.zoom, dims.current_step)

    def set_enabled(self, on: bool) -> None:
        on = bool(on)
        if on == self.enabled:
            return
        self.enabled = on
        for ev in self._events():
            (ev.connect if on else ev.disconnect)(self.schedule)
        if on:
            self.schedule()
        else:
            self.timer.stop()
            if self.job is not None:
                self.job.cancel()
            self.pending = False
            self.remove_layer()

    def schedule(self, *_) -> None:
        """The view changed: drop a preview of the old view at once, segment the new one soon."""
        if not self.enabled:
            return
        if not qt_alive(self.widget.native):  # the dock widget is gone: stop following the viewer
            self.enabled = False
            for ev in self._events():
                ev.disconnect(self.schedule)
            return
        if self.job is not None:
            self.job.cancel()
        self.timer.start()

    def request(self) -> PreviewRequest | None:
        """The visible box of the chosen image's displayed plane, or None when there is nothing to do."""
        w = self.widget
        layer = w.image.value
        if layer is None or w.settings.problem or getattr(layer, "rgb", False) or layer.ndim < 2:
            return None
        data = layer.data[0] if layer.multiscale else layer.data
        lead = ()
        if layer.ndim > 2:  # the plane the viewer shows, in the layer's own indices
            pos = layer.world_to_data(self.viewer.dims.point)
            lead = tuple(int(np.clip(round(float(p)), 0, n - 1)) for p, n in zip(pos[:-2], data.shape[:-2]))
        frame = data[lead] if lead else data
        H, W = frame.shape[-2:]
        # napari's corner pixels are the first and the last (inclusive) visible pixel, of the
        # data level on screen for a multiscale layer: in full-resolution pixels here.
        corners = np.asarray(layer.corner_pixels, float)[:, -2:] + np.array([[0.0, 0.0], [1.0, 1.0]])
        if layer.multiscale:
            corners = corners * np.asarray(layer.downsample_factors[layer.data_level], float)[-2:]
        if not np.all(corners[1] > corners[0] + 1):  # not drawn yet: the whole plane
            corners = np.array([[0.0, 0.0], [H, W]])
        zoom = float(self.viewer.camera.zoom) * float(abs(layer.scale[-1]))
        box = preview_box(corners, (H, W), zoom)
        return PreviewRequest(frame, layer.name, box, tuple(layer.scale[-2:]), tuple(layer.translate[-2:]),
                              w.settings.bundle_dir(), preview_config(w.settings.config()),
                              (id(layer.data), lead))

    def start(self) -> None:
        if not self.enabled:
            return
        if self.job is not None:  # still stopping the previous one: start when it has
            self.pending = True
            return
        if self.widget.running:  # a full Run owns the CPU; it ends with a fresh preview
            self.pending = True
            return
        try:
            req = self.request()
        except Exception as e:  # noqa: BLE001 - a preview never raises into napari's event loop
            self.widget.status.value = f"preview: {e}"
            return
        if req is None:
            return
        self.runs += 1
        self.job = Job(PreviewRunner(req, self.widget._load_bundle, self._ranges, self._lock),
                       on_report=lambda _v: None, on_result=self._show, on_cancelled=self._on_cancelled,
                       on_finished=self._finished)
        self.job.start(self.widget.use_thread, owner=self.widget.native)

    def _on_cancelled(self) -> None:
        self.cancelled += 1

    def _finished(self) -> None:
        self.job = None
        if self.pending and self.enabled:
            self.pending = False
            self.start()

    def resume(self) -> None:
        """Called when a full run ends: a preview that waited for it starts now."""
        if self.pending and self.enabled and self.job is None:
            self.pending = False
            self.start()

    def find_layer(self):
        return next((ly for ly in self.viewer.layers if PREVIEW_TAG in ly.metadata), None)

    def remove_layer(self) -> None:
        layer = self.find_layer()
        if layer is not None:
            self.viewer.layers.remove(layer)

    def _show(self, res: PreviewResult) -> None:
        if not self.enabled:
            return
        req, box = res.request, res.request.box
        # A preview pixel covers 1/f frame pixels: its centre sits (1/f - 1)/2 px past the box origin.
        f = box.factor
        scale = tuple(s / f for s in req.scale)
        translate = tuple(t + (o + (1.0 / f - 1.0) / 2.0) * s
                          for t, o, s in zip(req.translate, (box.y0, box.x0), req.scale))
        layer = self.find_layer()
        name = f"{req.name} pgdiffseg preview"
        if layer is None:
            layer = self.viewer.add_labels(res.labels, name=name, scale=scale, translate=translate, opacity=0.5,
                                           colormap=class_colormap(res.colors),
                                           features=class_features(res.class_names),
                                           metadata={PREVIEW_TAG: req.name})
        else:
            layer.data = res.labels
            layer.scale, layer.translate = scale, translate
            layer.name = name
            layer.metadata[PREVIEW_TAG] = req.name
            layer.colormap = class_colormap(res.colors)
        self.last = res
        self.widget.status.value = (f"preview: {box.shape[1]} x {box.shape[0]} px at {f:.2g} x, "
                                    f"{res.seconds:.1f} s")

"""The manifest's dock widgets, made so that docking returns at once.

The widgets need the core, which imports torch and diffusers: about 5 s on a 2-core CPU
the first time, during which napari would freeze. The factories here import only Qt: when
the widget modules are not loaded yet they return a `LazyDock` that says it is loading,
imports them on a napari thread worker and then puts the real widget in its place. Once
loaded (a second dock, or any process that imported them), the real widget is returned
directly. The model itself is loaded on the worker of the first run (`_widgets._settings.BundleLoader`).
"""

from __future__ import annotations

import importlib
import sys

from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

WIDGETS = {
    "segment": ("napari_pgdiffseg._widgets._segment", "SegmentWidget"),
    "inspector": ("napari_pgdiffseg._widgets._inspector", "InspectorWidget"),
    "batch": ("napari_pgdiffseg._widgets._batch", "BatchWidget"),
    "train": ("napari_pgdiffseg._widgets._train", "TrainWidget"),
}
LOADING_TEXT = "Loading PG-DiffSeg (torch, diffusers): a few seconds the first time ..."


class LazyDock(QWidget):
    """A placeholder that imports a widget's module on a worker thread, then shows the widget (`inner`)."""

    def __init__(self, viewer, module: str, cls: str):
        from napari.qt.threading import create_worker

        super().__init__()
        self.viewer, self._cls = viewer, cls
        self.inner = None
        self.error = ""
        self.setLayout(QVBoxLayout())
        self.layout().setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(LOADING_TEXT)
        self.label.setWordWrap(True)
        self.layout().addWidget(self.label)
        self._worker = create_worker(importlib.import_module, module, _ignore_errors=True)
        self._worker.returned.connect(self._build)
        self._worker.errored.connect(self._failed)
        self._worker.start()

    @property
    def ready(self) -> bool:
        return self.inner is not None or bool(self.error)

    def _alive(self) -> bool:
        try:
            self.objectName()
        except RuntimeError:  # the dock was closed while loading
            return False
        return True

    def _build(self, module) -> None:
        if not self._alive():
            return
        try:
            self.inner = getattr(module, self._cls)(self.viewer)
        except Exception as e:  # noqa: BLE001 - shown in the dock instead of a traceback
            self._failed(e)
            return
        self.layout().removeWidget(self.label)
        self.label.deleteLater()
        self.layout().addWidget(self.inner.native)

    def _failed(self, error: BaseException) -> None:
        self.error = f"napari-pgdiffseg could not start: {type(error).__name__}: {error}"
        if self._alive():
            self.label.setText(self.error + "\nReinstall the plugin (pip install napari-pgdiffseg) and restart napari.")


def make_dock(viewer, kind: str):
    """The widget itself when its module is loaded, else a `LazyDock` that loads it."""
    module, cls = WIDGETS[kind]
    if module in sys.modules:
        return getattr(sys.modules[module], cls)(viewer)
    return LazyDock(viewer, module, cls)


class _Dock:
    """A manifest widget "class" whose construction returns `make_dock(viewer, KIND)`: napari
    finds the viewer parameter on ``__init__`` and calls the class, so a plain factory
    function would not get the viewer."""

    KIND = ""

    def __new__(cls, napari_viewer):
        return make_dock(napari_viewer, cls.KIND)

    def __init__(self, napari_viewer):  # never runs: __new__ returns another type
        pass


class SegmentDock(_Dock):
    KIND = "segment"


class InspectorDock(_Dock):
    KIND = "inspector"


class BatchDock(_Dock):
    KIND = "batch"


class TrainDock(_Dock):
    KIND = "train"

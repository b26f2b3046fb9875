"""Pieces the three dock widgets share: tooltips, persisted settings, the settings widget,
the model loader, and running a job on a napari thread worker with progress and Cancel.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, SpinBox
from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error
from psygnal import Signal
from qtpy.QtCore import QObject, QStandardPaths, Slot
from qtpy.QtCore import Signal as QtSignal

from ..core import bundle as bundle_mod
from ..core.devices import DEVICES, available_devices, resolve_device
from ..core.errors import ConfigError, PGDiffSegError, SegmentationCancelled
from ..core.noise import STRATEGIES
from ..core.pipeline import SETTINGS_HELP, SegmentConfig
from ..core.bundle import peek_bundle

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- tooltips

# Every tooltip of every widget, in one place. SegmentConfig fields reuse the CLI's help.
TOOLTIPS: dict[str, str] = {
    **SETTINGS_HELP,
    "model_source": "a model shipped with the plugin (each labels one thing: nuclei of SLIM frames, whole cells "
                    "of phase images in radians, ...), or a bundle folder of your own",
    "bundle_path": "a bundle folder (pgdiffseg.json, autoencoder/, ldm_p/, ldm_s/, scheduler/)",
    "tile_size": "tile size in pixels; fixed by the model bundle (its card's tile_size and input_scale)",
    "image": "the image layer to segment (2D frame, or a stack segmented plane by plane)",
    "labels_output": "class labels: one layer with 1 live, 2 dead; cells: a 'live' and a 'dead' layer with one id "
    "per cell (touching cells split by a watershed on the phase)",
    "add_noise": "add the starting noise of sample 0 as an image layer (1/4 resolution, scaled to fit)",
    "add_edges": "add the Canny edges of the starting noise (paper Fig. 3) as a layer",
    "add_agreement": "add the per-pixel agreement of the k samples (1 = all agree) as a layer",
    "min_area": "smallest region in pixels kept and counted as a cell (summary counts, viability); "
                "0: the model's setting",
    "min_distance": "smallest distance in pixels between the centres of two touching cells that are split "
                    "(models that split cells by watershed); 0: the model's setting",
    "run": "segment the chosen image layer (the layer is fixed when you press Run)",
    "cancel": "stop before the next network evaluation; the viewer is left as it was",
    "restore_defaults": "reset every setting of this widget to its default",
    "input_dir": "folder with the frames to segment",
    "pattern": "file patterns in the input folder, separated by ';' (TIFF and PNG)",
    "output_dir": "folder for <name>_labels.tif and pgdiffseg_results.csv (default: <input>/pgdiffseg)",
    "overwrite": "segment files whose labels exist again (off: skip them, so an interrupted batch resumes)",
    "scheduler": "empty: segment here, one file after another; 'local': a Dask LocalCluster of worker "
    "processes on this machine; an address (tcp://host:8786): a running Dask cluster that sees the same "
    "folders. Each worker loads the model once; per-tile progress is then not shown",
    "workers": "worker processes of the 'local' Dask cluster (0: one per core, one torch thread each; 1 with a GPU)",
    "region": "part of the image the noise is computed on: the centred tile, or what the canvas shows "
    "(cropped to whole tiles, at most 4 x 4 tiles)",
    "strategies": "starting-noise strategies to compare (paper Fig. 3 / Table 3)",
    "compute": "compute the starting noise of every ticked strategy on the chosen region",
    "show_layers": "add the noise and its Canny edges of the selected rows (all rows if none) as layers",
}


def tooltip(name: str) -> str:
    return TOOLTIPS.get(name, "")


def text_label(**kwargs) -> Label:
    """A read-only Label that wraps and grows with its text (messages, summaries)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QSizePolicy

    label = Label(**kwargs)
    label.native.setWordWrap(True)
    label.native.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
    label.native.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
    return label


# --------------------------------------------------------------------------- persistence

SETTINGS_ENV = "NAPARI_PGDIFFSEG_SETTINGS"


def settings_path() -> Path:
    """Where widget settings persist; `NAPARI_PGDIFFSEG_SETTINGS` (a JSON file path) overrides it."""
    env = os.environ.get(SETTINGS_ENV)
    if env:
        return Path(env)
    base = QStandardPaths.writableLocation(QStandardPaths.GenericConfigLocation) or str(Path.home() / ".config")
    return Path(base) / "napari-pgdiffseg" / "settings.json"


class SettingsStore:
    """One section of the settings JSON file; unreadable files count as empty."""

    def __init__(self, section: str, path: Path | None = None):
        self.section = section
        self._path = path

    @property
    def path(self) -> Path:
        return self._path or settings_path()

    def _read_all(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def load(self) -> dict:
        section = self._read_all().get(self.section, {})
        return section if isinstance(section, dict) else {}

    def save(self, values: dict) -> None:
        data = self._read_all()
        data[self.section] = values
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(data, indent=1, default=str))
            os.replace(tmp, self.path)
        except OSError as e:  # settings are a convenience: never fail a run for them
            log.warning("cannot save napari-pgdiffseg settings to %s: %s", self.path, e)


class PersistedFields:
    """Keeps named value widgets in a settings section: restores at start, saves on change."""

    def __init__(self, store: SettingsStore, widgets: dict[str, Any], defaults: dict[str, Any]):
        self.store, self.widgets, self.defaults = store, widgets, defaults
        self._loading = False
        self.load()
        for w in widgets.values():
            w.changed.connect(self.save)

    def values(self) -> dict:
        out = {}
        for name, w in self.widgets.items():
            out[name] = w.line_edit.value if isinstance(w, FileEdit) else w.value
        return out

    def _apply(self, values: dict) -> None:
        self._loading = True
        try:
            for name, w in self.widgets.items():
                if name not in values:
                    continue
                try:
                    if isinstance(w, FileEdit):  # FileEdit.value = "" would show "."
                        w.line_edit.value = str(values[name] or "")
                    else:
                        w.value = values[name]
                except (ValueError, TypeError):  # a stale or hand-edited value: keep the default
                    w.value = self.defaults[name]
        finally:
            self._loading = False

    def load(self) -> None:
        self._apply({**self.defaults, **self.store.load()})

    def save(self, *_) -> None:
        if not self._loading:
            self.store.save(self.values())

    def restore_defaults(self) -> None:
        self._apply(self.defaults)
        self.save()


# --------------------------------------------------------------------------- model + settings widget

FOLDER_SOURCE = "folder"


def model_choices() -> list[tuple[str, str]]:
    """(text, value) of the model list: the shipped models (the default first), then 'bundle folder'."""
    names = bundle_mod.shipped_models()
    names = [bundle_mod.DEFAULT_MODEL] + [n for n in names if n != bundle_mod.DEFAULT_MODEL]
    out = []
    for name in names:
        try:
            card, _ = bundle_mod.peek_bundle(bundle_mod.MODELS_DIR / name)
            out.append((f"{name} ({card.mask_definition})", name))
        except PGDiffSegError:  # not installed: still listed, so the problem is shown, not hidden
            out.append((name, name))
    return out + [("bundle folder", FOLDER_SOURCE)]


class BundleLoader:
    """Loads a bundle once and keeps it while its folder and card are unchanged."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self._bundle = None

    def __call__(self, path: Path):
        path = Path(path)
        try:
            key = (str(path.resolve()), (path / bundle_mod.CARD_NAME).stat().st_mtime_ns)
        except OSError:
            key = None
        with self._lock:
            if key is not None and key == self._key:
                return self._bundle
            bundle = bundle_mod.load_bundle(path)  # raises BundleError naming the file
            self._key, self._bundle = key, bundle
            return bundle


def _device_choices() -> list[tuple[str, str]]:
    found = available_devices()
    out = []
    for d in DEVICES:
        if d == "auto":
            out.append((f"auto ({found[0]})", d))
        else:
            out.append((d if d in found else f"{d} (not available)", d))
    return out


class SettingsWidget(Container):
    """Model, device and every SegmentConfig setting, validated live; shared by the widgets.

    `problem` is "" when a run can start, else the message shown in red; `validity`
    is emitted with it whenever a setting changes. Values persist in `section`.
    """

    validity = Signal(str)

    def __init__(self, section: str, *, sampling: bool = True, store: SettingsStore | None = None):
        super().__init__(labels=True)
        self.model_source = ComboBox(
            label="model", choices=model_choices(), value=bundle_mod.DEFAULT_MODEL, tooltip=tooltip("model_source"),
        )
        self.bundle_path = FileEdit(label="bundle folder", mode="d", tooltip=tooltip("bundle_path"))
        self.model_info = text_label(label="")
        self.device = ComboBox(label="device", choices=_device_choices(), tooltip=tooltip("device"))
        self.strategy = ComboBox(label="starting noise", choices=list(STRATEGIES), tooltip=tooltip("strategy"))
        self.inversion_steps = SpinBox(label="inversion steps", min=1, max=1000, tooltip=tooltip("inversion_steps"))
        self.forward_t = SpinBox(label="forward step t", min=0, max=999, tooltip=tooltip("forward_t"))
        self.renormalise = CheckBox(text="renormalise noise", tooltip=tooltip("renormalise"))
        self.mix = FloatSpinBox(label="mix (lambda)", min=0.0, max=1.0, step=0.05, tooltip=tooltip("mix"))
        self.sampling_steps = SpinBox(label="sampling steps", min=1, max=1000, tooltip=tooltip("sampling_steps"))
        self.ensemble = SpinBox(label="ensemble k", min=1, max=64, tooltip=tooltip("ensemble"))
        self.tile_size = text_label(label="tile size", tooltip=tooltip("tile_size"))
        self.overlap = SpinBox(label="tile overlap", min=0, max=1024, step=4, tooltip=tooltip("overlap"))
        self.tile_batch = SpinBox(label="tile batch", min=1, max=256, tooltip=tooltip("tile_batch"))
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, tooltip=tooltip("seed"))
        self.noise_metrics = CheckBox(text="noise SSIM / KLD", tooltip=tooltip("noise_metrics"))
        self.message = text_label(label="")
        self.message.native.setStyleSheet("color: #e0533d;")

        self._config_widgets = {
            "device": self.device, "seed": self.seed,
        }
        if sampling:
            self._config_widgets.update({
                "strategy": self.strategy, "inversion_steps": self.inversion_steps, "forward_t": self.forward_t,
                "renormalise": self.renormalise, "mix": self.mix, "sampling_steps": self.sampling_steps,
                "ensemble": self.ensemble, "overlap": self.overlap, "tile_batch": self.tile_batch,
                "noise_metrics": self.noise_metrics,
            })
        shown = [self.model_source, self.bundle_path, self.model_info, self.device]
        if sampling:
            shown += [self.strategy, self.inversion_steps, self.forward_t, self.renormalise, self.mix,
                      self.sampling_steps, self.ensemble, self.tile_size, self.overlap, self.tile_batch]
        shown += [self.seed]
        if sampling:
            shown += [self.noise_metrics]
        shown += [self.message]
        self.extend(shown)

        base = SegmentConfig()
        defaults = {name: getattr(base, name) for name in self._config_widgets}
        defaults.update(model_source=bundle_mod.DEFAULT_MODEL, bundle_path="")
        persisted = {"model_source": self.model_source, "bundle_path": self.bundle_path, **self._config_widgets}
        self.persist = PersistedFields(store or SettingsStore(section), persisted, defaults)
        self.problem = ""
        for w in persisted.values():  # not self.changed: refresh sets labels, which emit it too
            w.changed.connect(self.refresh)
        self.refresh()

    # -- values
    def bundle_dir(self) -> Path | None:
        """The chosen bundle folder (a shipped model's folder, or the folder typed in)."""
        if self.model_source.value != FOLDER_SOURCE:
            return bundle_mod.MODELS_DIR / self.model_source.value
        text = self.bundle_path.line_edit.value.strip()
        return Path(text).expanduser() if text else None

    def config(self) -> SegmentConfig:
        values = {name: w.value for name, w in self._config_widgets.items()}
        return replace(SegmentConfig(), **values)

    def set_config(self, config: SegmentConfig) -> None:
        for name, w in self._config_widgets.items():
            w.value = getattr(config, name)

    def set_bundle(self, path: str | os.PathLike | None) -> None:
        """Use the default model (None), a shipped model by name, or a bundle folder."""
        if path is None:
            self.model_source.value = bundle_mod.DEFAULT_MODEL
        elif isinstance(path, str) and path in bundle_mod.shipped_models():
            self.model_source.value = path
        else:
            self.bundle_path.value = Path(path)
            self.model_source.value = FOLDER_SOURCE

    def restore_defaults(self) -> None:
        self.persist.restore_defaults()
        self.refresh()

    # -- validation
    def _check(self) -> tuple[str, str, str]:
        """(problem, model info, tile size text)."""
        path = self.bundle_dir()
        if path is None:
            return "choose a model bundle folder", "", "-"
        try:
            card, timesteps = peek_bundle(path)
        except PGDiffSegError as e:
            if self.model_source.value != FOLDER_SOURCE:
                return (f"The model {self.model_source.value!r} is not installed ({path}). Reinstall "
                        "napari-pgdiffseg, or choose 'bundle folder' and pick a model bundle.",
                        f"{self.model_source.value}: unavailable", "-")
            return str(e), "", "-"
        info = f"labels {card.mask_definition}: {', '.join(card.class_names)}"
        if card.modality:
            info += f"; for {card.modality}"
        tile = f"{card.tile_size} px"
        if card.input_scale != 1.0:  # the model works at another pixel size: say what a tile covers
            tile += f" (input scale {card.input_scale:g}: {card.tile_size / card.input_scale:.0f} px of the image)"
        try:
            self.config().validate(timesteps, card.tile_size)
            resolve_device(self.device.value)
        except ConfigError as e:
            return str(e), info, tile
        return "", info, tile

    def refresh(self, *_) -> None:
        strategy = self.strategy.value
        self.inversion_steps.visible = strategy == "prior"
        self.forward_t.visible = strategy == "forward"
        self.renormalise.visible = self.mix.visible = strategy != "random"
        self.bundle_path.visible = self.model_source.value == FOLDER_SOURCE
        problem, info, tile = self._check()
        self.model_info.value = info
        self.tile_size.value = tile
        self.message.value = problem
        self.message.visible = bool(problem)
        self.problem = problem
        self.validity.emit(problem)


# --------------------------------------------------------------------------- errors

def notify_error(error: BaseException) -> None:
    """Show an error as a napari notification: the message for ours and OSError, the type otherwise."""
    if isinstance(error, (PGDiffSegError, OSError, ValueError)):
        show_error(str(error))
    else:  # a bug: keep the traceback in the log, give the user one line
        log.error("napari-pgdiffseg: unexpected error", exc_info=error)
        show_error(f"napari-pgdiffseg failed: {type(error).__name__}: {error}")


# --------------------------------------------------------------------------- progress + jobs

class _Relay(QObject):
    """Carries values from the worker thread to the GUI thread (queued connection)."""

    _signal = QtSignal(object)

    def __init__(self, callback: Callable[[Any], None]):
        super().__init__()
        self._callback = callback
        self._signal.connect(self._deliver)

    @Slot(object)
    def _deliver(self, value) -> None:
        self._callback(value)

    def emit(self, value) -> None:
        self._signal.emit(value)


class Throttle:
    """Passes at most one report per `interval` seconds, plus every `force=True` report."""

    def __init__(self, send: Callable[[Any], None], interval: float = 0.05):
        self.send, self.interval = send, interval
        self._last = 0.0

    def __call__(self, value, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self.send(value)


class ProgressBars:
    """napari progress bars of a run: one per unit of work (tiles of a plane or of a file) and,
    for several planes or files, one over them. Always closed by `close`.

    The outer bar is a sibling, not `nest_under`: napari 0.9.2's nested bar group segfaults
    when its bars are deleted (QtActivityDialog.maybe_hide_progress_indicator).
    """

    def __init__(self, desc: str, outer_total: int | None = None, outer_desc: str = ""):
        self.outer = napari_progress(total=outer_total, desc=outer_desc) if outer_total and outer_total > 1 else None
        self.inner = napari_progress(total=1, desc=desc)
        self._closed = False

    # napari's bars process Qt events when they change, so the job may end (and `close`
    # run) in the middle of an update: every step checks `_closed` again.
    def set_inner(self, done: int, total: int, desc: str | None = None) -> None:
        if not self._closed and self.inner.total != total:
            self.inner.total = max(int(total), 1)
        if not self._closed and desc is not None and desc != self.inner.desc:
            self.inner.set_description(desc)
        if not self._closed:
            self.inner.n = int(done)
            self.inner.update(0)

    def set_outer(self, done: int, desc: str | None = None) -> None:
        if self.outer is None:
            return
        if not self._closed and desc is not None and desc != self.outer.desc:
            self.outer.set_description(desc)
        if not self._closed:
            self.outer.n = int(done)
            self.outer.update(0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for bar in (self.inner, self.outer):
            if bar is not None:
                bar.close()


class Job:
    """Runs ``work(report, cancel_event)`` on a napari thread worker.

    `report(value)` may be called from the worker thread; `on_report(value)` receives it in
    the GUI thread. Exactly one of `on_result(value)`, `on_cancelled()` or an error
    notification follows, then the progress `bars` are closed and `on_finished()` runs.
    With ``use_thread=False`` the same happens synchronously (scripts, debugging).
    """

    def __init__(self, work: Callable[[Callable[[Any], None], threading.Event], Any], *,
                 on_report: Callable[[Any], None], on_result: Callable[[Any], None],
                 on_cancelled: Callable[[], None], on_finished: Callable[[], None],
                 bars: ProgressBars | None = None):
        self.work = work
        self.bars = bars  # closed when the job ends, whatever happened to the widget
        self.on_report, self.on_result = on_report, on_result
        self.on_cancelled, self.on_finished = on_cancelled, on_finished
        self.cancel_event = threading.Event()
        self.worker = None
        self.done = False
        self._detached = False
        self._owner = None

    def start(self, use_thread: bool = True, owner=None) -> None:
        """Start; once `owner` (a QWidget) is deleted the job cancels itself and calls nothing."""
        self._owner = owner
        if not use_thread:
            try:
                result = self.work(self.on_report, self.cancel_event)
            except Exception as e:  # noqa: BLE001 - routed like the worker's errored signal
                self._errored(e)
            else:
                self._returned(result)
            self._finished()
            return
        relay = _Relay(self._report)
        self._relay = relay  # keep it alive as long as the job
        self.worker = create_worker(self.work, relay.emit, self.cancel_event, _ignore_errors=True)
        self.worker.returned.connect(self._returned)
        self.worker.errored.connect(self._errored)
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def detach(self, *_) -> None:
        """Cancel and drop every later callback (the widget is gone)."""
        self._detached = True
        self.cancel()

    def _gone(self) -> bool:
        if not self._detached and self._owner is not None and not qt_alive(self._owner):
            self.detach()
        return self._detached

    def _report(self, value) -> None:
        if not self._gone():
            self.on_report(value)

    def _returned(self, result) -> None:
        if not self._gone():
            self.on_result(result)

    def _errored(self, error: BaseException) -> None:
        if isinstance(error, SegmentationCancelled):
            if not self._gone():
                self.on_cancelled()
        else:
            notify_error(error)

    def _finished(self) -> None:
        self.done = True
        if self.bars is not None:
            self.bars.close()
        if not self._gone():
            self.on_finished()


LAYER_EVENTS = ("inserted", "removed", "reordered", "renamed")


def qt_alive(obj) -> bool:
    """False once the C++ side of a Qt object is deleted (PyQt and PySide raise RuntimeError)."""
    try:
        obj.objectName()
    except RuntimeError:
        return False
    return True


def follow_layers(viewer, owner, callback: Callable[..., None]) -> None:
    """Call `callback` when the viewer's layer list changes, while `owner` (a QWidget) exists.

    Not tied to `owner.destroyed`: Python slots on `destroyed` of a dock widget deleted
    after its viewer was closed crash PyQt5 (seen with napari 0.9.2).
    """
    method, owner_ref = weakref.WeakMethod(callback), weakref.ref(owner)

    def on_change(*_):
        cb, widget = method(), owner_ref()
        if cb is not None and widget is not None and qt_alive(widget):
            cb()

    for name in LAYER_EVENTS:
        getattr(viewer.layers.events, name).connect(on_change)


def layer_choices(viewer, kinds: Iterable[type]) -> Callable[[Any], list]:
    """A magicgui `choices` callable listing the viewer's layers of the given types."""
    kinds = tuple(kinds)

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kinds)]

    return choices


def replace_layers(viewer, new_layers: list, tag_key: str, tag_value) -> list:
    """Add layers, first removing earlier layers whose metadata[tag_key] equals tag_value.

    New layers take the list position of the first layer they replace, so a rerun keeps
    the user's layer order. Returns the added layers.
    """
    from napari.layers import Layer

    old = [ly for ly in viewer.layers if ly.metadata.get(tag_key) == tag_value]
    index = viewer.layers.index(old[0]) if old else None
    for ly in old:
        viewer.layers.remove(ly)
    added = []
    for data, kwargs, kind in new_layers:
        layer = Layer.create(data, kwargs, kind)
        if index is None:
            viewer.add_layer(layer)
        else:
            viewer.layers.insert(index, layer)
            index += 1
        added.append(layer)
    return added


class JobControls:
    """Run / Cancel / Restore-defaults behaviour shared by the three dock widgets.

    A widget using it has `run_button`, `cancel_button`, `defaults_button`, `status`,
    `settings` (a SettingsWidget), `job`, `bars`, `use_thread`, and defines `problem()`,
    `_on_progress`, `_on_result`, `_on_cancelled` and `_on_finished`.
    """

    @property
    def running(self) -> bool:
        return self.job is not None

    def _update_state(self, *_):
        problem = self.problem()
        self.run_button.enabled = not self.running and not problem
        self.cancel_button.enabled = self.running
        self.defaults_button.enabled = not self.running
        if not self.running:
            # The settings widget shows its own message; this one names what is left.
            self.status.value = "" if problem == self.settings.problem else problem

    def _may_run(self) -> bool:
        """False (with a notification naming the problem) when Run cannot start now."""
        if self.running:
            return False
        problem = self.problem()
        if problem:
            show_error(problem)
            return False
        return True

    def _start(self, runner, bars: "ProgressBars", status: str) -> None:
        self.bars = bars
        self.status.value = status
        self.job = Job(runner, on_report=self._on_progress, on_result=self._on_result,
                       on_cancelled=self._on_cancelled, on_finished=self._on_finished, bars=bars)
        self._update_state()
        self.job.start(self.use_thread, owner=self.native)

    def cancel(self, *_) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.value = "cancelling ..."

"""Running a widget's work in the background: a napari thread worker with progress bars,
Cancel, and errors as one-line notifications (`Job`). The Run / Cancel behaviour of the
dock widgets around it is `_base.RunWidget`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Slot
from qtpy.QtCore import Signal as QtSignal

from ..core.errors import PGDiffSegError, SegmentationCancelled, TrainingCancelled

log = logging.getLogger(__name__)


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


def eta_text(fraction: float, elapsed: float) -> str:
    """'about 12 s left' from the share done and the seconds so far ('' until it means something)."""
    if fraction <= 0.02 or elapsed < 0.5 or fraction >= 1:
        return ""
    left = elapsed * (1 - fraction) / fraction
    if left < 60:
        return f"about {max(1, round(left))} s left"
    return f"about {left / 60:.0f} min left" if left < 3600 else f"about {left / 3600:.1f} h left"


class InlineProgress:
    """The progress bar and time left inside a dock widget (napari's own bars live in the
    collapsed activity panel, where users miss them). Hidden while no job runs."""

    def __init__(self):
        from magicgui.widgets import Container, Label
        from magicgui.widgets import ProgressBar as Bar

        self.bar = Bar(min=0, max=1000, value=0, label="")
        self.text = Label(value="")
        self.widget = Container(widgets=[self.bar, self.text], layout="vertical", labels=False, label="progress")
        self.widget.margins = (0, 0, 0, 0)
        self.widget.visible = False

    def show(self, fraction: float, text: str) -> None:
        if not qt_alive(self.widget.native):  # the dock widget was closed mid-run
            return
        self.widget.visible = True
        self.bar.value = int(round(1000 * min(max(fraction, 0.0), 1.0)))
        self.text.value = text

    def hide(self) -> None:
        if not qt_alive(self.widget.native):
            return
        self.widget.visible = False
        self.bar.value = 0
        self.text.value = ""


class ProgressBars:
    """napari progress bars of a run: one per unit of work (tiles of a plane or of a file) and,
    for several planes or files, one over them; mirrored into the widget's `InlineProgress`
    (the share of the whole job done, what is running, the time left). Always closed by `close`.

    The outer bar is a sibling, not `nest_under`: napari 0.9.2's nested bar group segfaults
    when its bars are deleted (QtActivityDialog.maybe_hide_progress_indicator).
    """

    def __init__(self, desc: str, outer_total: int | None = None, outer_desc: str = "",
                 inline: InlineProgress | None = None):
        self.outer = napari_progress(total=outer_total, desc=outer_desc) if outer_total and outer_total > 1 else None
        self.inner = napari_progress(total=1, desc=desc)
        self.inline = inline
        self._n_outer = max(int(outer_total or 1), 1)
        self._outer_done, self._inner_frac = 0, 0.0
        self._outer_desc, self._inner_desc = "", desc
        self._t0 = time.monotonic()
        self._closed = False

    def fraction(self) -> float:
        """Share of the whole job done: finished planes/files plus the share of the current one."""
        return min((self._outer_done + self._inner_frac) / self._n_outer, 1.0)

    def _mirror(self) -> None:
        if self.inline is None or self._closed:
            return
        f = self.fraction()
        parts = [p for p in (self._outer_desc, self._inner_desc, f"{100 * f:.0f}%",
                             eta_text(f, time.monotonic() - self._t0)) if p]
        self.inline.show(f, " · ".join(parts))

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
        self._inner_frac = min(max(done / max(total, 1), 0.0), 1.0)
        self._inner_desc = desc if desc is not None else self._inner_desc
        self._mirror()

    def set_outer(self, done: int, desc: str | None = None) -> None:
        if done != self._outer_done:
            self._inner_frac = 0.0
        self._outer_done = int(done)
        if self._n_outer > 1:  # "plane 1/1" says nothing
            self._outer_desc = desc if desc is not None else self._outer_desc
        self._mirror()
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
        if self.inline is not None:
            self.inline.hide()
        for bar in (self.inner, self.outer):
            if bar is not None:
                bar.close()


class Runner:
    """The work of a widget's job, without Qt: a frozen request (what the widget captured
    when Run was pressed) and the model loader; subclasses define
    ``__call__(report, cancel_event)``, which `Job` runs on a worker thread."""

    def __init__(self, request, load_bundle: Callable[[Any], object]):
        self.request = request
        self.load_bundle = load_bundle


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
        if isinstance(error, (SegmentationCancelled, TrainingCancelled)):
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


def qt_alive(obj) -> bool:
    """False once the C++ side of a Qt object is deleted (PyQt and PySide raise RuntimeError)."""
    try:
        obj.objectName()
    except RuntimeError:
        return False
    return True

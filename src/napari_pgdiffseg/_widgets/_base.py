"""`RunWidget`: the base of the plugin's three dock widgets.

It owns what every one of them has: the settings form, a Run button (its text per widget),
Cancel, one side button (Restore defaults, or the inspector's Add noise layers), a status
line, the background `Job` with its progress bars, and the rules that enable them: Run
only with no job running and no problem (`problem()`), Cancel only while one runs. A
subclass builds its own fields, lays them out around `settings`, `buttons` and `status`,
and defines `problem`, `request`/`run` and the `_on_progress` / `_on_result` /
`_on_cancelled` handlers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from magicgui.widgets import ComboBox, Container, PushButton
from napari.layers import Image

from ..core.errors import InputImageError
from . import _jobs, _settings, _viewer
from ._jobs import Job, ProgressBars, notify_error
from ._settings import SettingsWidget, tooltip


def _grey_rgb(layer) -> bool:
    """A colour layer whose R, G and B channels are equal (a grey image saved as RGB); for a
    multiscale layer its smallest level decides (reading the full one would stall the GUI)."""
    from ..core.files import same_channels

    return same_channels(np.asarray(layer.data[-1] if layer.multiscale else layer.data))


class RunWidget(Container):
    """Run / Cancel / side button / status around a settings form; one background job."""

    def __init__(self, viewer, settings: SettingsWidget, *, use_thread: bool = True, run_text: str = "Run",
                 side_text: str = "Restore defaults", side_tooltip: str = "restore_defaults"):
        super().__init__(labels=True)
        self.viewer = viewer
        self.use_thread = use_thread
        self.job: Job | None = None
        self.bars: ProgressBars | None = None
        self._load_bundle = _settings.BundleLoader()
        self.settings = settings
        self.run_button = PushButton(text=run_text, tooltip=tooltip(run_text.lower()))
        self.cancel_button = PushButton(text="Cancel", tooltip=tooltip("cancel"), enabled=False)
        self.side_button = PushButton(text=side_text, tooltip=tooltip(side_tooltip))
        self.buttons = Container(widgets=[self.run_button, self.cancel_button, self.side_button],
                                 layout="horizontal", labels=False, label="")
        self.buttons.margins = (0, 0, 0, 0)
        self.status = _settings.text_label(label="")
        self.progress = _jobs.InlineProgress()  # subclasses lay out `self.progress.widget` under the buttons
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.side_button.changed.connect(self.side_action)
        self.settings.validity.connect(self._update_state)

    # -- what a subclass defines
    def problem(self) -> str:
        """Why Run cannot start now ("" when it can)."""
        return self.settings.problem

    def run(self, *_) -> None:
        raise NotImplementedError

    def side_action(self, *_) -> None:
        """The side button (default: Restore defaults)."""
        self.restore_defaults()

    def restore_defaults(self, *_) -> None:
        self.settings.restore_defaults()

    def side_enabled(self) -> bool:
        return not self.running

    def finished_text(self) -> str:
        """The status line after a job ends ("" keeps the problem, if any)."""
        return ""

    def _on_progress(self, value: Any) -> None:
        pass

    def _on_result(self, result: Any) -> None:
        pass

    def _on_cancelled(self) -> None:
        pass

    # -- image choice that follows the viewer's layers
    def _image_choice(self) -> ComboBox:
        """The image field. Until the user picks an image in it, it follows the viewer: the
        layer selected in the layer list, or the image just opened."""
        image = ComboBox(label="image", choices=_viewer.layer_choices(self.viewer, [Image]), tooltip=tooltip("image"))
        self.image_picked = False  # True once the user chose an image in the field
        self._following = False
        image.changed.connect(self._image_changed)
        _viewer.follow_layers(self.viewer, self.native, self._layers_changed)
        _viewer.follow_selection(self.viewer, self.native, self._follow_selection)
        return image

    def _image_changed(self, *_) -> None:
        if not self._following:
            self.image_picked = True
        self._update_state()

    def _set_image(self, layer) -> None:
        """Set the field without counting it as the user's choice."""
        self._following = True
        try:
            self.image.value = layer
        finally:
            self._following = False

    def _follow_selection(self, *_) -> None:
        active = self.viewer.layers.selection.active
        if (not self.image_picked and isinstance(active, Image) and active in self.viewer.layers
                and _viewer.FINGERPRINT_KEY not in active.metadata):  # not the plugin's own outputs
            if self.image.value is not active:
                self._set_image(active)

    def _layers_changed(self, *_) -> None:
        self._following = True  # choices reset: magicgui may pick a value itself
        try:
            self.image.reset_choices()
        finally:
            self._following = False
        self._follow_selection()
        self._update_state()

    def _image_problem(self) -> str:
        layer = self.image.value
        if layer is None:
            return "add or choose an image layer"
        if layer.rgb and not _grey_rgb(layer):
            return (f"layer {layer.name!r} is a colour (RGB) image; QPI is single-channel: pick a phase image layer "
                    "(a grey image saved as RGB, with equal channels, is taken as grey)")
        return ""

    # -- state
    @property
    def running(self) -> bool:
        return self.job is not None

    def _update_state(self, *_) -> None:
        problem = self.problem()
        self.run_button.enabled = not self.running and not problem
        self.cancel_button.enabled = self.running
        self.side_button.enabled = self.side_enabled()
        if not self.running:
            # The settings widget shows its own message; this one names what is left.
            self.status.value = "" if problem == self.settings.problem else problem

    def _may_run(self) -> bool:
        """False (with a notification naming the problem) when Run cannot start now."""
        if self.running:
            return False
        problem = self.problem()
        if problem:
            _jobs.show_error(problem)  # one notification path (_jobs), also for notify_error
            return False
        return True

    def _take_request(self):
        """The widget's `request()` when Run may start now, else None (the reason notified)."""
        if not self._may_run():
            return None
        try:
            return self.request()
        except InputImageError as e:
            notify_error(e)
            return None

    def _start(self, runner, bars: ProgressBars, status: str) -> None:
        self.bars = bars
        bars.inline = self.progress
        self.progress.show(0.0, status)
        self.status.value = status
        self.job = Job(runner, on_report=self._on_progress, on_result=self._on_result,
                       on_cancelled=self._on_cancelled, on_finished=self._on_finished, bars=bars)
        self._update_state()
        self.job.start(self.use_thread, owner=self.native)

    def cancel(self, *_) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.value = "cancelling ..."

    def _on_finished(self) -> None:
        self.bars = None  # closed by the job
        self.job = None
        self._update_state()
        text = self.finished_text()
        if text:
            self.status.value = text

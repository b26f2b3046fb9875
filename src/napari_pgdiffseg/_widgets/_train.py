"""The "Train PG-DiffSeg on your labels" dock widget: pairs of image and Labels layers (and a
training folder) in, `core.training.fine_tune` on a worker, a new model in every model list.

`TrainRunner` (no Qt) reads the captured pairs and runs the fine-tune; `TrainWidget` collects
the pairs and settings, shows progress, a live loss curve and the hold-out report, and
registers the new model (`_settings.TRAINED`) so that the Segment and Batch widgets list it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.utils.notifications import show_info, show_warning

from ..core.errors import InputImageError
from ..core.training.finetune import (
    LABELS_ARE, TRAIN_CHOICES, FineTuneConfig, FineTuneProgress, FineTuneResult, check_pairs, fine_tune,
    merge_pairs, pairs_from_folder,
)
from . import _settings, _viewer
from ._base import RunWidget
from ._jobs import ProgressBars, Runner, Throttle
from ._settings import TRAIN_SECTION, TRAINED, PersistedFields, SettingsStore, SettingsWidget, tooltip

TRAIN_TEXTS = {"ldm_s": "LDM-S (segmentation network)", "ldm_p+ldm_s": "LDM-P + LDM-S (also the prior)",
               "unet": "U-Net baseline (a comparison)"}
LABELS_TEXTS = {"classes": "class ids (0 background, 1, 2 ...)", "instances": "cell ids (every id one cell)"}
CLASS_CHOICES = (("the model's classes", ""), ("background, cell", "background,cell"),
                 ("background, live, dead", "background,live,dead"))
OBJECT_CHOICES = (("as the starting model", ""), ("separate regions (nuclei)", "components"),
                  ("touching whole cells (watershed)", "watershed"))
SCALE_CHOICES = (("auto (the model's; 1 for unlike images)", ""), ("1 (the image's own pixels)", "1"),
                 ("0.5 (half size)", "0.5"), ("0.25 (quarter size)", "0.25"))
OBJECT_SETTINGS = {"components": {"method": "components"},
                   "watershed": {"method": "watershed", "min_distance": 5, "smooth": 3.0, "min_area": 150}}


@dataclass(frozen=True)
class TrainRequest:
    """Everything a training run needs, captured when Train is pressed."""

    images: tuple  # layer data, (H, W) or stacks
    labels: tuple
    names: tuple
    folder: Path | None  # a training folder whose pairs are added (None: none)
    start: Path
    out: Path
    config: FineTuneConfig
    labels_are: str = "classes"
    class_names: tuple | None = None  # None: the starting model's
    objects: str = ""
    threads: int = 0  # torch CPU threads (0: torch's own setting)


class TrainRunner(Runner):
    """Reads the pairs and fine-tunes (no Qt); reports `FineTuneProgress`."""

    def __call__(self, report: Callable[[FineTuneProgress], None], cancel: threading.Event) -> FineTuneResult:
        from ..core.bundle import peek_bundle

        req = self.request
        card, _ = peek_bundle(req.start)
        names = req.class_names or tuple(card.class_names)
        sets = []
        if req.images:
            sets.append(check_pairs([np.asarray(a) for a in req.images], [np.asarray(a) for a in req.labels],
                                    list(req.names), names, req.labels_are))
        if req.folder is not None:
            sets.append(pairs_from_folder(req.folder, names, req.labels_are))
        pairs = merge_pairs(*sets)
        send = Throttle(report, 0.1)
        updates = {}
        if req.objects:
            updates["instances"] = OBJECT_SETTINGS[req.objects]
            updates["mask_definition"] = "nuclei" if req.objects == "components" else "whole cells"
        from ..core.devices import torch_threads

        with torch_threads(req.threads):
            return fine_tune(req.start, pairs, req.config, req.out, class_names=names,
                             card_updates=updates or None, on_progress=lambda p: send(p, force=p.phase != "training"),
                             cancel=cancel, log=lambda s: None)


def _draw_losses(figure, losses: list[float], colors: dict) -> None:
    """The training loss per step and its running mean over 25 steps, in the viewer's theme."""
    figure.clear()
    figure.set_facecolor(colors["background"])
    ax = figure.add_subplot(111)
    ax.set_facecolor(colors["background"])
    if losses:
        y = np.asarray(losses, float)
        x = np.arange(1, y.size + 1)
        ax.plot(x, y, lw=0.6, alpha=0.45, color=colors["text"])
        k = min(25, y.size)
        ax.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid"), lw=1.6, color="#56b4e9", label="mean of 25")
        ax.legend(fontsize="x-small", facecolor=colors["background"], edgecolor=colors["grid"], labelcolor=colors["text"])
    ax.set_xlabel("step", color=colors["text"])
    ax.set_ylabel("training loss", color=colors["text"])
    ax.tick_params(colors=colors["text"])
    for spine in ax.spines.values():
        spine.set_color(colors["grid"])
    figure.canvas.draw_idle()


class PairRow(Container):
    """One image layer + Labels layer pair, with a remove button."""

    def __init__(self, viewer, on_remove: Callable[["PairRow"], None]):
        # (Container has its own `labels` attribute: the fields are image_box / labels_box.)
        image = ComboBox(choices=_viewer.layer_choices(viewer, [Image]), tooltip=tooltip("train_pairs"))
        labels = ComboBox(choices=_viewer.layer_choices(viewer, [Labels]), nullable=True,
                          tooltip=tooltip("train_pairs"))
        remove = PushButton(text="-", tooltip=tooltip("remove_pair"))
        remove.max_width = 28
        super().__init__(widgets=[image, labels, remove], layout="horizontal", labels=False)
        self.image_box, self.labels_box, self.remove_button = image, labels, remove
        self.margins = (0, 0, 0, 0)
        remove.changed.connect(lambda *_: on_remove(self))

    def pick_matching_labels(self) -> None:
        """Choose a Labels layer of the image's shape (the latest one), if the field has none that fits."""
        img = self.image_box.value
        if img is None:
            return
        shape = tuple(img.data.shape[: img.data.ndim - (1 if img.rgb else 0)]) if not img.multiscale else None
        cur = self.labels_box.value
        if cur is not None and shape is not None and tuple(cur.data.shape) == shape:
            return
        fits = [ly for ly in self.labels_box.choices if ly is not None and not ly.multiscale
                and tuple(ly.data.shape) == shape]
        if fits:
            self.labels_box.value = fits[-1]


class TrainWidget(RunWidget):
    """Train PG-DiffSeg on your labels: fine-tune a model on image + Labels pairs."""

    def __init__(self, napari_viewer, *, use_thread: bool = True):
        super().__init__(napari_viewer, SettingsWidget("train_model", sampling=False), use_thread=use_thread,
                         run_text="Train")
        self.train_button = self.run_button
        self.rows: list[PairRow] = []
        self.pairs = Container(labels=False, label="image + labels")
        self.pairs.margins = (0, 0, 0, 0)
        self.add_pair_button = PushButton(text="Add pair", tooltip=tooltip("add_pair"))
        self.labels_are = ComboBox(label="labels are", choices=[(t, v) for v, t in LABELS_TEXTS.items()],
                                   tooltip=tooltip("labels_are"))
        self.folder = FileEdit(label="training folder", mode="d", tooltip=tooltip("training_folder"))
        self.use_folder = CheckBox(text="also train on the folder's pairs", value=True, tooltip=tooltip("use_folder"))
        self.class_choice = ComboBox(label="classes", choices=list(CLASS_CHOICES), tooltip=tooltip("train_classes"))
        self.objects = ComboBox(label="objects", choices=list(OBJECT_CHOICES), tooltip=tooltip("train_objects"))
        self.what = ComboBox(label="train", choices=[(t, v) for v, t in TRAIN_TEXTS.items()],
                             tooltip=tooltip("train_what"))
        self.input_scale = ComboBox(label="input scale", choices=list(SCALE_CHOICES), tooltip=tooltip("train_scale"))
        d = FineTuneConfig()
        self.minutes = FloatSpinBox(label="minutes", min=0.0, max=24 * 60.0, step=0.5, value=d.minutes,
                                    tooltip=tooltip("minutes"))
        self.max_steps = SpinBox(label="steps", min=0, max=10**7, value=0, tooltip=tooltip("max_steps"))
        self.holdout = FloatSpinBox(label="hold out", min=0.0, max=0.5, step=0.05, value=d.holdout,
                                    tooltip=tooltip("holdout"))
        self.out = FileEdit(label="new model folder", mode="d", tooltip=tooltip("model_out"))
        self.result = _settings.text_label(label="result")
        self.canvas = self._make_canvas()
        self.losses: list[float] = []
        self._last_draw = 0.0
        self.last_result: FineTuneResult | None = None
        self.add_pair_button.changed.connect(lambda *_: self.add_pair())
        self.extend([self.pairs, self.add_pair_button, self.labels_are, self.folder, self.use_folder,
                     self.settings, self.class_choice, self.objects, self.what, self.input_scale, self.minutes,
                     self.max_steps, self.holdout, self.out, self.buttons, self.progress.widget, self.status])
        self.native.layout().addWidget(self.canvas)
        self.append(self.result)
        self.persist = PersistedFields(
            SettingsStore(TRAIN_SECTION),
            {"training_folder": self.folder, "use_folder": self.use_folder, "labels_are": self.labels_are,
             "classes": self.class_choice, "objects": self.objects, "train": self.what,
             "input_scale": self.input_scale, "minutes": self.minutes, "max_steps": self.max_steps,
             "holdout": self.holdout},
            {"training_folder": str(_settings.default_training_folder()), "use_folder": True, "labels_are": "classes",
             "classes": "", "objects": "", "train": d.train, "input_scale": "", "minutes": d.minutes, "max_steps": 0,
             "holdout": d.holdout},
        )
        for w in (self.labels_are, self.folder, self.use_folder, self.minutes, self.max_steps, self.what):
            w.changed.connect(self._update_state)
        _viewer.follow_layers(napari_viewer, self.native, self._layers_changed)
        self.add_pair()
        self._update_state()

    # -- pairs
    def _make_canvas(self):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        canvas = FigureCanvasQTAgg(Figure(figsize=(4, 2.4), tight_layout=True))
        canvas.setMinimumHeight(160)
        return canvas

    def add_pair(self, image=None, labels=None) -> PairRow:
        row = PairRow(self.viewer, self.remove_pair)
        self.rows.append(row)
        self.pairs.append(row)
        if image is None:
            active = self.viewer.layers.selection.active
            taken = {r.image_box.value for r in self.rows[:-1]}
            images = [ly for ly in row.image_box.choices if ly not in taken]
            image = active if isinstance(active, Image) and active not in taken else (images[-1] if images else None)
        if image is not None:
            row.image_box.value = image
        if labels is not None:
            row.labels_box.value = labels
        else:
            row.pick_matching_labels()
        row.image_box.changed.connect(lambda *_: (row.pick_matching_labels(), self._update_state()))
        row.labels_box.changed.connect(self._update_state)
        self._update_state()
        return row

    def remove_pair(self, row: PairRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
            self.pairs.remove(row)
        self._update_state()

    def _layers_changed(self, *_) -> None:
        for row in self.rows:
            row.image_box.reset_choices()
            row.labels_box.reset_choices()
            if row.labels_box.value is None:
                row.pick_matching_labels()
        self._update_state()

    def _folder(self) -> Path | None:
        text = self.folder.line_edit.value.strip()
        return Path(text).expanduser() if text else None

    def _folder_pairs(self) -> int:
        folder = self._folder()
        if not self.use_folder.value or folder is None or not folder.is_dir():
            return 0
        from ..core.training.frames import find_frames

        try:
            return sum(f.mask_path is not None for f in find_frames(folder))
        except Exception:  # noqa: BLE001 - an unreadable folder counts as empty; Train names the problem
            return 0

    def _layer_pairs(self) -> list[PairRow]:
        return [r for r in self.rows if r.image_box.value is not None and r.labels_box.value is not None]

    # -- state
    def problem(self) -> str:
        if self.settings.problem:
            return self.settings.problem
        if not self.minutes.value and not self.max_steps.value:
            return "give a time budget (minutes) or a number of steps: training needs an end"
        for r in self.rows:
            if r.image_box.value is not None and r.labels_box.value is None:
                return f"choose the Labels layer of {r.image_box.value.name!r} (or remove the pair)"
        if not self._layer_pairs() and not self._folder_pairs():
            return ("add an image with its Labels layer (segment it and correct the result, or paint a new "
                    "Labels layer), or a training folder with pairs")
        return ""

    def side_enabled(self) -> bool:
        return not self.running

    def restore_defaults(self, *_) -> None:
        super().restore_defaults()
        self.persist.restore_defaults()

    # -- run
    def _out_dir(self, start: Path) -> Path:
        text = self.out.line_edit.value.strip()
        if text:
            return Path(text).expanduser()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return _settings.settings_path().parent / "models" / f"{start.name}-tuned-{stamp}"

    def request(self) -> TrainRequest:
        rows = self._layer_pairs()
        images, labels, names = [], [], []
        for r in rows:
            img, lab = r.image_box.value, r.labels_box.value
            if img.multiscale or lab.multiscale:
                raise InputImageError(f"{img.name!r}: multiscale layers cannot be training pairs; use a single-scale "
                                      "image and labels (e.g. a crop)")
            data = np.asarray(img.data)
            if img.rgb:
                from ._base import _grey_rgb

                if not _grey_rgb(img):
                    raise InputImageError(f"layer {img.name!r} is a colour (RGB) image; QPI training needs the "
                                          "single-channel phase image")
                data = data[..., 0]
            images.append(data.copy())  # captured: painting on after Train changes nothing
            labels.append(np.asarray(lab.data).copy())
            names.append(img.name)
        start = self.settings.bundle_dir()
        cfg = FineTuneConfig(train=self.what.value, minutes=self.minutes.value or None,
                             steps=self.max_steps.value or None, holdout=self.holdout.value,
                             device=self.settings.device.value, seed=self.settings.seed.value,
                             input_scale=float(self.input_scale.value) if self.input_scale.value else None)
        folder = self._folder() if self._folder_pairs() else None
        classes = tuple(self.class_choice.value.split(",")) if self.class_choice.value else None
        return TrainRequest(tuple(images), tuple(labels), tuple(names), folder, start, self._out_dir(start), cfg,
                            self.labels_are.value, classes, self.objects.value, self.settings.threads.value)

    def run(self, *_) -> None:
        req = self._take_request()
        if req is None:
            return
        self._request = req
        self.last_result = None
        self.losses = []
        self.result.value = ""
        self._redraw(force=True)
        self._start(TrainRunner(req, self._load_bundle), ProgressBars(f"PG-DiffSeg training {req.out.name}"),
                    f"training {req.out.name} ...")

    def _on_progress(self, p: FineTuneProgress) -> None:
        bars = self.bars
        if bars is None:
            return
        r = p.step
        if r is None:
            bars.set_inner(0, 1, p.phase)
            return
        self.losses.append(r.loss)  # throttled reports: the curve shows every report's last loss
        fraction = r.step / r.steps if r.steps and r.steps < 10**9 else 0.0
        if r.budget:
            fraction = max(fraction, min(r.elapsed / r.budget, 1.0))
        bars.set_inner(int(1000 * fraction), 1000, f"{r.stage} step {r.step} · loss {r.loss:.4f}")
        self._redraw()

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_draw > 0.5:
            self._last_draw = now
            from ._inspector import theme_colors

            _draw_losses(self.canvas.figure, self.losses, theme_colors(self.viewer))

    def _on_result(self, result: FineTuneResult) -> None:
        self.last_result = result
        if result.losses:
            self.losses = list(result.losses)
        self._redraw(force=True)
        self.result.value = result.text()
        if result.kind == "bundle":
            TRAINED.add(result.out)
            show_info(f"PG-DiffSeg: trained {result.out.name}; it is now in the model lists of the Segment and "
                      "Batch widgets")
        else:
            show_info(f"PG-DiffSeg: U-Net baseline written to {result.out} (for comparison; the widgets segment "
                      "with PG-DiffSeg models)")
        if result.warning:
            show_warning(f"PG-DiffSeg: {result.warning}")

    def finished_text(self) -> str:
        r = self.last_result
        if r is None:
            return ""
        return f"trained {r.out.name}" + (" (not better than the starting model)" if r.warning else "")

    def _on_cancelled(self) -> None:
        self._redraw(force=True)
        req = self._request
        ckpt = req.out.with_name(req.out.name + ".ckpt")
        self.result.value = "cancelled: no model was written." + (
            f" The last checkpoint is kept in {ckpt}; Train again into the same folder to go on from it."
            if ckpt.is_dir() else "")
        show_info("PG-DiffSeg: training cancelled; no model was written")


__all__ = ["TrainRequest", "TrainRunner", "TrainWidget", "LABELS_ARE", "TRAIN_CHOICES"]

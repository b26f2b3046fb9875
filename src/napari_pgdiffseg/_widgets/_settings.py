"""The widgets' settings: every tooltip, settings that persist between sessions, the model
list and loader, and the settings form (`SettingsWidget`) the three dock widgets share.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, SpinBox
from psygnal import Signal
from qtpy.QtCore import QStandardPaths

from ..core import bundle as bundle_mod
from ..core.bundle import peek_bundle
from ..core.devices import DEVICES, available_devices, busy_hint, resolve_device
from ..core.errors import ConfigError, PGDiffSegError
from ..core.noise import STRATEGIES
from ..core.config import DEFAULT_SPEED, SETTINGS_HELP, SPEED_PRESETS, SegmentConfig, model_config

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
    "speed": "fast: the chosen model's own settings (the fewest diffusion steps that lose no accuracy on "
             "held-out frames); paper: the paper's 100 inversion + 200 sampling steps, one view",
    "advanced": "show the diffusion settings the speed preset sets (starting noise, steps, views, tiles)",
    "preview": "segment what the canvas shows, at screen resolution with the fastest settings, again after "
               "every pan or zoom (a 'preview' layer); Run still segments the whole image",
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
    "save_labels": "write the labels as they are now, with your corrections, as <name>_labels.tif (and "
                   "<name>_cells.tif when the cell layers are shown)",
    "save_table": "write the summary (pixel fractions, cell counts, viability; one row per plane of a stack) as CSV",
    "open_results": "add the segmented images and their class labels (class colours) to the viewer",
    "train": "fine-tune the chosen model on the pairs (and the training folder) for the time given; the new "
             "model is checked on a held-out part against the starting model",
    "train_pairs": "an image layer and a Labels layer of the same size: the labels as they should be (e.g. a "
                   "segmentation corrected with napari's paint, fill and erase tools)",
    "add_pair": "add another image + labels pair",
    "remove_pair": "remove this pair",
    "labels_are": "class ids: 0 background, 1 the first class (live), 2 the next (dead) ...; cell ids: every id > 0 is "
                  "one cell of the first class (e.g. the plugin's cell layers, or instance masks)",
    "training_folder": "a folder of image/mask pairs (images/ + masks/ with the same names): 'Add to training set' "
                       "in the Segment widget stores pairs here",
    "use_folder": "also train on the pairs stored in the training folder",
    "train_classes": "the classes of the new model: the starting model's, or others (the segmentation head is "
                     "adapted: background stays background, a single 'cell' starts from 'live')",
    "train_objects": "how the new model counts objects: as the starting model, separate regions (nuclei), or "
                     "touching whole cells split by a watershed on the phase",
    "train_what": "LDM-S: the segmentation network (fast, the default); LDM-P + LDM-S: also the prior (images "
                  "unlike the model's own); U-Net: the deterministic baseline, for a comparison",
    "train_scale": "the new model's pixel size (its pixels per image pixel). auto: the starting model's, unless "
                   "your images are unlike its training images: then 1, the images' own pixels, so outlines keep "
                   "their detail",
    "minutes": "time budget in minutes (0: no limit, then give steps)",
    "max_steps": "step limit (0: no limit, then give minutes)",
    "holdout": "share of the labelled pixels held out to check the new model against the starting one (whole "
               "frames from 5 frames on, else the bottom rows of each frame); 0: no check",
    "model_out": "folder of the new model (empty: a new folder beside the settings, named after the model and the time)",
    "add_to_training": "store the image and its labels as they are now (with your corrections) as a pair in the "
                       "Train widget's training folder",
    "measure": "show the calibration of the per-cell table: with a wavelength and a pixel size (and a phase "
               "scale for images in grey levels) every cell gets its dry mass",
    "wavelength_nm": "illumination wavelength in nm (0: not known, no dry mass)",
    "pixel_size_um": "sample-plane pixel size in um (0: not known: areas in pixels, no dry mass)",
    "refractive_increment": "refractive increment alpha in mL/g (= um^3/pg); 0.18 is the usual value for cells",
    "phase_scale": "radians per grey level for images stored as grey levels (8-bit SLIM); 0: the image is in "
                   "radians (float images)",
    "time_lapse": "for a stack whose planes are time points: link the cells across frames into tracks (a Tracks "
                  "layer), with the frame each cell turned dead",
    "save_cells": "write one row per cell (class, area, centroid, phase, dry mass) as CSV",
    "cell_table": "open the table of the cells (one row each): click a column to sort, select a row to select "
                  "the cell in the viewer and centre it; picking a cell in its layer selects its row",
    "track_table": "open the table of the tracks of a time-lapse run: click a column to sort (e.g. by the frame "
                   "a cell dies), select a row to go to that frame and centre the cell",
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


class TrainedModels:
    """The models the user trained in the Train widget: bundle folders kept in the settings
    file, listed in every widget's model list after the shipped ones. `changed` is emitted
    when one is added, so open widgets update their lists at once."""

    changed = Signal()
    MAX = 20  # the most recent ones are listed

    def __init__(self):
        self.store = SettingsStore("trained_models")

    def folders(self) -> list[Path]:
        """Registered folders that still hold a bundle, newest first."""
        out = []
        for text in self.store.load().get("folders", []):
            path = Path(str(text))
            if (path / bundle_mod.CARD_NAME).is_file() and path not in out:
                out.append(path)
        return out

    def add(self, path: str | os.PathLike) -> None:
        path = Path(path).expanduser().resolve()
        folders = [path] + [p for p in self.folders() if p != path]
        self.store.save({"folders": [str(p) for p in folders[: self.MAX]]})
        self.changed.emit()


#: The one registry of trained models (widgets connect to `TRAINED.changed`).
TRAINED = TrainedModels()

#: The Train widget's settings section; its "training_folder" is also where the Segment
#: widget's "Add to training set" stores pairs.
TRAIN_SECTION = "train_data"


def default_training_folder() -> Path:
    return settings_path().parent / "training"


def training_folder() -> Path:
    """The training folder the Train widget uses (its field, or the default)."""
    text = str(SettingsStore(TRAIN_SECTION).load().get("training_folder") or "").strip()
    return Path(text).expanduser() if text else default_training_folder()


def model_choices() -> list[tuple[str, str]]:
    """(text, value) of the model list: the shipped models (the default first), the models the
    user trained (value: their folder), then 'bundle folder'."""
    names = bundle_mod.shipped_models()
    names = [bundle_mod.DEFAULT_MODEL] + [n for n in names if n != bundle_mod.DEFAULT_MODEL]
    out = []
    for name in names:
        try:
            card, _ = bundle_mod.peek_bundle(bundle_mod.MODELS_DIR / name)
            out.append((f"{name} ({card.mask_definition})", name))
        except PGDiffSegError:  # not installed: still listed, so the problem is shown, not hidden
            out.append((name, name))
    for path in TRAINED.folders():
        try:
            card, _ = bundle_mod.peek_bundle(path)
            out.append((f"{path.name} (yours: {card.mask_definition})", str(path)))
        except PGDiffSegError:
            continue
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


#: The speed choice of the Segment and Batch widgets: the presets, and "custom" once a
#: diffusion setting differs from both.
CUSTOM_SPEED = "custom"
SPEED_CHOICES = (("fast (the model's own settings)", "fast"), ("paper: 100 + 200 steps (about 15x slower)", "paper"),
                 ("custom (see the diffusion settings)", CUSTOM_SPEED))
#: The settings a speed preset decides (what sets the speed and quality of a run).
SPEED_FIELDS = ("strategy", "inversion_steps", "sampling_steps", "ensemble", "flips", "flip_scope")


def model_card_text(card) -> str:
    """The model's card in a few lines: what it is for, its training data, its held-out scores."""
    if card is None:
        return ""
    lines = []
    if card.description:
        lines.append(card.description)
    scores = card.headline_scores()
    if scores:
        lines.append(f"Held-out scores (frames it never saw): {scores}")
    if not card.ood:
        lines.append("No reference of its training images: it cannot warn when an image is unlike them.")
    return "\n".join(lines)


def _default_model_config() -> SegmentConfig:
    """The default model's settings (`config.model_config`), or plain defaults without it."""
    try:
        card, _ = peek_bundle(bundle_mod.MODELS_DIR / bundle_mod.DEFAULT_MODEL)
        return model_config(card)
    except PGDiffSegError:  # not installed: refresh names the problem
        return SegmentConfig()


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
        self.model_card = text_label(label="")  # what the model was trained on and how well it does
        self.model_card.native.setStyleSheet("color: #9aa0a6;")
        self.device = ComboBox(label="device", choices=_device_choices(), tooltip=tooltip("device"))
        self.threads = SpinBox(label="CPU threads", min=0, max=max(os.cpu_count() or 1, 1) * 2,
                               tooltip=tooltip("threads"))
        self.threads_hint = text_label(label="")
        self.strategy = ComboBox(label="starting noise", choices=list(STRATEGIES), tooltip=tooltip("strategy"))
        self.inversion_steps = SpinBox(label="inversion steps", min=1, max=1000, tooltip=tooltip("inversion_steps"))
        self.forward_t = SpinBox(label="forward step t", min=0, max=999, tooltip=tooltip("forward_t"))
        self.renormalise = CheckBox(text="renormalise noise", tooltip=tooltip("renormalise"))
        self.mix = FloatSpinBox(label="mix (lambda)", min=0.0, max=1.0, step=0.05, tooltip=tooltip("mix"))
        self.sampling_steps = SpinBox(label="sampling steps", min=1, max=1000, tooltip=tooltip("sampling_steps"))
        self.ensemble = SpinBox(label="ensemble k", min=1, max=64, tooltip=tooltip("ensemble"))
        self.flips = ComboBox(label="mirrored views", tooltip=tooltip("flips"), choices=[
            ("1 (off)", 1), ("2 (left-right)", 2), ("4 (+ up-down)", 4), ("8 (+ transposed)", 8)])
        self.flip_scope = ComboBox(label="views repeat", tooltip=tooltip("flip_scope"), choices=[
            ("the whole pipeline", "pipeline"), ("the sampling only", "sampling")])
        self.tile_size = text_label(label="tile size", tooltip=tooltip("tile_size"))
        self.overlap = SpinBox(label="tile overlap", min=0, max=1024, step=4, tooltip=tooltip("overlap"))
        self.tile_batch = SpinBox(label="tile batch", min=1, max=256, tooltip=tooltip("tile_batch"))
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, tooltip=tooltip("seed"))
        self.noise_metrics = CheckBox(text="noise SSIM / KLD", tooltip=tooltip("noise_metrics"))
        self.speed = ComboBox(label="speed", choices=list(SPEED_CHOICES), value=DEFAULT_SPEED, tooltip=tooltip("speed"))
        self.advanced = CheckBox(text="show the diffusion settings", value=False, tooltip=tooltip("advanced"))
        self.message = text_label(label="")
        self.message.native.setStyleSheet("color: #e0533d;")
        self.note = text_label(label="")  # e.g. a saved setting that was invalid and was reset
        self.note.visible = False

        self._config_widgets = {
            "device": self.device, "threads": self.threads, "seed": self.seed,
        }
        if sampling:
            self._config_widgets.update({
                "strategy": self.strategy, "inversion_steps": self.inversion_steps, "forward_t": self.forward_t,
                "renormalise": self.renormalise, "mix": self.mix, "sampling_steps": self.sampling_steps,
                "ensemble": self.ensemble, "flips": self.flips, "flip_scope": self.flip_scope,
                "overlap": self.overlap, "tile_batch": self.tile_batch,
                "noise_metrics": self.noise_metrics,
            })
        self.sampling = sampling
        shown = [self.model_source, self.bundle_path, self.model_info, self.model_card, self.device, self.threads,
                 self.threads_hint]
        # The diffusion internals: shown with "show the diffusion settings" (the speed preset
        # sets them); the inspector's form has only the seed.
        self._advanced = [self.seed]
        if sampling:
            self._advanced = [self.strategy, self.inversion_steps, self.forward_t, self.renormalise, self.mix,
                              self.sampling_steps, self.ensemble, self.flips, self.flip_scope, self.tile_size,
                              self.overlap,
                              self.tile_batch, self.seed, self.noise_metrics]
            shown += [self.speed, self.advanced]
        shown += self._advanced + [self.message, self.note]
        self.extend(shown)
        self._syncing_speed = False

        base = _default_model_config()  # a first start shows the default model's own settings
        defaults = {name: getattr(base, name) for name in self._config_widgets}
        defaults.update(model_source=bundle_mod.DEFAULT_MODEL, bundle_path="")
        persisted = {"model_source": self.model_source, "bundle_path": self.bundle_path, **self._config_widgets}
        if sampling:
            defaults.update(speed=DEFAULT_SPEED, advanced=False)
            persisted.update(speed=self.speed, advanced=self.advanced)
        self.persist = PersistedFields(store or SettingsStore(section), persisted, defaults)
        self.problem = ""
        self._raw_problem = ""  # the settings problem in the core's words (names the setting)
        # After the persisted values are restored: choosing a model sets what its card
        # recommends (e.g. the mirrored views it was scored with); a restart keeps the user's.
        TRAINED.changed.connect(self.update_models)
        self.model_source.changed.connect(self.apply_model_settings)
        self.bundle_path.changed.connect(self.apply_model_settings)
        self.speed.changed.connect(self.apply_speed)
        for w in persisted.values():  # not self.changed: refresh sets labels, which emit it too
            w.changed.connect(self.refresh)
        self.refresh()
        self._repair_restored()

    def _label_of(self, name: str) -> str:
        w = self._config_widgets.get(name)
        return (w.label or w.text or name.replace("_", " ")) if w is not None else name.replace("_", " ")

    def user_words(self, message: str) -> str:
        """A core message with the settings' code names (inversion_steps) as the form shows them."""
        for name in sorted(self._config_widgets, key=len, reverse=True):
            message = re.sub(rf"\b{name}\b", f"'{self._label_of(name)}'", message)
        return message

    def _repair_restored(self) -> None:
        """A saved setting that no longer validates (hand-edited, or from another version) would
        disable Run at every start: reset each setting the problem names to its default, and say so."""
        notes = []
        for _ in range(len(self._config_widgets)):
            raw = self._raw_problem
            named = [n for n in self._config_widgets if re.search(rf"\b{n}\b", raw)]
            named = [n for n in named if self._config_widgets[n].value != self.persist.defaults[n]]
            if not raw or not named:
                break
            for name in named:
                w = self._config_widgets[name]
                old = w.value
                w.value = self.persist.defaults[name]  # saves and refreshes
                notes.append(f"'{self._label_of(name)}' {old!r} -> {w.value!r}")
        if notes:
            self.note.value = ("A saved setting was not valid and was reset to its default: " + "; ".join(notes)
                               + ".")
            self.note.visible = True
            log.info("napari-pgdiffseg: %s", self.note.value)

    def update_models(self, *_) -> None:
        """List the models again (a model was trained), keeping the choice."""
        from ._jobs import qt_alive

        if not qt_alive(self.native):
            TRAINED.changed.disconnect(self.update_models)
            return
        value = self.model_source.value
        self.model_source.choices = model_choices()
        if value in [v for _, v in model_choices()]:
            self.model_source.value = value

    # -- values
    def bundle_dir(self) -> Path | None:
        """The chosen bundle folder (a shipped model's folder, a trained model's, or the folder typed in)."""
        value = self.model_source.value
        if value == FOLDER_SOURCE:
            text = self.bundle_path.line_edit.value.strip()
            return Path(text).expanduser() if text else None
        if value in bundle_mod.shipped_models() or not Path(value).is_absolute():
            return bundle_mod.MODELS_DIR / value
        return Path(value)

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
        elif str(Path(path).expanduser().resolve()) in list(self.model_source.choices):
            self.model_source.value = str(Path(path).expanduser().resolve())  # a model trained here
        else:
            self.bundle_path.value = Path(path)
            self.model_source.value = FOLDER_SOURCE

    def restore_defaults(self) -> None:
        """Every field to its default: the default model, and its card's settings."""
        self.persist.restore_defaults()
        self.apply_model_settings()
        self.refresh()

    def _card(self):
        path = self.bundle_dir()
        try:
            return peek_bundle(path)[0] if path is not None else None
        except PGDiffSegError:  # shown by refresh
            return None

    def apply_model_settings(self, *_) -> None:
        """Set the fields the chosen model's card names (``card.segment``), then the speed preset's."""
        card = self._card()
        values = dict(card.segment) if card is not None else {}
        if self.sampling and self.speed.value in SPEED_PRESETS:
            values.update(SPEED_PRESETS[self.speed.value])
        self._set_fields(values)

    def apply_speed(self, *_) -> None:
        """The speed preset chosen: every diffusion setting as `model_config(card, speed)` has it."""
        if self._syncing_speed or self.speed.value not in SPEED_PRESETS:
            return
        card = self._card()
        cfg = model_config(card, self.speed.value) if card is not None else \
            replace(SegmentConfig(), **SPEED_PRESETS[self.speed.value])
        self._set_fields({n: getattr(cfg, n) for n in SPEED_FIELDS})

    def _set_fields(self, values: dict) -> None:
        for name, value in values.items():
            widget = self._config_widgets.get(name)
            if widget is not None:
                try:
                    widget.value = value
                except (ValueError, TypeError):
                    log.warning("model card setting %s=%r does not fit the widget", name, value)

    def _sync_speed(self, card) -> None:
        """Show the preset the diffusion settings match, or 'custom' once the user changed one."""
        if not self.sampling or card is None:
            return
        shown = {n: self._config_widgets[n].value for n in SPEED_FIELDS}  # not config(): may be invalid now
        try:
            presets = {name: model_config(card, name) for name in SPEED_PRESETS}
        except PGDiffSegError:  # a card with bad settings: refresh names the problem
            return
        match = next((name for name, cfg in presets.items()
                      if all(getattr(cfg, n) == v for n, v in shown.items())), CUSTOM_SPEED)
        if match != self.speed.value:
            self._syncing_speed = True
            try:
                self.speed.value = match
            finally:
                self._syncing_speed = False

    # -- validation
    def _check(self) -> tuple[str, str, str]:
        """(problem, model info, tile size text)."""
        path = self.bundle_dir()
        if path is None:
            return "choose a model bundle folder", "", "-"
        try:
            card, timesteps = peek_bundle(path)
        except PGDiffSegError as e:
            if self.model_source.value != FOLDER_SOURCE and not Path(str(self.model_source.value)).is_absolute():
                return (f"The model {self.model_source.value!r} is not installed ({path}). Reinstall "
                        "napari-pgdiffseg, or choose 'bundle folder' and pick a model bundle.",
                        f"{self.model_source.value}: unavailable", "-")
            return str(e), "", "-"
        info = f"labels {card.mask_definition}: {', '.join(card.class_names)}"
        if card.modality:
            info += f"; for {card.modality}"
        if card.segment:
            info += "; scored with " + ", ".join(f"{k} {v}" for k, v in card.segment.items())
        tile = f"{card.tile_size} px"
        if card.input_scale != 1.0:  # the model works at another pixel size: say what a tile covers
            tile += f" (input scale {card.input_scale:g}: {card.tile_size / card.input_scale:.0f} px of the image)"
        try:
            self.config().validate(timesteps, card.tile_size)
            resolve_device(self.device.value)
        except ConfigError as e:
            self._raw_problem = str(e)
            return self.user_words(str(e)), info, tile
        return "", info, tile

    def refresh(self, *_) -> None:
        strategy = self.strategy.value
        show = self.advanced.value or not self.sampling
        for w in self._advanced:
            w.visible = show
        self.inversion_steps.visible = show and strategy == "prior"
        self.forward_t.visible = show and strategy == "forward"
        self.renormalise.visible = self.mix.visible = show and strategy != "random"
        # An ensemble needs randomness: the prior with the paper's rule (mix 1) and forward t=0
        # start every sample from the same noise, so k samples would be k identical runs.
        random_start = (strategy == "random" or (strategy == "forward" and self.forward_t.value > 0)
                        or (strategy != "random" and self.mix.value < 1.0))
        self.ensemble.visible = show and (random_start or self.ensemble.value > 1)
        self.bundle_path.visible = self.model_source.value == FOLDER_SOURCE
        self.threads.visible = str(self.device.value).split(":")[0] in ("cpu", "auto")
        hint = busy_hint() if self.threads.visible and self.threads.value == 0 else ""
        self.threads_hint.value = hint
        self.threads_hint.visible = bool(hint)
        self._sync_speed(self._card())
        self._raw_problem = ""
        problem, info, tile = self._check()
        card = self._card()
        self.model_card.value = model_card_text(card)
        self.model_card.visible = bool(self.model_card.value)
        self.model_card.tooltip = ("Trained on: " + card.scores["training_data"]) if card is not None and \
            card.scores.get("training_data") else ""
        self.model_info.value = info
        self.tile_size.value = tile
        self.message.value = problem
        self.message.visible = bool(problem)
        self.problem = problem
        self.validity.emit(problem)


class CalibrationFields(Container):
    """The per-cell table's calibration (`measure.Calibration`), shared by the Segment and Batch
    widgets: wavelength, pixel size, refractive increment, phase scale (0: not known), shown
    with "show the cell measures". Persisted in the settings section `section`."""

    def __init__(self, section: str):
        super().__init__(labels=True)
        self.margins = (0, 0, 0, 0)
        self.measure = CheckBox(text="show the cell measures (dry mass)", value=False, tooltip=tooltip("measure"))
        self.wavelength = FloatSpinBox(label="wavelength (nm)", min=0.0, max=100_000.0, step=1.0,
                                       tooltip=tooltip("wavelength_nm"))
        self.pixel_size = FloatSpinBox(label="pixel size (um)", min=0.0, max=1000.0, step=0.01,
                                       tooltip=tooltip("pixel_size_um"))
        self.refractive_increment = FloatSpinBox(label="refr. increment (mL/g)", min=0.01, max=1.0, step=0.01,
                                                 value=0.18, tooltip=tooltip("refractive_increment"))
        self.phase_scale = FloatSpinBox(label="phase scale (rad/level)", min=0.0, max=100.0, step=0.001,
                                        tooltip=tooltip("phase_scale"))
        for w in (self.pixel_size, self.phase_scale):
            w.native.setDecimals(4)
        self.fields = [self.wavelength, self.pixel_size, self.refractive_increment, self.phase_scale]
        self.extend([self.measure, *self.fields])
        self.persist = PersistedFields(
            SettingsStore(section),
            {"measure": self.measure, "wavelength_nm": self.wavelength, "pixel_size_um": self.pixel_size,
             "refractive_increment": self.refractive_increment, "phase_scale": self.phase_scale},
            {"measure": False, "wavelength_nm": 0.0, "pixel_size_um": 0.0, "refractive_increment": 0.18,
             "phase_scale": 0.0},
        )
        self.measure.changed.connect(self._show)
        self._show()

    def _show(self, *_) -> None:
        for w in self.fields:
            w.visible = self.measure.value

    def calibration(self):
        from ..core.measure import Calibration

        return Calibration(self.wavelength.value or None, self.pixel_size.value or None,
                           self.refractive_increment.value, self.phase_scale.value or None)

    def restore_defaults(self) -> None:
        self.persist.restore_defaults()

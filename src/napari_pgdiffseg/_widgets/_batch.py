"""The "Batch segment folder" dock widget: `core.batch.segment_files` on a worker.

Same settings widget as the main widget; the core writes `<name>_labels.tif` atomically,
skips files already done unless "overwrite" is ticked, and writes pgdiffseg_results.csv.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from magicgui.widgets import CheckBox, FileEdit, LineEdit, PushButton, SpinBox
from napari.utils.notifications import show_info

from ..core.batch import CSV_NAME, segment_files
from ..core.distributed import parse_scheduler
from ..core.errors import ConfigError
from ..core.config import SegmentConfig
from ..core.engine import Progress
from . import _jobs, _settings
from ._base import RunWidget
from ._jobs import ProgressBars, Runner, Throttle
from ._settings import PersistedFields, SettingsStore, SettingsWidget, tooltip

DEFAULT_PATTERN = "*.tif; *.tiff; *.png; *.h5"
MAX_OPEN = 20  # "Open results" adds at most this many image + labels pairs


def find_files(folder: str | Path, pattern: str) -> list[Path]:
    """Files in `folder` matching any of the ';'-separated glob patterns, sorted, without duplicates."""
    folder = Path(folder)
    found = set()
    for pat in (p.strip() for p in pattern.split(";")):
        if pat:
            found.update(p for p in folder.glob(pat) if p.is_file())
    return sorted(found)


@dataclass(frozen=True)
class BatchRequest:
    paths: tuple[Path, ...]
    out_dir: Path
    bundle_dir: Path
    config: SegmentConfig
    overwrite: bool = False
    min_area: int | None = None  # None: the model's setting (bundle card "instances")
    scheduler: str | None = None  # None: here; 'local' or an address: Dask (core.distributed)
    workers: int | None = None
    calibration: object = None  # measure.Calibration of the per-cell tables


class BatchRunner(Runner):
    """Loads the model once and segments every file through the core (no Qt)."""

    def __call__(self, report: Callable[[tuple], None], cancel: threading.Event) -> list[dict]:
        req = self.request
        # With Dask the workers load the bundle, once each; this process only reads its card.
        bundle = self.load_bundle(req.bundle_dir) if req.scheduler is None else req.bundle_dir
        send = Throttle(report)
        state = {"file": 0}

        def on_file(i: int, n: int, row: dict) -> None:
            state["file"] = i + 1
            send(("file", i, n, row), force=True)

        def progress(plane: int, n_planes: int, p: Progress) -> None:
            send(("tiles", state["file"], len(req.paths), plane, n_planes, p),
                 force=p.evals_done in (0, p.evals_total))

        return segment_files(list(req.paths), bundle, req.config, req.out_dir, overwrite=req.overwrite,
                             on_file=on_file, progress=progress, cancel=cancel, min_area=req.min_area,
                             scheduler=req.scheduler, workers=req.workers, calibration=req.calibration)


def rows_text(rows: list[dict]) -> str:
    done = sum(r["status"] == "ok" for r in rows)
    skipped = sum(r["status"].startswith("skipped") for r in rows)
    errors = len(rows) - done - skipped
    return f"{done} segmented · {skipped} skipped · {errors} failed"


class BatchWidget(RunWidget):
    """Batch segment folder."""

    def __init__(self, napari_viewer=None, *, use_thread: bool = True):
        super().__init__(napari_viewer, SettingsWidget("batch"), use_thread=use_thread)
        self.defaults_button = self.side_button
        self.rows: list[dict] = []
        self._final = ""

        self.input_dir = FileEdit(label="input folder", mode="d", tooltip=tooltip("input_dir"))
        self.pattern = LineEdit(label="files", tooltip=tooltip("pattern"))
        self.output_dir = FileEdit(label="output folder", mode="d", tooltip=tooltip("output_dir"))
        self.overwrite = CheckBox(text="overwrite done files", tooltip=tooltip("overwrite"))
        self.scheduler = LineEdit(label="Dask scheduler", tooltip=tooltip("scheduler"))
        self.workers = SpinBox(label="Dask workers", min=0, max=256, tooltip=tooltip("workers"))
        self.open_button = PushButton(text="Open results", enabled=False, tooltip=tooltip("open_results"))
        self.open_button.changed.connect(self.open_results)
        self.measures = _settings.CalibrationFields("batch_measures")
        self.extend([self.input_dir, self.pattern, self.output_dir, self.overwrite, self.settings, self.measures,
                     self.scheduler, self.workers, self.buttons, self.progress.widget, self.status, self.open_button])
        # Dask is for clusters and big batches: its fields sit with the other advanced settings.
        self.settings.advanced.changed.connect(self._show_advanced)
        self._show_advanced()
        self.persist = PersistedFields(
            SettingsStore("batch_files"),
            {"input_dir": self.input_dir, "pattern": self.pattern, "output_dir": self.output_dir,
             "overwrite": self.overwrite, "scheduler": self.scheduler, "workers": self.workers},
            {"input_dir": "", "pattern": DEFAULT_PATTERN, "output_dir": "", "overwrite": False, "scheduler": "",
             "workers": 0},
        )
        for w in (self.input_dir, self.pattern, self.output_dir, self.scheduler):
            w.changed.connect(self._update_state)
        self._update_state()

    def _show_advanced(self, *_) -> None:
        shown = bool(self.settings.advanced.value) or bool(self.scheduler.value.strip())  # never hide one in use
        self.scheduler.visible = self.workers.visible = shown

    def result_pairs(self) -> list[tuple[Path, Path]]:
        """(input file, labels file) of the last run's files that have their labels."""
        pairs = []
        for r in self.rows:
            out = r.get("output") or ""
            if r.get("status", "").startswith(("ok", "skipped")) and out and Path(out).is_file():
                pairs.append((Path(r["file"]), Path(out)))
        return pairs

    def open_results(self, *_) -> list:
        """Add each segmented file and its class labels (the reader's Labels layer, class colours)
        to the viewer: at most MAX_OPEN pairs, the rest named in a notification."""
        from napari.layers import Layer

        from .._reader import read_output
        from ..core.errors import PGDiffSegError
        from ..core.files import read_image

        pairs = self.result_pairs()
        added = []
        for image_path, labels_path in pairs[:MAX_OPEN]:
            try:
                image = read_image(image_path)
            except PGDiffSegError as e:
                _jobs.notify_error(e)
                continue
            added.append(self.viewer.add_image(image, name=image_path.stem))
            for data, kwargs, kind in read_output(labels_path):
                added.append(self.viewer.add_layer(Layer.create(data, kwargs, kind)))
        if len(pairs) > MAX_OPEN:
            show_info(f"PG-DiffSeg: opened the first {MAX_OPEN} of {len(pairs)} results; the others are in "
                      f"{self._out}")
        return added

    def out_dir(self) -> Path | None:
        text = self.output_dir.line_edit.value.strip()
        if text:
            return Path(text).expanduser()
        inp = self.input_dir.line_edit.value.strip()
        return Path(inp).expanduser() / "pgdiffseg" if inp else None

    def problem(self) -> str:
        if self.settings.problem:
            return self.settings.problem
        inp = self.input_dir.line_edit.value.strip()
        if not inp:
            return "choose an input folder"
        if not Path(inp).expanduser().is_dir():
            return f"input folder {inp} does not exist"
        if not self.pattern.value.strip():
            return "give a file pattern, e.g. *.tif"
        if self.scheduler.value.strip():
            try:
                parse_scheduler(self.scheduler.value)
            except ConfigError as e:
                return str(e)
        return ""

    def restore_defaults(self, *_):
        super().restore_defaults()
        self.persist.restore_defaults()
        self.measures.restore_defaults()

    def run(self, *_) -> None:
        if not self._may_run():
            return
        inp = Path(self.input_dir.line_edit.value.strip()).expanduser()
        paths = find_files(inp, self.pattern.value)
        if not paths:
            _jobs.show_error(f"no file in {inp} matches {self.pattern.value!r}")
            return
        req = BatchRequest(tuple(paths), self.out_dir(), self.settings.bundle_dir(), self.settings.config(),
                           self.overwrite.value, scheduler=self.scheduler.value.strip() or None,
                           workers=self.workers.value or None, calibration=self.measures.calibration())
        self.rows = []
        self._final = ""
        self._out = req.out_dir
        self._start(BatchRunner(req, self._load_bundle), ProgressBars("tiles", len(paths), "files"),
                    f"segmenting {len(paths)} files into {req.out_dir} ...")

    def _on_progress(self, value) -> None:
        bars = self.bars  # updating a bar may process events, including the end of the job
        if value[0] == "file":
            _, i, n, row = value
            self.rows.append(row)
            self.status.value = f"{Path(row['file']).name}: {row['status']}\n{rows_text(self.rows)}"
            if bars is not None:
                bars.set_outer(i + 1, f"file {min(i + 2, n)}/{n}")
        elif bars is not None:
            _, f, n, plane, n_planes, p = value
            desc = f"file {f + 1}/{n} · tiles {p.tiles_done}/{p.tiles_total}"
            if n_planes > 1:
                desc += f" · plane {plane + 1}/{n_planes}"
            bars.set_inner(p.evals_done, p.evals_total, desc)

    def _on_result(self, rows: list[dict]) -> None:
        self.rows = rows
        self._final = f"{rows_text(rows)} → {self._out / CSV_NAME}"
        failed = [r for r in rows if r["status"].startswith("error")]
        if failed:  # one notification for the batch, naming the first problem
            first = failed[0]
            reason = first["status"][len("error: "):]
            if reason.startswith(first["file"] + ": "):  # reader errors name the path already
                reason = reason[len(first["file"]) + 2:]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            _jobs.show_error(f"{Path(first['file']).name}: {reason}{more}; "
                               f"{len(failed)} of {len(rows)} files failed, see {self._out / CSV_NAME}")

    def _on_cancelled(self) -> None:
        self._final = f"cancelled: {rows_text(self.rows)} → {self._out / CSV_NAME}"
        show_info(f"PG-DiffSeg: batch cancelled after {len(self.rows)} files; the CSV lists them")

    def finished_text(self) -> str:
        self.open_button.enabled = bool(self.result_pairs())
        text, self._final = self._final, ""
        return text

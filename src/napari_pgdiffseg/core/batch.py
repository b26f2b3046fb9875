"""Segment a list of image files into `<name>_labels.tif` (classes) and `<name>_cells.tif`
(one id per cell) files plus one CSV row per file (one file's job: `core.filejob`).

Shared by the CLI and the napari batch widget. Outputs are written atomically; files whose
output already exists are skipped unless `overwrite`, so an interrupted batch resumes. A
bad file is recorded in its row and the batch goes on. With a Dask scheduler the files are
spread over a cluster's workers (`core.distributed`) and the CSV is assembled here from the
rows they return.
"""

from __future__ import annotations

import csv
import io as _io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .errors import ConfigError, PGDiffSegError, SegmentationCancelled
from .filejob import cells_path, cells_table_path, error_row, output_path, segment_file
from .files import atomic_write
from .engine import CancelCheck, Progress, cancel_check
from .config import SegmentConfig
from .cells import foreground_classes

CSV_NAME = "pgdiffseg_results.csv"
_HEAD = ("file", "status", "output", "cells_output", "cells_table", "tracks_table", "tracks", "planes")
_TAIL = ("viability_percent", "nfe", "seconds", "noise_ssim", "noise_kld", "outlier_pixels", "nan_pixels", "unlikeness",
         "unlike_training", "device")


def csv_fields(class_names: Sequence[str]) -> list[str]:
    """CSV columns: file, status, outputs, planes, a pixel fraction and a cell count per class, cost."""
    fg = [n for _, n in foreground_classes(class_names)]
    return [*_HEAD, *(f"fraction_{n}" for n in class_names), *(f"{n}_cells" for n in fg),
            *(f"{n}_dry_mass_{s}_pg" for n in fg for s in ("total", "mean")), "mass_note", *_TAIL]


def segment_files(
    paths: Sequence[str | os.PathLike],
    bundle: Bundle | str | os.PathLike | None,
    config: SegmentConfig,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    on_file: Callable[[int, int, dict], None] | None = None,
    progress: Callable[[int, int, Progress], None] | None = None,
    cancel: CancelCheck | None = None,
    min_area: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    calibration=None,
    time_lapse: bool | None = None,
    channel=None,
) -> list[dict]:
    """Segment every file; returns the rows (in input order) also written to `out_dir`/pgdiffseg_results.csv.

    bundle: a loaded `Bundle`, a shipped model's name, a bundle folder, or None for the default model.
    scheduler: None segments here, one file after another. 'local' starts a Dask
        LocalCluster of `workers` processes; an address ('tcp://host:8786') uses a running
        cluster, whose workers must see the bundle folder, the inputs and `out_dir` at the
        same paths. Each worker loads the bundle once and writes its files atomically
        (`core.distributed`); `progress` is then not called (on_file still is).
    calibration: a `measure.Calibration` for the per-cell tables (`<stem>_cells.csv`: dry mass
    needs a wavelength, a pixel size and phase in radians or a phase scale). time_lapse: stacks
    are time-lapses (None: as each file's OME/ImageJ axes say): `<stem>_tracks.csv` too.
    channel: the channel (index or name) of hyperstacks with a C axis.
    on_file(i, n, row) is called after each file (with a scheduler: in finishing order,
    i counting finished files). Cancelling stops before the next network evaluation (here)
    or cancels the pending tasks (Dask); the rows so far are written and
    `SegmentationCancelled` is re-raised.
    """
    out_dir = Path(out_dir)
    paths = [Path(p) for p in paths]
    if scheduler is not None:
        from .distributed import parse_scheduler

        scheduler = parse_scheduler(scheduler, workers)
    card, timesteps, bundle_dir, loaded = _resolve_bundle(bundle, need_weights=scheduler is None)
    config.validate(timesteps, card.tile_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    earlier = read_rows(out_dir / CSV_NAME)
    rows: list[dict | None] = [None] * len(paths)
    todo: list[int] = []
    for i, path in enumerate(paths):
        out = output_path(out_dir, path)
        if out.exists() and not overwrite:
            # Keep the earlier run's numbers, so a resumed batch's table still describes
            # every file, as an uninterrupted run's does.
            rows[i] = {**earlier.get(file_key(path), {}), "file": str(path), "status": "skipped: output exists",
                       "output": str(out)}
        else:
            todo.append(i)
    finished = 0

    def record(i: int, row: dict) -> None:
        nonlocal finished
        rows[i] = row
        if on_file is not None:
            on_file(finished, len(paths), row)
        finished += 1

    try:
        for i in range(len(paths)):  # the skipped files first, in order
            if rows[i] is not None:
                record(i, rows[i])
        if scheduler is None:
            for i in todo:
                try:
                    row = segment_file(paths[i], loaded, config, out_dir, progress=progress, cancel=cancel,
                                       min_area=min_area, calibration=calibration, time_lapse=time_lapse,
                                       channel=channel)
                except SegmentationCancelled:
                    raise
                except (PGDiffSegError, OSError, ValueError) as e:
                    row = error_row(paths[i], e)
                record(i, row)
        elif todo:
            from .distributed import run_distributed  # imports dask.distributed: only when asked

            run_distributed([paths[i] for i in todo], bundle_dir, config, out_dir, scheduler=scheduler,
                            workers=workers, on_row=lambda j, row: record(todo[j], row),
                            cancelled=cancel_check(cancel), min_area=min_area, calibration=calibration,
                            time_lapse=time_lapse, channel=channel)
    finally:
        if scheduler is not None:
            _remove_temp_files(out_dir, [paths[i] for i in todo])
        write_csv(out_dir / CSV_NAME, [r for r in rows if r is not None], card.class_names)
    return [r for r in rows if r is not None]


def _remove_temp_files(out_dir: Path, paths: Sequence[Path]) -> None:
    """Remove the temporary files of a worker killed mid-write (`atomic_write` names them
    `.<output name>.*.tmp`); the final names only ever hold complete files."""
    for path in paths:
        for name in (output_path(out_dir, path).name, cells_path(out_dir, path).name,
                     cells_table_path(out_dir, path).name):
            for tmp in out_dir.glob(f".{name}.*.tmp"):
                try:
                    tmp.unlink()
                except OSError:
                    pass


def _resolve_bundle(bundle, *, need_weights: bool):
    """(card, num_train_timesteps, bundle folder, loaded Bundle or None).

    `bundle`: a loaded `Bundle`, a shipped model's name, a bundle folder, or None (the default model).
    """
    from .bundle import load_bundle, peek_bundle, resolve_model

    if isinstance(bundle, Bundle):
        if not need_weights and bundle.path is None:
            raise ConfigError("a bundle made in memory cannot be sent to Dask workers; save_bundle it and pass its folder")
        folder = None if bundle.path is None else str(bundle.path)
        return bundle.card, bundle.num_train_timesteps, folder, bundle
    folder = str(resolve_model(bundle))
    if need_weights:
        loaded = load_bundle(folder)
        return loaded.card, loaded.num_train_timesteps, folder, loaded
    card, timesteps = peek_bundle(folder)
    return card, timesteps, folder, None


PATH_FIELDS = ("file", "output", "cells_output", "cells_table", "tracks_table")


def file_key(path: str | os.PathLike) -> str:
    """How a file is matched between runs: its absolute, normalised path."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def read_rows(path: Path) -> dict[str, dict]:
    """{file_key: row} of the successful or skipped rows of an earlier batch table (empty if
    none); the table's paths, relative to its folder, are made absolute again."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh)
                    if r.get("file") and r.get("status", "").startswith(("ok", "skipped"))]
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    out = {}
    for r in rows:
        for k in PATH_FIELDS:
            if r.get(k):
                r[k] = file_key(path.parent / r[k])  # an absolute path stays as it is
        out[r["file"]] = r
    return out


def _cell(key: str, value, folder: Path) -> str:
    """One CSV cell as a person reads it: paths relative to the table's folder, floats to 4
    significant digits (whole seconds to 0.01 s), NaN empty."""
    if value is None or value == "":
        return ""
    if key in PATH_FIELDS:
        try:
            return os.path.relpath(file_key(value), file_key(folder))
        except ValueError:  # another drive (Windows): keep it absolute
            return str(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            return ""
        return f"{v:.2f}" if key == "seconds" else f"{v:.4g}"
    return str(value)


def write_csv(path: Path, rows: list[dict], class_names: Sequence[str]) -> Path:
    """Atomically write the batch rows (missing fields left empty; `_cell` formats)."""
    path = Path(path)
    fields = csv_fields(class_names)
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(k, row.get(k, ""), path.parent) for k in fields})
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))

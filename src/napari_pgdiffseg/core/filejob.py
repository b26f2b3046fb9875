"""One file's job: read it, segment it (a frame or a stack of planes), write
`<stem>_labels.tif` and `<stem>_cells.tif` atomically, and return its results row.

Used by `core.batch` (files one after another here) and `core.distributed` (one Dask task
per file); the row and the error row are built only here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .files import read_image
from .files import atomic_write, write_tiff
from .engine import CancelCheck, Progress
from .config import SegmentConfig
from .pipeline import segment_stack
from .preprocess import as_planes
from .cells import InstanceConfig, cell_instances, instance_dtype, summarize_planes
from .measure import Calibration, cell_table, cells_csv_text, mass_summary, read_calibration


def output_path(out_dir: str | os.PathLike, image_path: str | os.PathLike) -> Path:
    """`<stem>_labels.tif`: the class of every pixel (written last: its presence means "done")."""
    return Path(out_dir) / f"{Path(image_path).stem}_labels.tif"


def cells_path(out_dir: str | os.PathLike, image_path: str | os.PathLike) -> Path:
    """`<stem>_cells.tif`: one id per cell (touching cells split), 0 background."""
    return Path(out_dir) / f"{Path(image_path).stem}_cells.tif"


def cells_table_path(out_dir: str | os.PathLike, image_path: str | os.PathLike) -> Path:
    """`<stem>_cells.csv`: one row per cell (area, centroid, phase, dry mass; `core.measure`)."""
    return Path(out_dir) / f"{Path(image_path).stem}_cells.csv"


def tracks_path(out_dir: str | os.PathLike, image_path: str | os.PathLike) -> Path:
    """`<stem>_tracks.csv`: one row per cell track of a time-lapse (`core.tracking`)."""
    return Path(out_dir) / f"{Path(image_path).stem}_tracks.csv"


def stack_axes(path: str | os.PathLike) -> str:
    """The axes a TIFF's OME/ImageJ metadata give its first series ('TYX', 'ZYX', ...; '' when unknown)."""
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return ""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not (tif.is_ome or tif.is_imagej):
                return ""
            return str(tif.series[0].axes).upper()
    except (OSError, ValueError, IndexError):
        return ""


def segment_file(path: str | os.PathLike, bundle: Bundle, config: SegmentConfig, out_dir: str | os.PathLike,
                 *, progress: Callable[[int, int, Progress], None] | None = None,
                 cancel: CancelCheck | None = None, min_area: int | None = None,
                 calibration: Calibration | None = None, time_lapse: bool | None = None,
                 channel=None) -> dict:
    """Segment one file (a frame or a stack of planes), write its labels, cells and per-cell
    table, return its CSV row.

    min_area: smallest cell kept in `<stem>_cells.tif` and counted, in px (None: the
    bundle card's instance setting). calibration: wavelength, pixel size, refractive
    increment, phase scale for the per-cell table (values it lacks are read from the
    file's OME/ImageJ metadata where present). time_lapse: the planes of a stack are time
    points (None: when the file's OME/ImageJ axes say T): cells are linked across them
    (`core.tracking`) into `<stem>_tracks.csv` and `<stem>_viability.png`. channel: the
    channel (index or name) of an OME / ImageJ hyperstack with a C axis.
    """
    image = read_image(path, channel=channel)
    planes, was_stack = as_planes(image, name=Path(path).name)
    # Hand segment_stack the frame itself when it is 2D: re-reading a (1, h, 3) plane stack
    # would take it for an RGB image.
    results = segment_stack(planes if was_stack else image, bundle, config, progress=progress, cancel=cancel)
    names = bundle.card.class_names
    icfg = InstanceConfig.from_dict(bundle.card.instances)
    if min_area is not None:
        icfg = replace(icfg, min_area=min_area)
    cells = [cell_instances(r.labels, p, names, icfg) for r, p in zip(results, planes)]
    labels = np.stack([r.labels for r in results]) if was_stack else results[0].labels
    ids = np.stack(cells) if was_stack else cells[0]
    axes = "ZYX" if was_stack else "YX"
    # Cells first, labels last: an interrupted run leaves no labels file, so it is redone.
    cells_out = write_tiff(cells_path(out_dir, path), ids.astype(instance_dtype(int(ids.max()))),
                           metadata=output_metadata(bundle.card, "cells", axes))
    cal = (calibration or Calibration()).merged(read_calibration(path))
    per_cell = []
    for k, (r, p, c) in enumerate(zip(results, planes, cells)):
        per_cell += cell_table(c, r.labels, p, names, cal, plane=k + 1 if was_stack else None)
    mass_note = cal.why_no_mass(np.asarray(planes).dtype)
    if time_lapse is None:
        time_lapse = "T" in stack_axes(path)
    tracks_out = None
    if was_stack and time_lapse:
        from .tracking import link_frames, track_rows, tracks_csv_text, viability_figure, viability_over_time

        axes = "TYX"
        tracks = track_rows(link_frames(cells), per_cell)
        tracks_text = tracks_csv_text(tracks)
        tracks_out = atomic_write(tracks_path(out_dir, path), lambda tmp: Path(tmp).write_text(tracks_text))
        if "live" in names and "dead" in names:
            viability_figure(Path(out_dir) / f"{Path(path).stem}_viability.png",
                             viability_over_time(per_cell, len(results)), Path(path).name)
    table_text = cells_csv_text(per_cell, mass_note, stack=was_stack)
    table = atomic_write(cells_table_path(out_dir, path), lambda tmp: Path(tmp).write_text(table_text))
    out = write_tiff(output_path(out_dir, path), labels, metadata=output_metadata(bundle.card, "classes", axes))
    row = {
        "file": str(path), "status": "ok", "output": str(out), "cells_output": str(cells_out),
        "cells_table": str(table), "tracks_table": "" if tracks_out is None else str(tracks_out),
        "tracks": "" if tracks_out is None else len(tracks), "planes": len(results),
        **summarize_planes([r.labels for r in results], names, instances=cells),
        **mass_summary(per_cell, names), "mass_note": mass_note,
        "nfe": results[0].nfe,
        "seconds": sum(r.seconds for r in results),
        "noise_ssim": float(np.mean([r.noise_ssim for r in results])),
        "noise_kld": float(np.mean([r.noise_kld for r in results])),
        "outlier_pixels": sum(r.outlier_pixels for r in results),
        "nan_pixels": sum(r.nan_pixels for r in results),
        # How unlike the model's training images the file is (core.ood; the highest plane).
        "unlikeness": max((r.ood_score for r in results), default=float("nan")),
        "unlike_training": "yes" if any(r.ood_warning for r in results) else ("" if bundle.card.ood else "n/a"),
        "device": results[0].device,
    }
    return row


#: The key of the plugin's own metadata in its output TIFFs (tifffile's JSON description):
#: what the values mean, so the napari reader opens them as Labels with the class colours.
OUTPUT_METADATA_KEY = "pgdiffseg"


def output_metadata(card, kind: str, axes: str = "YX") -> dict:
    """tifffile `metadata` of a `<stem>_labels.tif` (kind 'classes') or `<stem>_cells.tif` ('cells')."""
    return {"axes": axes, OUTPUT_METADATA_KEY: {
        "kind": kind, "model": card.name, "class_names": list(card.class_names),
        "colors": [list(c) for c in card.colors], "mask_definition": card.mask_definition}}


def error_row(path: str | os.PathLike, error: BaseException | str, *, with_type: bool = False) -> dict:
    """The results row of a file that could not be segmented.

    with_type: prefix the exception's class name (for unexpected errors, e.g. a Dask
    worker's `KilledWorker`, where the message alone says little).
    """
    text = f"{type(error).__name__}: {error}" if with_type and isinstance(error, BaseException) else str(error)
    return {"file": str(path), "status": f"error: {text}", "output": ""}

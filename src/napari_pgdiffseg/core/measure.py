"""Per-cell QPI measurements: area, centroid, phase and dry mass of every cell.

A phase image gives each cell's dry mass (Barer 1952; Popescu et al. 2008):

    m = lambda / (2 pi alpha) * sum over the cell of (phi - phi_background) * pixel area

with phi in radians, the wavelength lambda and the pixel size in um, and the refractive
increment alpha in um^3/pg (0.18 mL/g = 0.18 um^3/pg, the usual value for cells). The
background phase is the median over the pixels the segmentation calls background, so a
constant offset of the phase map does not change the masses.

The regions come from `cells.cell_instances` (the `<stem>_cells.tif` ids); the numbers
from scikit-image's `regionprops_table`. Images that are not in radians (8-bit SLIM PNGs)
need a phase scale (radians per grey level); without it, or without a wavelength and a
pixel size, the mass columns stay empty and `Calibration.why_no_mass` says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError

#: Columns of `<stem>_cells.csv`, in order (`plane` only for stacks).
CELL_COLUMNS = ("plane", "cell_id", "class", "area_px", "area_um2", "centroid_y", "centroid_x", "mean_phase_rad",
                "integrated_phase_rad", "dry_mass_pg")
DEFAULT_REFRACTIVE_INCREMENT = 0.18  # mL/g = um^3/pg


def _positive(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Calibration:
    """What turns pixels into physical units. None: not known (the columns that need it stay empty).

    wavelength_nm: illumination wavelength. pixel_size_um: the sample-plane pixel size.
    refractive_increment: alpha in mL/g (= um^3/pg). phase_scale: radians per grey level,
    for images stored as grey levels (None: a float image is taken to be in radians, an
    integer image gets no phase columns).
    """

    wavelength_nm: float | None = None
    pixel_size_um: float | None = None
    refractive_increment: float = DEFAULT_REFRACTIVE_INCREMENT
    phase_scale: float | None = None

    def __post_init__(self):
        for name in ("wavelength_nm", "pixel_size_um", "phase_scale"):
            object.__setattr__(self, name, _positive(name.replace("_", " "), getattr(self, name)))
        object.__setattr__(self, "refractive_increment", _positive("refractive increment", self.refractive_increment))

    def merged(self, other: "Calibration | None") -> "Calibration":
        """This calibration, with the values it lacks taken from `other` (e.g. read from the file)."""
        if other is None:
            return self
        return Calibration(self.wavelength_nm or other.wavelength_nm, self.pixel_size_um or other.pixel_size_um,
                           self.refractive_increment, self.phase_scale or other.phase_scale)

    def phase_unit(self, image_dtype) -> str:
        """'' when the image gives phase in radians (float, or a phase scale), else the reason it does not."""
        if self.phase_scale is not None or np.dtype(image_dtype).kind == "f":
            return ""
        return ("the image holds grey levels, not radians: give the phase scale (radians per grey level, "
                "--phase-scale) for phase and dry mass")

    def why_no_mass(self, image_dtype) -> str:
        """'' when dry mass can be computed, else what is missing (one line)."""
        missing = [what for what, v in (("the wavelength (--wavelength-nm)", self.wavelength_nm),
                                        ("the pixel size (--pixel-size-um)", self.pixel_size_um)) if v is None]
        phase = self.phase_unit(image_dtype)
        if phase:
            missing.insert(0, "the phase scale (--phase-scale, radians per grey level: the image holds grey levels)")
        return "" if not missing else "dry mass needs " + " and ".join(missing)

    def mass_factor(self) -> float:
        """pg per (radian x pixel): lambda / (2 pi alpha) * pixel area."""
        lam_um = self.wavelength_nm / 1000.0
        return lam_um / (2 * math.pi * self.refractive_increment) * self.pixel_size_um**2

    def to_dict(self) -> dict:
        return asdict(self)


def phase_radians(image: np.ndarray, calibration: Calibration) -> np.ndarray | None:
    """The image as phase in radians (float64), or None when its unit is unknown."""
    if calibration.phase_unit(np.asarray(image).dtype):
        return None
    phase = np.asarray(image, np.float64)
    return phase * calibration.phase_scale if calibration.phase_scale is not None else phase


def background_phase(phase: np.ndarray, labels: np.ndarray) -> float:
    """Median phase of the background pixels (label 0) that are finite; 0 when there are none."""
    bg = phase[(np.asarray(labels) == 0) & np.isfinite(phase)]
    return float(np.median(bg)) if bg.size else 0.0


def cell_table(ids: np.ndarray, labels: np.ndarray, image: np.ndarray, class_names: Sequence[str],
               calibration: Calibration | None = None, plane: int | None = None) -> list[dict]:
    """One row per cell of `ids` (one plane): the `CELL_COLUMNS` (mass and um^2 columns None
    when the calibration lacks what they need). The class is the cell's most common label."""
    from skimage.measure import regionprops_table

    calibration = calibration or Calibration()
    ids, labels = np.asarray(ids), np.asarray(labels)
    if ids.shape != labels.shape or ids.shape != np.shape(image):
        raise ConfigError(f"cells {ids.shape}, labels {labels.shape} and image {np.shape(image)} must be the same shape")
    if ids.max() == 0:
        return []
    phase = phase_radians(image, calibration)
    names = tuple(class_names)
    if phase is not None:
        rel = phase - background_phase(phase, labels)
        rel = np.where(np.isfinite(rel), rel, 0.0)  # NaN pixels (outside an aperture) count as no phase
        props = regionprops_table(ids.astype(np.int64), intensity_image=rel,
                                  properties=("label", "area", "centroid", "intensity_mean"))
    else:
        props = regionprops_table(ids.astype(np.int64), properties=("label", "area", "centroid"))
    # The class of each cell: the most common label in it (cell_instances keeps classes apart).
    n = int(ids.max()) + 1
    votes = np.zeros((n, len(names)), np.int64)
    np.add.at(votes, (ids.ravel(), np.clip(labels.ravel(), 0, len(names) - 1)), 1)
    px_area = None if calibration.pixel_size_um is None else calibration.pixel_size_um ** 2
    mass = phase is not None and calibration.wavelength_nm is not None and calibration.pixel_size_um is not None
    factor = calibration.mass_factor() if mass else None
    rows = []
    for i, cid in enumerate(props["label"]):
        area = int(props["area"][i])
        row = {"plane": plane, "cell_id": int(cid), "class": names[int(np.argmax(votes[cid, 1:])) + 1],
               "area_px": area, "area_um2": None if px_area is None else area * px_area,
               "centroid_y": float(props["centroid-0"][i]), "centroid_x": float(props["centroid-1"][i]),
               "mean_phase_rad": None, "integrated_phase_rad": None, "dry_mass_pg": None}
        if phase is not None:
            mean = float(props["intensity_mean"][i])
            row.update(mean_phase_rad=mean, integrated_phase_rad=mean * area)
            if factor is not None:
                row["dry_mass_pg"] = factor * mean * area
        rows.append(row)
    return rows


def mass_summary(rows: Sequence[dict], class_names: Sequence[str]) -> dict:
    """Per foreground class: total and mean dry mass (pg; NaN without masses) for the results CSV."""
    out = {}
    for name in tuple(class_names)[1:]:
        m = [r["dry_mass_pg"] for r in rows if r["class"] == name and r["dry_mass_pg"] is not None]
        out[f"{name}_dry_mass_total_pg"] = float(np.sum(m)) if m else float("nan")
        out[f"{name}_dry_mass_mean_pg"] = float(np.mean(m)) if m else float("nan")
    return out


def cells_csv_text(rows: Sequence[dict], note: str = "", stack: bool = False) -> str:
    """`<stem>_cells.csv`: a `# note` line first when masses are missing, then the rows."""
    import csv
    import io

    cols = [c for c in CELL_COLUMNS if stack or c != "plane"]
    buf = io.StringIO()
    if note:
        buf.write(f"# {note}\n")
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in cols})
    return buf.getvalue()


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else f"{float(v):.6g}"
    return str(v)


_MICRONS = ("µm", "um", "micron", "microns", "\\u00B5m")


def read_calibration(path) -> Calibration | None:
    """Pixel size (and wavelength, where stored) from a file's metadata: qpformat's (qpimage
    HDF5: both), OME-TIFF PhysicalSizeX (um) and ImageJ TIFF resolution + unit (um); None
    when the file says nothing."""
    from pathlib import Path

    path = Path(path)
    from .files import is_qpi_file

    if is_qpi_file(path):  # qpformat stores both
        from .errors import InputImageError
        from .files import read_qpi

        try:
            info = read_qpi(path)[1]
        except InputImageError:
            return None
        return Calibration(info.get("wavelength_nm"), info.get("pixel_size_um")) if info else None
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if tif.is_ome and tif.ome_metadata:  # tifffile's own OME-XML parser
                image = tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", {})
                pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
                size, unit = pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit", "µm")
                if size and unit in _MICRONS:
                    return Calibration(pixel_size_um=float(size))
            page = tif.pages[0]
            ij = tif.imagej_metadata or {}
            res = page.tags.get("XResolution")
            if ij.get("unit") in _MICRONS and res is not None:
                num, den = res.value
                if num > 0:
                    return Calibration(pixel_size_um=den / num)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


__all__ = ["CELL_COLUMNS", "Calibration", "DEFAULT_REFRACTIVE_INCREMENT", "background_phase", "cell_table",
           "cells_csv_text", "mass_summary", "phase_radians", "read_calibration"]

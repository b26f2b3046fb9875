"""Files: reading one image file, and writing results safely.

`read_image` reads TIFF (tifffile + imagecodecs: LZW/deflate/zstd), PNG and JPEG into a
numpy array with clear errors. Writes go into a temporary file (or folder) beside the
target, which is then renamed over it: a crash, a full disk or a cancel never leaves a
half-written file under the final name. (Was ``io.py``, which shadowed the standard
library's `io` inside the package.)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import InputImageError, PGDiffSegError


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file in `path`'s folder, then rename it to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_tiff(path: str | os.PathLike, array: np.ndarray, **kwargs) -> Path:
    """Atomically write `array` to a TIFF file with tifffile (zlib-compressed unless told)."""
    import tifffile

    kwargs.setdefault("compression", "zlib")
    return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, array, **kwargs))


def atomic_replace_dir(path: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmp_dir)`` on a fresh temporary folder beside `path`, then put it at `path`.

    An existing `path` is first moved into its own fresh temporary folder (never a fixed
    name such as ``.NAME.old``, which a crash would leave behind and every later save would
    trip over), the new folder is renamed into place, and the old one is removed. A failure
    in `fill` removes the temporary folder and leaves `path` as it was.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# --------------------------------------------------------------------------- reading

#: QPI data files read through qpformat (qpimage HDF5 and its series, raw off-axis holograms
#: in qpformat's HDF5, numpy phase arrays): phase in radians, with the wavelength and pixel
#: size they store. Phasics SID4 TIFF exports are recognised by content (`is_qpi_file`).
QPI_SUFFIXES = (".h5", ".hdf5", ".npy")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg") + QPI_SUFFIXES
_TIFF_SUFFIXES = (".tif", ".tiff")
# Phasics' private TIFF tags (LabVIEW XML with the wavelength; the value range of each page).
# qpformat's SinglePhasePhasicsTif.verify checks the same tags; this test runs on every TIFF
# the CLI reads, so it stays here, without importing qpformat (an optional extra) for it.
_PHASICS_TAGS = (61238, 61242, 61243)


def _is_phasics_tiff(p: Path) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            return len(tif.pages) == 3 and all(t in tif.pages[0].tags for t in _PHASICS_TAGS)
    except Exception:  # noqa: BLE001 - not a readable TIFF: read_image reports it
        return False


def is_qpi_file(path: str | os.PathLike) -> bool:
    """True for a file read through qpformat as phase in radians: the `QPI_SUFFIXES`, and a
    Phasics SID4 TIFF export (three pages with Phasics' tags: intensity, phase in wavelengths,
    phase in nm)."""
    p = Path(path)
    suffix = p.suffix.lower()
    return suffix in QPI_SUFFIXES or (suffix in _TIFF_SUFFIXES and p.is_file() and _is_phasics_tiff(p))


def _qpformat_data(p: Path):
    try:
        import qpformat
    except ImportError:
        raise InputImageError(f"{p}: reading QPI data files ({', '.join(QPI_SUFFIXES)}) needs qpformat: "
                              "pip install 'napari-pgdiffseg[qpi]' (or pip install qpformat)") from None
    import warnings

    with warnings.catch_warnings():  # qpformat's GPU back-ends announce themselves as missing
        warnings.simplefilter("ignore", UserWarning)
        try:
            return qpformat.load_data(str(p))
        except BaseException as exc:  # qpformat's Phasics error derives from BaseException
            if type(exc).__name__ != "LoadTifPhasicsError":
                raise
            raise InputImageError(f"{p}: this Phasics TIFF does not store its wavelength, which turns its "
                                  "optical path into phase; export it again with the wavelength set "
                                  "(Phasics software: analysis settings, lambda)") from None


def _plane(q) -> np.ndarray:
    """One plane's phase; qpimage gives raw holograms as a (1, h, w) stack."""
    pha = np.asarray(q.pha, np.float32)
    return pha[0] if pha.ndim == 3 and pha.shape[0] == 1 else pha


def read_qpi(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """A QPI data file through qpformat: (phase in radians, float32 (h, w) or (n, h, w) for a
    series; {"wavelength_nm", "pixel_size_um"} where the file stores them).

    Raw off-axis holograms (qpformat's HDF5 with `imaging_modality` "off-axis holography") are
    reconstructed by qpretrieve with its defaults (the +1 sideband, a disk filter); a Phasics
    TIFF's phase comes from its phase-in-wavelengths page and its stored wavelength."""
    p = Path(path)
    ds = _qpformat_data(p)
    planes = [_plane(ds.get_qpimage(i)) for i in range(len(ds))]
    meta = dict(getattr(ds, "meta_data", {}) or {})
    if not meta and planes:
        q = ds.get_qpimage(0)
        meta = {k: q[k] for k in ("wavelength", "pixel size") if k in q.meta}
    info = {}
    if meta.get("wavelength"):
        info["wavelength_nm"] = float(meta["wavelength"]) * 1e9  # qpformat stores metres
    if meta.get("pixel size"):
        info["pixel_size_um"] = float(meta["pixel size"]) * 1e6
    return (planes[0] if len(planes) == 1 else np.stack(planes)), info




def same_channels(arr: np.ndarray) -> bool:
    """True when the R, G and B channels (last axis) of an RGB/RGBA array are equal."""
    c0 = arr[..., 0]
    return all(np.array_equal(c0, arr[..., c]) for c in range(1, 3))


def _first_line(exc: BaseException) -> str:
    """A reader's message cut to its first line (imageio appends install hints on more lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def tiff_axes(path: str | os.PathLike) -> tuple[str, list[str]]:
    """(axes of the first series, channel names) from a TIFF's OME / ImageJ metadata; ('', [])
    for a plain TIFF (its leading axes are then planes, as before)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not (tif.is_ome or tif.is_imagej):
            return "", []
        axes = str(tif.series[0].axes).upper()
        names: list[str] = []
        if tif.is_ome and tif.ome_metadata:
            image = tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", {})
            ch = (image[0] if isinstance(image, list) else image).get("Pixels", {}).get("Channel", [])
            ch = ch if isinstance(ch, list) else [ch]
            names = [str(c.get("Name", "")) for c in ch if isinstance(c, dict)]
        return axes, names


def select_channel(arr: np.ndarray, axes: str, names: list[str], channel, p: Path) -> tuple[np.ndarray, str]:
    """The array without its channel axis (C), keeping `channel` (an index or a name); the axes left."""
    if "C" not in axes or arr.ndim != len(axes):
        return arr, axes
    c = axes.index("C")
    n = arr.shape[c]
    shown = ", ".join(f"{i}" + (f" ({names[i]})" if i < len(names) and names[i] else "") for i in range(n))
    if channel is None or channel == "":
        if n > 1:
            raise InputImageError(f"{p}: {n} channels on its C axis ({shown}); choose the phase channel with "
                                  "--channel INDEX|NAME (channels are never segmented as planes)")
        index = 0
    elif str(channel).lstrip("-").isdigit():
        index = int(channel)
        if not 0 <= index < n:
            raise InputImageError(f"{p}: channel {index} does not exist; it has {n} channel(s): {shown}")
    elif str(channel) in names:
        index = names.index(str(channel))
    else:
        raise InputImageError(f"{p}: no channel named {channel!r}; its channels are {shown}")
    return np.take(arr, index, axis=c), axes.replace("C", "")


def read_image(path: str | os.PathLike, channel=None) -> np.ndarray:
    """Read one image file as a numpy array of its stored dtype.

    TIFF is read with tifffile, QPI data files (`is_qpi_file`: qpimage HDF5, raw holograms in
    qpformat's HDF5, numpy, Phasics TIFF) with qpformat as phase in radians (`read_qpi`), PNG/JPEG with imageio.v3 (a palette PNG gives its palette
    indices, as label masks are often saved). Singleton dimensions are squeezed down to 2D,
    so a (1, h, w) TIFF gives (h, w) and a 1x1 image stays (1, 1). An RGB/RGBA image (last axis 3 or 4) whose R, G and B
    channels are equal (a grey image saved as RGB, like the study's original PNGs) gives
    channel 0, (..., h, w); alpha is ignored. Stacks (n, h, w) are returned as they are.

    An OME / ImageJ TIFF with a channel axis (C) gives `channel` (an index or an OME channel
    name); with several channels and none chosen it is an error naming them (`select_channel`).

    Raises `InputImageError` naming the file when it does not exist, has an unsupported
    suffix, cannot be decoded (truncated or corrupt), or is RGB with different channels.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputImageError(
            f"{p}: unsupported file type {p.suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}"
        )
    if not p.is_file():
        raise InputImageError(f"{p}: no such file")
    try:
        if is_qpi_file(p):
            arr = read_qpi(p)[0]
        elif suffix in _TIFF_SUFFIXES:
            import tifffile

            arr = tifffile.imread(p)
            axes, names = tiff_axes(p)
            if "C" in axes:  # an OME / ImageJ hyperstack: its channel is chosen, never taken for Z or T
                arr, _ = select_channel(np.asarray(arr), axes, names, channel, p)
        else:
            try:
                import imageio.v3 as iio
            except ImportError:  # pragma: no cover - imageio comes with napari
                raise InputImageError(
                    f"{p}: reading PNG/JPEG needs the 'imageio' package (pip install imageio), "
                    "or convert the file to TIFF"
                ) from None
            palette = False
            if suffix == ".png":
                try:
                    palette = iio.immeta(p).get("mode") == "P"
                except Exception:  # noqa: BLE001 - the read below reports the real problem
                    palette = False
            arr = iio.imread(p, mode="P") if palette else iio.imread(p)
    except PGDiffSegError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader error becomes one clear message
        kind = "TIFF" if suffix in _TIFF_SUFFIXES else suffix[1:].upper()
        raise InputImageError(
            f"{p}: cannot read the file ({type(exc).__name__}: {_first_line(exc)}); it may be truncated, "
            f"corrupt or not really a {kind} file"
        ) from exc
    arr = np.asarray(arr)
    if arr.size == 0:
        raise InputImageError(f"{p}: the image is empty (shape {arr.shape})")
    # Drop singleton axes, but never below 2D: a 1x1 or 20000x1 image stays a (tiny) frame
    # and gets the frame-size message, not a "0-D array" one.
    while arr.ndim > 2 and 1 in arr.shape:
        arr = np.squeeze(arr, axis=arr.shape.index(1))
    if arr.ndim >= 3 and arr.shape[-1] in (3, 4):
        if not same_channels(arr):
            raise InputImageError(
                f"{p}: an RGB{'A' if arr.shape[-1] == 4 else ''} image (shape {arr.shape}) with "
                "different colour channels; a single-channel image is expected (QPI phase, or "
                "integer class labels for a mask). Save one channel, not a colour rendering"
            )
        arr = np.ascontiguousarray(arr[..., 0])
    return arr

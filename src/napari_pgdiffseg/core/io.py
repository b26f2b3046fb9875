"""Writing result files safely: into a temporary file beside the target, then renamed.

A crash, a full disk or a cancel never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


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

"""A corpus of bad inputs, each made by the test: the CLI and the core refuse each one with
one clear message (or handle it correctly), and no partial output file is left behind.

`CASES` are files given to `pgdiffseg segment`; `ARRAYS` go straight to `segment`;
the bundle, output-folder and writer cases follow. The README's reliability table counts
them (cases tried / handled).
"""

import os
import stat
import struct

import numpy as np
import pytest
import tifffile

from napari_pgdiffseg import SegmentConfig, segment
from napari_pgdiffseg.cli import main
from napari_pgdiffseg.core.bundle import load_bundle, save_bundle
from napari_pgdiffseg.core.errors import BundleError, InputImageError, PGDiffSegError

FAST = ["--inversion-steps", "2", "--sampling-steps", "2", "--no-noise-metrics", "--device", "cpu", "--quiet"]
RNG = np.random.default_rng(0)


def _tif(arr):
    return lambda p: tifffile.imwrite(p, arr)


def _png(arr):
    def write(p):
        import imageio.v3 as iio

        iio.imwrite(p, arr, extension=".png")

    return write


def _bytes(data: bytes):
    return lambda p: p.write_bytes(data)


def _truncated_tif(p):
    tifffile.imwrite(p, RNG.normal(size=(64, 64)).astype(np.float32))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _header_without_data(p):
    # A valid little-endian TIFF header that claims a 100,000 x 100,000 image whose strip
    # lies far beyond the end of the (tiny) file.
    entries = [(256, 4, 1, 100_000), (257, 4, 1, 100_000), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 10**9), (277, 3, 1, 1), (278, 4, 1, 100_000),
               (279, 4, 1, 10**10 % 2**32)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value) if typ == 4 else struct.pack("<HHIHH", tag, typ, count, value, 0)
    p.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0))


def _png_named_tif(p):
    import imageio.v3 as iio

    p.write_bytes(iio.imwrite("<bytes>", (RNG.random((64, 64)) * 255).astype(np.uint8), extension=".png"))


grey = (RNG.random((64, 64)) * 255).astype(np.uint8)
# name, file suffix, writer, expected: "ok" or a fragment of the error message
CASES = [
    ("4D array", ".tif", _tif(RNG.normal(size=(2, 2, 32, 32)).astype(np.float32)), "2D (h, w) or a stack"),
    ("5D array", ".tif", _tif(RNG.normal(size=(2, 2, 2, 32, 32)).astype(np.float32)), "2D (h, w) or a stack"),
    ("RGB PNG, different channels", ".png", _png((RNG.random((64, 64, 3)) * 255).astype(np.uint8)), "RGB"),
    ("RGBA PNG, different channels", ".png", _png((RNG.random((64, 64, 4)) * 255).astype(np.uint8)), "RGBA"),
    ("RGB TIFF, different channels", ".tif", _tif((RNG.random((64, 64, 3)) * 255).astype(np.uint8)), "RGB"),
    ("grey saved as RGB PNG", ".png", _png(np.repeat(grey[..., None], 3, axis=2)), "ok"),
    ("bool mask", ".tif", _tif(RNG.random((64, 64)) > 0.5), "boolean mask"),
    ("complex field", ".tif", _tif((RNG.normal(size=(64, 64)) + 1j).astype(np.complex64)), "complex"),
    ("int64 extremes", ".tif", _tif(np.tile(np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max], np.int64),
                                            (32, 16))), "ok"),
    ("uint16", ".tif", _tif((RNG.random((64, 64)) * 65535).astype(np.uint16)), "ok"),
    ("float16", ".tif", _tif(RNG.normal(size=(64, 64)).astype(np.float16)), "ok"),
    ("NaN outside an aperture", ".tif", _tif(np.where((np.mgrid[:64, :64] ** 2).sum(0) < 50 ** 2,
                                                       RNG.normal(size=(64, 64)), np.nan).astype(np.float32)), "ok"),
    ("all NaN", ".tif", _tif(np.full((64, 64), np.nan, np.float32)), "NaN/inf"),
    ("NaN pixels in a constant frame", ".tif",
     _tif(np.where(RNG.random((64, 64)) > 0.9, np.nan, 1.0).astype(np.float32)), "constant"),
    ("inf pixels", ".tif", _tif(np.where(RNG.random((64, 64)) > 0.9, np.inf, 1.0).astype(np.float32)), "NaN/inf"),
    ("constant", ".tif", _tif(np.full((64, 64), 3.0, np.float32)), "constant"),
    ("empty file", ".tif", _bytes(b""), "cannot read the file"),
    ("1x1", ".tif", _tif(np.ones((1, 1), np.float32)), "at least 16x16"),
    ("15x15", ".tif", _tif(RNG.normal(size=(15, 15)).astype(np.float32)), "at least 16x16"),
    ("16x16", ".tif", _tif(RNG.normal(size=(16, 16)).astype(np.float32)), "ok"),
    ("20000 x 3 (very thin)", ".tif", _tif(RNG.normal(size=(20000, 3)).astype(np.float32)), "at least 16x16"),
    ("huge header, no data", ".tif", _header_without_data, "cannot read the file"),
    ("truncated TIFF", ".tif", _truncated_tif, "cannot read the file"),
    ("PNG with a .tif name", ".tif", _png_named_tif, "cannot read the file"),
    ("text file named .png", ".png", _bytes(b"not an image at all\n"), "cannot read the file"),
    ("stack of 2 planes", ".tif", _tif(RNG.normal(size=(2, 48, 48)).astype(np.float32)), "ok"),
    ("single plane stack (1, h, w)", ".tif", _tif(RNG.normal(size=(1, 48, 48)).astype(np.float32)), "ok"),
]


@pytest.mark.parametrize("name, suffix, write, expected", CASES, ids=[c[0] for c in CASES])
def test_segment_cli_on_bad_files(tiny_bundle_dir, tmp_path, capsys, name, suffix, write, expected):
    src = tmp_path / "in"
    src.mkdir()
    f = src / f"frame{suffix}"
    write(f)
    out = tmp_path / "out"
    code = main(["segment", str(f), "--out", str(out), "--bundle", str(tiny_bundle_dir), *FAST])
    captured = capsys.readouterr()
    labels = out / "frame_labels.tif"
    if expected == "ok":
        assert code == 0, captured.out + captured.err
        assert labels.is_file()
    else:
        assert code == 1
        assert not labels.exists()
        problem = [ln for ln in (captured.out + captured.err).splitlines() if "error:" in ln]
        assert len(problem) == 1 and expected in problem[0], problem
        assert "Traceback" not in captured.out + captured.err
        # One line for the file, one for the summary: no continuation lines from a reader.
        assert len((captured.out + captured.err).strip().splitlines()) == 2, captured.out + captured.err
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


ARRAYS = [
    ("0 x 10 array", np.zeros((0, 10), np.float32), "empty"),
    ("object dtype", np.array([[object()] * 20] * 20), "dtype object"),
    ("string dtype", np.full((20, 20), "a"), "dtype <U1"),
    ("3D RGB array", RNG.random((32, 32, 3)), "RGB/RGBA"),
    ("1D array", RNG.random(100), "2D frame"),
]


@pytest.mark.parametrize("name, arr, message", ARRAYS, ids=[a[0] for a in ARRAYS])
def test_segment_refuses_bad_arrays(tiny_bundle, name, arr, message):
    with pytest.raises(InputImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        segment(arr, tiny_bundle, SegmentConfig(inversion_steps=2, sampling_steps=2, device="cpu"))


@pytest.mark.parametrize("damage, message", [
    ("missing", "ldm_s"),
    ("truncated", "diffusion_pytorch_model.safetensors"),
    ("wrong shapes", "ldm_s"),
])
def test_damaged_bundles_are_named(tiny_bundle, tmp_path, capsys, damage, message):
    from napari_pgdiffseg import create_bundle

    path = save_bundle(tiny_bundle, tmp_path / "b")
    weights = path / "ldm_s" / "diffusion_pytorch_model.safetensors"
    if damage == "missing":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:  # weights of another architecture under this config
        other = save_bundle(create_bundle("small", seed=0), tmp_path / "other")
        weights.write_bytes((other / "ldm_s" / "diffusion_pytorch_model.safetensors").read_bytes())
    with pytest.raises(BundleError, match=message):
        load_bundle(path)
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, RNG.normal(size=(32, 32)).astype(np.float32))
    code = main(["segment", str(img), "--out", str(tmp_path / "out"), "--bundle", str(path), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("pgdiffseg: error:") and message in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_folder(tiny_bundle_dir, tmp_path, capsys):
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, RNG.normal(size=(32, 32)).astype(np.float32))
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code = main(["segment", str(img), "--out", str(out), "--bundle", str(tiny_bundle_dir), *FAST])
    finally:
        out.chmod(stat.S_IRWXU)
    assert code != 0 and list(out.iterdir()) == []


def test_disk_full_mid_write_leaves_no_file(tiny_bundle_dir, tmp_path, capsys, monkeypatch):
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, RNG.normal(size=(32, 32)).astype(np.float32))
    real = tifffile.imwrite

    def full_disk(path, data, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"II*\x00partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full_disk)
    out = tmp_path / "out"
    code = main(["segment", str(img), "--out", str(out), "--bundle", str(tiny_bundle_dir), *FAST])
    monkeypatch.setattr(tifffile, "imwrite", real)
    text = capsys.readouterr()
    assert code != 0 and "No space left on device" in text.out + text.err
    assert [p.name for p in out.iterdir() if p.suffix in (".tif", ".tmp") or p.name.startswith(".a")] == []


def test_labels_with_unknown_classes_are_refused(tmp_path):
    from napari_pgdiffseg.core.training import read_mask

    f = tmp_path / "m.tif"
    tifffile.imwrite(f, np.array([[0, 1], [2, 7]] * 8, np.uint8).repeat(8, axis=1))
    with pytest.raises(PGDiffSegError, match="7"):
        read_mask(f)


def test_output_folder_that_cannot_be_created(tiny_bundle_dir, tmp_path, capsys):
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, RNG.normal(size=(32, 32)).astype(np.float32))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder's parent should be")
    code = main(["segment", str(img), "--out", str(blocker / "out"), "--bundle", str(tiny_bundle_dir), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("pgdiffseg: error:"), err
    assert blocker.read_text().startswith("a file")

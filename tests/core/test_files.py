"""core.files: reading image files (formats, RGB-as-grey, clear errors) and atomic files and folders
(nothing half-written under a final name, nothing a crash leaves behind breaks a later save)."""

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from napari_pgdiffseg import create_bundle, load_bundle, save_bundle
from napari_pgdiffseg.core.errors import InputImageError
from napari_pgdiffseg.core.files import atomic_replace_dir, atomic_write, read_image


def _crash_leftover(folder, name):
    """What the old fixed-name scheme left after a crash between its two renames."""
    old = folder / f".{name}.old"
    old.mkdir()
    (old / "weights.bin").write_bytes(b"left by a crash")
    return old


def test_atomic_replace_dir_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "out"
    atomic_replace_dir(target, lambda d: (d / "a.txt").write_text("1"))
    atomic_replace_dir(target, lambda d: (d / "b.txt").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_replace_dir_keeps_the_old_folder_when_filling_fails(tmp_path):
    target = tmp_path / "out"
    atomic_replace_dir(target, lambda d: (d / "a.txt").write_text("1"))

    def fail(d):
        (d / "half.txt").write_text("x")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_replace_dir(target, fail)
    assert (target / "a.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_save_bundle_survives_a_crash_leftover(tmp_path):
    # Before atomic_replace_dir, save_bundle moved the old folder to a fixed ".NAME.old":
    # a crash that left it behind made every later save fail with "Directory not empty".
    b = create_bundle("tiny", seed=1)
    save_bundle(b, tmp_path / "bundle")
    leftover = _crash_leftover(tmp_path, "bundle")
    save_bundle(b, tmp_path / "bundle", overwrite=True)
    save_bundle(b, tmp_path / "bundle", overwrite=True)
    assert load_bundle(tmp_path / "bundle").card == b.card
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bundle.old", "bundle"]
    assert (leftover / "weights.bin").read_bytes() == b"left by a crash"  # not ours to delete


def test_checkpoint_save_survives_a_crash_leftover(tmp_path):
    from napari_pgdiffseg.core.training.diffusion import _Checkpoint

    model = create_bundle("tiny").ldm_s
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ck = _Checkpoint(tmp_path, "ldm_s")
    ck.save(model, opt, 1, [0.5], 1.0)
    _crash_leftover(tmp_path, "ldm_s")
    (tmp_path / "ldm_s.old").mkdir()  # the name the old checkpoint code used
    (tmp_path / "ldm_s.old" / "x").write_text("left")
    ck.save(model, opt, 2, [0.5, 0.4], 2.0)
    assert ck.load(model, opt)[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ldm_s.old", "ldm_s", "ldm_s.old"]


def test_baseline_save_survives_a_crash_leftover(tmp_path):
    from napari_pgdiffseg.core.training.baseline import Baseline, BaselineCard, build_unet, load_baseline, save_baseline
    from napari_pgdiffseg.core.preprocess import Normalization

    base = Baseline(build_unet("resnet18", 2), BaselineCard("resnet18", ("background", "cell"), Normalization(), 64))
    save_baseline(base, tmp_path / "unet")
    _crash_leftover(tmp_path, "unet")
    save_baseline(base, tmp_path / "unet", overwrite=True)
    assert load_baseline(tmp_path / "unet").card.n_classes == 2


def test_atomic_write_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "x.npy"

    def fail(tmp):
        with open(tmp, "wb") as fh:
            fh.write(np.zeros(3).tobytes())
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_read_image_png_rgb_equal_channels_palette_and_squeeze(tmp_path):
    gray = (np.arange(32 * 32).reshape(32, 32) % 251).astype(np.uint8)
    iio.imwrite(tmp_path / "rgb.png", np.stack([gray] * 3, -1))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), gray)
    iio.imwrite(tmp_path / "rgba.png", np.dstack([gray] * 3 + [np.full_like(gray, 255)]))
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), gray)
    # A palette PNG gives its indices (label masks are often saved that way).
    lab = (gray % 3).astype(np.uint8)
    im = Image.fromarray(lab, mode="P")
    im.putpalette([0, 0, 0, 0, 255, 0, 255, 0, 0] + [0] * (3 * 253))
    im.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png"), lab)
    tifffile.imwrite(tmp_path / "one.tif", gray[None, :, :, None])
    assert read_image(tmp_path / "one.tif").shape == (32, 32)


def test_rgb_with_different_channels_is_refused(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "c.png", rgb)
    with pytest.raises(InputImageError, match=r"c\.png.*RGB.*different colour channels"):
        read_image(tmp_path / "c.png")
    tifffile.imwrite(tmp_path / "c.tif", rgb)
    with pytest.raises(InputImageError, match=r"c\.tif.*RGB"):
        read_image(tmp_path / "c.tif")


def test_corrupt_missing_and_unsupported_files_are_named(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputImageError, match=r"broken\.tif: cannot read.*corrupt"):
        read_image(bad)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputImageError, match=r"broken\.png: cannot read"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(InputImageError, match="no such file"):
        read_image(tmp_path / "missing.tif")
    with pytest.raises(InputImageError, match="unsupported file type"):
        read_image(tmp_path / "x.bmp")


def test_lzw_compressed_tiff_reads(tmp_path):
    """imagecodecs is a dependency: LZW TIFFs (qpi-cells, many microscopes) read."""
    phase = np.random.default_rng(0).random((30, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "lzw.tif", phase, compression="lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif"), phase)

"""Frames that are not in memory (dask, zarr, memmaps) are read tile by tile and give the same labels."""

import dask.array as da
import numpy as np
import pytest

from napari_pgdiffseg import SegmentConfig, segment
from napari_pgdiffseg.core import preprocess, source
from napari_pgdiffseg.core.errors import InputImageError
from napari_pgdiffseg.core.noise_preview import compute_noise
from napari_pgdiffseg.core.noise import NoiseConfig
from napari_pgdiffseg.core.source import mirror_index

CFG = SegmentConfig(inversion_steps=4, sampling_steps=4, noise_metrics=False, device="cpu", overlap=32)
SMALL = 4096  # pixels: frames above it are "large" in these tests


class ReadLog:
    """An array-like on disk stand-in: logs every read and refuses to be read whole."""

    def __init__(self, data, max_pixels):
        self.data, self.max_pixels, self.reads = data, max_pixels, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, key):
        out = self.data[key]
        if out.size > self.max_pixels:
            raise AssertionError(f"read of {out.shape} is larger than {self.max_pixels} pixels")
        self.reads.append(out.shape)
        return out

    def __array__(self, *a, **k):
        raise AssertionError("the whole frame was read")


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(source, "LAZY_MIN_PIXELS", SMALL)
    monkeypatch.setattr(preprocess, "MAX_STATS_PIXELS", SMALL)


@pytest.mark.parametrize("length", [1, 2, 5, 16, 37])
@pytest.mark.parametrize("stop", [1, 7, 40, 130])
def test_mirror_index_matches_numpy_symmetric_padding(length, stop):
    a = np.arange(length)
    padded = np.pad(a, (0, max(0, stop - length)), mode="symmetric")
    assert np.array_equal(a[mirror_index(0, stop, length)], padded[:stop])


def test_stats_sample_is_bounded_and_strided(small_limits):
    frame = np.arange(300 * 200, dtype=np.float32).reshape(300, 200)
    s = preprocess.stats_sample(frame)
    assert s.size <= SMALL and s.size > SMALL // 4
    assert np.array_equal(s, frame[::4, ::4])
    assert preprocess.stats_sample(frame[:50, :50]) is not None and preprocess.stats_sample(frame[:50, :50]).size == 2500


def test_lazy_frame_reads_tiles_only_and_matches_numpy(small_limits, tiny_bundle, frame_300x200):
    lazy = ReadLog(frame_300x200.astype(np.float64), max_pixels=256 * 256)
    a = segment(lazy, tiny_bundle, CFG)
    b = segment(frame_300x200.astype(np.float64), tiny_bundle, CFG)
    assert lazy.reads and max(h * w for h, w in lazy.reads) <= 256 * 256
    assert lazy.reads[0] == (75, 50)  # the stats sample [::4, ::4] comes first
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.noise, b.noise)
    assert np.array_equal(a.agreement, b.agreement)


def test_dask_frame_matches_numpy_in_segment_and_inspector(small_limits, tiny_bundle, frame_300x200):
    arr = da.from_array(frame_300x200, chunks=(64, 64))
    a = segment(arr, tiny_bundle, CFG)
    b = segment(frame_300x200, tiny_bundle, CFG)
    assert np.array_equal(a.labels, b.labels)
    nz_a = compute_noise(arr, tiny_bundle, NoiseConfig("prior", 4), device="cpu")
    nz_b = compute_noise(frame_300x200, tiny_bundle, NoiseConfig("prior", 4), device="cpu")
    assert np.array_equal(nz_a, nz_b)


def test_small_non_numpy_frames_are_read_into_memory(tiny_bundle, frame_300x200):
    assert not source.is_lazy(da.from_array(frame_300x200))  # 60,000 px < 16.7 M px
    assert source.is_lazy(da.zeros((5000, 4000), chunks=1000))
    assert not source.is_lazy(np.zeros((5000, 4000), np.uint8))


@pytest.mark.parametrize("bad, message", [
    (lambda f: np.where(np.arange(f.shape[0])[:, None] == 290, np.nan, f), "NaN/inf pixels in rows"),
    (lambda f: np.full_like(f, 3.0), "constant"),
    (lambda f: np.stack([f] * 3, axis=-1), "RGB"),
    (lambda f: f.astype(np.complex64), "complex"),
])
def test_lazy_bad_frames_are_clear_errors(small_limits, tiny_bundle, frame_300x200, bad, message):
    data = bad(frame_300x200)
    with pytest.raises(InputImageError, match=message):
        segment(da.from_array(data, chunks=64), tiny_bundle, CFG)


def test_outputs_can_be_written_to_memmaps_on_disk(small_limits, tiny_bundle, frame_300x200, tmp_path):
    lazy = ReadLog(frame_300x200, max_pixels=256 * 256)
    labels = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint8, shape=(300, 200))
    agreement = np.lib.format.open_memmap(tmp_path / "agr.npy", mode="w+", dtype=np.float32, shape=(300, 200))
    r = segment(lazy, tiny_bundle, CFG, labels_out=labels, agreement_out=agreement)
    assert r.labels is labels and r.agreement is agreement
    labels.flush()
    ref = segment(frame_300x200, tiny_bundle, CFG)
    assert np.array_equal(np.load(tmp_path / "labels.npy"), ref.labels)
    assert np.array_equal(np.asarray(agreement), ref.agreement)


def test_wrong_output_arrays_are_clear_errors(tiny_bundle, frame_300x200):
    from napari_pgdiffseg.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"labels_out must be a 300x200 uint8 array"):
        segment(frame_300x200, tiny_bundle, CFG, labels_out=np.zeros((300, 201), np.uint8))
    with pytest.raises(ConfigError, match=r"agreement_out must be a 300x200 float32"):
        segment(frame_300x200, tiny_bundle, CFG, agreement_out=np.zeros((300, 200), np.float64))


def test_segment_stack_keeps_a_lazy_stack_lazy(small_limits, tiny_bundle, frame_300x200):
    from napari_pgdiffseg import segment_stack
    from napari_pgdiffseg.core.preprocess import PlaneView, as_planes

    stack = np.stack([frame_300x200, frame_300x200[::-1].copy()]).astype(np.float64)
    lazy = ReadLog(stack, max_pixels=256 * 256)  # refuses whole planes (60,000 px > SMALL) and the stack
    planes, was_stack = as_planes(lazy)
    assert was_stack and [type(p) for p in planes] == [PlaneView, PlaneView] and lazy.reads == []
    assert planes[1].shape == (300, 200) and planes[1].dtype == np.float64
    got = segment_stack(lazy, tiny_bundle, CFG)
    ref = segment_stack(stack, tiny_bundle, CFG)
    assert len(got) == 2 and all(np.array_equal(a.labels, b.labels) for a, b in zip(got, ref))
    assert lazy.reads and max(int(np.prod(s)) for s in lazy.reads) <= 256 * 256
    # dask stacks too: planes stay dask until segment reads their tiles
    dstack = da.from_array(stack, chunks=(1, 100, 100))
    dplanes, _ = as_planes(dstack)
    assert isinstance(dplanes[0][0:10, 0:10], da.Array)
    assert all(np.array_equal(a.labels, b.labels)
               for a, b in zip(segment_stack(dstack, tiny_bundle, CFG), ref))
    with pytest.raises(InputImageError, match="RGB"):
        as_planes(ReadLog(np.zeros((20, 20, 3)), max_pixels=1))

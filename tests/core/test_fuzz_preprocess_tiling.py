"""Property tests (hypothesis): input checks, normalisation and tiling never fail other than
with the documented errors, and what they return is finite, float32 and shaped like the frame."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_pgdiffseg.core.errors import PGDiffSegError
from napari_pgdiffseg.core.preprocess import Normalization, check_frame, normalize
from napari_pgdiffseg.core.tiling import ArraySink, Stitcher, TileGrid

DTYPES = st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.int64, np.float16, np.float32,
                          np.float64, np.bool_, np.complex64])
SHAPES = st.lists(st.integers(0, 40), min_size=0, max_size=4).map(tuple)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(arrays(DTYPES, SHAPES))
def test_check_and_normalize_return_finite_float32_or_raise_documented_errors(arr):
    try:
        frame = normalize(check_frame(arr), Normalization())
    except PGDiffSegError as e:
        assert str(e)  # every refusal says why
        return
    assert frame.dtype == np.float32 and frame.shape == arr.shape
    assert np.isfinite(frame).all()


@FUZZ
@given(st.integers(16, 700), st.integers(16, 700), st.sampled_from([64, 128, 256]), st.integers(0, 32),
       st.integers(0, 2**31 - 1))
def test_identity_through_tiles_returns_any_frame(h, w, tile, overlap_q, seed):
    overlap = min(4 * overlap_q, tile // 2)
    frame = np.random.default_rng(seed).normal(size=(h, w)).astype(np.float32)
    grid = TileGrid(h, w, tile=tile, overlap=overlap)
    sink = ArraySink(1, h, w)
    stitch = Stitcher(grid, 1, sink)
    for origin, t in grid.iter_tiles(grid.pad(frame)):
        stitch.add(origin, t[None])
    stitch.finish()
    np.testing.assert_allclose(sink.array[0], frame, rtol=1e-6, atol=1e-6)


def test_extreme_but_finite_values_normalise_to_finite_values():
    f32 = np.finfo(np.float32).max
    a = np.linspace(-float(f32), float(f32), 32 * 32).astype(np.float32).reshape(32, 32)
    i64 = np.iinfo(np.int64)
    b = np.tile(np.array([i64.min, i64.max, 0, 1], np.int64), (16, 4))
    for arr in (a, b):
        out = normalize(check_frame(arr), Normalization())
        assert np.isfinite(out).all() and -1.5 < out.min() < out.max() < 1.5


@FUZZ
@given(st.integers(16, 300), st.integers(16, 300), st.sampled_from([64, 128, 256]), st.integers(0, 16),
       st.sampled_from([np.uint8, np.int16, np.float32, np.float64]), st.integers(0, 2**31 - 1))
def test_frame_source_tiles_equal_padded_frame_tiles_in_memory_and_lazily(h, w, tile, overlap_q, dtype, seed):
    import dask.array as da

    from napari_pgdiffseg.core import preprocess, source

    overlap = min(4 * overlap_q, tile // 2)
    frame = (np.random.default_rng(seed).normal(size=(h, w)) * 50 + 100).astype(dtype)
    if float(frame.max()) == float(frame.min()):
        return
    norm = Normalization()
    grid = TileGrid(h, w, tile=tile, overlap=overlap)
    padded = grid.pad(normalize(check_frame(frame), norm))
    eager = source.FrameSource(frame, norm)
    saved = source.LAZY_MIN_PIXELS, preprocess.MAX_STATS_PIXELS
    source.LAZY_MIN_PIXELS, preprocess.MAX_STATS_PIXELS = h * w - 1, h * w  # lazy reads, exact percentiles
    try:
        lazy = source.FrameSource(da.from_array(frame, chunks=37), norm)
        assert lazy.lazy and not eager.lazy
    finally:
        source.LAZY_MIN_PIXELS, preprocess.MAX_STATS_PIXELS = saved
    for (y, x), expected in grid.iter_tiles(padded):
        assert np.array_equal(eager.tile(y, x, tile), expected)
        assert np.array_equal(lazy.tile(y, x, tile), expected)

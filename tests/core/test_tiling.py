import numpy as np
import pytest

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.tiling import ArraySink, Stitcher, TileGrid, blend_weights


def _identity_stitch(frame, tile=256, overlap=32):
    grid = TileGrid(*frame.shape, tile=tile, overlap=overlap)
    padded = grid.pad(frame)
    sink = ArraySink(1, *frame.shape)
    st = Stitcher(grid, 1, sink)
    for origin, t in grid.iter_tiles(padded):
        st.add(origin, t[None])
    st.finish()
    return sink.array[0], grid


@pytest.mark.parametrize("shape", [(16, 16), (100, 300), (256, 256), (832, 832), (1000, 777)])
def test_identity_model_through_tiles_returns_the_frame(shape):
    frame = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    out, grid = _identity_stitch(frame)
    assert out.shape == shape
    # Weighted mean of identical values: exact up to float32 rounding of w*v/w.
    np.testing.assert_allclose(out, frame, rtol=1e-6, atol=1e-6)


def test_integer_frame_round_trips_exactly():
    frame = np.random.default_rng(2).integers(0, 255, size=(500, 300)).astype(np.float32)
    out, _ = _identity_stitch(frame, overlap=64)
    assert np.array_equal(np.rint(out), frame)


def test_grid_covers_frame_with_origins_on_latent_grid():
    grid = TileGrid(1000, 777, 256, 32)
    assert grid.padded_shape == (1000, 780)
    for y, x in grid.origins():
        assert y % 4 == 0 and x % 4 == 0
        assert y + 256 <= 1000 and x + 256 <= 780
    assert grid.rows[-1] == 1000 - 256
    assert len(grid) == len(grid.rows) * len(grid.cols)
    latent = grid.scaled(4)
    assert (latent.height, latent.width) == (250, 195)
    assert [o for o in latent.origins()] == [(y // 4, x // 4) for y, x in grid.origins()]


def test_small_frame_is_one_padded_tile():
    grid = TileGrid(16, 16)
    assert len(grid) == 1 and grid.padded_shape == (256, 256)


def test_blend_weights_ramp_and_stay_positive():
    w = blend_weights(256, 32)
    assert w.shape == (256, 256) and w.min() > 0 and w.max() == 1.0
    assert w[128, 128] == 1.0 and w[0, 128] < 0.05


def test_stitcher_streams_rows_with_bounded_buffer():
    frame = np.arange(1000 * 300, dtype=np.float32).reshape(1000, 300) % 97
    grid = TileGrid(*frame.shape, tile=256, overlap=32)
    emitted = []
    st = Stitcher(grid, 1, lambda a, b, blk: emitted.append((a, b, blk.copy())))
    for origin, t in grid.iter_tiles(grid.pad(frame)):
        st.add(origin, t[None])
    st.finish()
    assert len(emitted) == len(grid.rows)  # one band per tile row
    assert emitted[0][0] == 0 and emitted[-1][1] == 1000
    assert all(a2 == b1 for (_, b1, _), (a2, _, _) in zip(emitted, emitted[1:]))
    assert all(b - a <= 256 for a, b, _ in emitted)
    np.testing.assert_allclose(np.concatenate([e[2][0] for e in emitted]), frame, atol=1e-4)
    assert st._acc.shape[1] == 256  # the buffer is one tile high whatever the frame height


def test_stitcher_rejects_out_of_order_and_missing_tiles():
    grid = TileGrid(600, 300)
    st = Stitcher(grid, 1, lambda *a: None)
    origins = grid.origins()
    st.add(origins[1], np.zeros((1, 256, 256), np.float32))
    with pytest.raises(ValueError, match="row-major"):
        st.add(origins[0], np.zeros((1, 256, 256), np.float32))
    st2 = Stitcher(grid, 1, lambda *a: None)
    st2.add(origins[0], np.zeros((1, 256, 256), np.float32))
    with pytest.raises(RuntimeError, match="missing"):
        st2.finish()


@pytest.mark.parametrize("kw,msg", [({"tile": 250}, "multiple of 4"), ({"overlap": 30}, "overlap"),
                                    ({"overlap": 256}, "overlap")])
def test_bad_grid_settings(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        TileGrid(300, 300, **kw)

"""Core helpers the widgets use: peek_bundle, compute_noise, split_cells, summarize_planes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_pgdiffseg import SegmentConfig, create_bundle, segment
from napari_pgdiffseg.core.errors import BundleError, SegmentationCancelled
from napari_pgdiffseg.core.noise import NoiseConfig
from napari_pgdiffseg.core.bundle import peek_bundle
from napari_pgdiffseg.core.noise_preview import compute_noise
from napari_pgdiffseg.core.cells import split_cells, summarize_planes


@pytest.fixture(scope="module")
def bundle():
    return create_bundle("tiny", seed=0)


@pytest.mark.parametrize("noise", [NoiseConfig("random"), NoiseConfig("forward", forward_t=300),
                                   NoiseConfig("prior", inversion_steps=5)])
def test_compute_noise_is_the_noise_segment_starts_from(bundle, synthetic_frame, noise):
    frame = synthetic_frame[0]
    cfg = SegmentConfig(strategy=noise.strategy, inversion_steps=noise.inversion_steps, forward_t=noise.forward_t,
                        sampling_steps=5, noise_metrics=False, device="cpu", seed=4)
    expected = segment(frame, bundle, cfg).noise
    got = compute_noise(frame, bundle, noise, seed=4, device="cpu")
    assert got.shape == expected.shape == (3, 64, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_compute_noise_progress_cancel_and_large_frames(bundle, synthetic_frame):
    calls = []
    big = np.tile(synthetic_frame[0], (2, 3))[:600, :700]  # cropped, centred, to 2 x 2 tiles
    out = compute_noise(big, bundle, NoiseConfig("prior", inversion_steps=5), device="cpu",
                        progress=lambda p: calls.append((p.evals_done, p.evals_total, p.tiles_done)))
    assert out.shape == (3, 128, 128)
    assert calls[-1] == (1 + 5, 1 + 5, 4)  # one batch of the 4 tiles: encoder + 5 inversion steps
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    with pytest.raises(SegmentationCancelled):
        compute_noise(big, bundle, NoiseConfig("prior", inversion_steps=5), device="cpu", cancel=lambda: True)


def test_peek_bundle(tiny_bundle_dir, tmp_path):
    card, timesteps = peek_bundle(tiny_bundle_dir)
    assert card.class_names == ("background", "live", "dead") and timesteps == 1000
    with pytest.raises(BundleError, match="does not exist"):
        peek_bundle(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="pgdiffseg.json is missing"):
        peek_bundle(tmp_path / "empty")


def test_split_cells_separates_touching_cells():
    yy, xx = np.mgrid[:80, :120]
    d1 = np.hypot(yy - 40, xx - 40)
    d2 = np.hypot(yy - 40, xx - 75)
    phase = np.maximum(np.clip(1 - d1 / 20, 0, None), np.clip(1 - d2 / 20, 0, None)).astype(np.float32)
    labels = np.where(phase > 0, 1, 0).astype(np.uint8)
    labels[5:10, 100:110] = 1  # a small separate region: its own id
    cells = split_cells(labels, phase, 1, min_distance=10)
    assert cells.dtype == np.int32
    assert set(np.unique(cells)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(cells > 0, labels == 1)
    assert cells[40, 40] != cells[40, 75]
    assert not split_cells(labels, phase, 2).any()


def test_summarize_planes_sums_counts_and_averages_fractions():
    a = np.zeros((64, 64), np.uint8)
    a[5:20, 5:20] = 1
    b = np.zeros((64, 64), np.uint8)
    b[30:50, 30:50] = 2
    out = summarize_planes([a, b], ("background", "live", "dead"), min_area=30)
    assert (out["live_cells"], out["dead_cells"]) == (1, 1)
    assert out["viability_percent"] == 50.0
    assert out["fraction_live"] == pytest.approx(225 / 4096 / 2)

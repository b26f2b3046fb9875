"""Tests of the segmentation scores and starting-noise quality metrics (core/metrics.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage import draw, transform

from napari_pgdiffseg.core.errors import ConfigError, InputImageError
from napari_pgdiffseg.core.metrics import (
    confusion_matrix,
    f1_per_class,
    iou_per_class,
    mean_f1,
    mean_iou,
    noise_edges,
    noise_kld,
    noise_ssim,
    noise_stats,
    segmentation_scores,
)

# --------------------------------------------------------------------------------------
# Segmentation scores on a hand-worked 3x4 example, 4 classes:
#   class 2 occurs nowhere (undefined -> NaN, ignored in the means),
#   class 3 occurs only in truth (IoU = F1 = 0).
# --------------------------------------------------------------------------------------

TRUTH = np.array(
    [
        [0, 0, 1, 1],
        [0, 1, 1, 1],
        [3, 3, 1, 0],
    ]
)
PRED = np.array(
    [
        [0, 1, 1, 1],
        [0, 0, 1, 1],
        [1, 0, 1, 0],
    ]
)
# (truth, pred) pairs: truth 0 -> pred 0 x3, pred 1 x1; truth 1 -> pred 1 x5, pred 0 x1;
# truth 3 -> pred 1 x1, pred 0 x1.
EXPECTED_CM = np.array(
    [
        [3, 1, 0, 0],
        [1, 5, 0, 0],
        [0, 0, 0, 0],
        [1, 1, 0, 0],
    ]
)
# class 0: TP 3, FP 2 (one truth-1 and one truth-3 pixel predicted 0), FN 1
#          IoU 3/6, F1 6/9
# class 1: TP 5, FP 2 (one truth-0, one truth-3), FN 1 -> IoU 5/8, F1 10/13
# class 2: TP = FP = FN = 0 -> NaN
# class 3: TP 0, FP 0, FN 2 -> 0
EXPECTED_IOU = np.array([3 / 6, 5 / 8, np.nan, 0.0])
EXPECTED_F1 = np.array([6 / 9, 10 / 13, np.nan, 0.0])
EXPECTED_MIOU = (3 / 6 + 5 / 8 + 0.0) / 3  # 0.375
EXPECTED_MF1 = (6 / 9 + 10 / 13 + 0.0) / 3  # 56/117


def test_confusion_matrix_hand_example():
    cm = confusion_matrix(PRED, TRUTH, 4)
    assert cm.dtype == np.int64
    assert cm.shape == (4, 4)
    np.testing.assert_array_equal(cm, EXPECTED_CM)
    assert cm.sum() == TRUTH.size


def test_per_class_and_means_hand_example():
    iou = iou_per_class(PRED, TRUTH, 4)
    f1 = f1_per_class(PRED, TRUTH, 4)
    assert iou.dtype == np.float64 and iou.shape == (4,)
    np.testing.assert_allclose(iou, EXPECTED_IOU, equal_nan=True)
    np.testing.assert_allclose(f1, EXPECTED_F1, equal_nan=True)
    assert np.isnan(iou[2]) and np.isnan(f1[2])
    assert iou[3] == 0.0 and f1[3] == 0.0
    assert mean_iou(PRED, TRUTH, 4) == pytest.approx(0.375)
    assert mean_iou(PRED, TRUTH, 4) == pytest.approx(EXPECTED_MIOU)
    assert mean_f1(PRED, TRUTH, 4) == pytest.approx(56 / 117)
    assert mean_f1(PRED, TRUTH, 4) == pytest.approx(EXPECTED_MF1)


def test_segmentation_scores_dict():
    scores = segmentation_scores(PRED, TRUTH, 4)
    assert set(scores) == {"miou", "f1", "iou_per_class", "f1_per_class"}
    assert isinstance(scores["miou"], float) and isinstance(scores["f1"], float)
    assert scores["miou"] == pytest.approx(EXPECTED_MIOU)
    assert scores["f1"] == pytest.approx(EXPECTED_MF1)
    np.testing.assert_allclose(scores["iou_per_class"], EXPECTED_IOU, equal_nan=True)
    np.testing.assert_allclose(scores["f1_per_class"], EXPECTED_F1, equal_nan=True)


def test_absent_class_does_not_change_the_mean():
    # Same maps scored with 3 classes: class 2 absent from both, so only the labelling of
    # class 3 differs; remap truth 3 -> 2 and the defined classes are the same.
    truth3 = np.where(TRUTH == 3, 2, TRUTH)
    assert mean_iou(PRED, truth3, 3) == pytest.approx(EXPECTED_MIOU)
    # Adding more never-used classes leaves the mean unchanged.
    assert mean_iou(PRED, TRUTH, 7) == pytest.approx(EXPECTED_MIOU)


def test_perfect_prediction_scores_one():
    scores = segmentation_scores(TRUTH, TRUTH, 4)
    assert scores["miou"] == 1.0
    assert scores["f1"] == 1.0
    np.testing.assert_array_equal(scores["iou_per_class"], [1.0, 1.0, np.nan, 1.0])


def test_class_only_in_pred_scores_zero():
    truth = np.array([[0, 0], [0, 1]])
    pred = np.array([[0, 2], [0, 1]])
    # class 0: TP 2, FN 1 -> IoU 2/3; class 1: 1; class 2: FP 1 only -> 0
    np.testing.assert_allclose(iou_per_class(pred, truth, 3), [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(f1_per_class(pred, truth, 3), [4 / 5, 1.0, 0.0])


def test_bool_and_whole_float_labels_accepted():
    truth = np.array([[True, False], [True, True]])
    pred = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(confusion_matrix(pred, truth, 2), [[1, 0], [1, 2]])


def test_shape_mismatch_raises():
    with pytest.raises(InputImageError, match=r"same shape.*\(3, 4\).*\(4, 3\)"):
        confusion_matrix(PRED, TRUTH.T, 4)


def test_label_out_of_range_raises_naming_values():
    pred = PRED.copy()
    pred[0, 0] = 5
    with pytest.raises(InputImageError, match=r"pred holds labels \[5\] outside \[0, 4\)"):
        mean_iou(pred, TRUTH, 4)
    truth = TRUTH.copy()
    truth[1, 1] = -1
    with pytest.raises(InputImageError, match=r"truth holds labels \[-1\] outside"):
        iou_per_class(PRED, truth, 4)


def test_fractional_float_labels_raise():
    pred = PRED.astype(float)
    pred[2, 3] = 0.5
    with pytest.raises(InputImageError, match=r"pred holds non-integer label values \[0\.5\]"):
        confusion_matrix(pred, TRUTH, 4)


def test_non_finite_and_non_numeric_labels_raise():
    truth = TRUTH.astype(float)
    truth[0, 0] = np.nan
    with pytest.raises(InputImageError, match="truth holds non-finite"):
        confusion_matrix(PRED, truth, 4)
    with pytest.raises(InputImageError, match="integer labels"):
        confusion_matrix(np.array(["a", "b"]), np.array(["a", "b"]), 2)


@pytest.mark.parametrize("n", [0, -2, 2.0, True, "3"])
def test_bad_n_classes_raises_config_error(n):
    with pytest.raises(ConfigError, match="n_classes must be a positive integer"):
        confusion_matrix(PRED, TRUTH, n)


def test_empty_arrays_have_no_mean():
    empty = np.zeros((0, 4), dtype=int)
    np.testing.assert_array_equal(confusion_matrix(empty, empty, 3), np.zeros((3, 3)))
    assert np.all(np.isnan(iou_per_class(empty, empty, 3)))
    with pytest.raises(InputImageError, match="no class occurs"):
        mean_iou(empty, empty, 3)
    with pytest.raises(InputImageError, match="no class occurs"):
        segmentation_scores(empty, empty, 3)


# --------------------------------------------------------------------------------------
# Starting-noise metrics
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disk_image():
    """A 256x256 bright disk (radius 60) on a dark background, slightly blurred."""
    img = np.zeros((256, 256))
    rr, cc = draw.disk((128, 128), 60)
    img[rr, cc] = 1.0
    return ndimage.gaussian_filter(img, 3)


@pytest.fixture(scope="module")
def smooth_image():
    """A smooth, image-like 256x256 random field."""
    rng = np.random.default_rng(7)
    return ndimage.gaussian_filter(rng.standard_normal((256, 256)), 8)


def test_kld_of_standard_gaussian_is_near_zero():
    noise = np.random.default_rng(0).standard_normal((3, 64, 64))
    assert 0.0 <= noise_kld(noise) < 0.01


def test_kld_of_non_gaussian_maps_is_large(smooth_image):
    rng = np.random.default_rng(1)
    # KL(U(0,1) || N(0,1)) = log(sqrt(2 pi)) + 1/6 ~ 1.09; the KDE rounds off the
    # uniform's sharp edges, which raises its entropy and lowers the estimate a little.
    assert 0.8 < noise_kld(rng.uniform(0.0, 1.0, size=(64, 64))) < 1.15
    # An image-like latent: smooth, shifted and scaled.
    latent = transform.resize(smooth_image, (64, 64), anti_aliasing=True)
    latent = 0.5 * (latent - latent.mean()) / latent.std() + 2.0
    assert noise_kld(latent) > 0.1


def test_kld_of_channel_averaged_noise_is_about_0_2():
    # Analytically KL(N(0, s^2) || N(0, 1)) = (s^2 - 1 - ln s^2) / 2 = 0.21 for s = 0.58.
    rng = np.random.default_rng(2)
    assert 0.12 < noise_kld(0.58 * rng.standard_normal((3, 64, 64))) < 0.3
    # The paper's rule: the mean of three N(0,1) channels has std 1/sqrt(3).
    assert 0.12 < noise_kld(rng.standard_normal((3, 64, 64)).mean(axis=0)) < 0.3


def test_kld_degenerate_and_extreme_inputs():
    assert noise_kld(np.full((8, 8), 0.3)) == math.inf
    rng = np.random.default_rng(3)
    far = np.concatenate([rng.standard_normal(2000), [1e4]])
    value = noise_kld(far)
    assert math.isfinite(value) and value > 1.0
    with pytest.raises(InputImageError, match="non-finite"):
        noise_kld(np.array([0.0, 1.0, np.nan]))
    with pytest.raises(InputImageError, match="empty"):
        noise_kld(np.array([]))
    with pytest.raises(ConfigError, match="grid_points"):
        noise_kld(rng.standard_normal(100), grid_points=10)


def test_kld_subsamples_large_noise_deterministically():
    noise = np.random.default_rng(4).standard_normal(60_000)
    first = noise_kld(noise)
    assert first == noise_kld(noise)
    assert first < 0.01
    assert noise_kld(noise, max_samples=5_000) < 0.02


def test_kld_bandwidth_is_passed_to_kde():
    noise = np.random.default_rng(5).standard_normal(4000)
    # A much wider kernel inflates the KDE's variance and so the divergence.
    assert noise_kld(noise, bandwidth=1.0) > noise_kld(noise) + 0.05


def test_ssim_of_a_map_with_itself_is_one():
    x = np.random.default_rng(6).standard_normal((64, 64))
    assert noise_ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    # Scale and offset do not matter: both maps are standardised.
    assert noise_ssim(3.0 * x + 1.0, x) == pytest.approx(1.0, abs=1e-6)


def test_ssim_of_random_noise_with_an_image_is_near_zero(disk_image, smooth_image):
    rng = np.random.default_rng(8)
    for image in (disk_image, smooth_image):
        assert abs(noise_ssim(rng.standard_normal((3, 64, 64)), image)) < 0.1
        assert abs(noise_ssim(rng.standard_normal((64, 64)), image)) < 0.1


def test_ssim_of_a_content_prior_is_high(disk_image, smooth_image):
    rng = np.random.default_rng(9)
    for image in (disk_image, smooth_image):
        small = transform.resize(image, (64, 64), anti_aliasing=True)
        prior = small + 0.05 * small.std() * rng.standard_normal((64, 64))
        assert noise_ssim(prior, image) > 0.5
        stacked = np.stack([small + 0.05 * small.std() * rng.standard_normal((64, 64))] * 3)
        assert noise_ssim(stacked, image) > 0.5


def test_ssim_small_maps_and_bad_inputs():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 6))
    assert noise_ssim(x, x) == pytest.approx(1.0, abs=1e-6)  # window shrinks to 5
    with pytest.raises(InputImageError, match="too small"):
        noise_ssim(rng.standard_normal((2, 8)), rng.standard_normal((8, 8)))
    with pytest.raises(InputImageError, match="image is constant"):
        noise_ssim(rng.standard_normal((16, 16)), np.ones((32, 32)))
    with pytest.raises(InputImageError, match="noise is constant"):
        noise_ssim(np.zeros((3, 16, 16)), rng.standard_normal((32, 32)))
    with pytest.raises(InputImageError, match=r"image must be a 2D"):
        noise_ssim(rng.standard_normal((16, 16)), rng.standard_normal((3, 32, 32)))
    with pytest.raises(InputImageError, match=r"\(h, w\) or channels-first"):
        noise_ssim(rng.standard_normal((1, 3, 16, 16)), rng.standard_normal((32, 32)))
    bad = rng.standard_normal((16, 16))
    bad[0, 0] = np.inf
    with pytest.raises(InputImageError, match="non-finite"):
        noise_ssim(rng.standard_normal((16, 16)), bad)


def _disk_prior(noise_std: float, seed: int):
    """A 64x64 prior holding a radius-15 disk, plus its boundary distance map."""
    img = np.zeros((256, 256))
    rr, cc = draw.disk((128, 128), 60)
    img[rr, cc] = 1.0
    small = transform.resize(img, (64, 64), anti_aliasing=True)
    prior = small + noise_std * np.random.default_rng(seed).standard_normal((64, 64))
    mask = small > 0.5
    boundary = mask ^ ndimage.binary_erosion(mask)
    return prior, ndimage.distance_transform_edt(~boundary)


@pytest.mark.parametrize("enhance", ["clahe", "stretch"])
def test_edges_of_a_disk_prior_lie_on_its_boundary(enhance):
    prior, dist = _disk_prior(0.02, seed=11)
    edges = noise_edges(prior, enhance=enhance)
    assert edges.dtype == bool and edges.shape == (64, 64)
    assert edges.sum() > 40  # the circle (circumference ~94 px) is found
    assert np.mean(dist[edges] <= 3) > 0.8
    # Three averaged channels give the same kind of map.
    edges3 = noise_edges(np.stack([prior] * 3), enhance=enhance)
    np.testing.assert_array_equal(edges3, edges)


def test_edges_of_random_noise_and_constant_noise():
    noise = np.random.default_rng(12).standard_normal((3, 64, 48))
    edges = noise_edges(noise)
    assert edges.dtype == bool and edges.shape == (64, 48)
    flat = noise_edges(np.full((32, 32), 2.0))
    assert flat.dtype == bool and not flat.any()


def test_edges_bad_settings():
    noise = np.random.default_rng(13).standard_normal((32, 32))
    with pytest.raises(ConfigError, match="sigma must be"):
        noise_edges(noise, sigma=-1.0)
    with pytest.raises(ConfigError, match="canny_sigma must be"):
        noise_edges(noise, canny_sigma=float("nan"))
    with pytest.raises(ConfigError, match="enhance must be one of"):
        noise_edges(noise, enhance="hist")


def test_noise_stats():
    noise = np.array([[-1.0, 1.0], [3.0, 1.0]])
    stats = noise_stats(noise)
    assert stats == {"mean": 1.0, "std": pytest.approx(math.sqrt(2.0)), "min": -1.0, "max": 3.0}
    assert all(isinstance(v, float) for v in stats.values())
    averaged = np.random.default_rng(14).standard_normal((3, 64, 64)).mean(axis=0)
    assert noise_stats(averaged)["std"] == pytest.approx(1 / math.sqrt(3), abs=0.02)
    with pytest.raises(InputImageError, match="empty"):
        noise_stats(np.array([]))


# ---- real-data scores: foreground IoU, object F1, dead share -------------------------------

from napari_pgdiffseg.core.metrics import dead_share_of_live, foreground_iou, match_instances, object_f1  # noqa: E402


def test_foreground_iou_by_hand():
    pred = np.zeros((10, 10), np.uint8)
    truth = np.zeros((10, 10), np.uint8)
    pred[0:4, 0:5] = 1  # 20 px
    truth[2:6, 0:5] = 2  # 20 px, overlap 10 px (any object class counts)
    assert foreground_iou(pred, truth) == pytest.approx(10 / 30)
    assert foreground_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_object_f1_matches_one_to_one_at_iou_half():
    truth = np.zeros((20, 40), np.int32)
    truth[2:10, 2:10] = 1   # 64 px
    truth[2:10, 20:28] = 2  # 64 px
    pred = np.zeros_like(truth)
    pred[2:10, 2:10] = 7     # exact: IoU 1
    pred[2:10, 24:32] = 3    # IoU 32 / 96 = 0.33: no match
    pred[15:18, 35:38] = 9   # a false positive
    assert match_instances(pred, truth) == (1, 3, 2)
    assert object_f1(pred, truth) == pytest.approx(2 * 1 / 5)
    assert object_f1(pred, truth, threshold=0.3) == pytest.approx(2 * 2 / 5)
    # One predicted object over two true ones (IoU 64 / 128 = 0.5 with each) is one match at most.
    merged = np.where(truth > 0, 1, 0)
    assert match_instances(merged, truth) == (1, 1, 2)
    assert object_f1(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_object_f1_threshold_is_inclusive_and_checked():
    truth = np.zeros((4, 8), np.int32)
    truth[:, :4] = 1
    pred = np.zeros_like(truth)
    pred[:, :8] = 1  # IoU 16 / 32 = 0.5
    assert match_instances(pred, truth, 0.5) == (1, 1, 1)
    with pytest.raises(ConfigError, match="threshold"):
        object_f1(pred, truth, threshold=0)


def test_dead_share_of_live():
    truth = np.array([[1, 1, 1, 1], [0, 2, 2, 0]])
    pred = np.array([[2, 1, 1, 0], [0, 2, 0, 0]])
    assert dead_share_of_live(pred, truth) == 0.25
    assert np.isnan(dead_share_of_live(pred, np.zeros_like(truth)))

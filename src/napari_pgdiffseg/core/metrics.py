"""Scores for segmentations (confusion matrix, IoU, F1) and for starting noises (KLD, SSIM,
Canny edges, summary statistics), as in Sec. 4.5 and Fig. 3 of the PG-DiffSeg paper.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import stats
from skimage import exposure, feature, filters, transform
from skimage.metrics import structural_similarity

from napari_pgdiffseg.core.errors import ConfigError, InputImageError

__all__ = [
    "confusion_matrix",
    "iou_per_class",
    "f1_per_class",
    "mean_iou",
    "mean_f1",
    "segmentation_scores",
    "foreground_iou",
    "match_instances",
    "object_f1",
    "dead_share_of_live",
    "noise_kld",
    "noise_ssim",
    "noise_edges",
    "noise_stats",
]

# Number of offending values quoted in an error message; more would flood the CLI line.
_MAX_QUOTED = 10

# Default cap on the number of values the KDE is built from (see `noise_kld`).
_KLD_MAX_SAMPLES = 20_000

# Floor for KDE densities before taking the log: far from the data the KDE underflows to 0,
# and log(0) would turn 0 * log(0) into NaN instead of the 0 it should contribute.
_DENSITY_EPS = 1e-300


# --------------------------------------------------------------------------------------
# Segmentation scores
# --------------------------------------------------------------------------------------


def _check_n_classes(n_classes) -> int:
    if isinstance(n_classes, (bool, np.bool_)) or not isinstance(n_classes, numbers.Integral):
        raise ConfigError(f"n_classes must be a positive integer, got {n_classes!r}")
    if n_classes < 1:
        raise ConfigError(f"n_classes must be a positive integer, got {n_classes}")
    return int(n_classes)


def _quote(values: np.ndarray) -> str:
    """Format up to `_MAX_QUOTED` distinct values for an error message."""
    uniq = np.unique(values)
    shown = ", ".join(repr(v.item()) for v in uniq[:_MAX_QUOTED])
    more = f" (and {uniq.size - _MAX_QUOTED} more)" if uniq.size > _MAX_QUOTED else ""
    return f"[{shown}]{more}"


def _as_labels(arr, name: str, n_classes: int) -> np.ndarray:
    """Return `arr` as an int64 label array, or raise InputImageError saying why not."""
    a = np.asarray(arr)
    if a.dtype == bool:
        a = a.astype(np.int64)
    elif np.issubdtype(a.dtype, np.integer):
        pass
    elif np.issubdtype(a.dtype, np.floating):
        # Float label maps are common (e.g. read back from a float TIFF); accept them only
        # when every value is a whole number, so no label is silently truncated.
        if not np.all(np.isfinite(a)):
            raise InputImageError(
                f"{name} holds non-finite values {_quote(a[~np.isfinite(a)])}; "
                "labels must be integers"
            )
        frac = a != np.round(a)
        if np.any(frac):
            raise InputImageError(
                f"{name} holds non-integer label values {_quote(a[frac])}; "
                "labels must be whole numbers"
            )
    else:
        raise InputImageError(f"{name} must hold integer labels, got dtype {a.dtype}")
    bad = (a < 0) | (a >= n_classes)
    if np.any(bad):
        raise InputImageError(
            f"{name} holds labels {_quote(a[bad])} outside [0, {n_classes}); "
            f"labels must be 0..{n_classes - 1}"
        )
    return a.astype(np.int64, copy=False)


def confusion_matrix(pred, truth, n_classes: int) -> np.ndarray:
    """Count pixels by (true class, predicted class).

    Parameters
    ----------
    pred, truth : array_like of int, same shape (any dimensionality)
        Label maps with values in ``[0, n_classes)``. Bool arrays and float arrays holding
        whole numbers are accepted.
    n_classes : int
        Number of classes, >= 1.

    Returns
    -------
    np.ndarray, shape (n_classes, n_classes), int64
        ``cm[i, j]`` = number of pixels of true class ``i`` predicted as class ``j``
        (rows: truth, columns: prediction).

    Raises
    ------
    ConfigError
        If `n_classes` is not a positive integer.
    InputImageError
        If the shapes differ, or a label is fractional, non-finite or out of range
        (the message names the offending values).
    """
    n = _check_n_classes(n_classes)
    p = np.asarray(pred)
    t = np.asarray(truth)
    if p.shape != t.shape:
        raise InputImageError(
            f"pred and truth must have the same shape, got {p.shape} and {t.shape}"
        )
    p = _as_labels(p, "pred", n)
    t = _as_labels(t, "truth", n)
    counts = np.bincount((t * n + p).ravel(), minlength=n * n)
    return counts.reshape(n, n).astype(np.int64, copy=False)


def _per_class_from_cm(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and F1 per class from a confusion matrix; NaN where the class is absent."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (tp + fp + fn) > 0
    iou = np.full(tp.shape, np.nan)
    f1 = np.full(tp.shape, np.nan)
    iou[present] = tp[present] / (tp + fp + fn)[present]
    f1[present] = 2 * tp[present] / (2 * tp + fp + fn)[present]
    return iou, f1


def _nanmean_or_raise(values: np.ndarray, what: str) -> float:
    if np.all(np.isnan(values)):
        raise InputImageError(
            f"{what} is undefined: no class occurs in pred or truth (are the arrays empty?)"
        )
    return float(np.nanmean(values))


def iou_per_class(pred, truth, n_classes: int) -> np.ndarray:
    """Intersection over union of each class, TP / (TP + FP + FN).

    A class absent from both `pred` and `truth` has TP = FP = FN = 0; its IoU is undefined
    and returned as NaN (not 0 and not 1). A class present only in `truth` (or only in
    `pred`) has IoU 0.

    Parameters
    ----------
    pred, truth, n_classes
        As in `confusion_matrix`.

    Returns
    -------
    np.ndarray, shape (n_classes,), float64
        Values in [0, 1], or NaN for absent classes.
    """
    return _per_class_from_cm(confusion_matrix(pred, truth, n_classes))[0]


def f1_per_class(pred, truth, n_classes: int) -> np.ndarray:
    """F1 score (Dice) of each class, 2 TP / (2 TP + FP + FN).

    Same absent-class convention as `iou_per_class`: NaN for a class absent from both
    `pred` and `truth`, 0 for a class present in only one of them.

    Returns
    -------
    np.ndarray, shape (n_classes,), float64
        Values in [0, 1], or NaN for absent classes.
    """
    return _per_class_from_cm(confusion_matrix(pred, truth, n_classes))[1]


def mean_iou(pred, truth, n_classes: int) -> float:
    """Mean IoU over the classes that occur in `pred` or `truth` (mIoU).

    Convention: the mean is ``nanmean`` of `iou_per_class`, so a class absent from both
    arrays is left out of the mean instead of counting as 0 or 1.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    InputImageError
        If no class occurs at all (only possible for empty arrays), or as in
        `confusion_matrix`.
    """
    return _nanmean_or_raise(iou_per_class(pred, truth, n_classes), "mean IoU")


def mean_f1(pred, truth, n_classes: int) -> float:
    """Mean F1 (Dice) over the classes that occur in `pred` or `truth`.

    Same convention as `mean_iou`: ``nanmean`` over classes, absent classes ignored.

    Returns
    -------
    float in [0, 1]
    """
    return _nanmean_or_raise(f1_per_class(pred, truth, n_classes), "mean F1")


def segmentation_scores(pred, truth, n_classes: int) -> dict:
    """All segmentation scores from one confusion matrix.

    Returns
    -------
    dict
        ``"miou"`` (float), ``"f1"`` (float, mean F1), ``"iou_per_class"`` and
        ``"f1_per_class"`` (float64 arrays of shape (n_classes,), NaN for classes absent
        from both arrays). Means follow the `mean_iou` convention (absent classes ignored).
    """
    iou, f1 = _per_class_from_cm(confusion_matrix(pred, truth, n_classes))
    return {
        "miou": _nanmean_or_raise(iou, "mean IoU"),
        "f1": _nanmean_or_raise(f1, "mean F1"),
        "iou_per_class": iou,
        "f1_per_class": f1,
    }


def foreground_iou(pred, truth) -> float:
    """IoU of "any object class" (label > 0) between `pred` and `truth` (1.0 when both are empty)."""
    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    if p.shape != t.shape:
        raise InputImageError(f"prediction shape {p.shape} differs from truth shape {t.shape}")
    union = np.count_nonzero(p | t)
    return 1.0 if union == 0 else float(np.count_nonzero(p & t) / union)


def match_instances(pred_ids, true_ids, threshold: float = 0.5) -> tuple[int, int, int]:
    """(true positives, predicted objects, true objects): one-to-one matching of instances.

    `pred_ids`, `true_ids`: (H, W) integer id maps, 0 background. Pairs are matched by
    maximum total IoU (scipy's linear_sum_assignment on the IoU matrix); a match counts
    when its IoU is >= `threshold` (above 0.5 a match is unique anyway).
    """
    from scipy.optimize import linear_sum_assignment

    p, t = np.asarray(pred_ids), np.asarray(true_ids)
    if p.shape != t.shape:
        raise InputImageError(f"prediction shape {p.shape} differs from truth shape {t.shape}")
    if not 0 < threshold <= 1:
        raise ConfigError(f"IoU threshold must be in (0, 1], got {threshold}")
    p_ids, p_inv = np.unique(p, return_inverse=True)
    t_ids, t_inv = np.unique(t, return_inverse=True)
    # Compact ids 0..n (background kept as row/column 0 when present) for a dense contingency table.
    inter = np.zeros((p_ids.size, t_ids.size), np.int64)
    np.add.at(inter, (p_inv.ravel(), t_inv.ravel()), 1)
    p_fg, t_fg = p_ids > 0, t_ids > 0
    inter = inter[np.ix_(p_fg, t_fg)]
    n_pred, n_true = inter.shape
    if n_pred == 0 or n_true == 0:
        return 0, n_pred, n_true
    area_p = np.bincount(p_inv.ravel(), minlength=p_ids.size)[p_fg]
    area_t = np.bincount(t_inv.ravel(), minlength=t_ids.size)[t_fg]
    iou = inter / (area_p[:, None] + area_t[None, :] - inter)
    rows, cols = linear_sum_assignment(-iou)
    return int((iou[rows, cols] >= threshold).sum()), n_pred, n_true


def object_f1(pred_ids, true_ids, threshold: float = 0.5) -> float:
    """F1 of object detection: 2 TP / (predicted + true objects), matches at IoU >= `threshold`.

    1.0 when both maps hold no object.
    """
    tp, n_pred, n_true = match_instances(pred_ids, true_ids, threshold)
    return 1.0 if n_pred + n_true == 0 else 2.0 * tp / (n_pred + n_true)


def dead_share_of_live(pred, truth, live: int = 1, dead: int = 2) -> float:
    """Share of the true `live` pixels that `pred` calls `dead` (NaN without live pixels)."""
    p, t = np.asarray(pred), np.asarray(truth)
    live_px = t == live
    n = np.count_nonzero(live_px)
    return float("nan") if n == 0 else float(np.count_nonzero(p[live_px] == dead) / n)


# --------------------------------------------------------------------------------------
# Starting-noise quality
# --------------------------------------------------------------------------------------


def _as_finite_float(arr, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise InputImageError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if a.size == 0:
        raise InputImageError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise InputImageError(
            f"{name} holds {int(np.count_nonzero(~np.isfinite(a)))} non-finite values "
            "(NaN or inf)"
        )
    return a


def _noise_map(noise, name: str = "noise") -> np.ndarray:
    """A (h, w) float64 map from a (h, w) or channels-first (c, h, w) noise.

    Channels are averaged, as the paper does to turn the LDM-P latent into one map.
    """
    a = _as_finite_float(noise, name)
    if a.ndim == 3:
        a = a.mean(axis=0)
    elif a.ndim != 2:
        raise InputImageError(
            f"{name} must be (h, w) or channels-first (c, h, w), got shape {a.shape}"
        )
    return a


def noise_kld(
    noise,
    grid_points: int = 1000,
    bandwidth=None,
    max_samples: int = _KLD_MAX_SAMPLES,
) -> float:
    """Kullback-Leibler divergence KL(p || N(0, 1)) of the noise's value distribution.

    ``p`` is a Gaussian kernel density estimate (`scipy.stats.gaussian_kde`) of all values
    of `noise`, flattened (0 means the values look like standard Gaussian noise; the paper's
    "KLD" column). The integral ``∫ p log(p / q)`` is taken with the trapezoid rule on a
    fixed grid spanning ``[-6, 6]`` widened to ``[min - 3 h, max + 3 h]`` of the data
    (``h``: KDE bandwidth), with ``grid_points`` points, refined (up to 10x) when needed so
    that the spacing stays below h / 4. ``p`` is renormalised on the grid and floored at a
    tiny epsilon, so a noise far from Gaussian gives a large finite value instead of NaN.
    Evaluating on a grid costs ~0.2 s for 12,288 values, evaluating at every sample ~2 s.

    Parameters
    ----------
    noise : array_like, any shape, real, finite
        Starting noise (e.g. a (3, 64, 64) latent). All values are pooled.
    grid_points : int
        Minimum number of grid points, >= 100.
    bandwidth : None, str, float or callable
        Passed to `gaussian_kde` as ``bw_method``: None / "scott" (default) or
        "silverman", or a scalar factor multiplying the data's standard deviation.
    max_samples : int
        If the noise holds more values, the KDE is built from `max_samples` of them drawn
        without replacement by a fixed-seed generator, so the result is deterministic and
        the cost bounded.

    Returns
    -------
    float
        >= 0 up to quadrature error (tiny negative values are clipped to 0); ``inf`` when
        all values are equal (the KDE is then degenerate).

    Raises
    ------
    InputImageError
        If the noise is empty, not numeric, or holds NaN/inf.
    ConfigError
        If `grid_points` < 100 or `max_samples` < 2.
    """
    if isinstance(grid_points, bool) or not isinstance(grid_points, numbers.Integral) or (
        grid_points < 100
    ):
        raise ConfigError(f"grid_points must be an integer >= 100, got {grid_points!r}")
    if isinstance(max_samples, bool) or not isinstance(max_samples, numbers.Integral) or (
        max_samples < 2
    ):
        raise ConfigError(f"max_samples must be an integer >= 2, got {max_samples!r}")
    x = _as_finite_float(noise, "noise").ravel()
    if x.size > max_samples:
        x = np.random.default_rng(0).choice(x, size=int(max_samples), replace=False)
    if x.size < 2 or np.ptp(x) == 0:
        return float("inf")

    kde = stats.gaussian_kde(x, bw_method=bandwidth)
    h = float(np.sqrt(kde.covariance[0, 0]))
    lo = min(-6.0, float(x.min()) - 3 * h)
    hi = max(6.0, float(x.max()) + 3 * h)
    # A grid coarser than the kernel would alias the KDE (e.g. a narrow spike of outliers
    # far from 0), so refine it, within a bounded cost.
    n_grid = int(np.clip(np.ceil((hi - lo) / (h / 4)) + 1, grid_points, 10 * grid_points))
    grid = np.linspace(lo, hi, n_grid)

    p = kde(grid)
    p = p / np.trapezoid(p, grid)
    log_p = np.log(np.maximum(p, _DENSITY_EPS))
    # logpdf rather than log(pdf): far tails of N(0,1) underflow to 0 otherwise.
    log_q = stats.norm.logpdf(grid)
    kld = float(np.trapezoid(p * (log_p - log_q), grid))
    return max(kld, 0.0)


def _ssim_window(shape: tuple[int, int]) -> int:
    """Largest odd window <= 7 that fits in `shape` (7 is skimage's default)."""
    side = min(7, *shape)
    if side % 2 == 0:
        side -= 1
    return side


def _standardise(a: np.ndarray, name: str) -> np.ndarray:
    std = a.std()
    if std == 0:
        raise InputImageError(
            f"{name} is constant (value {a.flat[0]:.6g}); SSIM needs a map with contrast"
        )
    return (a - a.mean()) / std


def noise_ssim(noise, image) -> float:
    """SSIM between a starting noise and the image it was derived from (paper's "SSIM").

    Rule (fixed so that numbers are comparable across runs):

    1. A (c, h_f, w_f) noise is averaged over channels to one (h_f, w_f) map.
    2. The (h, w) image is resized to (h_f, w_f) with
       ``skimage.transform.resize(order=1, anti_aliasing=True)`` (skipped if the shapes
       already match).
    3. Both maps are standardised to zero mean and unit variance, so SSIM compares
       structure rather than the arbitrary scale of latent vs. image units.
    4. ``skimage.metrics.structural_similarity`` with uniform (not Gaussian) weights, a
       7x7 window (or the largest odd window that fits, at least 3), and
       ``data_range`` = joint range of the two standardised maps
       (max of both maxima - min of both minima).

    Parameters
    ----------
    noise : array_like, (h_f, w_f) or channels-first (c, h_f, w_f), real, finite
    image : array_like, (h, w), real, finite

    Returns
    -------
    float in [-1, 1]
        1 for identical content, ~0 for pure random noise.

    Raises
    ------
    InputImageError
        If a shape is wrong, the map is smaller than 3x3, a value is non-finite, or the
        noise or image is constant.
    """
    n_map = _noise_map(noise)
    img = _as_finite_float(image, "image")
    if img.ndim != 2:
        raise InputImageError(f"image must be a 2D (h, w) array, got shape {img.shape}")
    if min(n_map.shape) < 3:
        raise InputImageError(
            f"noise map {n_map.shape} is too small for SSIM; both sides must be >= 3"
        )
    if img.shape != n_map.shape:
        img = transform.resize(
            img, n_map.shape, order=1, anti_aliasing=True, preserve_range=True
        )
    a = _standardise(n_map, "noise")
    b = _standardise(img, "image")
    data_range = float(max(a.max(), b.max()) - min(a.min(), b.min()))
    return float(
        structural_similarity(
            a,
            b,
            win_size=_ssim_window(n_map.shape),
            data_range=data_range,
            gaussian_weights=False,
        )
    )


def _stretch(m: np.ndarray) -> np.ndarray:
    p2, p98 = np.percentile(m, (2, 98))
    if p98 <= p2:
        # More than 96 % of the pixels share one value: fall back to the min-max range.
        return m
    return exposure.rescale_intensity(m, in_range=(p2, p98), out_range=(0.0, 1.0))


_ENHANCERS = {
    "clahe": exposure.equalize_adapthist,
    "stretch": _stretch,
    "none": lambda m: m,
}


def noise_edges(
    noise,
    sigma: float = 1.0,
    canny_sigma: float = 1.0,
    low: float | None = None,
    high: float | None = None,
    enhance: str = "clahe",
) -> np.ndarray:
    """Canny edges of a starting noise, as in Fig. 3 of the paper.

    Steps: average the channels of a (c, h, w) noise; rescale the map to [0, 1] (min-max);
    enhance contrast (default: CLAHE, `skimage.exposure.equalize_adapthist` with default
    settings, the paper's "contrast enhancement"); blur with `skimage.filters.gaussian`
    (`sigma`); detect edges with `skimage.feature.canny` (`canny_sigma`, thresholds `low` /
    `high` on the gradient magnitude of the [0, 1] map; None uses skimage's defaults).

    CLAHE equalises each tile, so weak noise in flat regions is stretched to a visible
    level and produces scattered edges there; ``enhance="stretch"`` (linear 2-98 %
    percentile stretch) keeps the relative noise level and shows contours more cleanly
    when a map is mostly flat.

    Parameters
    ----------
    noise : array_like, (h, w) or channels-first (c, h, w), real, finite
    sigma : float >= 0
        Gaussian blur before Canny (0: no blur).
    canny_sigma : float >= 0
        Canny's own Gaussian smoothing.
    low, high : float or None
        Canny hysteresis thresholds.
    enhance : {"clahe", "stretch", "none"}
        Contrast enhancement before the blur.

    Returns
    -------
    np.ndarray, shape (h, w), bool
        True on edge pixels. All False for a constant noise (it has no contour).

    Raises
    ------
    InputImageError
        If the noise has a wrong shape or non-finite values.
    ConfigError
        If a sigma is negative or `enhance` is unknown.
    """
    if not isinstance(enhance, str) or enhance not in _ENHANCERS:
        raise ConfigError(f"enhance must be one of {sorted(_ENHANCERS)}, got {enhance!r}")
    for name, value in (("sigma", sigma), ("canny_sigma", canny_sigma)):
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    m = _noise_map(noise)
    lo_v, hi_v = float(m.min()), float(m.max())
    if hi_v == lo_v:
        return np.zeros(m.shape, dtype=bool)
    m = (m - lo_v) / (hi_v - lo_v)
    m = _ENHANCERS[enhance](m)
    if sigma > 0:
        m = filters.gaussian(m, sigma=sigma, preserve_range=True)
    edges = feature.canny(m, sigma=canny_sigma, low_threshold=low, high_threshold=high)
    return np.asarray(edges, dtype=bool)


def noise_stats(noise) -> dict:
    """Mean, standard deviation, minimum and maximum of all values of a noise.

    Used to report what actually reaches LDM-S (e.g. std ~0.58 after averaging three
    N(0, 1) channels). Non-finite values are not rejected: they propagate (NaN/inf) so the
    report shows them.

    Parameters
    ----------
    noise : array_like, any shape, real, non-empty

    Returns
    -------
    dict
        ``{"mean": float, "std": float, "min": float, "max": float}`` (population std).
    """
    a = np.asarray(noise)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise InputImageError(f"noise must be a real numeric array, got dtype {a.dtype}")
    if a.size == 0:
        raise InputImageError("noise is empty")
    a = a.astype(np.float64, copy=False)
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
    }

"""How realistic are synthetic QPI tiles? Feature statistics and a real-vs-synthetic test.

Every frame is first normalised exactly as the package feeds it to the networks
(`preprocess.normalize` with the default `Normalization()`, percentiles 1 and 99.8 of the
whole frame), then cut into tiles, so that the comparison is made in the input space
the autoencoder sees and not in raw units (uint8 grey levels vs radians).

Scores (`realism_scores`):

* ``accuracy``: mean 5-fold (stratified) cross-validated accuracy of an L2-regularised
  logistic regression on standardised per-tile features (`tile_features`) telling real
  from synthetic tiles, on balanced classes. 0.5 means the features cannot tell the two
  sets apart, 1.0 that they are trivially separable. A linear model on a few dozen
  summary statistics is a weak critic on purpose: it measures whether the generator gets
  the first-order statistics (contrast, edges, texture scale, empty background) right,
  which is what a generator for pre-training and tests needs; it does not certify that
  the images are indistinguishable to a strong critic.
* ``intensity_w1`` / ``gradient_w1``: 1-D Wasserstein distances between the pooled pixel
  intensities, and between the pooled Sobel gradient magnitudes, of the two sets (in
  normalised units; the normalised range of a frame is 2).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import wasserstein_distance
from skimage.filters import sobel

from .errors import ConfigError
from .preprocess import Normalization, check_frame, normalize
from .synthetic import frame_rng

__all__ = [
    "FEATURE_NAMES",
    "tile_features",
    "realism_scores",
    "cv_accuracy",
    "frame_tiles",
    "read_frame",
    "real_tiles_from_files",
    "synthetic_tiles",
]

_INTENSITY_Q = (1, 5, 25, 50, 75, 95, 99)
_GRADIENT_Q = (50, 90, 99)
# Radial frequency bands of the power spectrum, in cycles per pixel (Nyquist = 0.5):
# cell-scale structure, nucleus/organelle scale, texture, and pixel noise.
_BANDS = ((0.004, 0.015), (0.015, 0.04), (0.04, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.5))
_NEAR_BG = 0.08  # |x - mode| below this (normalised units) counts as background

FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"q{q}" for q in _INTENSITY_Q)
    + ("std",)
    + tuple(f"grad_q{q}" for q in _GRADIENT_Q)
    + ("grad_mean", "log_laplace_energy", "log_highpass_energy")
    + tuple(f"log_power_{a:g}_{b:g}" for a, b in _BANDS)
    + ("near_background_fraction",)
)


def _as_tiles(tiles, name: str) -> np.ndarray:
    arr = np.asarray(tiles)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0 or min(arr.shape[1:]) < 8:
        raise ConfigError(f"{name} must be a stack of tiles (n, h, w) with n >= 1 and h, w >= 8, "
                          f"got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ConfigError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _band_masks(h: int, w: int) -> tuple[np.ndarray, list[np.ndarray]]:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    r = np.sqrt(fy * fy + fx * fx)
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float64)
    return window, [(r >= a) & (r < b) for a, b in _BANDS]


def _near_background_fraction(t: np.ndarray) -> float:
    # The background of a QPI tile is its most common level: the mode of a fine
    # histogram, not the median (a tile full of cells has its median inside cells).
    hist, edges = np.histogram(t, bins=120, range=(-1.5, 1.5))
    k = int(np.argmax(hist))
    mode = 0.5 * (edges[k] + edges[k + 1])
    return float(np.mean(np.abs(t - mode) < _NEAR_BG))


def tile_features(tiles) -> np.ndarray:
    """Per-tile summary statistics, (n, len(FEATURE_NAMES)) float64.

    `tiles` are already normalised (see `frame_tiles`): intensity quantiles and std,
    Sobel gradient-magnitude quantiles and mean, log Laplacian and high-pass (tile minus
    its Gaussian blur, sigma 2 px) energies, log radially averaged power in the bands
    `_BANDS` (Hann-windowed), and the fraction of near-background pixels.
    """
    arr = _as_tiles(tiles, "tiles")
    n, h, w = arr.shape
    window, bands = _band_masks(h, w)
    out = np.empty((n, len(FEATURE_NAMES)), np.float64)
    for i in range(n):
        t = arr[i].astype(np.float64)
        f: list[float] = list(np.percentile(t, _INTENSITY_Q))
        f.append(float(t.std()))
        g = sobel(t)
        f.extend(np.percentile(g, _GRADIENT_Q))
        f.append(float(g.mean()))
        lap = ndi.laplace(t)
        # log10 of energies: they span orders of magnitude between flat and busy tiles,
        # and a linear critic should compare them on a ratio scale.
        f.append(math.log10(float(np.mean(lap * lap)) + 1e-12))
        hp = t - ndi.gaussian_filter(t, 2.0)
        f.append(math.log10(float(np.mean(hp * hp)) + 1e-12))
        spec = np.abs(np.fft.rfft2((t - t.mean()) * window)) ** 2 / (h * w)
        f.extend(math.log10(float(spec[m].mean()) + 1e-12) if m.any() else -12.0 for m in bands)
        f.append(_near_background_fraction(t))
        out[i] = f
    return out


# --------------------------------------------------------------------------- the critic


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 50) -> np.ndarray:
    """Weights (k + 1,) of an L2 logistic regression (intercept last, not penalised).

    Newton's method: with a few dozen features the Hessian is tiny, and Newton converges
    in a handful of steps without a learning rate to tune.
    """
    n, k = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    wts = np.zeros(k + 1)
    pen = np.full(k + 1, l2)
    pen[-1] = 0.0
    for _ in range(iters):
        z = np.clip(xa @ wts, -30, 30)
        p = 1.0 / (1.0 + np.exp(-z))
        grad = xa.T @ (p - y) / n + pen * wts
        hess = (xa * (p * (1 - p))[:, None]).T @ xa / n + np.diag(pen) + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        wts -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return wts


def cv_accuracy(feat_a: np.ndarray, feat_b: np.ndarray, *, seed: int = 0, folds: int = 5,
                l2: float = 1e-2) -> tuple[float, float, int]:
    """(mean, std over folds, n per class) of the cross-validated accuracy of telling a from b.

    The larger set is subsampled to the size of the smaller one (balanced classes, so that
    0.5 is chance); folds are stratified; features are standardised with the training
    fold's mean and std only.
    """
    a = np.asarray(feat_a, np.float64)
    b = np.asarray(feat_b, np.float64)
    rng = np.random.default_rng(seed)
    m = min(len(a), len(b))
    if m < folds:
        raise ConfigError(f"need at least {folds} tiles in each set for {folds}-fold "
                          f"cross-validation, got {len(a)} and {len(b)}")
    a = a[rng.permutation(len(a))[:m]]
    b = b[rng.permutation(len(b))[:m]]
    x = np.vstack([a, b])
    y = np.concatenate([np.zeros(m), np.ones(m)])
    # Stratified folds: each class is shuffled and dealt round-robin into the folds.
    fold = np.empty(2 * m, np.int64)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        fold[idx[rng.permutation(m)]] = np.arange(m) % folds
    accs = []
    for f in range(folds):
        tr, te = fold != f, fold == f
        mu = x[tr].mean(0)
        sd = x[tr].std(0)
        sd[sd < 1e-12] = 1.0  # a constant feature carries no information; keep it at 0
        xtr, xte = (x[tr] - mu) / sd, (x[te] - mu) / sd
        wts = _fit_logistic(xtr, y[tr], l2)
        pred = (np.hstack([xte, np.ones((len(xte), 1))]) @ wts) > 0
        accs.append(float(np.mean(pred == (y[te] > 0.5))))
    return float(np.mean(accs)), float(np.std(accs)), m


def _pixel_sample(tiles: np.ndarray, per_tile: int, rng: np.random.Generator,
                  transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    # A random subset of pixels per tile: the W1 of pooled distributions is as good from
    # a few thousand pixels per tile as from all of them, and sorting stays cheap.
    n, h, w = tiles.shape
    k = min(per_tile, h * w)
    out = np.empty(n * k, np.float64)
    for i in range(n):
        t = tiles[i].astype(np.float64)
        if transform is not None:
            t = transform(t)
        out[i * k:(i + 1) * k] = t.ravel()[rng.choice(h * w, k, replace=False)]
    return out


def realism_scores(real_tiles, synthetic_tiles, seed: int = 0, *,
                   pixels_per_tile: int = 4096) -> dict:
    """Scores of synthetic tiles against real ones (both normalised, (n, h, w)).

    Returns a dict: ``accuracy`` (mean cross-validated real-vs-synthetic accuracy, 0.5 =
    indistinguishable), ``accuracy_std`` (over the 5 folds), ``intensity_w1`` and
    ``gradient_w1`` (1-D Wasserstein distances of the pooled pixel intensities and Sobel
    gradient magnitudes), ``n_tiles`` (tiles per class used by the classifier),
    ``n_real`` and ``n_synthetic`` (tiles given).
    """
    real = _as_tiles(real_tiles, "real_tiles")
    syn = _as_tiles(synthetic_tiles, "synthetic_tiles")
    acc, acc_sd, m = cv_accuracy(tile_features(real), tile_features(syn), seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    w_int = wasserstein_distance(_pixel_sample(real, pixels_per_tile, rng),
                                 _pixel_sample(syn, pixels_per_tile, rng))
    w_grad = wasserstein_distance(_pixel_sample(real, pixels_per_tile, rng, sobel),
                                  _pixel_sample(syn, pixels_per_tile, rng, sobel))
    return {
        "accuracy": acc,
        "accuracy_std": acc_sd,
        "intensity_w1": float(w_int),
        "gradient_w1": float(w_grad),
        "n_tiles": m,
        "n_real": int(len(real)),
        "n_synthetic": int(len(syn)),
    }


# --------------------------------------------------------------------------- tiles


def _even_starts(length: int, tile: int) -> list[int]:
    """Evenly spaced tile starts that cover [0, length) with the fewest tiles."""
    if length <= tile:
        return [0]
    k = math.ceil(length / tile)
    return [round(j * (length - tile) / (k - 1)) for j in range(k)]


def frame_tiles(frame, tile: int = 256, normalization: Normalization | None = None) -> np.ndarray:
    """Normalise one whole frame, then cut it into (k, tile, tile) tiles covering it.

    Tiles overlap where the frame size is not a multiple of `tile` (an 832 px side gives
    4 tiles at starts 0, 192, 384, 576); a frame smaller than `tile` is refused, since
    padding would add a fake flat border.
    """
    norm = Normalization() if normalization is None else normalization
    f = normalize(check_frame(frame), norm)
    h, w = f.shape
    if h < tile or w < tile:
        raise ConfigError(f"frame {h}x{w} is smaller than the tile size {tile}")
    return np.stack([f[y:y + tile, x:x + tile] for y in _even_starts(h, tile) for x in _even_starts(w, tile)])


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """A 2-D frame from a TIFF (tifffile) or another image file (scikit-image), as float32.

    An RGB(A) file whose colour channels are equal (the SLIM PNG exports) gives its first
    channel.
    """
    p = os.fspath(path)
    if p.lower().endswith((".tif", ".tiff")):
        import tifffile

        a = tifffile.imread(p)
    else:
        from skimage import io

        a = io.imread(p)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., 0]
    return np.asarray(a, np.float32)


def _subsample(tiles: np.ndarray, max_tiles: int | None, seed: int) -> np.ndarray:
    if max_tiles is None or len(tiles) <= max_tiles:
        return tiles
    idx = np.sort(np.random.default_rng(seed).choice(len(tiles), max_tiles, replace=False))
    return tiles[idx]


def real_tiles_from_files(paths: Iterable[str | os.PathLike], tile: int = 256,
                          max_tiles: int | None = None, seed: int = 0) -> np.ndarray:
    """Normalised tiles (n, tile, tile) float32 of the frames in `paths` (see `frame_tiles`).

    With `max_tiles`, a seeded random subset of that many tiles (drawn from all frames).
    """
    paths = list(paths)
    if not paths:
        raise ConfigError("no real frames given")
    tiles = np.concatenate([frame_tiles(read_frame(p), tile) for p in paths])
    return _subsample(tiles, max_tiles, seed)


def synthetic_tiles(make_frame: Callable, n_frames: int, seed: int = 0, tile: int = 256,
                    max_tiles: int | None = None, configs: Sequence | None = None) -> np.ndarray:
    """Normalised tiles of `n_frames` synthetic frames ``make_frame(frame_rng(seed, i), cfg)``.

    `make_frame` returns the image first (any extra outputs are ignored). `configs`, if
    given, is cycled over the frames (frame i uses ``configs[i % len(configs)]``), e.g. to
    mix HeLa-like and CHO-like frames; otherwise ``make_frame(rng)`` is called with its
    default config.
    """
    out = []
    for i in range(int(n_frames)):
        rng = frame_rng(seed, i)
        res = make_frame(rng) if not configs else make_frame(rng, configs[i % len(configs)])
        out.append(frame_tiles(res[0], tile))
    if not out:
        raise ConfigError("n_frames must be at least 1")
    return _subsample(np.concatenate(out), max_tiles, seed)

"""Seeded synthetic quantitative phase images (QPI) of cells with live/dead label masks.

Each frame is a float32 map of unwrapped optical phase in radians plus a uint8 label map
{0 background, 1 live cell, 2 dead cell}, in the spirit of label-free live/dead assays
(SLIM images of HeLa and CHO cells, Hu et al., Nat. Commun. 13, 713, 2022). The same
generator makes easy and hard sets: ``difficulty`` in [0, 1] turns down the contrast
between the classes and turns up clutter and noise.

Image model
-----------
``phase = offset + tilt + low_frequency + noise + (1 - halo * G) * sum_cells(thickness) + debris``

Cells (defaults are those of difficulty 0 and of a 256x256 tile cut unscaled from an
832x832 SLIM frame: HeLa cells spread to 100-250 px, CHO cells 40-80 px, rounded dead
cells 20-60 px across):

* Number: ``round(u * h * w / 256**2 * (1 + d))`` with ``u ~ U(density)`` (cells per
  256x256 area, default 3-8, allowed 0-200) and ``d`` the difficulty; dead cells are
  ``n - n_live`` with ``n_live`` the stochastic rounding of ``n * U(live_fraction)``
  (default 0.35-0.75, allowed 0-1).
* Placement (largest cells first): centres uniform in the frame, or (probability 0.5)
  next to a cell already placed, so that cells touch and form clusters. A candidate is
  rejected when it is closer to another centre than ``s * (R_i + R_j)``,
  ``s = 0.85 - 0.55 d``: at difficulty 0 cells touch and overlap a little, at
  difficulty 1 they overlap a lot. A cell with no free
  place after 25 tries is dropped.
* Outline: an ellipse of mean radius ``R`` (``U(live_radius)``, default 22-50 px, or
  ``U(dead_radius)``, default 10-24 px; allowed 2-1000), aspect ratio ``A`` and random
  orientation, whose radius is modulated by random Fourier harmonics 2-6,
  ``r(phi) = 1 + sum_k a_k cos(k phi + psi_k)`` with ``a_k ~ N(0, (sigma / sqrt(k-1))^2)``
  (irregular, polygonal outlines with processes for live cells, near-round for dead ones).
* Body: ``B = (1 - rho^2)_+ ** p`` with ``rho`` the distance normalised by the outline:
  small ``p`` gives a flat, spread cell, ``p`` near 1 a compact dome.
* Nucleus (live): a raised ellipse of semi-axis 0.3-0.45 R, offset up to 0.2 R from the
  centre, 40-70 % of the body height, with 1-3 nucleoli (Gaussian spots, sigma 1.2-2.5 px,
  20-40 % of the body height).
* Blebs (dead): with probability ``b`` a Poisson(1.5)+1 number of small domes
  (radius 0.15-0.3 R) on the rim.
* Texture: the smooth envelope ``S = B + nucleus + blebs`` is multiplied by
  ``1 + a_s T_s + a_g T_g`` (``T_s`` smooth, correlation ~0.12 R; ``T_g`` granular,
  sigma 1 px; both unit variance), scaled so that ``max(S) = U(peak)`` radians
  (``live_peak`` default 0.8-1.6, ``dead_peak`` 2.0-3.5; allowed 0-20), and blurred by a
  Gaussian PSF (sigma 0.8 px).
* Per-class settings at difficulty 0 (live, dead): ``p`` (0.25-0.5, 0.7-1.2),
  aspect ``A`` (1.0-1.8, 1.0-1.15), irregularity ``sigma`` (0.14, 0.03), smooth texture
  ``a_s`` (0.15, 0.05), granularity ``a_g`` (0.08, 0.40), nucleus strength (1, 0), bleb
  probability ``b`` (0, 0.6). Class contrast ``c = 1 - 0.85 d``: every such setting and
  both ends of the peak and radius ranges move towards the live/dead midpoint,
  ``value = mid + (value - mid) * c``, so at difficulty 1 live and dead cells have similar
  height, size, shape and texture (15 % of the difference is left).
* Labels: a pixel belongs to a cell where that cell's smooth envelope ``S`` exceeds
  ``label_threshold`` (default 0.1, allowed 0.01-0.9) of its maximum, so the mask is the
  visible cell body. Live cells are drawn first, then dead cells (rounded, detached dead
  cells lie on top of spread live cells), each group in random order; where cells overlap
  the label is that of the cell drawn last (on top) and the phases add (optical
  thicknesses sum).

Background and clutter (difficulty ``d``):

* ``offset ~ U(-max_offset, max_offset)`` (default 0.5 rad, allowed 0-10).
* Linear tilt with a random direction and slope ``U(0, 0.0004 + 0.0036 d)`` rad/px
  (up to 0.1 rad across 256 px at difficulty 0, 1 rad at difficulty 1).
* Smooth low-frequency field (cubic interpolation of a grid with ~128 px spacing),
  std ``0.02 + 0.15 d`` rad.
* Noise: Gaussian, slightly correlated (sigma 0.6 px), std ``(0.03 + 0.12 d) * U(0.8, 1.2)``
  rad; real SLIM frames have a background noise of 5-10 % of the cell contrast.
* Debris (label 0): Poisson(``(1 + 14 d)`` per 256x256 area) Gaussian specks,
  sigma ``U(0.8, 1.5 + 2.5 d)`` px, height ``U(0.2, 0.6 + 1.4 d)`` rad.
* Halo (default 0, allowed 0-1): the SLIM halo artefact, subtracting ``halo`` times a
  Gaussian blur (sigma 5 px) of the cell thickness, which darkens a ring around cells
  (and lowers flat cell interiors by up to ``halo``). Labels are unaffected.
* ``wrap=False`` (default) returns the continuous, unwrapped phase (no phase unwrapping is
  needed); ``wrap=True`` wraps it to (-pi, pi] (float32 values lie in
  [-3.1415925, 3.1415925]).

Difficulty defaults to 0.25 (allowed 0-1). Speed (one CPU core): about 8 ms for a
256x256 frame and 0.1 s for an 832x832 frame.

Seeds: ``make_frame(seed)`` uses ``np.random.default_rng(seed)``; frame ``i`` of
``make_dataset(n, seed)`` and ``write_dataset(..., seed)`` uses
``np.random.SeedSequence(seed, spawn_key=(i,))``, so frame ``i`` does not depend on ``n``
and datasets with different seeds are disjoint.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .errors import ConfigError
from .files import write_tiff

__all__ = ["SyntheticConfig", "make_frame", "make_dataset", "write_dataset", "frame_rng"]

_TILE_AREA = 256.0 * 256.0
_CONTRAST_LOSS = 0.85  # class contrast c = 1 - _CONTRAST_LOSS * difficulty


def check_range(cls: str, name: str, value, lo: float, hi: float, *, lo_open: bool = False) -> tuple:
    """`value` as a (low, high) pair of floats within [lo, hi] (or (lo, hi]); ConfigError naming `cls.name`.

    Shared by every generator config (this module's and `synthetic_real`'s).
    """
    left = "(" if lo_open else "["
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{cls}.{name} must be a pair (low, high) of numbers in {left}{lo}, {hi}], got {value!r}"
        ) from None
    ok_lo = (a > lo) if lo_open else (a >= lo)
    if not (math.isfinite(a) and math.isfinite(b) and ok_lo and a <= b <= hi):
        raise ConfigError(
            f"{cls}.{name} must be a pair (low, high) with low <= high, both in {left}{lo}, {hi}], got {value!r}"
        )
    return (a, b)


def check_shape(cls: str, shape) -> tuple[int, int]:
    """`shape` as (height, width) ints in [16, 16384]; ConfigError naming `cls.shape`."""
    try:
        h, w = shape
        ok = all(not isinstance(s, bool) and isinstance(s, (int, np.integer)) and 16 <= s <= 16384 for s in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{cls}.shape must be (height, width), integers in [16, 16384], got {shape!r}")
    return int(h), int(w)


def check_scalar(cls: str, name: str, value, lo: float, hi: float) -> float:
    """`value` as a float within [lo, hi]; ConfigError naming `cls.name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{cls}.{name} must be a number in [{lo}, {hi}], got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ConfigError(f"{cls}.{name} must be in [{lo}, {hi}], got {value!r}")
    return v


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic QPI generator; see the module docstring for the model.

    Ranges are (low, high) pairs; per-class ranges are those of difficulty 0.
    """

    shape: tuple[int, int] = (256, 256)
    density: tuple[float, float] = (3.0, 8.0)  # cells per 256x256 area, before clutter
    live_fraction: tuple[float, float] = (0.35, 0.75)
    live_radius: tuple[float, float] = (22.0, 50.0)  # px
    dead_radius: tuple[float, float] = (10.0, 24.0)  # px
    live_peak: tuple[float, float] = (0.8, 1.6)  # rad
    dead_peak: tuple[float, float] = (2.0, 3.5)  # rad
    difficulty: float = 0.25
    wrap: bool = False
    max_offset: float = 0.5  # rad
    halo: float = 0.0
    label_threshold: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", check_shape("SyntheticConfig", self.shape))
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("density", check_range("SyntheticConfig", "density", self.density, 0.0, 200.0))
        set_("live_fraction", check_range("SyntheticConfig", "live_fraction", self.live_fraction, 0.0, 1.0))
        set_("live_radius", check_range("SyntheticConfig", "live_radius", self.live_radius, 2.0, 1000.0))
        set_("dead_radius", check_range("SyntheticConfig", "dead_radius", self.dead_radius, 2.0, 1000.0))
        set_("live_peak", check_range("SyntheticConfig", "live_peak", self.live_peak, 0.0, 20.0, lo_open=True))
        set_("dead_peak", check_range("SyntheticConfig", "dead_peak", self.dead_peak, 0.0, 20.0, lo_open=True))
        set_("difficulty", check_scalar("SyntheticConfig", "difficulty", self.difficulty, 0.0, 1.0))
        if not isinstance(self.wrap, (bool, np.bool_)):
            raise ConfigError(f"SyntheticConfig.wrap must be True or False, got {self.wrap!r}")
        set_("wrap", bool(self.wrap))
        set_("max_offset", check_scalar("SyntheticConfig", "max_offset", self.max_offset, 0.0, 10.0))
        set_("halo", check_scalar("SyntheticConfig", "halo", self.halo, 0.0, 1.0))
        set_("label_threshold", check_scalar("SyntheticConfig", "label_threshold", self.label_threshold, 0.01, 0.9))


# --------------------------------------------------------------------------- helpers


def _mix(live: float, dead: float, c: float) -> tuple[float, float]:
    """Move a (live, dead) pair towards its midpoint; c = 1 keeps it, c = 0 merges it."""
    m = 0.5 * (live + dead)
    return m + (live - m) * c, m + (dead - m) * c


def _mix_range(live: tuple, dead: tuple, c: float) -> tuple[tuple, tuple]:
    lo = _mix(live[0], dead[0], c)
    hi = _mix(live[1], dead[1], c)
    return (lo[0], hi[0]), (lo[1], hi[1])


def _unit(field: np.ndarray) -> np.ndarray:
    s = float(field.std())
    return field / s if s > 0 else field


def _class_params(cfg: SyntheticConfig) -> tuple[dict, dict]:
    c = 1.0 - _CONTRAST_LOSS * cfg.difficulty
    live: dict = {}
    dead: dict = {}
    pairs = {
        # name: (live value, dead value) at difficulty 0
        "p": ((0.25, 0.5), (0.7, 1.2)),
        "aspect": ((1.0, 1.8), (1.0, 1.15)),
        "radius": (cfg.live_radius, cfg.dead_radius),
        "peak": (cfg.live_peak, cfg.dead_peak),
    }
    for k, (lv, dv) in pairs.items():
        live[k], dead[k] = _mix_range(lv, dv, c)
    scalars = {
        "irregularity": (0.14, 0.03),
        "smooth_tex": (0.15, 0.05),
        "granular": (0.08, 0.40),
        "nucleus": (1.0, 0.0),
        "bleb_prob": (0.0, 0.6),
    }
    for k, (lv, dv) in scalars.items():
        live[k], dead[k] = _mix(lv, dv, c)
    return live, dead


def _draw_cell(rng: np.random.Generator, cy: float, cx: float, R: float, par: dict, shape):
    """One cell on its own bounding-box patch.

    Returns (y0, y1, x0, x1, thickness, mask) or None when the patch misses the frame.
    """
    H, W = shape
    aspect = rng.uniform(*par["aspect"])
    theta = rng.uniform(0.0, np.pi)
    ks = np.arange(2, 7)
    amp = rng.normal(0.0, par["irregularity"], ks.size) / np.sqrt(ks - 1)
    psi = rng.uniform(0.0, 2 * np.pi, ks.size)
    p = rng.uniform(*par["p"])
    peak = rng.uniform(*par["peak"])
    a_ax = R * math.sqrt(aspect)
    b_ax = R / math.sqrt(aspect)

    angles = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    fmax = float(np.max(1.0 + (amp[:, None] * np.cos(ks[:, None] * angles + psi[:, None])).sum(0)))
    fmax = max(fmax, 1.0)
    blebbing = rng.random() < par["bleb_prob"]
    n_bleb = int(rng.poisson(1.5)) + 1 if blebbing else 0
    ext = int(math.ceil(a_ax * fmax * (1.0 + (0.35 if n_bleb else 0.0)) + 4))

    iy, ix = int(round(cy)), int(round(cx))
    y0, y1 = max(iy - ext, 0), min(iy + ext + 1, H)
    x0, x1 = max(ix - ext, 0), min(ix + ext + 1, W)
    if y0 >= y1 or x0 >= x1:
        return None
    yy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
    xx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
    ct, st = np.float32(math.cos(theta)), np.float32(math.sin(theta))
    u = (xx * ct + yy * st) / np.float32(a_ax)
    v = (-xx * st + yy * ct) / np.float32(b_ax)
    phi = np.arctan2(v, u)
    f = np.ones_like(phi)
    for k, ak, pk in zip(ks, amp, psi):
        f += np.float32(ak) * np.cos(np.float32(k) * phi + np.float32(pk))
    np.maximum(f, np.float32(0.35), out=f)
    rho2 = (u * u + v * v) / (f * f)
    body = np.clip(1.0 - rho2, 0.0, None) ** np.float32(p)
    env = body.copy()
    extra = np.zeros_like(body)

    # Nucleus with nucleoli.
    s_n = par["nucleus"]
    if s_n > 0.02:
        na = R * rng.uniform(0.3, 0.45)
        nb = na * rng.uniform(0.7, 1.0)
        off = R * 0.2 * math.sqrt(rng.random())
        ang = rng.uniform(0, 2 * np.pi)
        ny, nx = off * math.sin(ang), off * math.cos(ang)
        nth = rng.uniform(0, np.pi)
        cn, sn = np.float32(math.cos(nth)), np.float32(math.sin(nth))
        dx, dy = xx - np.float32(nx), yy - np.float32(ny)
        nu = (dx * cn + dy * sn) / np.float32(na)
        nv = (-dx * sn + dy * cn) / np.float32(nb)
        nuc = np.clip(1.0 - (nu * nu + nv * nv), 0.0, None) ** np.float32(0.5)
        nuc *= np.clip(body / np.float32(0.3), 0.0, 1.0)
        env += np.float32(s_n * rng.uniform(0.4, 0.7)) * nuc
        add_nucleoli(rng, extra, yy, xx, (ny, nx), (na, nb), nth, count=(1, 4), spread=0.55, sigma=(1.2, 2.5),
                     amplitude=(0.2, 0.4), scale=s_n)

    # Blebs on the rim.
    for _ in range(n_bleb):
        a_ = rng.uniform(0, 2 * np.pi)
        fr = 1.0 + float((amp * np.cos(ks * a_ + psi)).sum())
        fr = max(fr, 0.35) * rng.uniform(0.9, 1.05)
        pu, pv = fr * math.cos(a_) * a_ax, fr * math.sin(a_) * b_ax
        by = pu * math.sin(theta) + pv * math.cos(theta)
        bx = pu * math.cos(theta) - pv * math.sin(theta)
        rb = R * rng.uniform(0.15, 0.3)
        d2 = ((yy - np.float32(by)) ** 2 + (xx - np.float32(bx)) ** 2) / np.float32(rb * rb)
        env += np.float32(rng.uniform(0.35, 0.7)) * np.clip(1.0 - d2, 0.0, None) ** np.float32(0.6)

    emax = float(env.max())
    if emax <= 0:
        return None
    # Texture: smooth (cytoplasm) and granular (dead cells) multiplicative fields.
    noise = rng.standard_normal((2,) + body.shape, dtype=np.float32)
    sig_s = min(max(0.12 * R, 2.0), 6.0)
    tex = np.float32(par["smooth_tex"]) * _unit(ndi.gaussian_filter(noise[0], sig_s, truncate=3.0))
    tex += np.float32(par["granular"]) * _unit(ndi.gaussian_filter(noise[1], 1.0, truncate=3.0))
    tex += np.float32(1.0)
    thick = env * tex + extra
    np.maximum(thick, 0.0, out=thick)
    thick *= np.float32(peak / emax)
    thick = ndi.gaussian_filter(thick, 0.8, truncate=3.0)
    mask = env > np.float32(par["label_threshold"] * emax)
    return y0, y1, x0, x1, thick, mask


def add_nucleoli(rng, out: np.ndarray, yy: np.ndarray, xx: np.ndarray, centre, axes, angle: float, *,
                 count: tuple[int, int], spread: float, sigma: tuple[float, float],
                 amplitude: tuple[float, float], scale: float = 1.0) -> None:
    """Add ``rng.integers(*count)`` Gaussian nucleoli to `out` (in place), inside the
    nucleus ellipse of `centre` (y, x), half-axes `axes` (a, b) and `angle`, at most
    `spread` of the way to its rim; sigma and amplitude (x `scale`) drawn per nucleolus."""
    ny, nx = centre
    na, nb = axes
    for _ in range(int(rng.integers(*count))):
        r_ = spread * math.sqrt(rng.random())
        a_ = rng.uniform(0, 2 * np.pi)
        pu, pv = r_ * math.cos(a_) * na, r_ * math.sin(a_) * nb
        py = ny + pu * math.sin(angle) + pv * math.cos(angle)
        px = nx + pu * math.cos(angle) - pv * math.sin(angle)
        sig = rng.uniform(*sigma)
        d2 = (yy - np.float32(py)) ** 2 + (xx - np.float32(px)) ** 2
        g = np.exp(-d2 / np.float32(2 * sig * sig))
        out += np.float32(scale * rng.uniform(*amplitude)) * g


def place_cells(rng, radii: np.ndarray, shape, sep: float, cluster: float = 0.5, margin: float = 0.0,
                spacing: tuple[float, float] | None = None) -> list:
    """Centres for cells of the given radii, in order (None where no room after 25 tries).

    Shared by every generator (this module's and `synthetic_real`'s).

    A cell goes next to an earlier one (probability `cluster`, at a distance
    ``(R_i + R_j) * U(spacing)``) or anywhere in the frame grown by `margin` px, so that
    cells centred outside the frame reach in, as they do in tiles cut from a big frame. No
    two centres are closer than `sep` x (R_i + R_j). spacing defaults to (sep, sep + 0.35).
    """
    spacing = (sep, sep + 0.35) if spacing is None else spacing
    H, W = shape
    n = len(radii)
    py, px, pr = np.empty(n), np.empty(n), np.empty(n)
    m = 0
    out: list = []
    for R in radii:
        pos = None
        for _ in range(25):
            if m and rng.random() < cluster:
                j = int(rng.integers(m))
                ang = rng.uniform(0, 2 * np.pi)
                dist = (R + pr[j]) * rng.uniform(*spacing)
                cy, cx = py[j] + dist * math.sin(ang), px[j] + dist * math.cos(ang)
                if not (-margin <= cy < H + margin and -margin <= cx < W + margin):
                    continue
            else:
                cy, cx = rng.uniform(-margin, H + margin), rng.uniform(-margin, W + margin)
            d2 = (py[:m] - cy) ** 2 + (px[:m] - cx) ** 2
            if not m or bool(np.all(d2 >= (sep * (R + pr[:m])) ** 2)):
                pos = (cy, cx)
                break
        if pos is not None:
            py[m], px[m], pr[m] = pos[0], pos[1], R
            m += 1
        out.append(pos)
    return out


def place_largest_first(rng, radii: np.ndarray, shape, sep: float, **kwargs) -> list:
    """`place_cells` for the cells in order of decreasing radius, so that small cells fill
    the gaps; returns the centres in the order of `radii` (the drawing order is kept)."""
    by_size = np.argsort(-radii, kind="stable")
    placed = place_cells(rng, radii[by_size], shape, sep, **kwargs)
    positions: list = [None] * len(radii)
    for k, idx in enumerate(by_size):
        positions[idx] = placed[k]
    return positions


def _background(rng, shape, d: float, max_offset: float) -> np.ndarray:
    H, W = shape
    offset = rng.uniform(-max_offset, max_offset) if max_offset > 0 else 0.0
    slope = rng.uniform(0.0, 0.0004 + 0.0036 * d)
    ang = rng.uniform(0, 2 * np.pi)
    gy = (np.arange(H, dtype=np.float32) - H / 2) * np.float32(slope * math.sin(ang))
    gx = (np.arange(W, dtype=np.float32) - W / 2) * np.float32(slope * math.cos(ang))
    # Smooth low-frequency field: cubic zoom of a coarse random grid (~128 px spacing).
    gh, gw = H // 128 + 2, W // 128 + 2
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    low = ndi.zoom(coarse, (H / gh, W / gw), order=3, mode="nearest")[:H, :W]
    low = (0.02 + 0.15 * d) * _unit(low - low.mean())
    noise = ndi.gaussian_filter(rng.standard_normal((H, W), dtype=np.float32), 0.6, truncate=3.0)
    noise = np.float32((0.03 + 0.12 * d) * rng.uniform(0.8, 1.2)) * _unit(noise)
    bg = noise
    bg += low.astype(np.float32)
    bg += gy[:, None]
    bg += gx[None, :]
    bg += np.float32(offset)
    return bg


def _add_debris(rng, img: np.ndarray, d: float) -> None:
    H, W = img.shape
    n = int(rng.poisson((1.0 + 14.0 * d) * H * W / _TILE_AREA))
    for _ in range(n):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        sig = rng.uniform(0.8, 1.5 + 2.5 * d)
        h = rng.uniform(0.2, 0.6 + 1.4 * d)
        e = int(math.ceil(3 * sig))
        y0, y1 = max(int(cy) - e, 0), min(int(cy) + e + 1, H)
        x0, x1 = max(int(cx) - e, 0), min(int(cx) + e + 1, W)
        yy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
        xx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
        speck = np.exp(-(yy * yy + xx * xx) / np.float32(2 * sig * sig))
        img[y0:y1, x0:x1] += np.float32(h) * speck


_PI_INSIDE = np.nextafter(np.float32(np.pi), np.float32(0))  # largest float32 below pi


def _wrap(phase: np.ndarray) -> np.ndarray:
    p = phase.astype(np.float64)
    w = p - 2 * np.pi * np.ceil((p - np.pi) / (2 * np.pi))
    w = w.astype(np.float32)
    # float32 rounding can land on +-float32(pi), which lies just outside (-pi, pi].
    w[w <= -_PI_INSIDE] = _PI_INSIDE
    np.minimum(w, _PI_INSIDE, out=w)
    return w


# --------------------------------------------------------------------------- public API


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of frame ``index`` of a dataset made with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def make_frame(
    seed: int | np.random.Generator, config: SyntheticConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic QPI frame: (phase float32 (h, w) in rad, labels uint8 (h, w) in {0,1,2}).

    Deterministic for an integer seed; a Generator is advanced.
    """
    cfg = SyntheticConfig() if config is None else config
    if not isinstance(cfg, SyntheticConfig):
        raise ConfigError(f"config must be a SyntheticConfig or None, got {type(cfg).__name__}")
    rng = _rng(seed)
    H, W = cfg.shape
    d = cfg.difficulty
    live_par, dead_par = _class_params(cfg)
    live_par["label_threshold"] = dead_par["label_threshold"] = cfg.label_threshold

    n = int(round(rng.uniform(*cfg.density) * H * W / _TILE_AREA * (1.0 + d)))
    n_live = int(math.floor(n * rng.uniform(*cfg.live_fraction) + rng.random()))
    n_live = min(max(n_live, 0), n)
    radii = np.concatenate(
        [rng.uniform(*live_par["radius"], n_live), rng.uniform(*dead_par["radius"], n - n_live)]
    )
    kinds = np.array([1] * n_live + [2] * (n - n_live), dtype=np.uint8)
    # Drawing order: live cells (random order), then dead cells (random order) on top.
    order = np.concatenate([rng.permutation(n_live), n_live + rng.permutation(n - n_live)])
    radii, kinds = radii[order], kinds[order]
    positions = place_largest_first(rng, radii, (H, W), 0.85 - 0.55 * d)

    cells = np.zeros((H, W), np.float32)
    labels = np.zeros((H, W), np.uint8)
    for pos, R, kind in zip(positions, radii, kinds):
        if pos is None:
            continue
        res = _draw_cell(rng, pos[0], pos[1], float(R), live_par if kind == 1 else dead_par, (H, W))
        if res is None:
            continue
        y0, y1, x0, x1, thick, mask = res
        cells[y0:y1, x0:x1] += thick
        labels[y0:y1, x0:x1][mask] = kind

    if cfg.halo > 0:
        cells -= np.float32(cfg.halo) * ndi.gaussian_filter(cells, 5.0, truncate=3.0)
    phase = _background(rng, (H, W), d, cfg.max_offset)
    phase += cells
    _add_debris(rng, phase, d)
    if cfg.wrap:
        phase = _wrap(phase)
    return phase.astype(np.float32, copy=False), labels


def _check_n(n_frames) -> int:
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ConfigError(f"n_frames must be a non-negative integer, got {n_frames!r}")
    return int(n_frames)


def make_dataset(
    n_frames: int, seed: int, config: SyntheticConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n_frames`` frames: (phases float32 (n, h, w), labels uint8 (n, h, w)).

    Frame ``i`` uses ``frame_rng(seed, i)``: it does not depend on ``n_frames``.
    """
    n = _check_n(n_frames)
    cfg = SyntheticConfig() if config is None else config
    if not isinstance(cfg, SyntheticConfig):
        raise ConfigError(f"config must be a SyntheticConfig or None, got {type(cfg).__name__}")
    frame_rng(seed, 0)  # validates the seed even when n == 0
    images = np.empty((n,) + cfg.shape, np.float32)
    masks = np.empty((n,) + cfg.shape, np.uint8)
    for i in range(n):
        images[i], masks[i] = make_frame(frame_rng(seed, i), cfg)
    return images, masks


def write_dataset(
    out_dir: str | os.PathLike, n_frames: int, seed: int, config: SyntheticConfig | None = None
) -> list[Path]:
    """Write ``images/synth_{seed}_{i:04d}.tif`` (float32) and ``masks/...`` (uint8).

    Frames are the same as ``make_dataset(n_frames, seed, config)``; each file is written
    to a temporary file in its folder and renamed into place. Returns the image paths.
    """
    n = _check_n(n_frames)
    cfg = SyntheticConfig() if config is None else config
    if not isinstance(cfg, SyntheticConfig):
        raise ConfigError(f"config must be a SyntheticConfig or None, got {type(cfg).__name__}")
    frame_rng(seed, 0)
    out = Path(out_dir)
    img_dir, mask_dir = out / "images", out / "masks"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i in range(n):
        phase, labels = make_frame(frame_rng(seed, i), cfg)
        name = f"synth_{int(seed)}_{i:04d}.tif"
        write_tiff(img_dir / name, phase, compression=None)
        write_tiff(mask_dir / name, labels, compression=None)
        paths.append(img_dir / name)
    return paths

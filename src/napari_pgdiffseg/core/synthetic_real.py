"""Synthetic QPI frames modelled on the two real data sets the package is developed on.

`synthetic.py` makes clean whole-cell live/dead frames for tests and benchmarks; the two
generators here instead imitate the look of real frames, so that models pre-trained or
checked on them see the statistics they will meet on real data. Shapes, sizes and
contrasts were read off the frames in ``shared/data`` (see ``benchmarks/realism.py`` for
how close they come):

SLIM (`make_slim_frame`, like ``qpi-live-dead``: 832x832 uint8 SLIM frames of HeLa/CHO,
pixel scale of those frames; labels are *nuclei*, as in the study's ground truth)

* ``image = background + halo(cells + debris)``, in grey levels of the uint8 export
  (float32; rounded and clipped to 0..255 with ``quantize``). ``background`` is a flat
  level (85-180) with a weak smooth field, pixel noise (HeLa 1.5-5 grey levels and white,
  CHO 0.3-0.8 and smoother, as measured on flat background of the real frames) and faint
  concentric defocus rings of out-of-focus dust.
* Live cells: flat, spread bodies (thickness rises within 1-2 px of the edge and stays
  flat, with a thickened rim along the edge), star-shaped outlines whose tapered arms
  make the concave, polygonal HeLa shapes, ruffled edge segments with thin filopodia,
  granular cytoplasm (sparse vesicles, denser around the nucleus). HeLa defaults: cell
  radius 55-95 px before arms (cells 100-250 px across), nucleus mean radius 28-42 px
  (area ~2500-5500 px; the 8 labelled frames: median 4200 px), aspect 1.1-1.8,
  kidney-shaped half of the time, strongly mottled, 1-4 nucleoli. The nucleus is thick:
  after the halo its interior sits near the background level inside a dark ring, as on
  the labelled frames. `SlimConfig.cho()` gives CHO-like colonies of small packed cells
  (radius 18-30 px, nucleus 8-13 px, narrower halo).
* Dead cells: rounded, compact, bright domes (radius 16-30 px) with a granular surface
  and sometimes blebs; their nucleus is condensed (pyknotic): small, round, brighter.
* Halo: SLIM's halo artefact, ``t - h * G_sigma(t)`` of the total thickness ``t``
  (``h`` 0.95-1, ``sigma`` 12 px for HeLa, 5 px for CHO, +-25 % per frame): a dark ring
  outside every cell and a bright rim inside, with flat interiors near the background
  level, as in the real frames.
* Labels: 0 background (and cytoplasm), 1 live nucleus, 2 dead (condensed) nucleus.

Holographic (`make_holo_frame`, like ``qpi-cells``: 600x600 float32 Q-PHASE frames in
radians; labels are *whole cells*)

* ``phase = offset + tilt + smooth field + noise + max_cells(dome) + debris``: background
  ~0 rad with noise 0.004-0.012 rad (real: ~0.01 away from the masks), no halo.
* Cells: domes ``(1 - rho^2)^p`` of peak 1-2.8 rad with ragged edges (high harmonics of
  the outline), a slightly raised nucleus and bright granules, radius 11-22 px (the
  dense frames' median cell is 28 px across), 15 % spindle-shaped; mostly placed in
  touching clusters. Touching cells take the maximum, not the sum, of their domes (they
  abut rather than stack), which leaves the shallow valley seen between real neighbours.
* Labels: 0 background, 1 cell; optionally a dead fraction (label 2) of rounded,
  compact cells with a high peak.
* `HoloConfig.varied`: the same cells as other set-ups show them (per frame: cells and PSF
  0.7-4.5x larger, sparse fields, a dark moat ``- k max(G_sigma(phase) - G_{r sigma}(phase), 0)``
  around every cell as off-axis holography leaves (scikit-image's cell), background fringes);
  masks keep the cells' own outlines.

Both generators return instance ids on request (``return_instances=True``: uint16, one
id per visible nucleus or cell, 1..k), so that touching objects can be learnt and scored.
Seeds follow `synthetic.py`: an integer seed means ``np.random.default_rng(seed)``, and
frame ``i`` of a dataset uses ``frame_rng(seed, i)``. Speed (one core): 15-40 ms for a
256x256 frame, 0.05-0.5 s for a 600-832 px frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from .errors import ConfigError
from .synthetic import check_range, check_scalar, check_shape, frame_rng, add_nucleoli, place_largest_first

__all__ = [
    "SlimConfig",
    "HoloConfig",
    "make_slim_frame",
    "make_holo_frame",
    "make_slim_dataset",
    "make_holo_dataset",
    "frame_rng",
]

_TILE_AREA = 256.0 * 256.0


# --------------------------------------------------------------------------- validation


def _validate(obj, spec: dict) -> None:
    """Check and canonicalise the fields of a frozen config from a {name: rule} table."""
    cls = type(obj).__name__
    object.__setattr__(obj, "shape", check_shape(cls, obj.shape))
    for name, rule in spec.items():
        kind, lo, hi = rule[0], rule[1], rule[2]
        value = getattr(obj, name)
        if kind == "range":
            v = check_range(cls, name, value, lo, hi, lo_open=len(rule) > 3 and rule[3])
        elif kind == "scalar":
            v = check_scalar(cls, name, value, lo, hi)
        else:  # "bool"
            if not isinstance(value, (bool, np.bool_)):
                raise ConfigError(f"{cls}.{name} must be True or False, got {value!r}")
            v = bool(value)
        object.__setattr__(obj, name, v)


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class SlimConfig:
    """Settings of the SLIM-like generator (HeLa defaults; see `SlimConfig.cho`).

    Ranges are (low, high) pairs, drawn uniformly per frame or per cell; lengths in px
    at the pixel scale of the 832x832 SLIM frames, intensities in uint8 grey levels.
    """

    shape: tuple[int, int] = (256, 256)
    density: tuple[float, float] = (0.4, 3.0)  # cells per 256x256 area (incl. a margin)
    dead_fraction: float = 0.25  # probability that a cell is dead
    cell_radius: tuple[float, float] = (55.0, 95.0)  # live body, before the arms
    nucleus_radius: tuple[float, float] = (28.0, 42.0)  # live nucleus, mean radius
    dead_radius: tuple[float, float] = (16.0, 30.0)
    spread: float = 1.0  # length scale of the tapered arms (0 = convex cells)
    filopodia: float = 0.6  # probability that a live cell has ruffled, spiky edges
    cluster: float = 0.7  # probability that a cell is placed next to an earlier one
    background: tuple[float, float] = (85.0, 180.0)  # grey level of the background
    body_contrast: tuple[float, float] = (50.0, 90.0)  # live body thickness, grey levels
    dead_contrast: tuple[float, float] = (50.0, 100.0)  # dead cell peak, grey levels
    halo: tuple[float, float] = (0.95, 1.0)  # fraction of the blurred thickness removed
    halo_sigma: float = 12.0  # px
    noise: tuple[float, float] = (1.5, 5.0)  # pixel noise std, grey levels
    noise_sigma: float = 0.35  # px, correlation length of the noise (HeLa white, CHO smooth)
    quantize: bool = True  # round and clip to 0..255 like the uint8 exports

    def __post_init__(self) -> None:
        _validate(self, {
            "density": ("range", 0.0, 200.0),
            "dead_fraction": ("scalar", 0.0, 1.0),
            "cell_radius": ("range", 4.0, 1000.0),
            "nucleus_radius": ("range", 2.0, 500.0),
            "dead_radius": ("range", 3.0, 500.0),
            "spread": ("scalar", 0.0, 3.0),
            "filopodia": ("scalar", 0.0, 1.0),
            "cluster": ("scalar", 0.0, 1.0),
            "background": ("range", -1e4, 1e4),
            "body_contrast": ("range", 0.0, 1e4, True),
            "dead_contrast": ("range", 0.0, 1e4, True),
            "halo": ("range", 0.0, 1.0),
            "halo_sigma": ("scalar", 0.5, 100.0),
            "noise": ("range", 0.0, 1e3),
            "noise_sigma": ("scalar", 0.0, 10.0),
            "quantize": ("bool", 0, 0),
        })
        if self.nucleus_radius[1] >= self.cell_radius[1]:
            raise ConfigError(
                f"SlimConfig.nucleus_radius {self.nucleus_radius} must stay below "
                f"cell_radius {self.cell_radius}: a nucleus lies inside its cell"
            )

    @classmethod
    def hela(cls, **overrides) -> "SlimConfig":
        """HeLa-like frames (the defaults): large spread cells, 1-3 per 256x256 area."""
        return cls(**overrides)

    @classmethod
    def cho(cls, **overrides) -> "SlimConfig":
        """CHO-like frames: colonies of small, packed, less spread cells."""
        base = dict(density=(2.0, 10.0), cell_radius=(18.0, 30.0), nucleus_radius=(8.0, 13.0),
                    dead_radius=(9.0, 16.0), spread=0.15, filopodia=0.1, cluster=0.95,
                    noise=(0.3, 0.8), noise_sigma=1.0, halo_sigma=5.0)
        base.update(overrides)
        return cls(**base)


@dataclass(frozen=True)
class HoloConfig:
    """Settings of the holographic-QPI-like generator (qpi-cells defaults), phase in rad."""

    shape: tuple[int, int] = (256, 256)
    density: tuple[float, float] = (1.5, 20.0)  # cells per 256x256 area (incl. a margin)
    cell_radius: tuple[float, float] = (11.0, 22.0)  # px, mean radius of a round cell
    aspect: tuple[float, float] = (1.0, 1.5)
    elongated_fraction: float = 0.15  # spindle-shaped cells, aspect 2-3.5
    peak: tuple[float, float] = (1.0, 2.8)  # rad
    cluster: float = 0.85
    dead_fraction: float = 0.0
    dead_peak: tuple[float, float] = (2.8, 4.0)  # rad
    noise: tuple[float, float] = (0.004, 0.012)  # rad, pixel noise std
    background_variation: tuple[float, float] = (0.003, 0.02)  # rad, smooth field std
    tilt: float = 1e-4  # rad/px, largest background slope
    psf_sigma: float = 0.9  # px
    # Other set-ups (all off by default, so the qpi-cells frames stay as they were; each is
    # drawn once per frame, log-uniformly for `size_scale`, uniformly for the others):
    size_scale: tuple[float, float] = (1.0, 1.0)  # x cell radii and psf (density / scale^2): pixel size
    halo: tuple[float, float] = (0.0, 0.0)  # k of the dark ring: phase - k * max(G_sigma(phase) - phase, 0)
    halo_sigma: tuple[float, float] = (6.0, 16.0)  # px (x size_scale), width of that ring
    halo_inner: tuple[float, float] = (0.0, 0.0)  # its inner blur / halo_sigma: > 0 moves the ring out
    fringes: tuple[float, float] = (0.0, 0.0)  # rad, background fringes / ringing amplitude

    def __post_init__(self) -> None:
        _validate(self, {
            "density": ("range", 0.0, 400.0),
            "cell_radius": ("range", 2.0, 1000.0),
            "aspect": ("range", 1.0, 10.0),
            "elongated_fraction": ("scalar", 0.0, 1.0),
            "peak": ("range", 0.0, 50.0, True),
            "cluster": ("scalar", 0.0, 1.0),
            "dead_fraction": ("scalar", 0.0, 1.0),
            "dead_peak": ("range", 0.0, 50.0, True),
            "noise": ("range", 0.0, 10.0),
            "background_variation": ("range", 0.0, 10.0),
            "tilt": ("scalar", 0.0, 0.1),
            "psf_sigma": ("scalar", 0.0, 10.0),
            "size_scale": ("range", 0.1, 10.0, True),
            "halo": ("range", 0.0, 3.0),
            "halo_sigma": ("range", 0.5, 100.0, True),
            "halo_inner": ("range", 0.0, 0.9),
            "fringes": ("range", 0.0, 10.0),
        })

    @classmethod
    def varied(cls, **overrides) -> "HoloConfig":
        """Phase images of other set-ups than qpi-cells' Q-PHASE: cells up to 4.5x larger (other
        pixel sizes and cell lines), sparse fields with wide empty background, the dark ring
        that off-axis holography and background subtraction leave around a cell, and
        fringes/ringing in the background. Masks keep the cell's own outline (the same rule as
        the defaults), so a model learns that the ring is background."""
        base = dict(density=(0.3, 20.0), size_scale=(0.7, 4.5), halo=(0.0, 1.6), halo_sigma=(4.0, 14.0),
                    halo_inner=(0.0, 0.6), fringes=(0.0, 0.06))
        base.update(overrides)
        return cls(**base)


# --------------------------------------------------------------------------- helpers


def _as_rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _unit(field: np.ndarray) -> np.ndarray:
    s = float(field.std())
    return field / np.float32(s) if s > 0 else field


def _smooth_noise(rng, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian noise correlated over `sigma` px."""
    f = rng.standard_normal(shape, dtype=np.float32)
    if sigma > 0:
        f = ndi.gaussian_filter(f, sigma, truncate=3.0)
    f -= f.mean()
    return _unit(f)


def _coarse_field(rng, shape, spacing: float) -> np.ndarray:
    """Smooth unit-std field: cubic zoom of a random grid with the given node spacing."""
    H, W = shape
    gh, gw = int(H // spacing) + 2, int(W // spacing) + 2
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    low = ndi.zoom(coarse, (H / gh, W / gw), order=3, mode="nearest")[:H, :W]
    low = low - low.mean()
    return _unit(low.astype(np.float32))


def _patch(cy: float, cx: float, ext: float, shape):
    """Bounding box of a disc of radius `ext` clipped to the frame, with local coords."""
    H, W = shape
    e = int(math.ceil(ext))
    iy, ix = int(round(cy)), int(round(cx))
    y0, y1 = max(iy - e, 0), min(iy + e + 1, H)
    x0, x1 = max(ix - e, 0), min(ix + e + 1, W)
    if y0 >= y1 or x0 >= x1:
        return None
    yy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
    xx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
    return y0, y1, x0, x1, yy, xx


def _harmonics(rng, ks: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    # Amplitudes fall as 1/sqrt(k-1): low harmonics bend the outline, high ones roughen it.
    amp = rng.normal(0.0, sigma, ks.size) / np.sqrt(np.maximum(ks - 1, 1))
    psi = rng.uniform(0.0, 2 * np.pi, ks.size)
    return amp, psi


def _radial(phi: np.ndarray, ks, amp, psi) -> np.ndarray:
    f = np.ones_like(phi)
    for k, a, p in zip(ks, amp, psi):
        f += np.float32(a) * np.cos(np.float32(k) * phi + np.float32(p))
    return f


def _ellipse_coords(yy, xx, ry: float, rx: float, a: float, b: float, theta: float):
    """Coordinates (u, v) of the patch in an ellipse frame centred at (ry, rx)."""
    ct, st = np.float32(math.cos(theta)), np.float32(math.sin(theta))
    dy, dx = yy - np.float32(ry), xx - np.float32(rx)
    u = (dx * ct + dy * st) / np.float32(a)
    v = (-dx * st + dy * ct) / np.float32(b)
    return u, v


def _n_cells(rng, density: tuple[float, float], shape, margin: float) -> int:
    H, W = shape
    area = (H + 2 * margin) * (W + 2 * margin)
    return int(rng.poisson(rng.uniform(*density) * area / _TILE_AREA))


def _draw_cells(config, config_type, seed_or_rng, margin_radii: float):
    """The start every generator shares: checked config, rng, the margin (`margin_radii` x the
    largest cell radius) that cells may overhang the frame by, the cell count, which are dead."""
    cfg = _check_cfg(config, config_type)
    rng = _as_rng(seed_or_rng)
    margin = margin_radii * cfg.cell_radius[1]
    n = _n_cells(rng, cfg.density, cfg.shape, margin)
    return cfg, rng, margin, n, rng.random(n) < cfg.dead_fraction


def _empty_maps(shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zeroed (cell phase float32, labels uint8, instance ids int32) maps of a frame."""
    return np.zeros(shape, np.float32), np.zeros(shape, np.uint8), np.zeros(shape, np.int32)


def _spots(rng, shape, rate: float, sigma: float) -> np.ndarray:
    """Sparse blurred spots (granules) with exponential heights, ~`rate` per px, peak ~1."""
    pts = rng.random(shape, dtype=np.float32) < np.float32(rate)
    field = np.zeros(shape, np.float32)
    k = int(pts.sum())
    if k:
        field[pts] = rng.exponential(1.0, k).astype(np.float32)
        field = ndi.gaussian_filter(field, sigma, truncate=3.0)
        field *= np.float32(2 * np.pi * sigma * sigma)  # a unit spot keeps peak ~1
    return field


def _finish_instances(inst: np.ndarray) -> np.ndarray:
    """Renumber instance ids to 1..k in order of first drawing (carved-away ids vanish)."""
    ids = np.unique(inst)
    ids = ids[ids > 0]
    if ids.size == 0:
        return inst.astype(np.uint16)
    lut = np.zeros(int(ids.max()) + 1, np.uint16)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.uint16)
    return lut[inst]


# --------------------------------------------------------------------------- SLIM cells


def _slim_nucleus(rng, thick, yy, xx, centre, axes, rn: float, cell) -> np.ndarray:
    """Add a live cell's nucleus to its thickness patch `thick` (in place); its mask.

    Oval, kidney-shaped half of the time, mottled, with 1-4 nucleoli; `centre` (y, x) and
    `axes` (a, b) in patch coordinates, `rn` its mean radius, `cell` the cell's mask.
    """
    (ny, nx), (na, nb) = centre, axes
    pshape = thick.shape
    nth = rng.uniform(0, np.pi)
    un, vn = _ellipse_coords(yy, xx, ny, nx, na, nb, nth)
    phin = np.arctan2(vn, un)
    kn = np.arange(2, 5)
    amp_n, psi_n = _harmonics(rng, kn, 0.05)
    fn = _radial(phin, kn, amp_n, psi_n)
    if rng.random() < 0.5:
        side = np.float32(np.pi / 2 if rng.random() < 0.5 else -np.pi / 2)
        dphi = (phin - side + np.float32(np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)
        fn -= np.float32(rng.uniform(0.15, 0.35)) * np.exp(-0.5 * (dphi / np.float32(0.6)) ** 2)
    rho_n = np.sqrt(un * un + vn * vn) / np.maximum(fn, np.float32(0.3))
    nuc = (rho_n < 1.0) & cell
    prof = np.clip((1.0 - rho_n) * np.float32(rn / 2.5), 0.0, 1.0)
    # The nucleus is much thicker than the cytoplasm: after the halo its interior sits
    # near the background level with a dark ring around it (as measured on the labelled
    # HeLa frames), and its strong chromatin mottle is what sets it apart.
    mottle = np.float32(1.0) + np.float32(rng.uniform(0.2, 0.4)) * _smooth_noise(rng, pshape, 1.5)
    thick += np.float32(rng.uniform(0.3, 0.6)) * prof * mottle
    add_nucleoli(rng, thick, yy, xx, (ny, nx), (na, nb), nth, count=(1, 5), spread=0.6, sigma=(1.5, 3.5),
                 amplitude=(0.1, 0.25))
    return nuc


def _slim_live_cell(rng, cy: float, cx: float, R: float, cfg: SlimConfig, shape):
    """One spread live cell: (y0, y1, x0, x1, thickness, cell mask, nucleus mask) or None.

    Thickness is in units of the body level (scaled by the caller).
    """
    rn = rng.uniform(*cfg.nucleus_radius)
    an = rng.uniform(1.1, 1.8)
    na, nb = rn * math.sqrt(an), rn / math.sqrt(an)
    aspect = rng.uniform(1.0, 1.8)
    theta = rng.uniform(0.0, np.pi)
    # A cell must hold its nucleus with a rim of cytoplasm around it.
    R = max(R, 1.35 * na * math.sqrt(aspect))
    a_ax, b_ax = R * math.sqrt(aspect), R / math.sqrt(aspect)
    ks = np.arange(2, 7)
    amp, psi = _harmonics(rng, ks, 0.12)
    n_arms = int(rng.integers(2, 5)) if cfg.spread > 0 else 0
    arm_phi = rng.uniform(0, 2 * np.pi, n_arms)
    arm_len = cfg.spread * rng.uniform(0.3, 1.3, n_arms)
    arm_w = rng.uniform(0.25, 0.6, n_arms)
    # Nucleus offset from the centre, and the smallest outline radius that keeps it inside.
    off = 0.12 * R * math.sqrt(rng.random())
    off_ang = rng.uniform(0, 2 * np.pi)
    ny, nx = off * math.sin(off_ang), off * math.cos(off_ang)
    f_min = 1.2 * (off + na) / b_ax
    fmax = 1.0 + float(np.abs(amp).sum()) + (float(arm_len.max()) if n_arms else 0.0)
    fmax = max(fmax, f_min)
    spike_room = 24.0
    box = _patch(cy, cx, a_ax * fmax + spike_room, shape)
    if box is None:
        return None
    y0, y1, x0, x1, yy, xx = box
    u, v = _ellipse_coords(yy, xx, 0.0, 0.0, a_ax, b_ax, theta)
    phi = np.arctan2(v, u)
    f = _radial(phi, ks, amp, psi)
    for pa, la, wa in zip(arm_phi, arm_len, arm_w):
        # A squared triangular bump in angle: a pointed arm with concave flanks, the
        # typical outline of a spread HeLa cell between its processes.
        dphi = np.abs((phi - np.float32(pa) + np.float32(np.pi)) % np.float32(2 * np.pi)
                      - np.float32(np.pi))
        f += np.float32(la) * np.clip(1.0 - dphi / np.float32(wa), 0.0, None) ** 2
    np.maximum(f, np.float32(f_min), out=f)
    rho = np.sqrt(u * u + v * v) / f
    cell = rho < 1.0
    if not cell.any():
        return None

    # Body: rises over a few px from the edge (EDT), then stays flat; a thickened margin
    # (lamellipodial rim) along the edge gives the bright outlines of the real frames once
    # the halo has flattened the interior. `dome` (around the nucleus) only weights the
    # granules: a broad perinuclear thickening would survive the halo as a bright plateau,
    # which the real frames do not show.
    d = ndi.distance_transform_edt(cell).astype(np.float32)
    edge = 1.0 - np.exp(-d / np.float32(rng.uniform(0.8, 2.0)))
    r2n = ((yy - np.float32(ny)) ** 2 + (xx - np.float32(nx)) ** 2) / np.float32((1.8 * rn) ** 2)
    dome = np.exp(-r2n)
    rim = np.float32(rng.uniform(0.2, 0.6)) * np.exp(-d / np.float32(rng.uniform(2.0, 5.0)))
    body = edge * (np.float32(1.0) + rim)
    pshape = body.shape
    tex = (np.float32(1.0) + np.float32(rng.uniform(0.04, 0.12)) * _smooth_noise(rng, pshape, 4.0)
           + np.float32(rng.uniform(0.02, 0.06)) * _smooth_noise(rng, pshape, 1.0))
    thick = body * tex
    gran = _spots(rng, pshape, rng.uniform(0.003, 0.01), rng.uniform(0.9, 1.4))
    thick += np.float32(rng.uniform(0.05, 0.2)) * gran * edge * (np.float32(0.3) + dome)

    # Filopodia: thin bright spikes on one or two ruffled stretches of the edge.
    spikes = np.zeros_like(thick)
    if rng.random() < cfg.filopodia:
        _add_filopodia(rng, spikes, yy, xx, theta, a_ax, b_ax, ks, amp, psi,
                       arm_phi, arm_len, arm_w, f_min)

    nuc = _slim_nucleus(rng, thick, yy, xx, (ny, nx), (na, nb), rn, cell)
    # Texture fields and the nucleolus Gaussians extend past the outline: cut them off
    # there, then add the spikes, which lie outside it on purpose.
    thick *= cell
    thick += spikes
    np.maximum(thick, 0.0, out=thick)
    return y0, y1, x0, x1, thick, cell, nuc


def _add_filopodia(rng, out, yy, xx, theta, a_ax, b_ax, ks, amp, psi,
                   arm_phi, arm_len, arm_w, f_min) -> None:
    """Draw thin tapered spikes from the outline outwards, each in its own small box."""
    H, W = out.shape
    y_off, x_off = float(yy[0, 0]), float(xx[0, 0])  # local coords of patch pixel (0, 0)
    ct, st = math.cos(theta), math.sin(theta)
    for _ in range(int(rng.integers(1, 3))):
        centre = rng.uniform(0, 2 * np.pi)
        width = rng.uniform(0.3, 0.9)
        for _ in range(int(rng.integers(6, 20))):
            a_ = centre + rng.uniform(-width, width)
            fr = 1.0 + float((amp * np.cos(ks * a_ + psi)).sum())
            for pa, la, wa in zip(arm_phi, arm_len, arm_w):
                dphi = abs((a_ - pa + math.pi) % (2 * math.pi) - math.pi)
                fr += la * max(1.0 - dphi / wa, 0.0) ** 2
            fr = max(fr, f_min) * 0.97
            pu, pv = fr * math.cos(a_) * a_ax, fr * math.sin(a_) * b_ax
            by, bx = pu * st + pv * ct, pu * ct - pv * st  # base point, local coords
            out_ang = math.atan2(by, bx) + rng.uniform(-0.5, 0.5)
            length = rng.uniform(4.0, 20.0)
            sig = rng.uniform(0.6, 1.0)
            ey, ex = by + length * math.sin(out_ang), bx + length * math.cos(out_ang)
            # Box of the spike in patch pixel indices.
            r0 = int(math.floor(min(by, ey) - y_off - 3))
            r1 = int(math.ceil(max(by, ey) - y_off + 4))
            c0 = int(math.floor(min(bx, ex) - x_off - 3))
            c1 = int(math.ceil(max(bx, ex) - x_off + 4))
            r0, r1, c0, c1 = max(r0, 0), min(r1, H), max(c0, 0), min(c1, W)
            if r0 >= r1 or c0 >= c1:
                continue
            sy = yy[r0:r1, :] - np.float32(by)
            sx = xx[:, c0:c1] - np.float32(bx)
            dy, dx = ey - by, ex - bx
            t = np.clip((sy * np.float32(dy) + sx * np.float32(dx)) / np.float32(length ** 2), 0, 1)
            d2 = (sy - t * np.float32(dy)) ** 2 + (sx - t * np.float32(dx)) ** 2
            h = np.float32(rng.uniform(0.3, 0.7))
            out[r0:r1, c0:c1] += h * (1.0 - 0.7 * t) * np.exp(-d2 / np.float32(2 * sig * sig))


def _slim_dead_cell(rng, cy: float, cx: float, R: float, shape):
    """One rounded dead cell with a pyknotic nucleus; thickness peak ~1 (body units)."""
    aspect = rng.uniform(1.0, 1.15)
    theta = rng.uniform(0.0, np.pi)
    ks = np.arange(2, 7)
    amp, psi = _harmonics(rng, ks, 0.04)
    n_bleb = int(rng.integers(1, 4)) if rng.random() < 0.4 else 0
    a_ax, b_ax = R * math.sqrt(aspect), R / math.sqrt(aspect)
    box = _patch(cy, cx, a_ax * 1.5 + 3, shape)
    if box is None:
        return None
    y0, y1, x0, x1, yy, xx = box
    u, v = _ellipse_coords(yy, xx, 0.0, 0.0, a_ax, b_ax, theta)
    phi = np.arctan2(v, u)
    rho2 = (u * u + v * v) / _radial(phi, ks, amp, psi) ** 2
    env = np.clip(1.0 - rho2, 0.0, None) ** np.float32(rng.uniform(0.4, 0.8))
    for _ in range(n_bleb):
        # Blebs: small domes bulging from the rim of a dying cell.
        a_ = rng.uniform(0, 2 * np.pi)
        by, bx = 0.95 * R * math.sin(a_), 0.95 * R * math.cos(a_)
        rb = R * rng.uniform(0.2, 0.35)
        d2 = ((yy - np.float32(by)) ** 2 + (xx - np.float32(bx)) ** 2) / np.float32(rb * rb)
        np.maximum(env, np.float32(rng.uniform(0.4, 0.7)) * np.clip(1.0 - d2, 0.0, None) ** 0.6,
                   out=env)
    cell = env > 0.05
    pshape = env.shape
    tex = (np.float32(1.0) + np.float32(0.3) * _smooth_noise(rng, pshape, 1.2)
           + np.float32(0.1) * _smooth_noise(rng, pshape, 3.0))
    thick = env * tex
    # Condensed nucleus: small, round, bright, near the centre.
    rn = R * rng.uniform(0.3, 0.5)
    an = rng.uniform(1.0, 1.25)
    off = 0.15 * R * math.sqrt(rng.random())
    oa = rng.uniform(0, 2 * np.pi)
    un, vn = _ellipse_coords(yy, xx, off * math.sin(oa), off * math.cos(oa),
                             rn * math.sqrt(an), rn / math.sqrt(an), rng.uniform(0, np.pi))
    rho_n = np.sqrt(un * un + vn * vn)
    nuc = (rho_n < 1.0) & cell
    thick += np.float32(rng.uniform(0.5, 1.0)) * np.clip((1.0 - rho_n) * np.float32(rn / 1.5), 0, 1)
    thick *= cell
    np.maximum(thick, 0.0, out=thick)
    m = float(thick.max())
    if m <= 0:
        return None
    thick /= np.float32(m)
    return y0, y1, x0, x1, thick, cell, nuc


def _add_specks(rng, img: np.ndarray, rate: float, sigma: tuple, height: tuple,
                dark: float) -> None:
    """Debris: Poisson(rate per 256x256 area) Gaussian specks, a fraction `dark` negative."""
    H, W = img.shape
    for _ in range(int(rng.poisson(rate * H * W / _TILE_AREA))):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        sig = rng.uniform(*sigma)
        h = rng.uniform(*height) * (-1.0 if rng.random() < dark else 1.0)
        box = _patch(cy, cx, 3 * sig, (H, W))
        if box is None:
            continue
        y0, y1, x0, x1, yy, xx = box
        r2 = yy * yy + xx * xx
        img[y0:y1, x0:x1] += np.float32(h) * np.exp(-r2 / np.float32(2 * sig * sig))


def _fringes(rng, shape) -> np.ndarray:
    """Unit-amplitude background fringes: 1-3 wavy plane waves (period 6-30 px) whose
    strength varies smoothly over the frame, as parasitic interference and ringing leave."""
    H, W = shape
    yy = np.arange(H, dtype=np.float32)[:, None]
    xx = np.arange(W, dtype=np.float32)[None, :]
    out = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        ang = rng.uniform(0, np.pi)
        k = np.float32(2 * np.pi / rng.uniform(6.0, 30.0))
        wobble = np.float32(rng.uniform(0.0, 3.0)) * _coarse_field(rng, shape, 120.0)
        wave = np.sin(k * (np.float32(math.cos(ang)) * xx + np.float32(math.sin(ang)) * yy)
                      + wobble + np.float32(rng.uniform(0, 2 * np.pi)))
        env = np.clip(0.6 + 0.4 * _coarse_field(rng, shape, 150.0), 0.0, None)
        out += wave * env
    peak = float(np.abs(out).max())
    return out / np.float32(peak) if peak > 0 else out


def _add_rings(rng, img: np.ndarray, rate: float, amplitude: tuple) -> None:
    """Faint concentric defocus rings of out-of-focus dust (a common SLIM background)."""
    H, W = img.shape
    for _ in range(int(rng.poisson(rate * H * W / _TILE_AREA))):
        cy, cx = rng.uniform(-20, H + 20), rng.uniform(-20, W + 20)
        r_env = rng.uniform(25.0, 80.0)
        period = rng.uniform(10.0, 22.0)
        box = _patch(cy, cx, 2.5 * r_env, (H, W))
        if box is None:
            continue
        y0, y1, x0, x1, yy, xx = box
        r = np.sqrt(yy * yy + xx * xx)
        ring = np.sin(np.float32(2 * np.pi / period) * r) * np.exp(-r / np.float32(r_env))
        img[y0:y1, x0:x1] += np.float32(rng.uniform(*amplitude)) * ring


# --------------------------------------------------------------------------- SLIM frames


def _check_cfg(cfg, cls):
    if cfg is None:
        return cls()
    if not isinstance(cfg, cls):
        raise ConfigError(f"config must be a {cls.__name__} or None, got {type(cfg).__name__}")
    return cfg


def make_slim_frame(seed_or_rng: int | np.random.Generator, config: SlimConfig | None = None,
                    *, return_instances: bool = False):
    """One SLIM-like frame: (image float32 (h, w) in grey levels, nuclei labels uint8).

    Labels: 0 background and cytoplasm, 1 live nucleus, 2 dead (condensed) nucleus. With
    ``return_instances=True`` a third array, uint16 nucleus ids 1..k (0 elsewhere), is
    returned. Deterministic for an integer seed; a Generator is advanced.
    """
    cfg, rng, margin, n, dead = _draw_cells(config, SlimConfig, seed_or_rng, 0.6)
    H, W = cfg.shape
    radii = np.where(dead, rng.uniform(*cfg.dead_radius, n), rng.uniform(*cfg.cell_radius, n))
    # Live cells are drawn before dead ones, which lie on top of them (rounded, detached).
    positions = place_largest_first(rng, radii, (H, W), 0.75, cluster=cfg.cluster, margin=margin,
                                    spacing=(0.8, 1.1))

    cells, labels, inst = _empty_maps((H, W))
    next_id = 1
    for i in np.flatnonzero(~dead):
        if positions[i] is None:
            continue
        res = _slim_live_cell(rng, positions[i][0], positions[i][1], float(radii[i]), cfg, (H, W))
        if res is None:
            continue
        y0, y1, x0, x1, thick, cell, nuc = res
        thick *= np.float32(rng.uniform(*cfg.body_contrast))
        view = cells[y0:y1, x0:x1]
        on_top = thick > view
        # Abutting spread cells do not stack: the thicker one is what is seen (max), and
        # a nucleus hidden under a neighbour's body loses those pixels.
        lab, ins = labels[y0:y1, x0:x1], inst[y0:y1, x0:x1]
        covered = on_top & cell & ~nuc
        lab[covered] = 0
        ins[covered] = 0
        mine = nuc & on_top
        lab[mine] = 1
        ins[mine] = next_id
        next_id += 1
        np.maximum(view, thick, out=view)
    for i in np.flatnonzero(dead):
        if positions[i] is None:
            continue
        res = _slim_dead_cell(rng, positions[i][0], positions[i][1], float(radii[i]), (H, W))
        if res is None:
            continue
        y0, y1, x0, x1, thick, cell, nuc = res
        cells[y0:y1, x0:x1] += np.float32(rng.uniform(*cfg.dead_contrast)) * thick
        lab, ins = labels[y0:y1, x0:x1], inst[y0:y1, x0:x1]
        lab[cell] = 0  # a dead cell on top hides whatever nucleus lies below it
        ins[cell] = 0
        lab[nuc] = 2
        ins[nuc] = next_id
        next_id += 1

    # Debris is part of the optical thickness, so it gets a halo like the cells.
    _add_specks(rng, cells, 3.0, (0.7, 2.0), (8.0, 30.0), 0.3)
    halo = rng.uniform(*cfg.halo)
    if halo > 0:
        # The halo's width varies a little with focus and the cells' height.
        sigma = cfg.halo_sigma * rng.uniform(0.8, 1.25)
        cells -= np.float32(halo) * ndi.gaussian_filter(cells, sigma, truncate=3.0)
    img = cells
    img += np.float32(rng.uniform(*cfg.background))
    img += np.float32(rng.uniform(0.3, 2.0)) * _coarse_field(rng, (H, W), 160.0)
    _add_rings(rng, img, 0.15, (0.5, 2.0))
    img += np.float32(rng.uniform(*cfg.noise)) * _smooth_noise(rng, (H, W), cfg.noise_sigma)
    if cfg.quantize:
        np.clip(np.rint(img, out=img), 0.0, 255.0, out=img)
    if return_instances:
        return img, labels, _finish_instances(inst)
    return img, labels


# --------------------------------------------------------------------------- holographic


def _holo_cell(rng, cy: float, cx: float, R: float, cfg: HoloConfig, shape, dead: bool):
    """One dome-shaped cell: (y0, y1, x0, x1, phase, mask) or None; phase peak in rad."""
    if dead:
        aspect, sigma_h, p = rng.uniform(1.0, 1.1), 0.03, rng.uniform(0.8, 1.2)
        R *= rng.uniform(0.6, 0.85)
    else:
        spindle = rng.random() < cfg.elongated_fraction
        aspect = rng.uniform(2.0, 3.5) if spindle else rng.uniform(*cfg.aspect)
        sigma_h, p = 0.06, rng.uniform(0.4, 0.7)
    theta = rng.uniform(0.0, np.pi)
    ks = np.arange(2, 7)
    amp, psi = _harmonics(rng, ks, sigma_h)
    # High harmonics with small amplitudes: the ragged, fluffy edges of the real cells.
    kr = np.arange(7, 17)
    amp_r, psi_r = _harmonics(rng, kr, 0.0 if dead else 0.025)
    a_ax, b_ax = R * math.sqrt(aspect), R / math.sqrt(aspect)
    fmax = 1.0 + float(np.abs(amp).sum() + np.abs(amp_r).sum())
    box = _patch(cy, cx, a_ax * fmax + 3, shape)
    if box is None:
        return None
    y0, y1, x0, x1, yy, xx = box
    u, v = _ellipse_coords(yy, xx, 0.0, 0.0, a_ax, b_ax, theta)
    phi = np.arctan2(v, u)
    f = _radial(phi, ks, amp, psi) + _radial(phi, kr, amp_r, psi_r) - np.float32(1.0)
    np.maximum(f, np.float32(0.4), out=f)
    rho2 = (u * u + v * v) / (f * f)
    env = np.clip(1.0 - rho2, 0.0, None) ** np.float32(p)
    if not env.any():
        return None
    # A slightly raised nucleus, off centre.
    off = 0.2 * R * math.sqrt(rng.random())
    oa = rng.uniform(0, 2 * np.pi)
    un, vn = _ellipse_coords(yy, xx, off * math.sin(oa), off * math.cos(oa),
                             0.5 * a_ax, 0.5 * b_ax * rng.uniform(0.8, 1.0), theta)
    env += np.float32(rng.uniform(0.1, 0.3)) * np.clip(1.0 - (un * un + vn * vn), 0, None) ** 0.5
    pshape = env.shape
    tex = (np.float32(1.0) + np.float32(rng.uniform(0.03, 0.08)) * _smooth_noise(rng, pshape, 2.5)
           + np.float32(rng.uniform(0.03, 0.08)) * _smooth_noise(rng, pshape, 0.8))
    phase = env * tex
    inside = env > 0
    phase += np.float32(rng.uniform(0.1, 0.3)) * _spots(rng, pshape, 0.01, 0.8) * inside
    phase *= inside
    np.maximum(phase, 0.0, out=phase)
    m = float(phase.max())
    if m <= 0:
        return None
    peak = rng.uniform(*(cfg.dead_peak if dead else cfg.peak))
    phase *= np.float32(peak / m)
    # The mask is the visible cell: where its envelope is above a small fraction of its top.
    mask = env > np.float32(0.06 * float(env.max()))
    return y0, y1, x0, x1, phase, mask


def make_holo_frame(seed_or_rng: int | np.random.Generator, config: HoloConfig | None = None,
                    *, return_instances: bool = False):
    """One holographic-QPI-like frame: (phase float32 (h, w) in rad, cell labels uint8).

    Labels: 0 background, 1 cell, 2 dead cell (only with ``dead_fraction > 0``). With
    ``return_instances=True`` a third array, uint16 cell ids 1..k (0 background), is
    returned; touching cells have different ids. Deterministic for an integer seed; a
    Generator is advanced.
    """
    cfg = _check_cfg(config, HoloConfig)
    rng = _as_rng(seed_or_rng)
    scale = 1.0
    if cfg.size_scale != (1.0, 1.0):  # drawn only when set: default frames keep their draws
        lo, hi = cfg.size_scale
        scale = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        cfg = replace(cfg, cell_radius=(cfg.cell_radius[0] * scale, cfg.cell_radius[1] * scale),
                      density=(cfg.density[0] / scale ** 2, cfg.density[1] / scale ** 2),
                      psf_sigma=min(cfg.psf_sigma * scale, 10.0))
    cfg, rng, margin, n, dead = _draw_cells(cfg, HoloConfig, rng, 1.0)
    H, W = cfg.shape
    radii = rng.uniform(*cfg.cell_radius, n)
    positions = place_largest_first(rng, radii, (H, W), 0.7, cluster=cfg.cluster, margin=margin,
                                    spacing=(0.75, 0.95))

    cells, labels, inst = _empty_maps((H, W))
    next_id = 1
    for i in range(n):
        if positions[i] is None:
            continue
        res = _holo_cell(rng, positions[i][0], positions[i][1], float(radii[i]), cfg, (H, W),
                         bool(dead[i]))
        if res is None:
            continue
        y0, y1, x0, x1, phase, mask = res
        view = cells[y0:y1, x0:x1]
        # Touching cells abut: each pixel shows (and belongs to) the taller dome.
        mine = mask & (phase >= view)
        labels[y0:y1, x0:x1][mine] = 2 if dead[i] else 1
        inst[y0:y1, x0:x1][mine] = next_id
        next_id += 1
        np.maximum(view, phase, out=view)
    if cfg.psf_sigma > 0:
        cells = ndi.gaussian_filter(cells, cfg.psf_sigma, truncate=3.0)

    img = cells
    _add_specks(rng, img, 2.0, (0.8, 2.5), (0.05, 0.4), 0.0)
    objects = img.copy() if cfg.halo[1] > 0 else None
    slope = rng.uniform(0.0, cfg.tilt)
    ang = rng.uniform(0, 2 * np.pi)
    img += ((np.arange(H, dtype=np.float32) - H / 2) * np.float32(slope * math.sin(ang)))[:, None]
    img += ((np.arange(W, dtype=np.float32) - W / 2) * np.float32(slope * math.cos(ang)))[None, :]
    img += np.float32(rng.uniform(*cfg.background_variation)) * _coarse_field(rng, (H, W), 150.0)
    img += np.float32(rng.uniform(*cfg.noise)) * _smooth_noise(rng, (H, W), 0.7)
    img += np.float32(rng.uniform(-0.02, 0.02))
    # The other set-ups' artefacts draw last, so a frame differs from its plain twin only by them.
    if objects is not None:
        # A dark moat around each cell (and debris) where a wide blur of it exceeds a narrow
        # one: with no inner blur deepest at the outline (about k/2 of the cell's height),
        # with one (inner fraction r of sigma) zero at the outline and deepest ~r sigma out,
        # as in scikit-image's cell; the interior and the far background keep their level.
        k = rng.uniform(*cfg.halo)
        sigma = rng.uniform(*cfg.halo_sigma) * scale
        inner = rng.uniform(*cfg.halo_inner) * sigma if cfg.halo_inner[1] > 0 else 0.0
        near = ndi.gaussian_filter(objects, inner, truncate=3.0) if inner > 0 else objects
        img -= np.float32(k) * np.maximum(ndi.gaussian_filter(objects, sigma, truncate=3.0) - near, 0.0)
    if cfg.fringes[1] > 0:
        img += np.float32(rng.uniform(*cfg.fringes)) * _fringes(rng, (H, W))
    if return_instances:
        return img, labels, _finish_instances(inst)
    return img, labels


# --------------------------------------------------------------------------- datasets


def _check_n(n_frames) -> int:
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ConfigError(f"n_frames must be a non-negative integer, got {n_frames!r}")
    return int(n_frames)


def _dataset(make, n_frames, seed, cfg, return_instances: bool):
    n = _check_n(n_frames)
    frame_rng(seed, 0)  # validates the seed even when n == 0
    images = np.empty((n,) + cfg.shape, np.float32)
    labels = np.empty((n,) + cfg.shape, np.uint8)
    inst = np.empty((n,) + cfg.shape, np.uint16) if return_instances else None
    for i in range(n):
        res = make(frame_rng(seed, i), cfg, return_instances=return_instances)
        images[i], labels[i] = res[0], res[1]
        if return_instances:
            inst[i] = res[2]
    return (images, labels, inst) if return_instances else (images, labels)


def make_slim_dataset(n_frames: int, seed: int, config: SlimConfig | None = None, *,
                      return_instances: bool = False):
    """``n_frames`` SLIM-like frames: (images float32 (n, h, w), labels uint8 (n, h, w)).

    Frame ``i`` uses ``frame_rng(seed, i)``, so it does not depend on ``n_frames``. With
    ``return_instances=True``, also the uint16 nucleus ids (n, h, w).
    """
    return _dataset(make_slim_frame, n_frames, seed, _check_cfg(config, SlimConfig),
                    return_instances)


def make_holo_dataset(n_frames: int, seed: int, config: HoloConfig | None = None, *,
                      return_instances: bool = False):
    """``n_frames`` holographic-QPI-like frames: (phases float32 (n, h, w), labels uint8).

    Frame ``i`` uses ``frame_rng(seed, i)``. With ``return_instances=True``, also the
    uint16 cell ids (n, h, w).
    """
    return _dataset(make_holo_frame, n_frames, seed, _check_cfg(config, HoloConfig),
                    return_instances)

"""`segment`: the one entry point that the napari widgets, the CLI and the tests all call.

frame -> checks + normalisation -> overlapping tiles (batched) -> encoder -> starting
noise (prior / random / forward) -> LDM-S DDIM sampling (k samples) -> per-tile votes ->
blended, stitched labels + agreement + starting noise + noise SSIM/KLD.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from . import metrics
from .bundle import Bundle
from .devices import resolve_device
from .engine import (
    BATCH_INVARIANT_CHOICES,
    CancelCheck,
    Progress,
    ProgressCallback,
    TileRun,
    cancel_check,
    diffusion_networks,
    starting_noise,
)
from .errors import BundleError, ConfigError
from .models import DOWNSAMPLE_FACTOR
from .noise import NoiseConfig, check_steps
from .postprocess import Refine, refine_labels
from .preprocess import as_planes, check_frame, rescale_frame
from .source import FrameSource
from .sampling import ddim_sample, resolve_votes, vote_counts
from .tiling import ArraySink, Stitcher, TileGrid

__all__ = ["BATCH_INVARIANT_CHOICES", "CancelCheck", "Progress", "SegmentConfig", "SegmentationResult",
           "cancel_check", "compute_noise", "segment", "segment_stack"]


def _rot90(k: int):
    return lambda a: np.rot90(a, k, axes=(-2, -1))


#: The views of test-time augmentation, as (forward, inverse) on the last two axes: the
#: dihedral group of the square, in the order `flips` takes them (1, 2, 4 or 8 views).
#: Plain numpy views rather than MONAI's `TestTimeAugmentation`, which draws random
#: transforms from its own dictionary pipelines; here the views are fixed, exactly
#: invertible, and what is averaged is the votes and scores that `segment` blends anyway.
FLIP_VIEWS: tuple[tuple[Callable, Callable], ...] = (
    (lambda a: a, lambda a: a),
    (lambda a: a[..., :, ::-1], lambda a: a[..., :, ::-1]),
    (lambda a: a[..., ::-1, :], lambda a: a[..., ::-1, :]),
    (lambda a: a[..., ::-1, ::-1], lambda a: a[..., ::-1, ::-1]),
    (lambda a: np.swapaxes(a, -1, -2), lambda a: np.swapaxes(a, -1, -2)),
    (_rot90(1), _rot90(-1)),
    (_rot90(-1), _rot90(1)),
    (lambda a: np.swapaxes(a[..., ::-1, ::-1], -1, -2), lambda a: np.swapaxes(a[..., ::-1, ::-1], -1, -2)),
)
FLIPS = (1, 2, 4, 8)


@dataclass(frozen=True)
class SegmentConfig:
    """Every setting of one segmentation run, validated once (`validate`).

    Noise: strategy 'prior' | 'random' | 'forward', inversion_steps (prior), forward_t
    (forward), renormalise, mix (see `NoiseConfig`). Sampling: sampling_steps DDIM steps,
    ensemble k samples with majority vote. Tiling: overlap in pixels, tile_batch tiles per
    network call (memory scales with it). seed makes every random draw reproducible.
    noise_metrics computes SSIM/KLD of the starting noise per tile (costs ~0.1 s a tile).
    return_scores keeps the blended (n, H, W) class scores (n x 4 bytes per pixel).
    flips: test-time augmentation, segmenting the frame also mirrored (2: left-right; 4:
    and up-down; 8: and transposed) and averaging the votes and scores mapped back
    (`FLIP_VIEWS`); costs `flips` times the time.
    """

    strategy: str = "prior"
    # 10 + 10 (20 NFE per tile) instead of the paper's 100 + 200 (300 NFE): on the hard
    # synthetic benchmark the shipped bundle's prior x1 scored mIoU 0.840 at 10 + 10 against
    # 0.844 at 100 + 200 and 0.803 for Random x5 at 200 steps (README, "Few-step inference";
    # scripts/evaluate_synthetic.sh).
    inversion_steps: int = 10
    sampling_steps: int = 10
    ensemble: int = 1
    forward_t: int = 300
    renormalise: bool = False
    mix: float = 1.0
    overlap: int = 32
    tile_batch: int = 4
    seed: int = 0
    device: str = "auto"
    noise_metrics: bool = True
    return_scores: bool = False
    # "on": the networks see one tile per call, so labels are bit-identical for every
    # tile_batch (oneDNN/MKL pick other kernels for other batch sizes: 1e-6 differences
    # that can flip a pixel). "auto" = on for CPUs (~15 % slower for the shipped model,
    # benchmarks/speed.py), off for GPUs, whose speed comes from batching.
    batch_invariant: str = "auto"
    flips: int = 1

    @property
    def noise(self) -> NoiseConfig:
        return NoiseConfig(self.strategy, self.inversion_steps, self.forward_t, self.renormalise, self.mix)

    def __post_init__(self) -> None:
        """The checks this config can make alone (`validate` makes those that need the model)."""
        self.noise  # NoiseConfig checks the noise settings when it is made
        if not isinstance(self.sampling_steps, (int, np.integer)) or self.sampling_steps < 1:
            raise ConfigError(f"sampling_steps must be a positive integer, got {self.sampling_steps!r}")
        if not isinstance(self.ensemble, (int, np.integer)) or self.ensemble < 1:
            raise ConfigError(f"ensemble size k must be a positive integer, got {self.ensemble}")
        if not isinstance(self.tile_batch, (int, np.integer)) or self.tile_batch < 1:
            raise ConfigError(f"tile_batch must be a positive integer, got {self.tile_batch}")
        if self.batch_invariant not in BATCH_INVARIANT_CHOICES:
            raise ConfigError(
                f"batch_invariant must be one of {', '.join(BATCH_INVARIANT_CHOICES)}, got {self.batch_invariant!r}"
            )
        if self.flips not in FLIPS:
            raise ConfigError(f"flips must be one of {', '.join(map(str, FLIPS))}, got {self.flips!r}")
        if not isinstance(self.overlap, (int, np.integer)) or self.overlap % DOWNSAMPLE_FACTOR or self.overlap < 0:
            raise ConfigError(f"overlap must be a multiple of {DOWNSAMPLE_FACTOR} px (>= 0), got {self.overlap}")

    def validate(self, num_train_timesteps: int = 1000, tile_size: int = 256) -> None:
        """The checks that need the model: step counts that divide its T, overlap within its tile."""
        self.noise.validate(num_train_timesteps)
        check_steps(self.sampling_steps, num_train_timesteps, "sampling_steps")
        if self.overlap > tile_size // 2:
            raise ConfigError(
                f"overlap must be a multiple of {DOWNSAMPLE_FACTOR} between 0 and {tile_size // 2} px, got {self.overlap}"
            )

    def nfe_per_tile(self) -> int:
        """Network evaluations per tile: (inversion steps (prior) + k x sampling steps) x flips."""
        inv = self.inversion_steps if self.strategy == "prior" else 0
        return (inv + self.ensemble * self.sampling_steps) * self.flips

    def to_dict(self) -> dict:
        return asdict(self)


def model_config(card, **overrides) -> SegmentConfig:
    """`SegmentConfig` with the model card's own settings (``card.segment``, e.g. the views it
    was scored with), then `overrides` (the user's choices) on top."""
    fields = set(SegmentConfig.__dataclass_fields__) - {"return_scores"}
    unknown = set(card.segment) - fields
    if unknown:
        raise BundleError(f"the model card's 'segment' names unknown setting(s) {', '.join(sorted(unknown))}")
    return replace(SegmentConfig(), **{**card.segment, **overrides})


# One help text per setting: the CLI's --help and the napari widgets' tooltips.
SETTINGS_HELP = {
    "strategy": "starting noise: 'prior' (DDIM inversion with LDM-P, the paper), 'random' or 'forward' (eq. 1)",
    "inversion_steps": "DDIM inversion steps of the prior (paper: 100; must divide 1000)",
    "sampling_steps": "DDIM sampling steps of LDM-S (paper: 200; must divide 1000)",
    "ensemble": "number of samples k, combined by per-pixel majority vote",
    "forward_t": "forward-diffusion step t of the 'forward' strategy (0 = the latent itself)",
    "renormalise": "rescale the channel-averaged noise to unit variance (off = paper rule)",
    "mix": "lambda in [0, 1]: mix the averaged noise with fresh per-channel noise (1 = paper rule)",
    "overlap": "overlap of neighbouring 256 px tiles in pixels (multiple of 4)",
    "tile_batch": "tiles per network call (memory grows with it)",
    "seed": "seed of every random draw",
    "device": "auto, cpu, cuda or mps (auto picks the best that exists)",
    "noise_metrics": "compute SSIM/KLD of the starting noise (about 0.1 s per tile)",
    "return_scores": "keep the per-class scores (not written by the CLI)",
    "batch_invariant": "one tile per network call, so labels do not depend on tile_batch: "
                       "auto (on for CPUs, off for GPUs), on or off",
    "flips": "test-time augmentation: also segment the image mirrored (2: left-right, 4: and up-down, "
             "8: and transposed) and average; costs that many times the time",
}


@dataclass
class SegmentationResult:
    """What `segment` returns for one frame.

    labels: (H, W) uint8 class ids (0 background, 1 live, 2 dead for the default classes).
    agreement: (H, W) float32 in [0, 1], fraction of the k samples voting for the label
        (blended over tile overlaps; all 1 for k = 1 except where tiles disagree).
    scores: (n, H, W) float32 blended mean sampled mask latents, or None.
    noise: (n, ceil(H/4), ceil(W/4)) float32 starting noise of sample 0 at latent size.
    noise_ssim, noise_kld: mean over tiles (NaN when noise metrics were off).
    nfe: network evaluations per tile (the paper's cost measure).
    """

    labels: np.ndarray
    agreement: np.ndarray
    scores: np.ndarray | None
    noise: np.ndarray
    noise_ssim: float
    noise_kld: float
    nfe: int
    n_tiles: int
    seconds: float
    device: str
    class_names: tuple[str, ...]
    config: SegmentConfig
    noise_std: float = float("nan")
    metric_seconds: float = 0.0  # part of `seconds` spent on noise SSIM/KLD

    @property
    def segment_seconds_per_tile(self) -> float:
        """Seconds per tile without the noise metrics (the cost a user pays to segment)."""
        return (self.seconds - self.metric_seconds) / max(self.n_tiles, 1)

    def class_fractions(self) -> dict[str, float]:
        counts = np.bincount(self.labels.ravel(), minlength=len(self.class_names))
        total = max(int(self.labels.size), 1)
        return {name: float(c) / total for name, c in zip(self.class_names, counts)}


def _output(out, shape: tuple[int, int], dtype, name: str):
    """A new zeroed array, or the caller's `out` after checking its shape and dtype."""
    if out is None:
        return np.zeros(shape, dtype)
    if tuple(getattr(out, "shape", ())) != shape or np.dtype(getattr(out, "dtype", None)) != np.dtype(dtype):
        raise ConfigError(
            f"{name} must be a {shape[0]}x{shape[1]} {np.dtype(dtype).name} array (the frame's shape), got "
            f"{getattr(out, 'shape', None)} {getattr(out, 'dtype', None)}"
        )
    return out


def segment(
    image,
    bundle: Bundle,
    config: SegmentConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    labels_out=None,
    agreement_out=None,
) -> SegmentationResult:
    """Segment one 2D QPI frame with PG-DiffSeg.

    Parameters
    ----------
    image : (H, W) array, float phase (radians) or integer; H, W >= 16.
    bundle : a loaded `Bundle` (see `load_bundle`).
    config : settings; defaults: the prior with 10 inversion + 10 sampling steps (the paper
        used 100 + 200; the README's NFE study shows 10 + 10 scores within 0.01 of it).
    progress : called with a `Progress` after every network evaluation.
    cancel : a callable returning True, or a `threading.Event`; checked before every
        network evaluation, raising `SegmentationCancelled`.
    labels_out, agreement_out : optional (H, W) arrays (uint8, float32) to write the labels
        and agreement into, band by band, e.g. a `np.memmap` or a zarr array on disk: with
        an input that is read lazily too (a dask/zarr/memmap frame), a frame larger than
        memory segments. The result then holds these very objects.

    A bundle whose card has an ``input_scale`` other than 1 works at another pixel size:
    the frame is read whole, resized by that factor (`preprocess.rescale_frame`),
    segmented, and its vote fractions and scores are resized back (bilinear) before the
    labels are resolved, so labels, agreement and scores have the frame's size; the noise
    stays at the model's latent size. With ``config.flips`` > 1 the (resized) frame is
    segmented once per view of `FLIP_VIEWS`, and the votes and scores, mapped back, are
    averaged before the labels are resolved; the noise and its metrics are the unflipped
    view's. A card with an active ``refine`` (`postprocess.Refine`) takes its labels from
    the blended scores with that margin / outline snapping. These read the frame whole (no
    band-by-band output).
    """
    config = config or SegmentConfig()
    scale = bundle.card.input_scale
    refine = Refine.from_dict(bundle.card.refine)
    if scale == 1.0 and config.flips == 1 and not refine.active:
        return _segment(image, bundle, config, progress, cancel, labels_out, agreement_out)
    config.validate(bundle.num_train_timesteps, bundle.card.tile_size)
    frame = check_frame(image)
    H, W = frame.shape
    labels = _output(labels_out, (H, W), np.uint8, "labels_out")  # checked before the work, not after
    agreement = _output(agreement_out, (H, W), np.float32, "agreement_out")
    model_frame = rescale_frame(frame, scale) if scale != 1.0 else frame
    votes = scores = first = None
    seconds = 0.0
    for i, (forward, inverse) in enumerate(FLIP_VIEWS[: config.flips]):
        kept: dict = {}
        # The noise, its metrics and NFE of a result are those of the unflipped view.
        view_config = config if i == 0 else replace(config, noise_metrics=False)
        r = _segment(np.ascontiguousarray(forward(model_frame)), bundle, view_config,
                     _view_progress(progress, i, config.flips), cancel, None, None, kept)
        v, sc = inverse(kept["votes"]), inverse(kept["scores"])
        votes, scores = (v, sc) if votes is None else (votes + v, scores + sc)
        if first is None:
            first = r
        seconds += r.seconds
    votes, scores = votes / config.flips, scores / config.flips

    if (H, W) != votes.shape[1:]:
        def back(a: np.ndarray) -> np.ndarray:
            t = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(a))[None], size=(H, W),
                                                mode="bilinear", align_corners=False)
            return t[0].numpy()

        votes, scores = back(votes), back(scores)
    lab, agr = resolve_votes(votes, scores)
    labels[:] = refine_labels(scores, frame, refine) if refine.active else lab
    agreement[:] = agr
    return replace(first, labels=labels, agreement=agreement, scores=np.ascontiguousarray(scores)
                   if config.return_scores else None, nfe=first.nfe * config.flips, seconds=seconds, config=config)


def _view_progress(progress: ProgressCallback | None, view: int, views: int) -> ProgressCallback | None:
    """Progress of one view of `views` (test-time flips) as progress over all of them."""
    if progress is None or views == 1:
        return progress

    def report(p: Progress) -> None:
        progress(Progress(p.tiles_done + view * p.tiles_total, p.tiles_total * views,
                          p.evals_done + view * p.evals_total, p.evals_total * views))

    return report


def _segment(image, bundle: Bundle, config: SegmentConfig, progress, cancel, labels_out, agreement_out,
             kept: dict | None = None) -> SegmentationResult:
    """`segment` at the model's own pixel size; `kept` receives the (n, H, W) votes and scores."""
    card = bundle.card
    config.validate(bundle.num_train_timesteps, card.tile_size)
    source = FrameSource(image, card.normalization)
    device = resolve_device(config.device)
    t0 = time.perf_counter()
    n = bundle.n_classes
    k = config.ensemble
    grid = TileGrid(source.shape[0], source.shape[1], card.tile_size, config.overlap, DOWNSAMPLE_FACTOR)
    lgrid = grid.scaled(DOWNSAMPLE_FACTOR)
    noise_cfg = config.noise
    inversion = config.inversion_steps if noise_cfg.strategy == "prior" else 0
    run = TileRun(len(grid), config.tile_batch, inversion + config.sampling_steps, progress, cancel)
    scheduler = bundle.make_scheduler()
    encode, net_p, net_s = diffusion_networks(bundle, device, config.batch_invariant)
    ldm_p, ldm_s = run.counted(net_p, "inversion"), run.counted(net_s, "sampling")

    H, W = source.shape
    labels = _output(labels_out, (H, W), np.uint8, "labels_out")
    agreement = _output(agreement_out, (H, W), np.float32, "agreement_out")
    scores = np.zeros((n, H, W), np.float32) if config.return_scores or kept is not None else None
    if kept is not None:
        kept["votes"], kept["scores"] = np.zeros((n, H, W), np.float32), scores

    def frame_sink(y0: int, y1: int, block: np.ndarray) -> None:
        if kept is not None:
            kept["votes"][:, y0:y1] = block[:n]
        lab, agr = resolve_votes(block[:n], block[n:])
        labels[y0:y1] = lab
        agreement[y0:y1] = agr
        if scores is not None:
            scores[:, y0:y1] = block[n:]

    stitch = Stitcher(grid, 2 * n, frame_sink)
    noise_sink = ArraySink(n, lgrid.height, lgrid.width)
    noise_stitch = Stitcher(lgrid, n, noise_sink)
    ssims, klds, stds = [], [], []
    metric_seconds = 0.0
    t = grid.tile
    for ids, batch, tiles in run.batches(grid.origins(), lambda y, x: source.tile(y, x, t)):
        z = encode(torch.from_numpy(tiles).to(device))
        starts, prior = [], None
        for s in range(k):  # the prior is inverted once and shared by the k samples
            start, prior = starting_noise(z, noise_cfg, n, config.seed, ids, s, ldm_p, scheduler, prior)
            starts.append(start)
        noise = torch.cat(starts)  # sample-major: (k * B, n, h, w)
        x0 = ddim_sample(ldm_s, scheduler, noise, z.repeat(k, 1, 1, 1), config.sampling_steps)
        up = torch.nn.functional.interpolate(x0.float(), size=(t, t), mode="bilinear", align_corners=False)
        up = up.cpu().numpy().reshape(k, len(batch), n, t, t)
        noise0 = starts[0].float().cpu().numpy()
        for i, origin in enumerate(batch):
            votes = vote_counts(np.argmax(up[:, i], axis=1), n)
            stitch.add(origin, np.concatenate([votes, up[:, i].mean(axis=0)]))
            ly, lx = origin[0] // DOWNSAMPLE_FACTOR, origin[1] // DOWNSAMPLE_FACTOR
            noise_stitch.add((ly, lx), noise0[i])
            stds.append(float(noise0[i].std()))
            if config.noise_metrics:
                tm = time.perf_counter()
                ssims.append(metrics.noise_ssim(noise0[i], tiles[i, 0]))
                klds.append(metrics.noise_kld(noise0[i]))
                metric_seconds += time.perf_counter() - tm
    stitch.finish()
    noise_stitch.finish()
    # NFE per tile from what the loops actually ran: inversion once per tile, sampling
    # evaluates k samples of each tile per call.
    nfe = (run.evals["inversion"] + k * run.evals["sampling"]) // run.n_batches
    return SegmentationResult(
        labels=labels,
        agreement=agreement,
        scores=scores,
        noise=noise_sink.array,
        noise_ssim=float(np.mean(ssims)) if ssims else float("nan"),
        noise_kld=float(np.mean(klds)) if klds else float("nan"),
        nfe=nfe,
        n_tiles=len(grid),
        seconds=time.perf_counter() - t0,
        device=str(device),
        class_names=tuple(card.class_names),
        config=config,
        noise_std=float(np.mean(stds)),
        metric_seconds=metric_seconds,
    )


def segment_stack(
    stack,
    bundle: Bundle,
    config: SegmentConfig | None = None,
    *,
    progress: Callable[[int, int, Progress], None] | None = None,
    cancel: CancelCheck | None = None,
) -> list[SegmentationResult]:
    """Segment a 2D frame or each plane of a (planes, H, W) stack; one result per plane.

    A stack that is not in memory (a dask or zarr array, a memmap) stays lazy: each plane is
    read only as `segment` reads it (`preprocess.as_planes`). progress is called as
    ``progress(plane_index, n_planes, Progress)``.
    """
    planes, _ = as_planes(stack)
    out = []
    for i, plane in enumerate(planes):
        cb = None if progress is None else (lambda p, i=i: progress(i, len(planes), p))
        out.append(segment(plane, bundle, config, progress=cb, cancel=cancel))
    return out


def compute_noise(
    image,
    bundle: Bundle,
    noise: NoiseConfig,
    *,
    seed: int = 0,
    device: str = "auto",
    tile_batch: int = 4,
    batch_invariant: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """The (n, ceil(h/4), ceil(w/4)) starting noise that LDM-S would get for `image`.

    (h, w) is the frame's size at the bundle's ``input_scale`` (the frame's own size for 1).

    Same steps as `segment` up to the sampler: checks, the bundle's normalisation, tiles of
    the bundle's tile size (no overlap: a noise is not blended, it would lose variance),
    encoder, the strategy's latent noise, channel averaging and repeat (Algorithm 1).
    An image larger than one tile is cropped, centred, to whole tiles first.

    progress gets a `Progress` after every network evaluation (the encoder, the prior's
    inversion steps) and every tile batch; cancel is checked before each evaluation and
    each batch and raises SegmentationCancelled.
    """
    noise.validate(bundle.num_train_timesteps)
    if bundle.card.input_scale != 1.0:  # the noise of the frame at the model's pixel size
        image = rescale_frame(check_frame(image), bundle.card.input_scale)
    source = FrameSource(image, bundle.card.normalization)
    t = bundle.card.tile_size
    H, W = source.shape
    # Larger than a tile: keep the centred whole-tile part, so tiles neither overlap nor pad
    # (an axis shorter than a tile is the whole axis, mirrored up to a tile by the source).
    ch, cw = (H // t * t if H > t else H), (W // t * t if W > t else W)
    y0, x0 = (H - ch) // 2, (W - cw) // 2
    grid = TileGrid(ch, cw, t, 0, DOWNSAMPLE_FACTOR)
    dev = resolve_device(device)
    # Progress counts the encoder too, so a strategy without a network still reports per batch.
    run = TileRun(len(grid), tile_batch, 1 + (noise.inversion_steps if noise.strategy == "prior" else 0),
                  progress, cancel)
    encode, net_p, _ = diffusion_networks(bundle, dev, batch_invariant)
    encode, ldm_p = run.counted(encode, "encode"), run.counted(net_p, "inversion")
    scheduler = bundle.make_scheduler()
    n = bundle.n_classes
    lh, lw = -(-grid.padded_shape[0] // DOWNSAMPLE_FACTOR), -(-grid.padded_shape[1] // DOWNSAMPLE_FACTOR)
    out = np.zeros((n, lh, lw), np.float32)
    for ids, batch, tiles in run.batches(grid.origins(), lambda y, x: source.tile(y0 + y, x0 + x, t)):
        z = encode(torch.from_numpy(tiles).to(dev))
        start, _ = starting_noise(z, noise, n, seed, ids, 0, ldm_p, scheduler)
        start = start.float().cpu().numpy()
        for i, (y, x) in enumerate(batch):
            ly, lx = y // DOWNSAMPLE_FACTOR, x // DOWNSAMPLE_FACTOR
            out[:, ly : ly + start.shape[2], lx : lx + start.shape[3]] = start[i]
    return out[:, : -(-ch // DOWNSAMPLE_FACTOR), : -(-cw // DOWNSAMPLE_FACTOR)]


def centre_crop_box(shape: Sequence[int], size: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the centred size x size crop of a (H, W) frame (smaller frames: all)."""
    H, W = int(shape[0]), int(shape[1])
    h, w = min(H, size), min(W, size)
    y0, x0 = (H - h) // 2, (W - w) // 2
    return y0, y0 + h, x0, x0 + w

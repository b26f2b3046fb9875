"""`segment`: the one entry point that the napari widgets, the CLI and the tests all call.

frame -> checks + normalisation -> overlapping tiles (batched) -> encoder -> starting
noise (prior / random / forward) -> LDM-S DDIM sampling (k samples) -> per-tile votes ->
blended, stitched labels + agreement + starting noise + noise SSIM/KLD.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import metrics
from .bundle import Bundle
from .config import SegmentConfig
from .devices import resolve_device, torch_threads
from .engine import (
    CancelCheck,
    Progress,
    ProgressCallback,
    TileRun,
    diffusion_networks,
    starting_noise,
)
from .errors import ConfigError
from .models import DOWNSAMPLE_FACTOR
from .postprocess import Refine, refine_labels
from .ood import OODReference, frame_score, latent_features, ood_message
from .preprocess import as_planes, check_frame, replace_outliers, rescale_frame
from .source import FrameSource
from .sampling import ddim_sample, resolve_votes, vote_counts
from .tiling import ArraySink, Stitcher, TileGrid

__all__ = ["FLIP_VIEWS", "SegmentationResult", "segment", "segment_stack"]


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


def _trot90(k: int):
    return lambda x: torch.rot90(x, k, dims=(-2, -1))


#: `FLIP_VIEWS` on torch tensors (..., h, w) of square tiles, in the same order: the views of
#: flip_scope "sampling", applied to a tile's latent and noise and undone on LDM-S's output.
_LATENT_VIEWS: tuple[tuple[Callable, Callable], ...] = (
    (lambda x: x, lambda x: x),
    (lambda x: x.flip(-1), lambda x: x.flip(-1)),
    (lambda x: x.flip(-2), lambda x: x.flip(-2)),
    (lambda x: x.flip(-2, -1), lambda x: x.flip(-2, -1)),
    (lambda x: x.transpose(-1, -2), lambda x: x.transpose(-1, -2)),
    (_trot90(1), _trot90(-1)),
    (_trot90(-1), _trot90(1)),
    (lambda x: x.flip(-2, -1).transpose(-1, -2), lambda x: x.flip(-2, -1).transpose(-1, -2)),
)


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
    # Hot/dead pixels (beyond preprocess.OUTLIER_LIMIT of the frame's range) replaced by
    # their neighbours' median before segmenting.
    outlier_pixels: int = 0
    # How unlike the model's training images this frame is (`core.ood`; NaN when the card
    # has no reference) and the warning, "" when it is like them.
    ood_score: float = float("nan")
    ood_warning: str = ""
    # Pixels without a phase (NaN, e.g. outside a hologram's aperture): labelled background.
    nan_pixels: int = 0

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
    config : settings; defaults: the prior with 5 inversion + 5 sampling steps (the paper
        used 100 + 200; the README's NFE study, "Fast by default", shows 5 + 5 within 0.005
        mIoU of it on the synthetic benchmark).
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
    image, missing = _fill_missing(image)
    with torch_threads(config.threads):
        result = _segment_views(image, bundle, config, progress, cancel, labels_out, agreement_out)
    if missing is not None:  # pixels without a phase (outside the aperture) are background
        result.labels[missing] = 0
        result.agreement[missing] = 1.0
        result.nan_pixels = int(missing.sum())
    return result


def _fill_missing(image):
    """(image, mask of NaN pixels or None): a float frame with NaN where it has no phase (outside
    a hologram's aperture) gets those pixels set to the median of the others, so that
    normalisation and the networks see a plain background there; `segment` then labels
    them background. A frame without a finite pixel is left for `check_frame` to refuse;
    +-inf stays an error (it is a broken value, not a missing one)."""
    if not isinstance(image, np.ndarray) or image.dtype.kind != "f" or image.ndim != 2:
        return image, None
    missing = np.isnan(image)
    if not missing.any() or missing.all():
        return image, None
    filled = image.copy()
    filled[missing] = np.median(image[~missing])
    return filled, missing


def _segment_views(image, bundle: Bundle, config: SegmentConfig, progress, cancel, labels_out,
                   agreement_out) -> SegmentationResult:
    """`segment` with the card's input scale, test-time views and refinement."""
    scale = bundle.card.input_scale
    refine = Refine.from_dict(bundle.card.refine)
    if scale == 1.0 and config.flips == 1 and not refine.active:
        return _segment(image, bundle, config, progress, cancel, labels_out, agreement_out)
    config.validate(bundle.num_train_timesteps, bundle.card.tile_size)
    frame = check_frame(image)
    H, W = frame.shape
    labels = _output(labels_out, (H, W), np.uint8, "labels_out")  # checked before the work, not after
    agreement = _output(agreement_out, (H, W), np.float32, "agreement_out")
    outliers = 0
    if scale != 1.0:  # before resizing smears a hot pixel into its neighbours (FrameSource does it at scale 1)
        outliers = replace_outliers(frame, bundle.card.normalization)
    model_frame = rescale_frame(frame, scale) if scale != 1.0 else frame
    votes = scores = first = None
    seconds = 0.0
    # flip_scope "sampling": one pass over the tiles; `_segment` mirrors the latent and noise.
    views = FLIP_VIEWS[: config.flips] if config.flip_scope == "pipeline" else FLIP_VIEWS[:1]
    for i, (forward, inverse) in enumerate(views):
        kept: dict = {}
        # The noise, its metrics and NFE of a result are those of the unflipped view.
        view_config = config if i == 0 else replace(config, noise_metrics=False)
        r = _segment(np.ascontiguousarray(forward(model_frame)), bundle, view_config,
                     _view_progress(progress, i, len(views)), cancel, None, None, kept)
        v, sc = inverse(kept["votes"]), inverse(kept["scores"])
        votes, scores = (v, sc) if votes is None else (votes + v, scores + sc)
        if first is None:
            first = r
        seconds += r.seconds
    votes, scores = votes / len(views), scores / len(views)

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
                   if config.return_scores else None, nfe=first.nfe * len(views), seconds=seconds, config=config,
                   outlier_pixels=outliers + first.outlier_pixels)


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
    # Mirrored views of the sampling alone (flip_scope "sampling"; a "pipeline" view arrives
    # here as its own unmirrored run with flips handled by `_segment_views`).
    latent_views = _LATENT_VIEWS[: config.flips] if config.flip_scope == "sampling" else _LATENT_VIEWS[:1]
    run = TileRun(len(grid), config.tile_batch, inversion + config.sampling_steps * len(latent_views), progress, cancel)
    scheduler = bundle.make_scheduler()
    encode, net_p, net_s = diffusion_networks(bundle, device, config.batch_invariant, config.precision)
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
    ssims, klds, stds, feats = [], [], [], []
    metric_seconds = 0.0
    t = grid.tile
    for ids, batch, tiles in run.batches(grid.origins(), lambda y, x: source.tile(y, x, t)):
        z = encode(torch.from_numpy(tiles).to(device))
        feats.append(latent_features(z))
        starts, prior = [], None
        for s in range(k):  # the prior is inverted once and shared by the k samples
            start, prior = starting_noise(z, noise_cfg, n, config.seed, ids, s, ldm_p, scheduler, prior)
            starts.append(start)
        noise = torch.cat(starts)  # sample-major: (k * B, n, h, w)
        zk = z.repeat(k, 1, 1, 1)
        # view-major: (V * k * B, n, h, w), each view's x0 mapped back before it is voted on
        x0 = torch.cat([back(ddim_sample(ldm_s, scheduler, fwd(noise), fwd(zk), config.sampling_steps))
                        for fwd, back in latent_views])
        up = torch.nn.functional.interpolate(x0.float(), size=(t, t), mode="bilinear", align_corners=False)
        up = up.cpu().numpy().reshape(k * len(latent_views), len(batch), n, t, t)
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
        outlier_pixels=source.outliers,
        **_ood(np.concatenate(feats) if feats else np.zeros((0, 6)), card),
    )


def _ood(features: np.ndarray, card) -> dict:
    ref = OODReference.from_dict(card.ood)
    score = frame_score(features, ref)
    return {"ood_score": score, "ood_warning": ood_message(score, ref)}


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

"""`SegmentConfig`: every setting of one segmentation run, its checks and its help texts.

The model card's own settings (`model_config`) come first, the user's choices on top. One
help text per setting (`SETTINGS_HELP`) serves the CLI's --help and the widgets' tooltips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .engine import BATCH_INVARIANT_CHOICES, PRECISIONS
from .errors import BundleError, ConfigError
from .models import DOWNSAMPLE_FACTOR
from .noise import NoiseConfig, check_steps

__all__ = ["DEFAULT_SPEED", "FLIPS", "SETTINGS_HELP", "SPEED_PRESETS", "SegmentConfig", "model_config"]

FLIPS = (1, 2, 4, 8)
#: What a mirrored view repeats: "pipeline" (the whole pipeline on the mirrored frame: encoder,
#: DDIM inversion and sampling per view) or "sampling" (the frame is encoded and its prior
#: inverted once; the latent and the noise are mirrored and only LDM-S sampling runs per view).
FLIP_SCOPES = ("pipeline", "sampling")

#: Speed/quality presets by name (`--speed`, the widgets' "speed" choice): the
#: settings each puts over the model card's own. "fast" (the default) is the card's settings,
#: whose step counts and views the NFE study chose per model (README), else `SegmentConfig`'s
#: defaults; "paper" is the paper's protocol: prior, 100 inversion + 200 sampling steps, one
#: view, one sample (300 network evaluations per tile).
SPEED_PRESETS: dict[str, dict] = {
    "fast": {},
    "paper": {"strategy": "prior", "inversion_steps": 100, "sampling_steps": 200, "ensemble": 1, "flips": 1},
}
DEFAULT_SPEED = "fast"


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
    (`FLIP_VIEWS`); costs `flips` times the time. flip_scope "sampling" mirrors only what
    LDM-S sees (the latent and the prior noise of one encoding and inversion), so a view costs
    the sampling steps alone.
    """

    strategy: str = "prior"
    # 5 + 5 (10 NFE per tile), the fewest steps within the allowance of the paper's
    # 100 + 200 (300 NFE): on the hard synthetic benchmark synthetic-demo's prior x1 scored
    # mIoU 0.839 at 5 + 5 against 0.844 at 100 + 200 (2 + 2: 0.836, 1 + 1: 0.827); on the
    # real held-out frames see the README, "Fast by default".
    inversion_steps: int = 5
    sampling_steps: int = 5
    ensemble: int = 1
    forward_t: int = 300
    renormalise: bool = False
    mix: float = 1.0
    overlap: int = 32
    tile_batch: int = 4
    seed: int = 0
    device: str = "auto"
    # Off the hot path (about 0.1 s a tile): the noise inspector and --noise-metrics compute them.
    noise_metrics: bool = False
    return_scores: bool = False
    # "on": the networks see one tile per call, so labels are bit-identical for every
    # tile_batch (oneDNN/MKL pick other kernels for other batch sizes: 1e-6 differences
    # that can flip a pixel), at ~15 % more time for the shipped model on a CPU
    # (benchmarks/speed.py). "off" (default) batches tiles; "auto" = on for CPUs, off for GPUs.
    batch_invariant: str = "off"
    flips: int = 1
    flip_scope: str = "pipeline"
    # "auto": float16 autocast on CUDA (the networks; DDIM and blending stay float32), bfloat16
    # autocast on CPUs with native bfloat16 (AVX512-BF16 / AMX), float32 elsewhere;
    # "bfloat16"/"float16" ask for autocast on any device, "float32" for none.
    precision: str = "auto"
    # CPU threads of the networks (torch intra-op threads) during the run; 0: torch's default
    # (one per core). On a machine busy with other work fewer threads than cores run faster.
    threads: int = 0

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
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, (int, np.integer)) or self.threads < 0:
            raise ConfigError(f"threads must be 0 (automatic: one per core) or a positive number of CPU threads, "
                              f"got {self.threads!r}")
        if self.flips not in FLIPS:
            raise ConfigError(f"flips must be one of {', '.join(map(str, FLIPS))}, got {self.flips!r}")
        if self.flip_scope not in FLIP_SCOPES:
            raise ConfigError(f"flip_scope must be one of {', '.join(FLIP_SCOPES)}, got {self.flip_scope!r}")
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
        """Network evaluations per tile: (inversion steps (prior) + k x sampling steps) x flips,
        or with flip_scope "sampling" inversion steps + k x sampling steps x flips."""
        inv = self.inversion_steps if self.strategy == "prior" else 0
        if self.flip_scope == "sampling":
            return inv + self.ensemble * self.sampling_steps * self.flips
        return (inv + self.ensemble * self.sampling_steps) * self.flips

    def to_dict(self) -> dict:
        return asdict(self)


def model_config(card, speed: str = DEFAULT_SPEED, **overrides) -> SegmentConfig:
    """`SegmentConfig` with the model card's own settings (``card.segment``, e.g. the views it
    was scored with), then the `speed` preset (`SPEED_PRESETS`), then `overrides` (the user's
    choices)."""
    if speed not in SPEED_PRESETS:
        raise ConfigError(f"unknown speed preset {speed!r}; choose one of {', '.join(SPEED_PRESETS)}")
    fields = set(SegmentConfig.__dataclass_fields__) - {"return_scores"}
    unknown = set(card.segment) - fields
    if unknown:
        raise BundleError(f"the model card's 'segment' names unknown setting(s) {', '.join(sorted(unknown))}")
    return replace(SegmentConfig(), **{**card.segment, **SPEED_PRESETS[speed], **overrides})


# One help text per setting: the CLI's --help and the napari widgets' tooltips.
SETTINGS_HELP = {
    "strategy": "starting noise: 'prior' (DDIM inversion with LDM-P, the paper), 'random' or 'forward' (eq. 1)",
    "inversion_steps": "DDIM inversion steps of the prior (paper: 100; must divide 1000)",
    "sampling_steps": "DDIM sampling steps of LDM-S (paper: 200; must divide 1000)",
    "ensemble": "number of samples k, combined by per-pixel majority vote (needs a random start: random noise, "
                "forward diffusion t > 0, or mix < 1; the prior's paper rule gives k identical samples)",
    "forward_t": "forward-diffusion step t of the 'forward' strategy (0 = the latent itself)",
    "renormalise": "rescale the channel-averaged noise to unit variance (off = paper rule)",
    "mix": "lambda in [0, 1]: mix the averaged noise with fresh per-channel noise (1 = paper rule)",
    "overlap": "overlap of neighbouring 256 px tiles in pixels (multiple of 4)",
    "tile_batch": "tiles per network call (memory grows with it)",
    "seed": "seed of every random draw",
    "device": "auto, cpu, cuda or mps (auto picks the best that exists)",
    "noise_metrics": "compute SSIM/KLD of the starting noise (about 0.1 s per tile)",
    "return_scores": "keep the per-class scores (not written by the CLI)",
    "batch_invariant": "one tile per network call, so labels do not depend on tile_batch (about 1.15x the time "
                       "on a CPU): on, off, or auto (on for CPUs, off for GPUs)",
    "precision": "network precision: auto (float16 on CUDA, bfloat16 on CPUs with native bfloat16, else float32), float32, bfloat16 or float16",
    "threads": "CPU threads for the networks (0 = automatic, one per core; fewer can be faster on a busy machine)",
    "flips": "test-time augmentation: also segment the image mirrored (2: left-right, 4: and up-down, "
             "8: and transposed) and average; costs that many times the time",
    "flip_scope": "what each mirrored view repeats: 'pipeline' (encoder, inversion and sampling) or 'sampling' "
                  "(one encoding and inversion, mirrored for LDM-S sampling only: a view costs the sampling steps)",
}

"""Starting-noise strategies for LDM-S: the prior (DDIM inversion with LDM-P), random, forward.

Every strategy returns a (B, n, h_f, w_f) tensor for B tiles and n classes. The prior and
forward strategies produce a 3-channel latent-shaped noise that is averaged over its
channels and repeated n times (the paper's Algorithm 1); `renormalise` and `mix` are the
documented, opt-in corrections for the variance that averaging removes (design.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, UNet2DModel

from .errors import ConfigError

STRATEGIES = ("prior", "random", "forward")


@dataclass(frozen=True)
class NoiseConfig:
    """How the starting noise is made.

    strategy: 'prior' (paper), 'random' or 'forward'.
    inversion_steps: DDIM inversion steps of the prior (paper: 100; must divide T).
    forward_t: forward-diffusion step of 'forward' (0 gives the latent itself).
    renormalise: divide the averaged map by its standard deviation (off: paper rule).
    mix: lambda of eps_c = sqrt(lambda) m + sqrt(1 - lambda) xi_c with fresh per-channel
        noise xi_c; 1.0 (default) is the paper's plain repeat.
    """

    strategy: str = "prior"
    inversion_steps: int = 100
    forward_t: int = 300
    renormalise: bool = False
    mix: float = 1.0

    # One validation style for every config: what a config can check alone is checked when
    # it is made (`__post_init__`, so an invalid one never exists); what depends on a model
    # (its number of diffusion timesteps) is checked by `validate`.
    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"noise strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if not isinstance(self.inversion_steps, (int, np.integer)) or self.inversion_steps < 1:
            raise ConfigError(f"inversion_steps must be a positive integer, got {self.inversion_steps!r}")
        if not isinstance(self.forward_t, (int, np.integer)) or self.forward_t < 0:
            raise ConfigError(f"forward_t must be an integer >= 0, got {self.forward_t!r}")
        if not 0.0 <= self.mix <= 1.0:
            raise ConfigError(f"mix (lambda) must be in [0, 1], got {self.mix}")

    def validate(self, num_train_timesteps: int = 1000) -> None:
        """The checks that need the model: step counts that divide its T, forward_t < T."""
        if self.strategy == "prior":
            check_steps(self.inversion_steps, num_train_timesteps, "inversion_steps")
        if not self.forward_t < num_train_timesteps:
            raise ConfigError(f"forward_t must be in [0, {num_train_timesteps - 1}], got {self.forward_t}")


def check_steps(steps: int, num_train_timesteps: int, name: str) -> None:
    """DDIM step counts must divide T.

    diffusers' DDIM and inverse-DDIM `step` assume prev_t = t - T // n, which is only the
    real neighbouring timestep of the trailing schedule when n divides T.
    """
    if not isinstance(steps, (int, np.integer)) or steps < 1 or num_train_timesteps % steps:
        divisors = [d for d in range(1, num_train_timesteps + 1) if num_train_timesteps % d == 0]
        raise ConfigError(
            f"{name} must divide {num_train_timesteps} (one of {', '.join(map(str, divisors))}), got {steps}"
        )


def tile_generators(seed: int, tile_ids: Sequence[int], stream: int) -> list[torch.Generator]:
    """One CPU generator per tile, derived from (seed, tile id, stream).

    Per-tile streams make the noise of a tile independent of how tiles are batched.
    """
    gens = []
    for tid in tile_ids:
        s = np.random.SeedSequence([int(seed), int(tid), int(stream)]).generate_state(1, np.uint64)[0]
        gens.append(torch.Generator("cpu").manual_seed(int(s)))
    return gens


def random_noise(shape: Sequence[int], generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Standard Gaussian noise, one seeded draw per leading index; float32 on the CPU."""
    return torch.stack([torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in generators])


def average_and_repeat(eps: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Algorithm 1: mean over the latent channels, repeated n times -> (B, n, h, w)."""
    return eps.mean(dim=1, keepdim=True).expand(-1, n_classes, -1, -1).contiguous()


def renormalise(m: torch.Tensor) -> torch.Tensor:
    """Scale each sample to unit standard deviation (the mean is kept)."""
    std = m.flatten(1).std(dim=1).clamp_min(1e-6)
    return m / std.view(-1, *([1] * (m.ndim - 1)))


def mix_fresh(m: torch.Tensor, lam: float, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """eps_c = sqrt(lam) m + sqrt(1 - lam) xi_c with fresh noise xi per channel."""
    if lam >= 1.0:
        return m
    xi = random_noise(m.shape[1:], generators).to(m.device, m.dtype)
    return float(np.sqrt(lam)) * m + float(np.sqrt(1.0 - lam)) * xi


def forward_diffusion_noise(
    z: torch.Tensor, t: int, scheduler: DDIMScheduler, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """Eq. 1 applied to the latent: sqrt(abar_t) z + sqrt(1 - abar_t) eps; t = 0 returns z."""
    if t == 0:
        return z.clone()
    eps = random_noise(z.shape[1:], generators).to(z.device, z.dtype)
    abar = float(scheduler.alphas_cumprod[t])
    return float(np.sqrt(abar)) * z + float(np.sqrt(1.0 - abar)) * eps


@torch.inference_mode()
def invert_to_noise(
    z: torch.Tensor,
    ldm_p: UNet2DModel,
    scheduler: DDIMScheduler,
    steps: int,
) -> torch.Tensor:
    """Deterministic DDIM inversion of latents z (B, 3, h, w) with LDM-P in `steps` steps.

    Uses diffusers' `DDIMInverseScheduler` built from the same config (trailing spacing),
    so inversion ends at t = T - 1 where sampling starts.
    """
    check_steps(steps, scheduler.config.num_train_timesteps, "inversion_steps")
    inverse = DDIMInverseScheduler.from_config(scheduler.config, prediction_type="epsilon")
    inverse.set_timesteps(steps)
    x = z
    for t in inverse.timesteps:
        eps = ldm_p(x, t.to(x.device)).sample
        x = inverse.step(eps, int(t), x).prev_sample
    return x


@torch.inference_mode()
def latent_noise(
    z: torch.Tensor,
    config: NoiseConfig,
    ldm_p: UNet2DModel,
    scheduler: DDIMScheduler,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """The 3-channel, latent-shaped noise of the 'prior' or 'forward' strategy (B, 3, h, w)."""
    if config.strategy == "prior":
        return invert_to_noise(z, ldm_p, scheduler, config.inversion_steps)
    if config.strategy == "forward":
        return forward_diffusion_noise(z, config.forward_t, scheduler, generators)
    raise ConfigError(f"strategy {config.strategy!r} has no latent-shaped noise")


def class_noise(
    eps: torch.Tensor | None,
    config: NoiseConfig,
    n_classes: int,
    generators: Sequence[torch.Generator],
    shape: Sequence[int],
) -> torch.Tensor:
    """The (B, n, h, w) starting noise of LDM-S from a latent-shaped noise `eps`.

    'random' ignores `eps` and draws (n, *shape) per generator; 'prior' and 'forward'
    average and repeat `eps` (Algorithm 1), then optionally renormalise and mix.
    """
    if config.strategy == "random":
        return random_noise((n_classes, *shape), generators)
    m = average_and_repeat(eps, n_classes)
    if config.renormalise:
        m = renormalise(m)
    return mix_fresh(m, config.mix, generators)

"""The three networks of PG-DiffSeg, built from diffusers parts, and their size presets.

- autoencoder: diffusers ``VQModel`` with f = 4 and 3 latent channels (the LDM "vq-f4"
  layout); only the encoder is used when segmenting.
- LDM-P: unconditional ``UNet2DModel`` over image latents (prior extraction).
- LDM-S: ``UNet2DModel`` whose input is the noisy n-channel mask latent concatenated with the
  3-channel image latent z, predicting n channels.

``paper`` reproduces the paper's sizes (274 M / 84.6 M parameters); ``small`` and ``tiny``
are CPU presets (the shipped model and the tests).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from diffusers import DDIMScheduler, UNet2DModel, VQModel

from .errors import ConfigError

LATENT_CHANNELS = 3
DOWNSAMPLE_FACTOR = 4


@dataclass(frozen=True)
class UNetSpec:
    """Size of one denoising U-Net (diffusers ``UNet2DModel`` arguments)."""

    block_out_channels: tuple[int, ...]
    attention: tuple[bool, ...]  # per down block, from the highest resolution down
    layers_per_block: int = 2
    attention_head_dim: int = 32
    norm_num_groups: int = 32


@dataclass(frozen=True)
class AutoencoderSpec:
    """Size of the f = 4 VQ autoencoder (diffusers ``VQModel`` arguments)."""

    block_out_channels: tuple[int, ...] = (128, 256, 512)
    layers_per_block: int = 2
    num_vq_embeddings: int = 8192
    norm_num_groups: int = 32
    mid_block_add_attention: bool = True


@dataclass(frozen=True)
class Preset:
    """A named set of network sizes; `tile_size` is the image tile the U-Nets expect."""

    name: str
    autoencoder: AutoencoderSpec
    ldm_p: UNetSpec
    ldm_s: UNetSpec
    tile_size: int = 256
    num_train_timesteps: int = 1000
    notes: str = field(default="", compare=False)


PRESETS: dict[str, Preset] = {
    # The paper (Sec. 4.2): LDM-P 224/448/672/896 with attention on 32/16/8 px feature maps
    # of a 64 px latent, LDM-S 128/256/384/512 with attention on 64/32/16 px; LDM configs'
    # num_head_channels 32 -> attention_head_dim 32.
    "paper": Preset(
        name="paper",
        autoencoder=AutoencoderSpec(),
        ldm_p=UNetSpec((224, 448, 672, 896), (False, True, True, True)),
        ldm_s=UNetSpec((128, 256, 384, 512), (True, True, True, False)),
        notes="Paper sizes: LDM-P ~274 M, LDM-S ~84.6 M, vq-f4 autoencoder ~55 M parameters.",
    ),
    # CPU sizes measured in design.md: ~1.2 M-parameter U-Nets train at ~0.7 s/step on 2 cores.
    "small": Preset(
        name="small",
        autoencoder=AutoencoderSpec(
            block_out_channels=(16, 32, 32),
            layers_per_block=1,
            num_vq_embeddings=1024,
            norm_num_groups=8,
            mid_block_add_attention=False,
        ),
        ldm_p=UNetSpec((32, 64, 64), (False, True, True), 1, 16, 8),
        ldm_s=UNetSpec((32, 64, 64), (False, True, True), 1, 16, 8),
        notes="CPU preset of the shipped model.",
    ),
    # A few thousand parameters each: milliseconds per call, for tests.
    "tiny": Preset(
        name="tiny",
        autoencoder=AutoencoderSpec(
            block_out_channels=(8, 8, 8),
            layers_per_block=1,
            num_vq_embeddings=64,
            norm_num_groups=4,
            mid_block_add_attention=False,
        ),
        ldm_p=UNetSpec((8, 16), (False, True), 1, 8, 4),
        ldm_s=UNetSpec((8, 16), (False, True), 1, 8, 4),
        notes="Test preset.",
    ),
}


def get_preset(name: str) -> Preset:
    """Return the preset called `name` ('paper', 'small' or 'tiny')."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None


def _unet_config(spec: UNetSpec, in_channels: int, out_channels: int, sample_size: int) -> dict:
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in spec.attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(spec.attention))
    return dict(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=out_channels,
        layers_per_block=spec.layers_per_block,
        block_out_channels=spec.block_out_channels,
        down_block_types=down,
        up_block_types=up,
        attention_head_dim=spec.attention_head_dim,
        norm_num_groups=spec.norm_num_groups,
    )


@contextlib.contextmanager
def _maybe_meta(meta: bool):
    # Building under the meta device allocates no weights: the paper-size models are then
    # counted in milliseconds (tests, benchmarks) instead of allocating ~1.5 GB.
    if meta:
        with torch.device("meta"):
            yield
    else:
        yield


def build_autoencoder(preset: Preset | str, *, meta: bool = False) -> VQModel:
    """An untrained f = 4 VQ autoencoder with 3 latent channels (the LDM vq-f4 layout)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    spec = p.autoencoder
    n = len(spec.block_out_channels)
    if 2 ** (n - 1) != DOWNSAMPLE_FACTOR:
        raise ConfigError(f"the autoencoder needs 3 blocks for f = 4, got {n}")
    with _maybe_meta(meta):
        return VQModel(
            in_channels=1,
            out_channels=1,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=spec.block_out_channels,
            layers_per_block=spec.layers_per_block,
            latent_channels=LATENT_CHANNELS,
            num_vq_embeddings=spec.num_vq_embeddings,
            vq_embed_dim=LATENT_CHANNELS,
            norm_num_groups=spec.norm_num_groups,
            sample_size=p.tile_size,
            # VQ-LDMs use no latent scaling; 0.18215 belongs to Stable Diffusion's KL model.
            scaling_factor=1.0,
            mid_block_add_attention=spec.mid_block_add_attention,
        )


def build_ldm_p(preset: Preset | str, *, meta: bool = False) -> UNet2DModel:
    """An untrained unconditional LDM-P over 3-channel image latents."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    cfg = _unet_config(p.ldm_p, LATENT_CHANNELS, LATENT_CHANNELS, p.tile_size // DOWNSAMPLE_FACTOR)
    with _maybe_meta(meta):
        return UNet2DModel(**cfg)


def build_ldm_s(preset: Preset | str, n_classes: int = 3, *, meta: bool = False) -> UNet2DModel:
    """An untrained LDM-S: input n mask channels + 3 image-latent channels, output n."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    if n_classes < 2:
        raise ConfigError(f"n_classes must be at least 2, got {n_classes}")
    cfg = _unet_config(
        p.ldm_s, n_classes + LATENT_CHANNELS, n_classes, p.tile_size // DOWNSAMPLE_FACTOR
    )
    with _maybe_meta(meta):
        return UNet2DModel(**cfg)


def build_scheduler(num_train_timesteps: int = 1000, prediction_type: str = "epsilon") -> DDIMScheduler:
    """The LDM noise schedule as a DDIM scheduler with trailing timestep spacing.

    ``scaled_linear`` 0.0015 -> 0.0195 is LDM's own schedule. Trailing spacing makes a
    few-step sampler start at t = T - 1 and lets `DDIMInverseScheduler` (which supports only
    leading/trailing) end its inversion at t = T - 1 as well.
    """
    if prediction_type not in ("epsilon", "sample"):
        raise ConfigError(
            f"prediction_type must be 'epsilon' (paper) or 'sample' (x0), got {prediction_type!r}"
        )
    return DDIMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_start=0.0015,
        beta_end=0.0195,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        timestep_spacing="trailing",
        prediction_type=prediction_type,
    )


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters (works on meta-device modules)."""
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def encode_latents(autoencoder: VQModel, x: torch.Tensor) -> torch.Tensor:
    """Image tiles (B, 1, H, W) in [-1, 1] -> scaled pre-quantisation latents (B, 3, H/4, W/4).

    A 3-channel autoencoder (the LDM's RGB vq-f4) gets the grey image in all channels.
    `scaling_factor` (1.0 for vq-f4; 1/std for our own autoencoders) gives LDMs unit-variance latents.
    """
    if autoencoder.config.in_channels == 3:
        x = x.expand(-1, 3, -1, -1)
    return autoencoder.encode(x).latents * autoencoder.config.scaling_factor

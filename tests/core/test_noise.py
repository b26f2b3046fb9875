import numpy as np
import pytest
import torch

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.metrics import noise_kld
from napari_pgdiffseg.core.models import build_scheduler
from napari_pgdiffseg.core.noise import (
    NoiseConfig,
    average_and_repeat,
    class_noise,
    forward_diffusion_noise,
    latent_noise,
    mix_fresh,
    renormalise,
    tile_generators,
)


def test_average_and_repeat_is_algorithm_1():
    eps = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 2, 2)
    out = average_and_repeat(eps, 3)
    assert out.shape == (2, 3, 2, 2)
    expected = eps.mean(dim=1)
    for c in range(3):
        assert torch.equal(out[:, c], expected)


def test_averaging_shrinks_std_and_renormalise_restores_it():
    gens = tile_generators(0, range(4), 0)
    eps = torch.stack([torch.randn(3, 64, 64, generator=g) for g in gens])
    m = average_and_repeat(eps, 3)
    assert abs(m.std().item() - 1 / np.sqrt(3)) < 0.02  # the pitfall design.md warns about
    assert noise_kld(m[0].numpy()) > 0.1
    r = renormalise(m)
    assert abs(r[0].std().item() - 1.0) < 1e-4
    assert noise_kld(r[0].numpy()) < 0.01


def test_mix_keeps_unit_variance_when_map_is_standard():
    gens = tile_generators(3, range(2), 0)
    m = torch.stack([torch.randn(1, 64, 64, generator=g).expand(3, -1, -1) for g in gens])
    mixed = mix_fresh(m, 0.5, tile_generators(3, range(2), 1))
    assert abs(mixed.std().item() - 1.0) < 0.03
    # Channels are no longer identical, but still correlated with the map (corr = sqrt(0.5)).
    assert not torch.equal(mixed[:, 0], mixed[:, 1])
    corr = np.corrcoef(mixed[0, 0].flatten(), m[0, 0].flatten())[0, 1]
    assert abs(corr - np.sqrt(0.5)) < 0.05
    assert mix_fresh(m, 1.0, gens) is m


def test_forward_diffusion_is_eq_1():
    sched = build_scheduler()
    z = torch.ones(1, 3, 8, 8)
    assert torch.equal(forward_diffusion_noise(z, 0, sched, tile_generators(0, [0], 0)), z)
    gens = tile_generators(0, [0], 0)
    out = forward_diffusion_noise(z, 300, sched, gens)
    eps = torch.randn(3, 8, 8, generator=tile_generators(0, [0], 0)[0])
    a = sched.alphas_cumprod[300]
    torch.testing.assert_close(out[0], a.sqrt() * z[0] + (1 - a).sqrt() * eps)


def test_tile_generators_do_not_depend_on_batching():
    a = [torch.randn(3, generator=g) for g in tile_generators(7, [0, 1, 2, 3], 0)]
    b = [torch.randn(3, generator=g) for g in tile_generators(7, [2, 3], 0)]
    assert torch.equal(a[2], b[0]) and torch.equal(a[3], b[1])
    c = [torch.randn(3, generator=g) for g in tile_generators(7, [2], 1)]
    assert not torch.equal(a[2], c[0])


def test_random_class_noise_is_standard_gaussian():
    out = class_noise(None, NoiseConfig("random"), 3, tile_generators(0, [0, 1], 0), (64, 64))
    assert out.shape == (2, 3, 64, 64)
    assert noise_kld(out[0].numpy()) < 0.01


def test_latent_noise_rejects_random_and_bad_configs(tiny_bundle):
    z = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ConfigError):
        latent_noise(z, NoiseConfig("random"), tiny_bundle.ldm_p, build_scheduler(), [])
    # Checks a config can make alone fail when it is made ...
    for bad, msg in [(dict(strategy="magic"), "strategy"), (dict(mix=1.5), "mix"), (dict(inversion_steps=0), "positive"),
                     (dict(forward_t=-1), "forward_t")]:
        with pytest.raises(ConfigError, match=msg):
            NoiseConfig(**bad)
    # ... those that need the model's T fail in validate(T).
    for bad, msg in [(NoiseConfig(inversion_steps=7), "divide 1000"), (NoiseConfig(forward_t=1000), "forward_t")]:
        with pytest.raises(ConfigError, match=msg):
            bad.validate(1000)
    NoiseConfig(inversion_steps=7, forward_t=0).validate(7)  # valid for a model with T = 7

import pytest
import torch

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.models import (
    build_autoencoder,
    build_ldm_p,
    build_ldm_s,
    build_scheduler,
    count_parameters,
    get_preset,
)


def test_paper_preset_parameter_counts_match_the_paper_without_allocating():
    ldm_p = build_ldm_p("paper", meta=True)
    ldm_s = build_ldm_s("paper", n_classes=3, meta=True)
    assert next(ldm_p.parameters()).device.type == "meta"
    assert abs(count_parameters(ldm_p) - 274e6) / 274e6 < 0.01
    assert abs(count_parameters(ldm_s) - 84.6e6) / 84.6e6 < 0.01
    # Attention where the paper puts it: LDM-P at 32/16/8 px, LDM-S at 64/32/16 px.
    assert ldm_p.config.down_block_types == ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
    assert ldm_s.config.down_block_types == ("AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D")
    assert ldm_s.config.in_channels == 6 and ldm_s.config.out_channels == 3


def test_paper_autoencoder_is_vq_f4_layout():
    ae = build_autoencoder("paper", meta=True)
    assert ae.config.block_out_channels == (128, 256, 512)
    assert ae.config.latent_channels == 3 and ae.config.vq_embed_dim == 3
    assert ae.config.num_vq_embeddings == 8192
    assert ae.config.scaling_factor == 1.0


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_cpu_presets_encode_256_tiles_to_64_latents(preset):
    ae = build_autoencoder(preset)
    with torch.inference_mode():
        z = ae.encode(torch.zeros(2, 1, 256, 256)).latents
        assert z.shape == (2, 3, 64, 64)
        eps = build_ldm_p(preset)(z, 10).sample
        assert eps.shape == (2, 3, 64, 64)
        out = build_ldm_s(preset, 4)(torch.zeros(2, 7, 64, 64), 10).sample
        assert out.shape == (2, 4, 64, 64)


def test_scheduler_is_ldm_schedule_with_trailing_spacing():
    s = build_scheduler()
    assert s.config.beta_schedule == "scaled_linear"
    assert s.config.timestep_spacing == "trailing"
    s.set_timesteps(10)
    assert s.timesteps[0].item() == 999 and s.timesteps[-1].item() == 99
    with pytest.raises(ConfigError, match="prediction_type"):
        build_scheduler(prediction_type="v_prediction")


def test_unknown_preset_names_choices():
    with pytest.raises(ConfigError, match="paper, small, tiny"):
        get_preset("huge")

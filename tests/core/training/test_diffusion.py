import json

import numpy as np
import pytest
import torch

from napari_pgdiffseg.core.bundle import load_bundle
from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.models import encode_latents
from napari_pgdiffseg.core.training import StageConfig, TrainConfig, build_training_data, train_bundle


@pytest.fixture(scope="module")
def data():
    return build_training_data(synthetic_frames=4, synthetic_seed=3)


def _cfg(ae=8, p=3, s=3, **kw):
    return TrainConfig(preset="tiny", autoencoder=StageConfig(ae, 4, 64, 1e-3), ldm_p=StageConfig(p, 2, 64),
                       ldm_s=StageConfig(s, 2, 64), device="cpu", checkpoint_every=2, **kw)


def test_three_stages_train_save_and_lower_autoencoder_loss(data, tmp_path):
    unl, lab, desc = data
    assert desc["tiles_labelled"] == 4 and lab.n_classes == 3
    logs = []
    bundle, reports = train_bundle(_cfg(ae=30), unl, lab, tmp_path / "b", log=logs.append)
    assert [r.stage for r in reports] == ["autoencoder", "ldm_p", "ldm_s"]
    ae = reports[0]
    assert ae.last_loss < ae.first_loss  # reconstruction improves
    loaded = load_bundle(tmp_path / "b")
    card = json.loads((tmp_path / "b" / "pgdiffseg.json").read_text())
    run = card["provenance"]["training_runs"][-1]
    assert [s["steps"] for s in run["stages"]] == [30, 3, 3] and run["machine"]["cpu_count"] >= 1
    # Latents are scaled to unit variance for the LDMs.
    x = torch.stack([unl[i]["image"] for i in range(len(unl))])
    z = encode_latents(loaded.autoencoder, x)
    assert 0.7 < float(z.std()) < 1.3


def test_resume_continues_from_checkpoint(data, tmp_path):
    unl, lab, _ = data
    logs = []
    train_bundle(_cfg(ae=4), unl, lab, tmp_path / "b", stages=("autoencoder",), log=logs.append)
    state = json.loads((tmp_path / "b.ckpt" / "autoencoder" / "state.json").read_text())
    assert state["step"] == 4
    _, reports = train_bundle(_cfg(ae=6), unl, lab, tmp_path / "b", stages=("autoencoder",), log=logs.append)
    assert any("resumed" in m and "step 4" in m for m in logs)
    assert reports[0].steps == 6
    assert len(json.loads((tmp_path / "b.ckpt" / "autoencoder" / "state.json").read_text())["losses"]) == 6


def test_x0_prediction_is_recorded(data, tmp_path):
    unl, lab, _ = data
    bundle, _ = train_bundle(_cfg(prediction_type="sample"), unl, lab, tmp_path / "b", stages=("ldm_s",))
    assert load_bundle(tmp_path / "b").card.prediction_type == "sample"
    assert bundle.make_scheduler().config.prediction_type == "sample"


def test_ldm_s_needs_masks_and_settings_are_checked(data, tmp_path):
    unl, _, _ = data
    with pytest.raises(ConfigError, match="labelled"):
        train_bundle(_cfg(), unl, None, tmp_path / "b")
    with pytest.raises(ConfigError, match="crop must be a multiple of 32"):
        train_bundle(TrainConfig(preset="tiny", ldm_p=StageConfig(1, 2, 48)), unl, None, tmp_path / "b",
                     stages=("ldm_p",))
    with pytest.raises(ConfigError, match="unknown stage"):
        train_bundle(_cfg(), unl, None, tmp_path / "b", stages=("vae",))


def test_training_is_seeded(data, tmp_path):
    unl, lab, _ = data
    a, _ = train_bundle(_cfg(ae=3, p=2, s=0), unl, lab, tmp_path / "a", stages=("autoencoder", "ldm_p"))
    b, _ = train_bundle(_cfg(ae=3, p=2, s=0), unl, lab, tmp_path / "b", stages=("autoencoder", "ldm_p"))
    for pa, pb in zip(a.ldm_p.parameters(), b.ldm_p.parameters()):
        assert torch.equal(pa, pb)
    assert np.isfinite([p.detach().sum().item() for p in a.autoencoder.parameters()]).all()


@pytest.mark.parametrize("stage,ptype", [("autoencoder", "epsilon"), ("ldm_p", "epsilon"), ("ldm_s", "epsilon"),
                                         ("ldm_s", "sample")])
def test_each_stage_lowers_the_loss_on_a_fixed_batch(stage, ptype, tmp_path):
    from napari_pgdiffseg.core.bundle import create_bundle
    from napari_pgdiffseg.core.training import TileDataset
    from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset
    from napari_pgdiffseg.core.training.diffusion import stage_model_and_loss

    imgs, masks = make_dataset(2, 5, SyntheticConfig(shape=(64, 64)))
    ds = TileDataset.from_arrays(imgs, masks, tile_size=64)
    batch = {"image": torch.stack([ds[i]["image"] for i in range(2)]),
             "mask": torch.stack([ds[i]["mask"] for i in range(2)])}
    start = create_bundle("tiny", seed=0)

    def fixed_loss(bundle):
        model, loss_fn = stage_model_and_loss(bundle, stage, ptype)
        model.eval()
        with torch.no_grad():
            return float(loss_fn(model, batch, torch.Generator().manual_seed(123)))

    before = fixed_loss(start)
    cfg = TrainConfig(preset="tiny", prediction_type=ptype, device="cpu", checkpoint_every=1000,
                      **{stage: StageConfig(40, 2, 64, 3e-3)})
    trained, _ = train_bundle(cfg, ds, ds, tmp_path / "b", stages=(stage,), start_from=start, log=lambda m: None)
    assert fixed_loss(trained) < 0.9 * before


def test_pretrained_rgb_autoencoder_skips_stage_and_segments(data, tmp_path):
    """A local diffusers VQModel with RGB input (the LDM vq-f4 layout) replaces the autoencoder stage."""
    from diffusers import VQModel

    from napari_pgdiffseg import SegmentConfig, segment

    VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 8), layers_per_block=1,
            latent_channels=3, num_vq_embeddings=16, vq_embed_dim=3, norm_num_groups=4,
            scaling_factor=1.0).save_pretrained(tmp_path / "vq")
    unl, lab, _ = data
    bundle, reports = train_bundle(_cfg(p=2, s=2), unl, lab, tmp_path / "b", pretrained_autoencoder=tmp_path / "vq",
                                   log=lambda m: None)
    assert [r.stage for r in reports] == ["ldm_p", "ldm_s"]
    loaded = load_bundle(tmp_path / "b")
    assert loaded.autoencoder.config.in_channels == 3
    r = segment(np.random.default_rng(0).normal(size=(64, 80)), loaded,
                SegmentConfig(inversion_steps=2, sampling_steps=2, device="cpu", noise_metrics=False))
    assert r.labels.shape == (64, 80)


def test_resumed_stage_reports_total_wall_time(data, tmp_path):
    unl, lab, _ = data
    _, r1 = train_bundle(_cfg(ae=4), unl, lab, tmp_path / "b", stages=("autoencoder",), log=lambda m: None)
    _, r2 = train_bundle(_cfg(ae=4), unl, lab, tmp_path / "b", stages=("autoencoder",), log=lambda m: None)
    # The resumed run trains nothing, yet reports the first run's wall time, not ~0.
    assert r2[0].steps == 4 and r2[0].seconds == pytest.approx(r1[0].seconds, rel=0.5)


@pytest.mark.parametrize("accumulate, p_steps, changed", [(1, 1, True), (2, 1, False), (2, 2, True)])
def test_gradient_accumulation_steps_the_optimiser_every_n_batches(data, tmp_path, accumulate, p_steps, changed):
    from dataclasses import replace

    from napari_pgdiffseg.core.bundle import create_bundle

    start = create_bundle("tiny", seed=0)
    before = {k: v.clone() for k, v in start.ldm_p.state_dict().items()}
    cfg = replace(_cfg(p=p_steps), gradient_accumulation_steps=accumulate)
    trained, _ = train_bundle(cfg, data[0], data[1], tmp_path / "b", stages=("ldm_p",), start_from=start,
                              log=lambda s: None)
    after = trained.ldm_p.state_dict()
    moved = any(not torch.equal(before[k], after[k]) for k in before)
    assert moved is changed  # accelerate only steps the optimiser after `accumulate` batches
    card = json.loads((tmp_path / "b" / "pgdiffseg.json").read_text())
    assert card["provenance"]["training_runs"][-1]["config"]["gradient_accumulation_steps"] == accumulate


def test_with_classes_keeps_weights_and_starts_new_classes_from_old_ones(tiny_bundle):
    import copy

    import torch

    from napari_pgdiffseg.core.training import with_classes

    b = copy.deepcopy(tiny_bundle)
    old = copy.deepcopy(b.ldm_s)
    two = with_classes(b, ("background", "cell"))
    assert two.card.class_names == ("background", "cell") and len(two.card.colors) == 2
    assert two.ldm_s.config.in_channels == 2 + 3 and two.ldm_s.config.out_channels == 2
    w_old, w_new = old.conv_in.weight, two.ldm_s.conv_in.weight
    assert torch.equal(w_new[:, :2], w_old[:, :2]) and torch.equal(w_new[:, 2:], w_old[:, 3:])
    assert torch.equal(two.ldm_s.conv_out.weight, old.conv_out.weight[:2])
    same = dict(two.ldm_s.state_dict())
    assert all(torch.equal(v, same[k]) for k, v in old.state_dict().items() if not k.startswith(("conv_in", "conv_out")))
    four = with_classes(copy.deepcopy(tiny_bundle), ("background", "live", "dead", "debris"))
    assert torch.equal(four.ldm_s.conv_out.weight[3], old.conv_out.weight[2])  # new class from the last old one


def test_build_training_data_with_real_like_synthetic_kinds():
    from napari_pgdiffseg.core.training import build_training_data

    unl, lab, desc = build_training_data(synthetic_frames=3, synthetic_kind="holo", n_classes=2, tile_size=64)
    assert len(lab) == 3 and desc["synthetic_kind"] == "holo" and int(lab[0]["mask"].max()) <= 1
    with pytest.raises(ConfigError, match="labels reach class 2"):
        build_training_data(synthetic_frames=2, synthetic_kind="classic", n_classes=2, tile_size=256)
    with pytest.raises(ConfigError, match="unknown synthetic generator"):
        build_training_data(synthetic_frames=1, synthetic_kind="nope", tile_size=64)


def test_training_timesteps_uniform_by_default_and_biased_to_large_t():
    from napari_pgdiffseg.core.training.diffusion import training_timesteps

    # power 1 draws exactly what torch.randint draws (earlier bundles train bit-identically)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(training_timesteps(64, 1000, g1), torch.randint(0, 1000, (64,), generator=g2))
    t = training_timesteps(200_000, 1000, torch.Generator().manual_seed(0), power=3.0)
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) == 999
    # P(t >= 900) = P(u^3 <= 0.1) = 0.1^(1/3) = 0.464; P(t < 100) = 1 - 0.9^(1/3) = 0.035
    assert abs(float((t >= 900).double().mean()) - 0.1 ** (1 / 3)) < 0.005
    assert abs(float((t < 100).double().mean()) - (1 - 0.9 ** (1 / 3))) < 0.003


def test_timestep_power_is_checked_and_only_for_ldm_s(data, tmp_path):
    with pytest.raises(ConfigError, match=r"timestep_power must be a number in \[0.25, 10\]"):
        StageConfig(10, timestep_power=0.0)
    with pytest.raises(ConfigError, match="timestep_power"):
        StageConfig(10, timestep_power=True)
    with pytest.raises(ConfigError, match="applies to ldm_s only; ldm_p must keep 1.0"):
        TrainConfig(ldm_p=StageConfig(10, timestep_power=3.0))
    unl, lab, _ = data
    cfg = TrainConfig(preset="tiny", autoencoder=StageConfig(0), ldm_p=StageConfig(0),
                      ldm_s=StageConfig(2, 2, 64, timestep_power=3.0), device="cpu")
    _, reports = train_bundle(cfg, unl, lab, tmp_path / "b", stages=("ldm_s",))
    card = json.loads((tmp_path / "b" / "pgdiffseg.json").read_text())
    assert card["provenance"]["training_runs"][-1]["config"]["ldm_s"]["timestep_power"] == 3.0
    assert reports[0].steps == 2


def test_fine_tuning_drops_the_parents_unlike_the_training_data_reference(data, tmp_path):
    from dataclasses import replace

    from napari_pgdiffseg.core.bundle import create_bundle
    from napari_pgdiffseg.core.ood import OODReference

    unl, lab, _ = data
    parent = create_bundle("tiny", seed=0)
    parent.card = replace(parent.card, ood=OODReference((0.0,) * 6, (1.0,) * 6, 3.0, 2.0, "parent").to_dict())
    train_bundle(_cfg(prediction_type="sample"), unl, lab, tmp_path / "b", stages=("ldm_s",), start_from=parent)
    assert load_bundle(tmp_path / "b").card.ood == {}  # it described the parent's images


def _record_lr(monkeypatch):
    seen = []
    step = torch.optim.AdamW.step

    def recording(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    return seen


def test_cosine_lr_schedule_decays_to_zero_and_resumes_at_its_step(data, tmp_path, monkeypatch):
    import threading

    from napari_pgdiffseg.core.training import TrainControl
    from napari_pgdiffseg.core.errors import TrainingCancelled

    with pytest.raises(ConfigError, match="lr_schedule must be one of constant, cosine, got 'linear'"):
        StageConfig(10, lr_schedule="linear")
    unl, lab, _ = data
    seen = _record_lr(monkeypatch)
    cfg = TrainConfig(preset="tiny", autoencoder=StageConfig(0), ldm_p=StageConfig(0), device="cpu",
                      ldm_s=StageConfig(4, 2, 64, lr=1e-3, lr_schedule="cosine"), checkpoint_every=1)
    # cosine over 4 steps: lr * (1 + cos(pi k / 4)) / 2 at steps k = 0..3
    want = [1e-3 * (1 + np.cos(np.pi * k / 4)) / 2 for k in range(4)]
    cancel = threading.Event()
    control = TrainControl(cancel=cancel, on_step=lambda r: cancel.set() if r.step == 2 else None)
    with pytest.raises(TrainingCancelled):
        train_bundle(cfg, unl, lab, tmp_path / "b", stages=("ldm_s",), control=control)
    assert np.allclose(seen, want[:2])
    train_bundle(cfg, unl, lab, tmp_path / "b", stages=("ldm_s",))  # resumes at step 2
    assert np.allclose(seen, want)  # the resumed run goes on down the same curve
    card = json.loads((tmp_path / "b" / "pgdiffseg.json").read_text())
    assert card["provenance"]["training_runs"][-1]["config"]["ldm_s"]["lr_schedule"] == "cosine"
    seen.clear()
    train_bundle(TrainConfig(preset="tiny", autoencoder=StageConfig(0), ldm_p=StageConfig(0), device="cpu",
                             ldm_s=StageConfig(3, 2, 64, lr=1e-3)), unl, lab, tmp_path / "c", stages=("ldm_s",))
    assert seen == [1e-3] * 3  # the default stays constant (earlier bundles retrain the same)

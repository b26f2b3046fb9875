import numpy as np
import pytest
import torch

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.sampling import ddim_sample, majority_vote, mask_to_latent, resolve_votes, vote_counts


def test_mask_to_latent_is_one_hot_in_pm1_with_area_resize():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4, :4] = 1
    labels[0, 0, 0] = 2
    out = mask_to_latent(labels, 3, (2, 2))
    assert out.shape == (1, 3, 2, 2)
    # top-left latent pixel: 15/16 class 1, 1/16 class 2 -> fractions mapped to [-1, 1]
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), [-1, 2 * 15 / 16 - 1, 2 / 16 - 1], atol=1e-6)
    np.testing.assert_allclose(out[0, :, 1, 1].numpy(), [1, -1, -1])


def test_majority_vote_and_tie_rule():
    # 3 samples, 2 classes, 4 pixels: votes 3-0, 2-1, 1-2, and pixel 3 is decided by scores.
    s = np.zeros((3, 2, 4), np.float32)
    s[:, 0, 0] = 1                   # all vote 0
    s[0, 0, 1], s[1, 0, 1], s[2, 1, 1] = 1, 1, 1  # 2 votes for 0
    s[0, 0, 2], s[1, 1, 2], s[2, 1, 2] = 1, 1, 1  # 2 votes for 1
    s[:, 1, 3] = 1                   # all vote 1
    labels, agreement = majority_vote(s)
    assert labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(agreement, [1, 2 / 3, 2 / 3, 1])


def test_tie_goes_to_higher_mean_score_then_lower_index():
    votes = np.array([[0.5, 0.5], [0.5, 0.5]], np.float32)  # (n=2, 2 px): both tied
    scores = np.array([[0.1, 0.3], [0.2, 0.3]], np.float32)
    labels, agr = resolve_votes(votes, scores)
    assert labels.tolist() == [1, 0]  # px0: class 1 has higher score; px1: equal -> lower index
    assert agr.tolist() == [0.5, 0.5]


def test_vote_counts_fractions_sum_to_one():
    lab = np.random.default_rng(0).integers(0, 3, size=(5, 10, 10))
    v = vote_counts(lab, 3)
    np.testing.assert_allclose(v.sum(axis=0), 1.0, atol=1e-6)


def test_ddim_sample_shapes_evaluation_count_and_determinism(tiny_bundle):
    noise = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    z = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    calls = []

    def ldm_s(x, t):
        calls.append(int(t))
        return tiny_bundle.ldm_s(x, t)

    a = ddim_sample(ldm_s, tiny_bundle.make_scheduler(), noise, z, 10)
    b = ddim_sample(tiny_bundle.ldm_s, tiny_bundle.make_scheduler(), noise, z, 10)
    assert a.shape == (2, 3, 64, 64) and len(calls) == 10 and torch.equal(a, b)
    assert calls == sorted(calls, reverse=True)  # from t = T - 1 down to the clean end
    with pytest.raises(ConfigError, match="sampling_steps must divide"):
        ddim_sample(tiny_bundle.ldm_s, tiny_bundle.make_scheduler(), noise, z, 3)

"""'This image is unlike the training data' (core.ood): features, reference, scores, the card, a run."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_pgdiffseg import segment
from napari_pgdiffseg.core.bundle import BundleCard
from napari_pgdiffseg.core.errors import BundleError
from napari_pgdiffseg.core.ood import (OODReference, frame_features, frame_score, latent_features, ood_message,
                                       reference_from_features, tile_scores)
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset


def test_latent_features_are_channel_means_then_sds():
    z = torch.zeros(2, 3, 4, 4)
    z[0, 1] = 2.0
    z[1, 2, :2] = 1.0  # half of 16 values ones: mean 0.5, SD (unbiased) sqrt(16 * 0.25 / 15)
    f = latent_features(z)
    assert f.shape == (2, 6) and f.dtype == np.float64
    np.testing.assert_allclose(f[0], [0, 2, 0, 0, 0, 0])
    np.testing.assert_allclose(f[1], [0, 0, 0.5, 0, 0, np.sqrt(16 * 0.25 / 15)], rtol=1e-6)


def test_reference_flags_no_training_frame_and_far_frames():
    rng = np.random.default_rng(0)
    frames = [rng.normal(1.0, 0.1, (9, 6)) for _ in range(20)]
    ref = reference_from_features(frames, "test frames")
    scores = [frame_score(f, ref) for f in frames]
    assert max(scores) == pytest.approx(ref.train_max, abs=1e-3)
    assert ref.threshold == pytest.approx(1.5 * ref.train_max, abs=1e-3)
    assert all(ood_message(s, ref) == "" for s in scores)
    assert 0.5 < np.median(scores) < 1.5  # about 1 for frames like the training ones
    far = rng.normal(3.0, 0.1, (9, 6))  # 20 SDs away
    assert frame_score(far, ref) > 10 and "unlike the model's training images" in ood_message(frame_score(far, ref), ref)
    # The median over tiles: two odd tiles of nine do not flag a frame.
    mixed = frames[0].copy()
    mixed[:2] = far[:2]
    assert frame_score(mixed, ref) < ref.threshold and tile_scores(mixed, ref)[:2].min() > 10
    assert np.isnan(frame_score(far, None)) and ood_message(float("nan"), ref) == ""


def test_card_keeps_the_reference_and_refuses_a_broken_one():
    ref = OODReference((0.1,) * 6, (1.0,) * 6, 3.0, 2.0, "six frames")
    card = BundleCard(ood=ref.to_dict())
    again = BundleCard.from_dict(card.to_dict())
    assert OODReference.from_dict(again.ood) == ref
    bad = card.to_dict()
    bad["ood"]["sd"] = [1.0] * 5
    with pytest.raises(BundleError, match="6 means and 6 positive SDs"):
        BundleCard.from_dict(bad)


def test_a_run_scores_its_frame_and_warns_only_for_unlike_images(tiny_bundle, fast_config):
    train, _ = make_dataset(6, 1, SyntheticConfig(shape=(128, 128)))
    bundle = copy.copy(tiny_bundle)
    bundle.card = replace(tiny_bundle.card, ood=reference_from_features(
        [frame_features(f, tiny_bundle) for f in train], "six synthetic frames").to_dict())
    like, _ = make_dataset(1, 99, SyntheticConfig(shape=(128, 128)))
    r = segment(like[0], bundle, fast_config)
    assert np.isfinite(r.ood_score) and r.ood_warning == ""
    # The score is the one frame_features gives: the run's tiles are the reference's tiles.
    ref = OODReference.from_dict(bundle.card.ood)
    assert r.ood_score == pytest.approx(frame_score(frame_features(like[0], tiny_bundle), ref), rel=1e-4)
    stripes = np.tile(np.array([0.0, 0.0, 5.0, 5.0], np.float32), (128, 32))  # nothing like a phase image
    bad = segment(stripes, bundle, fast_config)
    assert bad.ood_score > ref.threshold and "unlike the model's training images" in bad.ood_warning
    # A card without a reference: no score, no warning.
    plain = segment(like[0], tiny_bundle, fast_config)
    assert np.isnan(plain.ood_score) and plain.ood_warning == ""

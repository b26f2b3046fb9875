"""Settings of a run: the model card's, the speed preset, the user's (core.config)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from napari_pgdiffseg.core.config import DEFAULT_SPEED, SPEED_PRESETS, SegmentConfig, model_config
from napari_pgdiffseg.core.errors import BundleError, ConfigError


def test_speed_presets_layer_over_the_card_and_under_the_user(tiny_bundle):
    card = replace(tiny_bundle.card, segment={"flips": 8, "overlap": 64})
    fast = model_config(card)
    assert DEFAULT_SPEED == "fast" and fast == model_config(card, "fast")
    assert (fast.flips, fast.overlap) == (8, 64)  # fast = the model's own settings
    d = SegmentConfig()
    assert (fast.inversion_steps, fast.sampling_steps) == (d.inversion_steps, d.sampling_steps)
    paper = model_config(card, "paper")
    assert (paper.strategy, paper.inversion_steps, paper.sampling_steps, paper.flips, paper.ensemble) == \
        ("prior", 100, 200, 1, 1)
    assert paper.overlap == 64 and paper.nfe_per_tile() == 300  # what the preset does not name stays the card's
    user = model_config(card, "paper", sampling_steps=50, flips=2)
    assert (user.inversion_steps, user.sampling_steps, user.flips) == (100, 50, 2)
    assert set(SPEED_PRESETS) == {"fast", "paper"}


def test_unknown_speed_or_card_setting_is_refused(tiny_bundle):
    with pytest.raises(ConfigError, match="unknown speed preset 'turbo'; choose one of fast, paper"):
        model_config(tiny_bundle.card, "turbo")
    with pytest.raises(BundleError, match="unknown setting"):
        model_config(replace(tiny_bundle.card, segment={"steps": 3}))

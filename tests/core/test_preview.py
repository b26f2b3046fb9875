"""The live preview's core: the visible box, its resolution, and segmenting it (core.preview)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_pgdiffseg.core import segment
from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.preview import PREVIEW_MAX_SIDE, PreviewBox, frame_range, preview_box, segment_region


def test_preview_box_clips_to_the_frame_and_keeps_screen_resolution():
    # A view of 400 x 300 frame px shown at 0.5 screen px per frame px: half resolution.
    b = preview_box(((-20.5, 10.2), (379.5, 310.0)), (1000, 800), 0.5)
    assert (b.y0, b.x0, b.y1, b.x1) == (0, 10, 380, 310) and b.factor == 0.5
    # Zoomed in (4 screen px per frame px): never more than the frame's own pixels.
    assert preview_box(((100, 100), (164, 164)), (1000, 800), 4.0).factor == 1.0
    # A whole large frame zoomed to fit a big screen: capped at PREVIEW_MAX_SIDE px.
    big = preview_box(((0, 0), (4000, 2000)), (4000, 2000), 1.0)
    assert big.factor == pytest.approx(PREVIEW_MAX_SIDE / 4000)
    # A sliver of the frame in view is widened to the smallest frame the pipeline takes.
    s = preview_box(((500, 795), (510, 900)), (1000, 800), 1.0)
    assert s.shape == (16, 16) and (s.y1, s.x1) == (513, 800)


def test_preview_box_refuses_bad_input():
    with pytest.raises(ConfigError, match="at least 16"):
        preview_box(((0, 0), (8, 8)), (8, 8), 1.0)
    with pytest.raises(ConfigError, match="positive"):
        preview_box(((0, 0), (64, 64)), (64, 64), 0.0)


def test_whole_frame_region_is_the_full_run(tiny_bundle, fast_config, frame_300x200):
    box = preview_box(((0, 0), frame_300x200.shape), frame_300x200.shape, 1.0)
    labels, result = segment_region(frame_300x200, tiny_bundle, box, fast_config)
    full = segment(frame_300x200, tiny_bundle, fast_config)
    np.testing.assert_array_equal(labels, full.labels)
    assert labels.dtype == np.uint8 and result.nfe == full.nfe


def test_region_uses_the_whole_frames_range(tiny_bundle, fast_config, frame_300x200):
    box = PreviewBox(40, 20, 200, 180, 0.5)
    rng = frame_range(frame_300x200, tiny_bundle.card.normalization)
    labels, _ = segment_region(frame_300x200, tiny_bundle, box, fast_config, value_range=rng)
    assert labels.shape == (80, 80)  # the 160 x 160 box at half resolution
    # The same as segmenting the resized crop with the frame's range fixed in the card.
    from napari_pgdiffseg.core.preprocess import Normalization, rescale_frame

    crop = rescale_frame(frame_300x200[40:200, 20:180], 0.5)
    fixed = replace(tiny_bundle, card=replace(tiny_bundle.card, normalization=Normalization("range", in_range=rng)))
    np.testing.assert_array_equal(labels, segment(crop, fixed, fast_config).labels)
    # Without a range it is computed from the whole frame, not the crop: same labels.
    again, _ = segment_region(frame_300x200, tiny_bundle, box, fast_config)
    np.testing.assert_array_equal(labels, again)

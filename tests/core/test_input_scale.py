"""A model that works at another pixel size (the card's input_scale): frames resized in, labels out."""

import dataclasses
import json

import numpy as np
import pytest

from napari_pgdiffseg import BundleError, create_bundle, load_bundle, save_bundle, segment
from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.noise import NoiseConfig
from napari_pgdiffseg.core.noise_preview import compute_noise
from napari_pgdiffseg.core.preprocess import check_input_scale, rescale_frame, rescale_labels, scaled_shape
from napari_pgdiffseg.core.training import build_training_data
from napari_pgdiffseg.core.training import FrameSet


def _half(bundle):
    b = create_bundle("tiny", seed=0)
    b.card = dataclasses.replace(b.card, input_scale=0.5)
    return b


def test_scaled_shape_and_rescale_helpers():
    assert scaled_shape((832, 832), 0.5) == (416, 416)
    assert scaled_shape((20, 30), 0.5) == (16, 16)  # never below the smallest frame
    img = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    assert rescale_frame(img, 1.0) is img
    small = rescale_frame(img, 0.5)
    assert small.shape == (32, 24) and small.dtype == np.float32
    assert abs(float(small.mean()) - float(img.mean())) < 1.0  # anti-aliased, range preserved
    labels = np.zeros((10, 12), np.uint8)
    labels[:5] = 2
    up = rescale_labels(labels, (20, 24))
    assert up.dtype == np.uint8 and set(np.unique(up)) == {0, 2} and (up[:10] == 2).all() and (up[10:] == 0).all()


@pytest.mark.parametrize("bad", [0, -1, 0.01, 5, float("nan"), True, "half"])
def test_bad_input_scale_names_the_range(bad):
    with pytest.raises(ConfigError, match=r"input_scale must be a number in \[0.0625, 4\]"):
        check_input_scale(bad)


def test_card_round_trip_and_bad_value(tmp_path):
    path = save_bundle(_half(None), tmp_path / "b")
    assert json.loads((path / "pgdiffseg.json").read_text())["input_scale"] == 0.5
    assert load_bundle(path).card.input_scale == 0.5
    card = json.loads((path / "pgdiffseg.json").read_text())
    card["input_scale"] = 0
    (path / "pgdiffseg.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="input_scale"):
        load_bundle(path)
    del card["input_scale"]  # cards written before input_scale existed: 1
    (path / "pgdiffseg.json").write_text(json.dumps(card))
    assert load_bundle(path).card.input_scale == 1.0


def test_segment_at_half_scale_returns_frame_sized_outputs(fast_config, frame_300x200):
    b = _half(None)
    r = segment(frame_300x200, b, dataclasses.replace(fast_config, return_scores=True))
    assert r.labels.shape == (300, 200) and r.labels.dtype == np.uint8
    assert r.agreement.shape == (300, 200) and r.agreement.dtype == np.float32
    assert r.scores.shape == (3, 300, 200)
    assert r.noise.shape == (3, 38, 25)  # the model's latent: (300/2)/4, (200/2)/4
    out = np.zeros((300, 200), np.uint8)
    r2 = segment(frame_300x200, b, fast_config, labels_out=out)
    assert r2.labels is out and np.array_equal(out, r.labels)
    assert compute_noise(frame_300x200, b, NoiseConfig(inversion_steps=2)).shape[1:] == (38, 25)


def test_half_scale_model_on_a_2x_frame_equals_full_scale_model_on_the_frame(fast_config):
    # A frame magnified 2x (nearest) and segmented by the same networks at input_scale 0.5
    # gives the 2x magnified labels of the frame segmented at scale 1, up to the resampling
    # of a few boundary pixels.
    rng = np.random.default_rng(1)
    small = rng.normal(size=(128, 128)).astype(np.float32)
    small[40:90, 30:100] += 3.0
    big = np.kron(small, np.ones((2, 2), np.float32))
    full = create_bundle("tiny", seed=0)
    ref = segment(small, full, fast_config).labels
    got = segment(big, _half(None), fast_config).labels
    assert got.shape == (256, 256)
    agree = float((got == np.kron(ref, np.ones((2, 2), np.uint8))).mean())
    assert agree > 0.8, agree


def test_training_tiles_are_made_at_the_model_scale():
    img = np.random.default_rng(0).normal(size=(512, 512)).astype(np.float32)
    mask = np.zeros((512, 512), np.uint8)
    mask[100:300, 100:300] = 1
    frames = FrameSet([img], [mask], [None], ["f"])
    unl, lab, desc = build_training_data(frames=frames, n_classes=2, input_scale=0.5)
    assert desc["input_scale"] == 0.5
    assert len(unl) == 1 and len(lab) == 1  # 512 px at 0.5 = one 256 px tile
    m = lab[0]["mask"].numpy()
    assert m.shape == (256, 256) and abs(int((m == 1).sum()) - 100 * 100) < 400
    full, _, _ = build_training_data(frames=frames, n_classes=2)
    assert len(full) == 4
    unl, lab, desc = build_training_data(synthetic_frames=2, synthetic_kind="slim", n_classes=3, input_scale=0.5)
    assert len(lab) == 2 and lab[0]["image"].shape[-2:] == (256, 256)  # made at 512 px, resized


def test_wrong_output_array_is_refused_before_segmenting(fast_config, frame_300x200):
    calls = []
    with pytest.raises(ConfigError, match="labels_out must be a 300x200 uint8 array"):
        segment(frame_300x200, _half(None), fast_config, labels_out=np.zeros((150, 100), np.uint8),
                progress=calls.append)
    assert calls == []  # no network evaluation ran

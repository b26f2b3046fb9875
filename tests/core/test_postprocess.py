import numpy as np
import pytest

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.metrics import foreground_iou
from napari_pgdiffseg.core.postprocess import Refine, labels_with_margin, refine_labels, snap_labels


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_margin_zero_is_argmax():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 40, 50)).astype(np.float32)
    np.testing.assert_array_equal(labels_with_margin(scores, 0.0), np.argmax(scores, axis=0))


def test_margin_shrinks_and_grows_the_foreground():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(2, 64, 64)).astype(np.float32)
    areas = [int((labels_with_margin(scores, m) > 0).sum()) for m in (-0.5, 0.0, 0.5)]
    assert areas[0] > areas[1] > areas[2] > 0


def test_snap_moves_a_shifted_outline_onto_the_image_edge():
    shape = (96, 96)
    truth = _disk(shape, (48, 48), 20)
    image = truth.astype(np.float32) + np.random.default_rng(2).normal(0, 0.05, shape).astype(np.float32)
    predicted = _disk(shape, (51, 52), 17).astype(np.uint8)  # off-centre and too small
    before = foreground_iou(predicted, truth)
    after = foreground_iou(snap_labels(predicted, image, snap=6, smooth=1.0), truth)
    assert before < 0.75
    assert after > 0.95


def test_snap_keeps_classes_and_thin_objects():
    shape = (64, 64)
    labels = np.zeros(shape, np.uint8)
    labels[_disk(shape, (20, 20), 10)] = 1
    labels[_disk(shape, (45, 45), 2)] = 2  # thinner than the band: keeps its deepest pixels
    image = (labels > 0).astype(np.float32)
    out = snap_labels(labels, image, snap=4)
    assert set(np.unique(out)) == {0, 1, 2}
    assert out[20, 20] == 1 and out[45, 45] == 2
    assert foreground_iou(out == 1, labels == 1) > 0.9


def test_refine_default_is_plain_argmax():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(3, 32, 32)).astype(np.float32)
    image = rng.normal(size=(32, 32)).astype(np.float32)
    np.testing.assert_array_equal(refine_labels(scores, image), np.argmax(scores, axis=0))
    assert not Refine().active and Refine().describe() == "argmax"
    assert Refine(margin=0.2, snap=4).describe() == "margin +0.2, snap 4 px (sigma 1)"


@pytest.mark.parametrize("kwargs, match", [
    ({"margin": 5}, "refine.margin"),
    ({"snap": -1}, "refine.snap"),
    ({"snap": 2.5}, "refine.snap"),
    ({"smooth": -1}, "refine.smooth"),
])
def test_bad_refine_settings_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Refine(**kwargs)


def test_refine_round_trips_through_a_dict_and_rejects_unknown_keys():
    r = Refine(margin=-0.15, snap=4, smooth=2.0)
    assert Refine.from_dict(r.to_dict()) == r
    with pytest.raises(ConfigError, match="unknown refine setting"):
        Refine.from_dict({"snapp": 3})


def test_a_card_refine_margin_changes_the_labels_of_segment(tiny_bundle, fast_config, frame_300x200):
    from dataclasses import replace

    from napari_pgdiffseg import segment
    from napari_pgdiffseg.core.bundle import Bundle

    cfg = replace(fast_config, return_scores=True, noise_metrics=False)
    plain = segment(frame_300x200, tiny_bundle, cfg)
    grown = Bundle(**{**tiny_bundle.__dict__, "card": replace(tiny_bundle.card, refine={"margin": -0.5})})
    refined = segment(frame_300x200, grown, cfg)
    np.testing.assert_array_equal(refined.labels, labels_with_margin(plain.scores, -0.5))
    assert (refined.labels > 0).sum() >= (plain.labels > 0).sum()


def test_a_card_with_a_bad_refine_does_not_load(tiny_bundle_dir, tmp_path):
    import json
    import shutil

    from napari_pgdiffseg.core.bundle import load_bundle
    from napari_pgdiffseg.core.errors import BundleError

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle_dir, copy)
    card = json.loads((copy / "pgdiffseg.json").read_text())
    card["refine"] = {"margin": 9}
    (copy / "pgdiffseg.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="refine.margin"):
        load_bundle(copy)

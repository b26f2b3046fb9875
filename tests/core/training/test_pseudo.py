"""Self-training: a teacher's labels for the frames without a mask (core.training.pseudo)."""

import numpy as np
import pytest

from napari_pgdiffseg import SegmentConfig, segment
from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.training import FrameSet, build_training_data
from napari_pgdiffseg.core.training.pseudo import pseudo_labeller


def _frames():
    rng = np.random.default_rng(0)
    imgs = [rng.normal(size=(256, 256)).astype(np.float32) for _ in range(3)]
    truth = np.zeros((256, 256), np.uint8)
    truth[50:120, 60:140] = 1
    return FrameSet(imgs, [truth, None, None], [None] * 3, ["a.png", "b.png", "c.png"])


def test_pseudo_labeller_is_the_teachers_segmentation_with_its_settings(tiny_bundle, frame_300x200):
    f = pseudo_labeller(tiny_bundle, SegmentConfig(inversion_steps=2, sampling_steps=2, device="cpu"), flips=2)
    got = f(frame_300x200)
    ref = segment(frame_300x200, tiny_bundle, SegmentConfig(inversion_steps=2, sampling_steps=2, flips=2,
                                                            device="cpu")).labels
    assert got.dtype == np.uint8 and got.shape == (300, 200)
    np.testing.assert_array_equal(got, ref)
    assert f.description["segment"]["flips"] == 2 and f.description["segment"]["noise_metrics"] is False
    assert f.description["teacher_classes"] == list(tiny_bundle.card.class_names)


def test_frames_without_a_mask_get_the_teachers_labels_and_true_masks_stay():
    seen = []

    def teacher(image):
        seen.append(image.shape)
        out = np.zeros(image.shape, np.uint8)
        out[:128] = 2
        return out

    teacher.description = {"teacher": "stub"}
    frames = _frames()
    _, lab, desc = build_training_data(frames=frames, n_classes=3, pseudo_labeller=teacher)
    assert seen == [(256, 256), (256, 256)]  # only b and c, never the labelled frame a
    assert len(lab) == 3
    masks = [lab[i]["mask"].numpy() for i in range(3)]
    assert int((masks[0] == 1).sum()) == 70 * 80 and not (masks[0] == 2).any()  # a's truth kept
    for m in masks[1:]:  # tiles are mirrored/rotated by the augmentation: count, not place
        assert int((m == 2).sum()) == 128 * 256 and int((m == 0).sum()) == 128 * 256
    assert desc["pseudo_labels"] == {"teacher": "stub", "frames": 2, "names": ["b.png", "c.png"]}
    assert desc["files_with_masks"] == 1  # true masks only
    _, lab, desc = build_training_data(frames=frames, n_classes=3)
    assert len(lab) == 1 and "pseudo_labels" not in desc


def test_pseudo_labels_that_do_not_fit_the_classes_or_frames_are_refused():
    frames = _frames()
    with pytest.raises(ConfigError, match="do not fit the training classes"):
        build_training_data(frames=frames, n_classes=2, pseudo_labeller=lambda im: np.full(im.shape, 2, np.uint8))
    with pytest.raises(ConfigError, match="do not fit"):
        build_training_data(frames=frames, n_classes=3, pseudo_labeller=lambda im: np.zeros((5, 5), np.uint8))
    labelled = FrameSet(frames.images[:1], frames.masks[:1], [None], ["a.png"])
    with pytest.raises(ConfigError, match="needs frames without a mask"):
        build_training_data(frames=labelled, n_classes=3, pseudo_labeller=lambda im: np.zeros(im.shape, np.uint8))

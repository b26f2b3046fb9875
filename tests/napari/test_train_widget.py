"""The Train widget in a real viewer: paint labels, train, watch progress and the loss curve,
cancel (no partial model), train again, and segment with the new model from the Segment widget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

from widget_helpers import BATCH, SEGMENT, fast_settings, open_widget, wait_idle

TRAIN = "Train PG-DiffSeg on your labels"


@pytest.fixture
def painted(make_napari_viewer):
    """A viewer with a 96 px synthetic phase image and a Labels layer painted by hand: two discs."""
    viewer = make_napari_viewer()
    phase = make_frame(5, SyntheticConfig(shape=(96, 96)))[0]
    viewer.add_image(phase, name="cells")
    labels = viewer.add_labels(np.zeros(phase.shape, np.uint8), name="my labels")
    labels.selected_label = 1
    yy, xx = np.mgrid[:96, :96]
    for cy, cx in ((30, 30), (70, 60)):  # napari's paint: the layer's own API, as the brush calls it
        labels.paint((cy, cx), 1)
        labels.data[(yy - cy) ** 2 + (xx - cx) ** 2 <= 64] = 1
    labels.refresh()
    return viewer


def _train_widget(viewer, tiny_bundle_dir, tmp_path, steps, minutes=0.0):
    w = open_widget(viewer, TRAIN)
    w.settings.set_bundle(tiny_bundle_dir)
    w.settings.device.value = "cpu"
    w.use_folder.value = False
    w.max_steps.value = steps
    w.minutes.value = minutes
    w.out.value = tmp_path / "my-model"
    return w


def test_train_cancel_train_again_and_segment_with_the_new_model(painted, qtbot, tiny_bundle_dir, tmp_path, errors):
    viewer = painted
    w = _train_widget(viewer, tiny_bundle_dir, tmp_path, steps=100_000)
    row = w.rows[0]
    assert row.image_box.value is viewer.layers["cells"] and row.labels_box.value is viewer.layers["my labels"]
    assert w.problem() == "" and w.train_button.enabled

    # A long run: progress and the loss curve move, then Cancel.
    w.train_button.native.click()
    assert w.running and w.cancel_button.enabled and not w.train_button.enabled
    qtbot.waitUntil(lambda: len(w.losses) >= 3, timeout=60_000)
    assert not w.progress.widget.native.isHidden() and "ldm_s step" in w.progress.text.value
    assert w.canvas.figure.axes and w.canvas.figure.axes[0].lines  # the curve is drawn
    viewer.add_points([[10, 10]], name="still usable")  # the viewer works during training
    w.cancel_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    assert not (tmp_path / "my-model").exists()  # no partial bundle
    assert (tmp_path / "my-model.ckpt" / "ldm_s" / "state.json").is_file()  # the last checkpoint is kept
    assert "cancelled" in w.result.value and w.train_button.enabled

    # Train again to the end: it goes on from the checkpoint and writes the bundle.
    w.max_steps.value = json.loads((tmp_path / "my-model.ckpt" / "ldm_s" / "state.json").read_text())["step"] + 3
    w.train_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    out = tmp_path / "my-model"
    assert (out / "pgdiffseg.json").is_file() and not (tmp_path / "my-model.ckpt").exists()
    card = json.loads((out / "pgdiffseg.json").read_text())
    run = card["provenance"]["training_runs"][-1]
    assert run["parent"] == str(tiny_bundle_dir) and run["stages"][0]["steps"] == w.max_steps.value
    assert "hold-out: fg_iou" in card["scores"] and "hold-out, starting model: fg_iou" in card["scores"]
    assert "starting model:" in w.result.value and "new model:" in w.result.value
    assert w.status.value.startswith("trained my-model")

    # The new model is in the Segment widget's list at once, and segments.
    seg = open_widget(viewer, SEGMENT)
    values = list(seg.settings.model_source.choices)
    assert str(out.resolve()) in values
    batch = open_widget(viewer, BATCH)
    assert str(out.resolve()) in list(batch.settings.model_source.choices)
    from napari_pgdiffseg import SegmentConfig

    fast_settings(seg, out, SegmentConfig(inversion_steps=5, sampling_steps=5, noise_metrics=False, device="cpu"))
    assert seg.settings.model_source.value == str(out.resolve())
    seg.image.value = viewer.layers["cells"]
    seg.run_button.native.click()
    wait_idle(qtbot, seg)
    assert errors == []
    assert viewer.layers["cells pgdiffseg"].data.shape == (96, 96)


def test_bad_pairs_give_one_message_and_no_model(painted, qtbot, tiny_bundle_dir, tmp_path, errors):
    viewer = painted
    w = _train_widget(viewer, tiny_bundle_dir, tmp_path, steps=2)
    # Labels of another shape: not offered as the image's pair, and refused when forced.
    small = viewer.add_labels(np.ones((40, 40), np.uint8), name="small labels")
    w.rows[0].labels_box.value = small
    w.train_button.native.click()
    wait_idle(qtbot, w)
    assert len(errors) == 1 and "96x96" in errors[0] and "40x40" in errors[0]
    assert not (tmp_path / "my-model").exists()

    # Values that are not classes of the model: named, with the fix.
    errors.clear()
    ids = viewer.add_labels((np.arange(96 * 96).reshape(96, 96) % 7).astype(np.uint8), name="ids")
    w.rows[0].labels_box.value = ids
    w.train_button.native.click()
    wait_idle(qtbot, w)
    assert len(errors) == 1 and "3, 4, 5, 6" in errors[0] and "cell ids" in errors[0]

    # Read as cell ids instead, the same layer trains.
    errors.clear()
    w.labels_are.value = "instances"
    w.class_choice.value = "background,cell"
    w.train_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    card = json.loads((tmp_path / "my-model" / "pgdiffseg.json").read_text())
    assert card["class_names"] == ["background", "cell"]

    # Nothing labelled: a message before anything trains.
    errors.clear()
    empty = viewer.add_labels(np.zeros((96, 96), np.uint8), name="empty")
    w.rows[0].labels_box.value = empty
    w.out.value = tmp_path / "other"
    w.train_button.native.click()
    wait_idle(qtbot, w)
    assert len(errors) == 1 and "no object" in errors[0]
    assert not (tmp_path / "other").exists()


def test_no_pair_and_no_end_disable_train(painted, tiny_bundle_dir, tmp_path):
    w = _train_widget(painted, tiny_bundle_dir, tmp_path, steps=0, minutes=0.0)
    assert not w.train_button.enabled and "time budget" in w.status.value
    w.max_steps.value = 5
    assert w.train_button.enabled
    w.remove_pair(w.rows[0])
    assert not w.train_button.enabled and "Labels layer" in w.status.value
    w.add_pair()
    assert w.train_button.enabled


def test_add_to_training_set_stores_the_corrected_pair_and_the_train_widget_uses_it(
        painted, qtbot, tiny_bundle_dir, tmp_path, errors):
    from napari_pgdiffseg import SegmentConfig
    from napari_pgdiffseg.core.files import read_image

    viewer = painted
    seg = open_widget(viewer, SEGMENT)
    fast_settings(seg, tiny_bundle_dir, SegmentConfig(inversion_steps=2, sampling_steps=2, noise_metrics=False,
                                                      device="cpu"))
    seg.image.value = viewer.layers["cells"]
    assert not seg.add_training_button.enabled
    seg.run_button.native.click()
    wait_idle(qtbot, seg)
    out = viewer.layers["cells pgdiffseg"]
    out.data[:10, :10] = 2  # the user's correction
    folder = tmp_path / "training"
    img, mask = seg.add_to_training_set(folder)
    assert img == folder / "images" / "cells.tif" and mask == folder / "masks" / "cells.tif"
    np.testing.assert_array_equal(read_image(mask), out.data)
    np.testing.assert_allclose(read_image(img), viewer.layers["cells"].data)
    img2, _ = seg.add_to_training_set(folder)  # again: a new name, the first pair kept
    assert img2.name == "cells_2.tif" and img.is_file()

    w = _train_widget(viewer, tiny_bundle_dir, tmp_path, steps=2)
    w.folder.value = folder
    w.use_folder.value = True
    w.remove_pair(w.rows[0])
    assert w.problem() == ""  # the folder's pairs are enough
    req = w.request()
    assert req.folder == folder and req.images == ()

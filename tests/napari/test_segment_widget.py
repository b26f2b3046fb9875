"""The "Segment QPI (PG-DiffSeg)" dock widget, opened through the manifest, on a tiny bundle."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from qtpy.QtCore import QTimer

from napari_pgdiffseg import segment
from napari_pgdiffseg.core import bundle as bundle_mod
from napari_pgdiffseg.core.bundle import DEFAULT_COLORS, load_bundle, load_model
from napari_pgdiffseg.core.config import SegmentConfig, model_config

from widget_helpers import SEGMENT, fast_settings, open_widget, wait_idle


@pytest.fixture
def viewer_widget(make_napari_viewer, tiny_bundle_dir, fast_config):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, SEGMENT)
    fast_settings(widget, tiny_bundle_dir, fast_config)
    return viewer, widget


def test_segment_frame_adds_coloured_labels_and_summary(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    phase = synthetic_frame[0]
    viewer.add_image(phase, name="cells", scale=(2, 2), translate=(10, 5))
    w.labels_output.value = "both"
    w.add_noise.value = w.add_edges.value = w.add_agreement.value = True
    assert w.run_button.enabled and not w.cancel_button.enabled
    w.run_button.native.click()
    assert w.cancel_button.enabled and not w.run_button.enabled
    wait_idle(qtbot, w)
    assert errors == []

    names = [ly.name for ly in viewer.layers]
    assert names == ["cells", "cells pgdiffseg agreement", "cells pgdiffseg noise", "cells pgdiffseg noise edges",
                     "cells pgdiffseg", "cells pgdiffseg live", "cells pgdiffseg dead"]
    labels = viewer.layers["cells pgdiffseg"]
    assert labels._type_string == "labels"
    assert labels.data.shape == phase.shape and labels.data.dtype == np.uint8
    assert set(np.unique(labels.data)) <= {0, 1, 2}
    # Fixed colours from the bundle card: live green, dead magenta, background transparent.
    rgba = labels.colormap.map(np.array([0, 1, 2], np.uint8))
    np.testing.assert_allclose(rgba, np.asarray(DEFAULT_COLORS, float) / 255, atol=1e-3)
    assert rgba[0, 3] == 0 and rgba[1, 1] > max(rgba[1, 0], rgba[1, 2]) and min(rgba[2, 0], rgba[2, 2]) > rgba[2, 1]
    assert labels.metadata["class_names"] == ["background", "live", "dead"]
    assert list(labels.features["class_name"]) == ["background", "live", "dead"]
    np.testing.assert_allclose(labels.scale, (2, 2))
    np.testing.assert_allclose(labels.translate, (10, 5))

    # Same labels as the core on the same frame and settings.
    expected = segment(phase, load_bundle(w.settings.bundle_dir()), w.settings.config())
    np.testing.assert_array_equal(labels.data, expected.labels)

    live, dead = viewer.layers["cells pgdiffseg live"], viewer.layers["cells pgdiffseg dead"]
    all_ids = []
    for layer, class_id in ((live, 1), (dead, 2)):
        assert layer.data.dtype == np.uint32 and layer.data.shape == phase.shape
        assert ((layer.data > 0) <= (labels.data == class_id)).all()  # ids only on that class's pixels
        ids, areas = np.unique(layer.data[layer.data > 0], return_counts=True)
        assert (areas >= 30).all()  # specks below the model's min area are dropped
        all_ids += list(ids)
    np.testing.assert_array_equal(sorted(all_ids), np.arange(1, len(all_ids) + 1))  # one id per cell, compact

    noise = viewer.layers["cells pgdiffseg noise"]
    assert noise.data.shape == (64, 64) and noise.data.dtype == np.float32
    np.testing.assert_allclose(noise.scale, (8, 8))
    np.testing.assert_allclose(noise.translate, (10 + 1.5 * 2, 5 + 1.5 * 2))
    edges = viewer.layers["cells pgdiffseg noise edges"]
    assert edges.data.shape == (64, 64) and set(np.unique(edges.data)) <= {0, 1}
    agreement = viewer.layers["cells pgdiffseg agreement"]
    assert agreement.data.shape == phase.shape and agreement.data.min() >= 0 and agreement.data.max() <= 1

    text = w.summary.value
    summary = labels.metadata["pgdiffseg_summary"]
    for piece in ("cells: background", "live", "dead", f"cells live {summary['live_cells']} · dead "
                  f"{summary['dead_cells']}", "viability", "NFE 10", " s · cpu"):
        assert piece in text, (piece, text)
    # One source of truth for counts: the summary's are the cell layers' ids.
    assert live.metadata["n_cells"] == summary["live_cells"] == len(np.unique(live.data[live.data > 0]))
    assert dead.metadata["n_cells"] == summary["dead_cells"] == len(np.unique(dead.data[dead.data > 0]))
    # Cell layers are shades of their class colour: live green, dead magenta.
    for layer, channel_test in ((live, lambda c: c[1] > max(c[0], c[2])), (dead, lambda c: min(c[0], c[2]) > c[1])):
        ids = np.unique(layer.data[layer.data > 0])
        colours = layer.colormap.map(ids.astype(layer.data.dtype))
        assert all(channel_test(c) and c[3] == 1 for c in colours)
        if len(ids) > 1:
            assert len({tuple(np.round(c, 3)) for c in colours[:2]}) == 2  # neighbouring ids differ

    # A rerun replaces the layers of that image instead of adding copies, in place.
    w.add_agreement.value = False
    viewer.layers.move(0, len(viewer.layers))  # the user puts the image on top
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert [ly.name for ly in viewer.layers] == names[2:] + ["cells"]


def test_stack_is_segmented_plane_by_plane(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    planes = np.stack([synthetic_frame[0][:64, :64], synthetic_frame[0][100:164, 50:114],
                       synthetic_frame[0][-64:, -64:]])
    viewer.add_image(planes, name="stack")
    w.add_noise.value = True
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    labels = viewer.layers["stack pgdiffseg"]
    assert labels.data.shape == (3, 64, 64) and labels.data.dtype == np.uint8
    bundle = load_bundle(w.settings.bundle_dir())
    for i in range(3):
        np.testing.assert_array_equal(labels.data[i], segment(planes[i], bundle, w.settings.config()).labels)
    assert viewer.layers["stack pgdiffseg noise"].data.shape == (3, 16, 16)
    np.testing.assert_allclose(viewer.layers["stack pgdiffseg noise"].scale, (1, 4, 4))
    text = w.summary.value
    summary = labels.metadata["pgdiffseg_summary"]
    assert len(summary["per_plane"]) == 3 and "total over 3 planes" in text
    for name in ("live", "dead"):  # the total is the sum of the per-plane counts (ids restart per plane)
        assert summary[f"{name}_cells"] == sum(p[f"{name}_cells"] for p in summary["per_plane"])
    for i, p in enumerate(summary["per_plane"]):
        assert f"plane {i + 1}: cells live {p['live_cells']} · dead {p['dead_cells']}" in text


def test_rerun_keeps_output_layers_the_user_edited_or_renamed(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    viewer.add_image(synthetic_frame[0], name="cells")
    w.labels_output.value = "both"
    w.run_button.native.click()
    wait_idle(qtbot, w)
    labels, dead = viewer.layers["cells pgdiffseg"], viewer.layers["cells pgdiffseg dead"]
    # The user paints a correction into the class labels with napari's brush and renames a layer.
    labels.brush_size = 9
    before = labels.data.copy()
    labels.paint((20, 20), 1 if before[20, 20] != 1 else 0)
    painted = labels.data.copy()
    assert (painted != before).sum() > 20
    dead.name = "my dead cells"

    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    names = [ly.name for ly in viewer.layers]
    assert "cells pgdiffseg" in names and "my dead cells" in names  # both kept, as the user left them
    np.testing.assert_array_equal(viewer.layers["cells pgdiffseg"].data, painted)
    # The new result sits beside them under napari's next free name; untouched layers were replaced.
    assert "cells pgdiffseg [1]" in names and names.count("cells pgdiffseg live") == 1
    assert "cells pgdiffseg dead" in names
    np.testing.assert_array_equal(viewer.layers["cells pgdiffseg [1]"].data, before)
    assert "kept 'cells pgdiffseg', 'my dead cells'" in w.status.value
    assert "'cells pgdiffseg [1]'" in w.status.value

    # A third run replaces the new (untouched) result and still leaves the edited ones alone.
    w.run_button.native.click()
    wait_idle(qtbot, w)
    names = [ly.name for ly in viewer.layers]
    assert names.count("cells pgdiffseg [1]") == 1 and "cells pgdiffseg [2]" not in names
    assert "my dead cells" in names and w.status.value == ""
    np.testing.assert_array_equal(viewer.layers["cells pgdiffseg"].data, painted)


def test_layer_is_captured_when_run_is_pressed(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    viewer.add_image(synthetic_frame[0], name="first")
    viewer.add_image(synthetic_frame[0][:128, :96], name="second")
    w.image.value = viewer.layers["first"]
    w.settings.sampling_steps.value = 50
    w.run_button.native.click()
    w.image.value = viewer.layers["second"]  # switching mid-run changes nothing
    viewer.layers.selection.active = viewer.layers["second"]
    wait_idle(qtbot, w)
    assert errors == []
    assert "second pgdiffseg" not in viewer.layers
    assert viewer.layers["first pgdiffseg"].data.shape == (256, 256)


def test_cancel_leaves_the_viewer_unchanged_and_the_widget_ready(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    viewer.add_image(synthetic_frame[0], name="cells")
    w.settings.sampling_steps.value = 1000  # ~15 s if it were not cancelled
    w.run_button.native.click()
    qtbot.waitUntil(lambda: w.bars is not None and w.bars.inner.n > 0, timeout=20_000)
    t0 = time.monotonic()
    w.cancel_button.native.click()
    wait_idle(qtbot, w, timeout=10_000)
    assert time.monotonic() - t0 < 5
    assert [ly.name for ly in viewer.layers] == ["cells"]
    assert errors == []
    assert w.run_button.enabled and not w.cancel_button.enabled and w.bars is None


def test_event_loop_keeps_turning_during_a_run(viewer_widget, qtbot, synthetic_frame):
    viewer, w = viewer_widget
    viewer.add_image(synthetic_frame[0], name="cells")
    w.settings.sampling_steps.value = 100  # ~1.5 s of network evaluations
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    try:
        t0 = time.monotonic()
        w.run_button.native.click()
        wait_idle(qtbot, w)
        t1 = time.monotonic()
    finally:
        timer.stop()
    during = np.array([t for t in ticks if t0 <= t <= t1])
    assert t1 - t0 > 0.5
    assert len(during) >= 10
    gaps = np.diff(np.concatenate([[t0], during, [t1]]))
    assert gaps.max() < 0.5, f"event loop blocked for {gaps.max():.2f} s"
    assert "cells pgdiffseg" in viewer.layers


def test_nan_pixels_are_background_and_an_all_nan_image_is_refused(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    aperture = synthetic_frame[0].copy()
    aperture[10:20, 10:20] = np.nan  # no phase there (outside a hologram's aperture)
    viewer.add_image(aperture, name="aperture")
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    labels = viewer.layers["aperture pgdiffseg"].data
    assert (labels[10:20, 10:20] == 0).all()
    assert "100 pixel(s) without a phase (NaN) were labelled background" in w.summary.value

    bad = np.full((64, 64), np.nan, np.float32)
    viewer.add_image(bad, name="bad")
    w.image.value = viewer.layers["bad"]
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert len(errors) == 1 and "NaN" in errors[0]
    assert "bad pgdiffseg" not in viewer.layers
    assert w.run_button.enabled and w.bars is None


def test_missing_default_bundle_disables_run(make_napari_viewer, qtbot, monkeypatch, tmp_path, errors,
                                             synthetic_frame):
    monkeypatch.setattr(bundle_mod, "MODELS_DIR", tmp_path / "not-installed")
    viewer = make_napari_viewer()
    viewer.add_image(synthetic_frame[0], name="cells")
    w = open_widget(viewer, SEGMENT)
    assert w.settings.model_source.value == "slim-viability"
    assert "model 'slim-viability' is not installed" in w.settings.message.value
    assert w.settings.model_info.value == "slim-viability: unavailable"
    assert not w.run_button.enabled
    w.run()  # called anyway (a script): a notification, no traceback
    assert len(errors) == 1 and "not installed" in errors[0]
    assert not w.running


def test_broken_bundle_gives_a_notification(viewer_widget, qtbot, tmp_path, synthetic_frame, errors):
    viewer, w = viewer_widget
    broken = shutil.copytree(w.settings.bundle_dir(), tmp_path / "broken")
    (broken / "ldm_s" / "diffusion_pytorch_model.safetensors").unlink()
    w.settings.set_bundle(broken)
    viewer.add_image(synthetic_frame[0], name="cells")
    assert w.run_button.enabled  # the card is fine; the missing weights show at load time
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert len(errors) == 1 and "missing" in errors[0] and "ldm_s" in errors[0]
    assert [ly.name for ly in viewer.layers] == ["cells"]
    assert w.run_button.enabled

    w.settings.set_bundle(tmp_path / "nowhere")
    assert "does not exist" in w.settings.message.value and not w.run_button.enabled


def test_invalid_settings_are_shown_and_disable_run(viewer_widget, synthetic_frame):
    viewer, w = viewer_widget
    viewer.add_image(synthetic_frame[0], name="cells")
    assert w.run_button.enabled and not w.settings.message.visible
    w.settings.sampling_steps.value = 7
    assert "'sampling steps' must divide 1000" in w.settings.message.value  # the form's words, not code names
    assert "sampling_steps" not in w.settings.message.value
    assert not w.run_button.enabled
    w.settings.sampling_steps.value = 5
    w.settings.overlap.value = 30
    assert "overlap" in w.settings.message.value and not w.run_button.enabled
    w.settings.overlap.value = 32
    assert w.run_button.enabled
    # Settings of other strategies are hidden, not validated against the current one.
    w.settings.strategy.value = "random"
    assert not w.settings.inversion_steps.visible and w.run_button.enabled
    # No image layer: Run disabled with a hint.
    viewer.layers.clear()
    assert not w.run_button.enabled and "image layer" in w.status.value


def test_device_auto_shows_what_it_picks(viewer_widget):
    from napari_pgdiffseg.core.devices import available_devices

    _, w = viewer_widget
    w.settings.device.value = "auto"
    assert w.settings.device.native.currentText() == f"auto ({available_devices()[0]})"


def test_settings_persist_and_restore_defaults(make_napari_viewer, isolated_settings, tiny_bundle_dir):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    w.settings.set_bundle(tiny_bundle_dir)
    w.settings.set_config(SegmentConfig(strategy="forward", forward_t=600, sampling_steps=50, ensemble=3, seed=9,
                                        flips=4))
    w.labels_output.value = "cells"
    w.add_noise.value = True
    assert isolated_settings.is_file()

    again = type(w)(viewer)  # a new widget, as after a restart
    assert again.settings.bundle_dir() == tiny_bundle_dir
    cfg = again.settings.config()
    assert (cfg.strategy, cfg.forward_t, cfg.sampling_steps, cfg.ensemble, cfg.seed, cfg.flips) == (
        "forward", 600, 50, 3, 9, 4)
    assert again.labels_output.value == "cells" and again.add_noise.value

    again.defaults_button.native.click()
    default_model = load_model("slim-viability").card
    assert again.settings.config() == model_config(default_model)  # the default model's own settings
    assert again.settings.model_source.value == "slim-viability"
    assert again.labels_output.value == "classes" and not again.add_noise.value
    third = type(w)(viewer)
    assert third.settings.config() == model_config(default_model)
    for widget in (again, third):
        widget.native.deleteLater()


def test_an_invalid_saved_setting_is_reset_on_load_with_a_note(make_napari_viewer, isolated_settings):
    import json

    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    w.settings.advanced.value = True
    w.settings.sampling_steps.value = 10
    w.settings.seed.value = 42
    w.native.deleteLater()
    data = json.loads(isolated_settings.read_text())
    data["segment"]["sampling_steps"] = 7  # hand-edited, or valid in another version: 7 does not divide 1000
    data["segment"]["overlap"] = 30  # not a multiple of 4
    isolated_settings.write_text(json.dumps(data))

    again = type(w)(viewer)
    default = model_config(load_model("slim-viability").card)
    assert again.settings.problem == "" and not again.settings.message.visible
    cfg = again.settings.config()
    assert (cfg.sampling_steps, cfg.overlap, cfg.seed) == (default.sampling_steps, default.overlap, 42)
    note = again.settings.note.value
    assert not again.settings.note.native.isHidden() and "'sampling steps' 7 -> " in note and "'tile overlap' 30 -> 32" in note
    assert json.loads(isolated_settings.read_text())["segment"]["sampling_steps"] == default.sampling_steps
    again.native.deleteLater()


def test_synthetic_sample_has_image_and_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-pgdiffseg", "synthetic_qpi")
    image, truth = viewer.layers
    assert image._type_string == "image" and image.data.dtype == np.float32
    assert truth._type_string == "labels" and truth.data.shape == image.data.shape
    assert set(np.unique(truth.data)) == {0, 1, 2}
    np.testing.assert_allclose(truth.colormap.map(np.array([1, 2])), np.asarray(DEFAULT_COLORS[1:], float) / 255,
                               atol=1e-3)


def test_closed_widget_stops_following_layers(make_napari_viewer, qtbot, synthetic_frame):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    extra = type(w)(viewer)
    extra.native.deleteLater()
    qtbot.wait(20)
    viewer.add_image(synthetic_frame[0], name="cells")  # no error from the deleted widget
    assert w.image.value is viewer.layers["cells"]


def test_widget_deleted_mid_run_cancels_quietly(make_napari_viewer, qtbot, tiny_bundle_dir, fast_config,
                                                synthetic_frame, errors):
    from napari_pgdiffseg._widgets import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(synthetic_frame[0], name="cells")
    w = SegmentWidget(viewer)
    fast_settings(w, tiny_bundle_dir, fast_config)
    w.settings.sampling_steps.value = 1000
    w.run()
    job = w.job
    qtbot.waitUntil(lambda: w.bars.inner.n > 0, timeout=20_000)
    bars = w.bars
    w.native.deleteLater()
    qtbot.wait(20)
    qtbot.waitUntil(lambda: job.done, timeout=10_000)
    assert job.cancel_event.is_set() and bars._closed
    assert [ly.name for ly in viewer.layers] == ["cells"] and errors == []


BAD_LAYERS = [
    ("constant", lambda f: np.full_like(f, 2.0), "constant"),
    ("inf", lambda f: np.where(f > np.median(f), np.inf, f), "NaN/inf"),
    ("complex", lambda f: f.astype(np.complex64) * 1j, "complex"),
    ("tiny 8x8", lambda f: f[:8, :8].copy(), "at least 16x16"),
    ("int64 extremes", lambda f: np.where(f > np.median(f), np.iinfo(np.int64).max, np.iinfo(np.int64).min), None),
]


@pytest.mark.parametrize("name, make, message", BAD_LAYERS, ids=[b[0] for b in BAD_LAYERS])
def test_bad_layers_give_one_notification_or_a_result(viewer_widget, qtbot, synthetic_frame, errors,
                                                       name, make, message):
    viewer, w = viewer_widget
    try:
        viewer.add_image(make(synthetic_frame[0]), name="bad")
    except Exception:  # napari itself refuses some arrays (e.g. complex): nothing reaches us
        pytest.skip(f"napari does not accept a {name} image layer")
    w.image.reset_choices()
    w.run_button.native.click()
    wait_idle(qtbot, w)
    if message is None:
        assert errors == [] and "bad pgdiffseg" in [ly.name for ly in viewer.layers]
    else:
        assert len(errors) == 1 and message in errors[0], errors
        assert [ly.name for ly in viewer.layers] == ["bad"]
    assert w.run_button.enabled and w.bars is None


def test_dask_layer_is_segmented_lazily_with_the_labels_of_numpy(viewer_widget, qtbot, synthetic_frame, errors,
                                                                 monkeypatch):
    import dask.array as da

    from napari_pgdiffseg.core import preprocess, source

    monkeypatch.setattr(source, "LAZY_MIN_PIXELS", 4096)  # this small frame counts as large
    monkeypatch.setattr(preprocess, "MAX_STATS_PIXELS", 4096)
    viewer, w = viewer_widget
    phase = synthetic_frame[0]
    viewer.add_image(da.from_array(np.stack([phase, phase[::-1]]), chunks=(1, 64, 64)), name="lazy")
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    labels = viewer.layers["lazy pgdiffseg"].data
    assert labels.shape == (2,) + phase.shape and labels.dtype == np.uint8
    bundle = load_bundle(w.settings.bundle_dir())
    for i, plane in enumerate((phase, phase[::-1])):
        np.testing.assert_array_equal(labels[i], segment(np.ascontiguousarray(plane), bundle, w.settings.config()).labels)


def test_model_list_offers_every_shipped_model_with_what_it_labels(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    combo = w.settings.model_source
    texts = [combo.native.itemText(i) for i in range(combo.native.count())]
    choices = dict(zip(combo.choices, texts))
    assert choices["slim-viability"] == "slim-viability (nuclei)"
    assert choices["qpi-cells"] == "qpi-cells (whole cells)"
    assert "synthetic-demo" in choices and "folder" in choices
    w.settings.model_source.value = "qpi-cells"
    assert w.settings.bundle_dir().name == "qpi-cells"
    assert "whole cells: background, cell" in w.settings.model_info.value
    assert not w.settings.bundle_path.visible and w.settings.problem == ""
    assert w.settings.tile_size.value == "256 px"
    w.settings.model_source.value = "slim-viability"  # works at input scale 0.5
    assert w.settings.tile_size.value == "256 px (input scale 0.5: 512 px of the image)"



def test_a_first_start_and_a_model_choice_show_the_models_own_settings(make_napari_viewer, tiny_bundle_dir):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    card = load_model("slim-viability").card
    assert card.segment and w.settings.config() == model_config(card)  # no settings file yet
    assert "scored with flips" in w.settings.model_info.value
    w.settings.flips.value = 1  # the user's choice ...
    w.settings.set_bundle("qpi-cells")  # ... until another model with its own settings is chosen
    w.settings.set_bundle("slim-viability")
    assert w.settings.config().flips == card.segment["flips"]
    # The card's views mirror the sampling only; mirroring the whole pipeline is the user's
    # "custom" choice, and the fast preset brings the card's scope back.
    assert w.settings.flip_scope.value == card.segment["flip_scope"] == "sampling"
    w.settings.flip_scope.value = "pipeline"
    assert w.settings.speed.value == "custom" and w.settings.config().flip_scope == "pipeline"
    w.settings.speed.value = "fast"
    assert w.settings.config() == model_config(card)


def test_speed_preset_sets_the_diffusion_settings_shown_under_advanced(make_napari_viewer, tiny_bundle_dir):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    s = w.settings
    s.set_bundle(tiny_bundle_dir)
    s.speed.value = "fast"
    # The diffusion internals are hidden until asked for; the speed choice is up front.
    s.advanced.value = False
    def shown(widget):  # the dock is not on screen in tests: ask whether Qt would show it
        return not widget.native.isHidden()

    assert shown(s.speed) and shown(s.advanced) and not shown(s.sampling_steps) and not shown(s.ensemble)
    s.advanced.value = True
    assert shown(s.sampling_steps) and shown(s.flips) and not shown(s.ensemble)  # the prior: no ensemble
    fast = model_config(load_bundle(tiny_bundle_dir).card)
    assert (s.config().inversion_steps, s.config().sampling_steps) == (fast.inversion_steps, fast.sampling_steps)
    s.speed.value = "paper"
    cfg = s.config()
    assert (cfg.strategy, cfg.inversion_steps, cfg.sampling_steps, cfg.flips, cfg.ensemble) == ("prior", 100, 200, 1, 1)
    # Changing a diffusion setting by hand makes the run "custom"; choosing fast restores it.
    s.sampling_steps.value = 5
    assert s.speed.value == "custom" and s.config().sampling_steps == 5
    s.speed.value = "fast"
    assert s.config().sampling_steps == fast.sampling_steps and s.speed.value == "fast"


def test_grey_saved_as_rgb_is_segmented_as_grey_and_colour_is_refused_before_run(viewer_widget, qtbot,
                                                                                  synthetic_frame, errors):
    viewer, w = viewer_widget
    grey = (255 * (synthetic_frame[0] - synthetic_frame[0].min()) / np.ptp(synthetic_frame[0])).astype(np.uint8)
    viewer.add_image(np.repeat(grey[..., None], 3, axis=2), name="grey rgb", rgb=True)
    assert w.image.value.name == "grey rgb" and w.run_button.enabled
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    expected = segment(grey, load_bundle(w.settings.bundle_dir()), w.settings.config())
    np.testing.assert_array_equal(viewer.layers["grey rgb pgdiffseg"].data, expected.labels)

    colour = np.stack([grey, grey[::-1], grey[:, ::-1]], axis=2)
    viewer.add_image(colour, name="colour", rgb=True)
    assert w.image.value.name == "colour"
    assert not w.run_button.enabled and "colour (RGB) image" in w.status.value  # said before Run, not after


def test_image_field_follows_the_selected_layer_until_the_user_picks_one(viewer_widget):
    viewer, w = viewer_widget
    first = viewer.add_image(np.zeros((32, 32), np.float32), name="first")
    assert w.image.value is first
    second = viewer.add_image(np.ones((32, 32), np.float32), name="second")
    assert w.image.value is second  # a newly opened image is the active layer
    viewer.layers.selection.active = first
    assert w.image.value is first
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="not an image")
    assert w.image.value is first  # a Labels layer is not a choice
    w.image.value = second  # the user's choice ...
    viewer.layers.selection.active = first
    assert w.image.value is second  # ... sticks
    viewer.add_image(np.ones((32, 32), np.float32), name="third")
    assert w.image.value is second


def test_progress_bar_and_time_left_show_inside_the_widget(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    viewer.add_image(synthetic_frame[0], name="cells")
    w.settings.sampling_steps.value = 200
    shown = lambda: not w.progress.widget.native.isHidden()  # noqa: E731 - the viewer itself is not shown
    assert not shown()
    w.run_button.native.click()
    seen = []

    def moved():
        seen.append((w.progress.bar.value, w.progress.text.value))
        return w.progress.bar.value > 0 and "tiles" in w.progress.text.value

    qtbot.waitUntil(moved, timeout=30_000)
    assert shown() and "%" in w.progress.text.value
    qtbot.waitUntil(lambda: "left" in w.progress.text.value or not w.running, timeout=30_000)
    wait_idle(qtbot, w)
    values = [v for v, _ in seen]
    assert values == sorted(values) and errors == []
    assert not shown() and w.progress.bar.value == 0


def test_a_hot_pixel_is_replaced_and_named_in_the_summary(viewer_widget, qtbot, synthetic_frame, errors):
    viewer, w = viewer_widget
    hot = synthetic_frame[0].astype(np.float32).copy()
    hot[50, 60] = 3e38
    viewer.add_image(hot, name="hot")
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    assert viewer.layers["hot pgdiffseg"].metadata["pgdiffseg_summary"]["outlier_pixels"] == 1
    assert "note: 1 hot/dead pixel(s)" in w.summary.value


def test_the_model_card_says_what_the_model_is_for_and_how_well_it_does(make_napari_viewer):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    for name in ("slim-viability", "qpi-cells"):
        w.settings.model_source.value = name
        card = load_model(name).card
        text = w.settings.model_card.value
        assert card.description.split(":")[0] in text and "Held-out scores" in text
        assert card.headline_scores() in text and card.headline_scores().startswith("foreground IoU 0.")
        assert w.settings.model_card.tooltip.startswith("Trained on: ")


def test_save_labels_keeps_the_users_corrections_and_save_table_writes_the_counts(viewer_widget, qtbot, tmp_path,
                                                                                  synthetic_frame, errors):
    import csv

    import tifffile

    from napari_pgdiffseg._reader import get_reader

    viewer, w = viewer_widget
    planes = np.stack([synthetic_frame[0][:96, :96], synthetic_frame[0][100:196, 50:146]])
    viewer.add_image(planes, name="stack")
    w.labels_output.value = "both"
    assert not w.save_labels_button.enabled and not w.save_table_button.enabled
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert errors == [] and w.save_labels_button.enabled and w.save_table_button.enabled
    labels = viewer.layers["stack pgdiffseg"]
    labels.data[0, :10, :10] = 2  # a correction
    written = w.save_labels(tmp_path / "stack_labels.tif")
    assert [p.name for p in written] == ["stack_labels.tif", "stack_cells.tif"]
    np.testing.assert_array_equal(tifffile.imread(written[0]), labels.data)
    cells = tifffile.imread(written[1])
    assert cells.shape == planes.shape and (cells[labels.data == 0] == 0).all()
    assert get_reader(str(written[0])) is not None  # opens as Labels with the class colours

    table = w.save_table(tmp_path / "counts")
    assert table.name == "counts.csv"
    rows = list(csv.DictReader(table.read_text().splitlines()))
    summary = labels.metadata["pgdiffseg_summary"]
    assert [r["plane"] for r in rows] == ["1", "2", "total"] and {r["image"] for r in rows} == {"stack"}
    assert int(rows[-1]["live_cells"]) == summary["live_cells"] == sum(int(r["live_cells"]) for r in rows[:2])

    viewer.layers.remove(labels)
    for ly in [ly for ly in viewer.layers if ly.name.startswith("stack pgdiffseg")]:
        viewer.layers.remove(ly)
    with pytest.raises(Exception, match="run the segmentation first"):
        w.save_labels(tmp_path / "again.tif")


def test_ensemble_size_is_offered_only_where_samples_can_differ(make_napari_viewer):
    viewer = make_napari_viewer()
    w = open_widget(viewer, SEGMENT)
    s = w.settings
    s.advanced.value = True
    shown = lambda: not s.ensemble.native.isHidden()  # noqa: E731 - the viewer itself is not shown
    s.strategy.value, s.mix.value = "prior", 1.0
    assert not shown()  # the paper's deterministic prior: k samples would be identical
    s.mix.value = 0.5
    assert shown()
    s.mix.value = 1.0
    s.strategy.value = "random"
    assert shown()
    s.strategy.value, s.forward_t.value = "forward", 0
    assert not shown()
    s.forward_t.value = 300
    assert shown()

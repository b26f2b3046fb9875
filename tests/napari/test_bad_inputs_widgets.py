"""The bad-input corpus (tests/test_bad_inputs.py) through the widgets: one notification naming
the problem, no traceback, no partial file; good cases give their result."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared corpus
from test_bad_inputs import ARRAYS, CASES  # noqa: E402

from napari_pgdiffseg.core.batch import CSV_NAME  # noqa: E402

from widget_helpers import BATCH, SEGMENT, fast_settings, open_widget, wait_idle  # noqa: E402




@pytest.mark.parametrize("name, suffix, write, expected", CASES, ids=[c[0] for c in CASES])
def test_batch_widget_on_bad_files(make_napari_viewer, qtbot, tmp_path, tiny_bundle_dir, fast_config, errors,
                                   name, suffix, write, expected):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    write(inp / f"frame{suffix}")
    w = open_widget(make_napari_viewer(), BATCH)
    fast_settings(w, tiny_bundle_dir, fast_config)
    w.input_dir.value, w.output_dir.value = inp, out
    w.run_button.native.click()
    wait_idle(qtbot, w)
    labels = out / "frame_labels.tif"
    if expected == "ok":
        assert errors == [] and labels.is_file()
        assert "1 segmented" in w.status.value
    else:
        assert len(errors) == 1 and errors[0].startswith(f"frame{suffix}: ") and expected in errors[0], errors
        assert "Traceback" not in errors[0] and "\n" not in errors[0]
        assert not labels.exists() and "1 failed" in w.status.value
    assert (out / CSV_NAME).is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"] == []
    assert w.run_button.enabled and not w.running


@pytest.mark.parametrize("name, arr, message", ARRAYS, ids=[a[0] for a in ARRAYS])
def test_segment_widget_on_bad_arrays(make_napari_viewer, qtbot, tiny_bundle_dir, fast_config, errors,
                                      name, arr, message):
    viewer = make_napari_viewer()
    try:
        viewer.add_image(arr, name="bad")
    except Exception:  # napari refuses the array itself: it never reaches the widget
        pytest.skip(f"napari does not accept a {name} image layer")
    w = open_widget(viewer, SEGMENT)
    fast_settings(w, tiny_bundle_dir, fast_config)
    w.image.reset_choices()
    w.image.value = viewer.layers["bad"]
    if not w.run_button.enabled:  # refused before Run (e.g. a colour image): the widget says why
        assert w.problem() and w.status.value == w.problem() and errors == []
        assert [ly.name for ly in viewer.layers] == ["bad"]
        return
    w.run_button.native.click()
    wait_idle(qtbot, w)
    assert len(errors) == 1 and "Traceback" not in errors[0], errors
    assert [ly.name for ly in viewer.layers] == ["bad"]
    assert w.run_button.enabled and not w.running

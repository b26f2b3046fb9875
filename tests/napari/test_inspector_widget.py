"""The "Noise-quality inspector" dock widget: Table 3 rows, histograms, layers on demand, cancel."""

from __future__ import annotations

import numpy as np

from widget_helpers import INSPECTOR, open_widget, wait_idle


def _inspector(make_napari_viewer, tiny_bundle_dir, frame, ticked, **image_kwargs):
    viewer = make_napari_viewer()
    viewer.add_image(frame, name="cells", **image_kwargs)
    w = open_widget(viewer, INSPECTOR)
    w.settings.set_bundle(tiny_bundle_dir)
    w.settings.device.value = "cpu"
    for label, box in w.strategy_boxes.items():
        box.value = label in ticked
    return viewer, w


def test_inspector_table_histograms_and_layers(make_napari_viewer, qtbot, tiny_bundle_dir, synthetic_frame, errors):
    ticked = ("random", "forward t=0", "forward t=600", "prior 10 steps")
    viewer, w = _inspector(make_napari_viewer, tiny_bundle_dir, synthetic_frame[0], ticked,
                           scale=(0.5, 0.5), translate=(3, 4))
    assert w.compute_button.enabled and not w.layers_button.enabled
    w.compute_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []

    rows = w.table_rows()
    assert [r[0] for r in rows] == list(ticked)
    assert [w.table.horizontalHeaderItem(j).text() for j in range(5)] == ["strategy", "SSIM", "KLD", "mean", "std"]
    kld = {r[0]: float(r[2]) for r in rows}
    ssim = {r[0]: float(r[1]) for r in rows}
    # The paper's Table 3 ordering that holds for any model: random noise is N(0, 1), the
    # latent itself (t = 0) is not; random noise carries no image structure.
    assert kld["random"] < kld["forward t=0"]
    assert abs(ssim["random"]) < 0.1 and ssim["forward t=0"] > ssim["random"]
    for row in w.outcome.rows:
        assert row.noise.shape == (3, 64, 64) and row.noise.dtype == np.float32
        assert row.edges.shape == (64, 64) and row.edges.dtype == bool

    ax = w.canvas.figure.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [*ticked, "N(0, 1)"]

    # Noise and edges as layers, only on demand, at 4x the image's scale.
    assert [ly.name for ly in viewer.layers] == ["cells"]
    w.table.selectRow(1)
    added = w.add_layers()
    assert [ly.name for ly in added] == ["cells noise [forward t=0]", "cells noise edges [forward t=0]"]
    np.testing.assert_allclose(added[0].scale, (2, 2))
    np.testing.assert_allclose(added[0].translate, (3 + 0.75, 4 + 0.75))
    w.table.clearSelection()
    w.layers_button.native.click()  # no selection: every row, replacing the earlier layers
    assert len(viewer.layers) == 1 + 2 * len(ticked)


def test_inspector_field_of_view_and_cancel(make_napari_viewer, qtbot, tiny_bundle_dir, synthetic_frame, errors):
    big = np.tile(synthetic_frame[0], (2, 2))  # 512 x 512: the view covers 4 tiles
    viewer, w = _inspector(make_napari_viewer, tiny_bundle_dir, big, ("prior 100 steps",))
    w.region.value = "view"
    viewer.reset_view()
    w.compute_button.native.click()
    qtbot.waitUntil(lambda: w.bars is not None and w.bars.inner.n > 0, timeout=20_000)
    w.cancel_button.native.click()
    wait_idle(qtbot, w, timeout=10_000)
    assert errors == [] and w.outcome is None and w.table.rowCount() == 0
    assert w.compute_button.enabled and not w.cancel_button.enabled

    for label, box in w.strategy_boxes.items():
        box.value = label == "random"
    w.compute_button.native.click()
    wait_idle(qtbot, w)
    assert errors == []
    y0, y1, x0, x1 = w.outcome.box
    assert (y1 - y0) % 256 == 0 and (x1 - x0) % 256 == 0
    assert w.outcome.rows[0].noise.shape[1:] == ((y1 - y0) // 4, (x1 - x0) // 4)


def test_inspector_plot_follows_the_theme_and_explains_the_numbers(make_napari_viewer, qtbot, tiny_bundle_dir,
                                                                   synthetic_frame, errors):
    from matplotlib.colors import to_hex

    from napari.utils.theme import get_theme

    viewer, w = _inspector(make_napari_viewer, tiny_bundle_dir, synthetic_frame[0], ("random",))
    for theme in ("dark", "light"):
        viewer.theme = theme
        expected = get_theme(theme)
        ax = w.canvas.figure.axes[0]
        assert to_hex(w.canvas.figure.get_facecolor()) == to_hex(expected.canvas.as_hex())
        assert to_hex(ax.xaxis.label.get_color()) == to_hex(expected.text.as_hex())
    viewer.theme = "dark"
    w.compute_button.native.click()
    wait_idle(qtbot, w)
    ax = w.canvas.figure.axes[0]
    assert errors == [] and to_hex(ax.get_facecolor()) == to_hex(get_theme("dark").canvas.as_hex())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["random", "N(0, 1)"]
    assert "SSIM (with the image) near 0" in w.guide.value and "KLD near 0" in w.guide.value

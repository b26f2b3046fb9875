"""The "Noise-quality inspector" dock widget: the paper's Fig. 3 / Table 3 on the user's image.

For the chosen image (its centred tile, or the field of view) it computes the starting
noise of each ticked strategy, shows SSIM and KLD in a table and each noise's histogram
against the N(0, 1) density, and adds the noise and its Canny edges as layers on demand.
`InspectorRunner` holds the compute (no Qt); `InspectorWidget` shows it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ..core import metrics
from ..core.errors import InputImageError
from ..core.noise import NoiseConfig
from . import _jobs, _settings, _viewer
from ._base import RunWidget
from ._jobs import ProgressBars, Runner, Throttle
from ._settings import PersistedFields, SettingsStore, SettingsWidget, tooltip
from ..core.noise_preview import centre_crop_box, compute_noise
from ._layers import image_layer, latent_geometry

# The rows of the paper's Table 3: (label, noise settings).
STRATEGIES: tuple[tuple[str, NoiseConfig], ...] = (
    ("random", NoiseConfig("random")),
    ("forward t=0", NoiseConfig("forward", forward_t=0)),
    ("forward t=300", NoiseConfig("forward", forward_t=300)),
    ("forward t=600", NoiseConfig("forward", forward_t=600)),
    ("prior 10 steps", NoiseConfig("prior", inversion_steps=10)),
    ("prior 50 steps", NoiseConfig("prior", inversion_steps=50)),
    ("prior 100 steps", NoiseConfig("prior", inversion_steps=100)),
)
STRATEGY_CONFIGS = dict(STRATEGIES)
REGIONS = (("centre tile", "centre"), ("field of view", "view"))
MAX_VIEW_TILES = 4  # the field of view is cropped to at most 4 x 4 tiles
INSPECTOR_TAG = "pgdiffseg_inspector_of"
COLUMNS = ("strategy", "SSIM", "KLD", "mean", "std")


@dataclass(frozen=True)
class InspectRequest:
    frame: object  # (H, W) plane of the image
    box: tuple[int, int, int, int] | None  # (y0, y1, x0, x1) region in the plane; None: centre tile
    name: str
    scale: tuple
    translate: tuple
    bundle_dir: Path
    strategies: tuple[str, ...]
    seed: int = 0
    device: str = "auto"


@dataclass
class NoiseRow:
    strategy: str
    noise: np.ndarray  # (n, h, w) float32, as LDM-S would receive it
    edges: np.ndarray  # (h, w) bool
    ssim: float
    kld: float
    mean: float
    std: float


@dataclass
class InspectOutcome:
    rows: list[NoiseRow]
    box: tuple[int, int, int, int]  # region actually used, (y0, y1, x0, x1) in the plane
    input_scale: float = 1.0  # the model's pixels per frame pixel (the noise is 1/4 of those)


def whole_tiles(box: tuple[int, int, int, int], tile: int, max_tiles: int) -> tuple[int, int, int, int]:
    """Shrink a region larger than one tile, centred, to whole tiles (at most max_tiles a side)."""
    y0, y1, x0, x1 = box
    out = []
    for a, b in ((y0, y1), (x0, x1)):
        size = b - a
        if size > tile:
            keep = min(size // tile, max_tiles) * tile
            a = a + (size - keep) // 2
            b = a + keep
        out += [a, b]
    return tuple(out)


class InspectorRunner(Runner):
    """Computes the starting noise of each strategy on a region and scores it (no Qt)."""

    def __call__(self, report: Callable[[tuple], None], cancel: threading.Event) -> InspectOutcome:
        req = self.request
        bundle = self.load_bundle(req.bundle_dir)
        frame = np.asarray(req.frame)
        scale = bundle.card.input_scale
        tile = int(round(bundle.card.tile_size / scale))  # one model tile, in frame pixels
        box = req.box if req.box is not None else centre_crop_box(frame.shape, tile)
        box = whole_tiles(box, tile, MAX_VIEW_TILES)
        y0, y1, x0, x1 = box
        crop = frame[y0:y1, x0:x1]
        send = Throttle(report)
        rows = []
        for k, label in enumerate(req.strategies):
            def progress(p, k=k, label=label):
                send((k, len(req.strategies), label, p.evals_done, p.evals_total),
                     force=p.evals_done == p.evals_total)
            noise = compute_noise(crop, bundle, STRATEGY_CONFIGS[label], seed=req.seed, device=req.device,
                                  progress=progress, cancel=cancel)
            rows.append(NoiseRow(
                label, noise, metrics.noise_edges(noise), metrics.noise_ssim(noise, crop),
                metrics.noise_kld(noise), float(noise.mean()), float(noise.std()),
            ))
        return InspectOutcome(rows, box, scale)


def _make_table() -> QTableWidget:
    table = QTableWidget(0, len(COLUMNS))
    table.setHorizontalHeaderLabels(list(COLUMNS))
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
    table.setMinimumHeight(200)  # the 7 rows of Table 3 without scrolling
    return table


def _make_canvas():
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 3), tight_layout=True)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(220)
    return canvas


#: What the table's numbers mean, shown under it (README, Table 3 and its noise variants).
READING_GUIDE = (
    "How to read it: SSIM (with the image) near 0 means the noise keeps no image structure; KLD near 0 "
    "means its values follow N(0, 1), the dashed curve. These are the paper's criteria for a well-formed "
    "diffusion start (random noise: SSIM 0.005, KLD 0.001; the prior at 10 inversion steps: 0.001, 1.3). "
    "For the shipped x0-predicting models they do not predict accuracy: forward t=0 (SSIM 0.73, KLD 3.3) "
    "segments best on the synthetic benchmark. A KLD far above the training frames' values suggests the "
    "image is unlike the model's training data."
)


def theme_colors(viewer) -> dict:
    """Background, foreground (text) and grid colours of the viewer's napari theme (hex)."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(viewer.theme)
        return {"background": theme.canvas.as_hex(), "text": theme.text.as_hex(),
                "grid": theme.primary.as_hex()}
    except Exception:  # noqa: BLE001 - an unknown or custom theme: matplotlib's own colours
        return {"background": "#ffffff", "text": "#000000", "grid": "#bbbbbb"}


def plot_histograms(figure, rows: list[NoiseRow], colors: dict | None = None) -> None:
    """Histogram of each noise's values against the N(0, 1) density (paper Fig. 3), in the
    viewer's theme colours (`theme_colors`)."""
    colors = colors or {"background": "#ffffff", "text": "#000000", "grid": "#bbbbbb"}
    figure.clear()
    figure.set_facecolor(colors["background"])
    ax = figure.add_subplot(111)
    ax.set_facecolor(colors["background"])
    x = np.linspace(-4, 4, 400)
    for row in rows:
        # All values pooled, as noise_kld does (prior/forward channels are identical copies).
        ax.hist(row.noise.ravel(), bins=60, range=(-4, 4), density=True, histtype="step", label=row.strategy)
    ax.plot(x, np.exp(-x**2 / 2) / np.sqrt(2 * np.pi), "--", color=colors["text"], lw=1.2, label="N(0, 1)")
    ax.set_xlabel("noise value", color=colors["text"])
    ax.set_ylabel("density", color=colors["text"])
    ax.tick_params(colors=colors["text"])
    for spine in ax.spines.values():
        spine.set_color(colors["grid"])
    if rows:
        legend = ax.legend(fontsize="x-small", facecolor=colors["background"], edgecolor=colors["grid"])
        for text in legend.get_texts():
            text.set_color(colors["text"])
    figure.canvas.draw_idle()


class InspectorWidget(RunWidget):
    """Noise-quality inspector."""

    def __init__(self, napari_viewer, *, use_thread: bool = True):
        super().__init__(napari_viewer, SettingsWidget("inspector", sampling=False), use_thread=use_thread,
                         run_text="Compute", side_text="Add noise layers", side_tooltip="show_layers")
        self.outcome: InspectOutcome | None = None
        self._request: InspectRequest | None = None
        self.compute_button, self.layers_button = self.run_button, self.side_button

        self.image = self._image_choice()
        self.region = ComboBox(label="region", choices=list(REGIONS), tooltip=tooltip("region"))
        self.strategy_boxes = {label: CheckBox(text=label, tooltip=tooltip("strategies")) for label, _ in STRATEGIES}
        boxes = list(self.strategy_boxes.values())
        ticks = Container(widgets=[Container(widgets=boxes[i : i + 2], layout="horizontal", labels=False)
                                   for i in range(0, len(boxes), 2)], labels=False, label="strategies")
        self.extend([self.image, self.region, self.settings, ticks, self.buttons, self.progress.widget, self.status])

        self.table = _make_table()
        self.guide = _settings.text_label(value=READING_GUIDE)
        self.canvas = _make_canvas()
        self.native.layout().addWidget(self.table)
        self.native.layout().addWidget(self.guide.native)
        self.native.layout().addWidget(self.canvas)
        plot_histograms(self.canvas.figure, [], theme_colors(self.viewer))
        self.viewer.events.theme.connect(self._replot)

        self.persist = PersistedFields(
            SettingsStore("inspector_strategies"),
            {**{f"use {k}": w for k, w in self.strategy_boxes.items()}, "region": self.region},
            {**{f"use {k}": True for k in self.strategy_boxes}, "region": "centre"},
        )
        for w in self.strategy_boxes.values():
            w.changed.connect(self._update_state)
        self._update_state()

    def ticked(self) -> tuple[str, ...]:
        return tuple(k for k, w in self.strategy_boxes.items() if w.value)

    def problem(self) -> str:
        if self.settings.problem:
            return self.settings.problem
        return self._image_problem() or ("" if self.ticked() else "tick at least one strategy")

    def side_action(self, *_) -> None:
        self.add_layers()

    def side_enabled(self) -> bool:
        return not self.running and self.outcome is not None

    def _view_box(self, layer, shape) -> tuple[int, int, int, int]:
        """The part of the plane the canvas shows, in data pixels (whole plane if unknown)."""
        scene, canvas = getattr(self.viewer, "scene", None), getattr(self.viewer, "canvas", None)
        cam = scene.camera if scene is not None else self.viewer.camera  # napari < 0.9
        size = np.asarray(canvas.size if canvas is not None else self.viewer._canvas_size, float)
        if cam.zoom <= 0 or not size.all():
            return (0, shape[0], 0, shape[1])
        center = np.asarray(cam.center[-2:], float)
        half = size / (2 * cam.zoom)
        corners = []
        for dy, dx in ((-1, -1), (1, 1)):
            world = list(self.viewer.dims.point)
            world[-2:] = [center[0] + dy * half[0], center[1] + dx * half[1]]
            corners.append(np.asarray(layer.world_to_data(world))[-2:])
        (ya, xa), (yb, xb) = corners
        y0, y1 = sorted((ya, yb))
        x0, x1 = sorted((xa, xb))
        y0, x0 = max(int(np.floor(y0)), 0), max(int(np.floor(x0)), 0)
        y1, x1 = min(int(np.ceil(y1)), shape[0]), min(int(np.ceil(x1)), shape[1])
        if y1 - y0 < 16 or x1 - x0 < 16:
            raise InputImageError("the field of view shows less than 16 x 16 pixels of the image; zoom out")
        return (y0, y1, x0, x1)

    def request(self) -> InspectRequest:
        layer = self.image.value
        if layer.rgb:
            raise InputImageError(f"layer {layer.name!r} is RGB; QPI is single-channel: pick a phase image layer")
        data = layer.data[0] if layer.multiscale else layer.data
        if data.ndim < 2:
            raise InputImageError(f"layer {layer.name!r} is not an image (shape {data.shape})")
        # A stack: the plane the viewer shows.
        lead = tuple(int(i) for i in layer.world_to_data(self.viewer.dims.point)[: data.ndim - 2])
        lead = tuple(min(max(i, 0), s - 1) for i, s in zip(lead, data.shape[:-2]))
        frame = np.asarray(data[lead]) if lead else data
        box = self._view_box(layer, frame.shape) if self.region.value == "view" else None
        return InspectRequest(frame, box, layer.name, tuple(layer.scale), tuple(layer.translate),
                              self.settings.bundle_dir(), self.ticked(), self.settings.seed.value,
                              self.settings.device.value)

    def run(self, *_) -> None:
        req = self._take_request()
        if req is None:
            return
        self._request = req
        self._start(InspectorRunner(req, self._load_bundle), ProgressBars("noise", len(req.strategies), "strategies"),
                    f"computing noise of {req.name} ...")

    def _on_progress(self, value) -> None:
        k, n, label, done, total = value
        bars = self.bars  # updating a bar may process events, including the end of the job
        if bars is not None:
            bars.set_inner(done, total, label)
            bars.set_outer(k, f"strategy {k + 1}/{n}")

    def _on_result(self, outcome: InspectOutcome) -> None:
        self.outcome = outcome
        self.table.setRowCount(len(outcome.rows))
        for i, row in enumerate(outcome.rows):
            for j, value in enumerate((row.strategy, row.ssim, row.kld, row.mean, row.std)):
                text = value if isinstance(value, str) else f"{value:.3f}"
                self.table.setItem(i, j, QTableWidgetItem(text))
        plot_histograms(self.canvas.figure, outcome.rows, theme_colors(self.viewer))

    def _replot(self, *_) -> None:
        """The theme changed: draw the plot again in its colours."""
        if _jobs.qt_alive(self.canvas):
            plot_histograms(self.canvas.figure, self.outcome.rows if self.outcome else [], theme_colors(self.viewer))

    def table_rows(self) -> list[tuple[str, ...]]:
        """The table's text, row by row."""
        return [tuple(self.table.item(i, j).text() for j in range(self.table.columnCount()))
                for i in range(self.table.rowCount())]

    def add_layers(self, *_) -> list:
        """Add the noise and Canny edges of the selected rows (all rows if none is selected)."""
        if self.outcome is None or self._request is None:
            return []
        selected = sorted({i.row() for i in self.table.selectedIndexes()}) or range(len(self.outcome.rows))
        req = self._request
        y0, _, x0, _ = self.outcome.box
        n_lead = len(req.scale) - 2
        # Layers live in the plane's 2D geometry: the last two axes of the source layer.
        scale, translate = latent_geometry(req.scale[n_lead:], req.translate[n_lead:], offset=(y0, x0),
                                           input_scale=self.outcome.input_scale)
        added = []
        for i in selected:
            row = self.outcome.rows[i]
            tag = f"{req.name} [{row.strategy}]"
            meta = {INSPECTOR_TAG: tag}
            layers = [
                image_layer(row.noise[0],
                            f"{req.name} noise [{row.strategy}]", scale, translate, meta, colormap="gray"),
                image_layer(row.edges.astype(np.uint8), f"{req.name} noise edges [{row.strategy}]", scale,
                            translate, meta, colormap="cyan", blending="additive", contrast_limits=(0, 1)),
            ]
            added += _viewer.replace_layers(self.viewer, layers, INSPECTOR_TAG, tag).added
        return added

    def _on_cancelled(self) -> None:
        show_info("PG-DiffSeg: noise computation cancelled")

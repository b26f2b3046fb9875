"""The "Segment QPI (PG-DiffSeg)" dock widget: settings in, `segment` on a worker, layers out.

`SegmentRunner` (no Qt) segments the image captured at Run and builds the layer data;
`SegmentWidget` collects the settings, runs it as a `Job` and adds the layers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, PushButton, SpinBox
from napari.utils.notifications import show_info, show_warning

from ..core.errors import InputImageError, PGDiffSegError
from ..core.metrics import noise_edges
from ..core.config import SegmentConfig
from ..core.engine import Progress
from ..core.pipeline import segment_stack
from ..core.cells import InstanceConfig, cell_instances, foreground_classes, summarize_planes
from . import _settings, _viewer
from ._base import RunWidget
from ._jobs import ProgressBars, Runner, Throttle
from ._settings import PersistedFields, SettingsStore, SettingsWidget, tooltip
from ._layers import OUTPUT_TAG, cell_features, cell_labels_layer, class_labels_layer, image_layer, latent_geometry
from ..core.measure import Calibration, cell_table, cells_csv_text, mass_summary
from ._preview import LivePreview

LABEL_OUTPUTS = (("class labels", "classes"), ("one id per cell", "cells"), ("both", "both"))


@dataclass(frozen=True)
class OutputOptions:
    """Which layers a run adds besides the summary."""

    labels: str = "classes"  # 'classes' | 'cells' | 'both'
    noise: bool = False
    edges: bool = False
    agreement: bool = False
    min_area: int = 0  # 0: the model's setting (bundle card "instances")
    min_distance: int = 0  # 0: the model's setting
    calibration: object = None  # measure.Calibration of the per-cell table (None: nothing known)
    time_lapse: bool = False  # a stack's planes are time points: cells are tracked across them


@dataclass(frozen=True)
class SegmentRequest:
    """Everything a run needs, captured when Run is pressed."""

    image: object  # the layer's data: (H, W) or (..., H, W)
    name: str
    scale: tuple
    translate: tuple
    bundle_dir: Path
    config: SegmentConfig
    outputs: OutputOptions = OutputOptions()


@dataclass
class SegmentOutcome:
    source: str  # name of the segmented image layer
    layers: list  # napari layer data tuples
    summary: dict
    text: str


@dataclass(frozen=True)
class PlaneProgress:
    plane: int
    n_planes: int
    progress: Progress


def _planes(image) -> tuple[np.ndarray, tuple]:
    """(planes, leading shape): any (..., H, W) array as (n, H, W).

    A dask array (a napari layer opened lazily) stays lazy: the core reads large planes
    tile by tile (core.source).
    """
    arr = image if _is_dask(image) else np.asarray(image)
    if arr.ndim < 2:
        raise InputImageError(f"image must be 2D or a stack of 2D planes, got shape {arr.shape}")
    return arr.reshape((-1,) + arr.shape[-2:]), arr.shape[:-2]


def _is_dask(image) -> bool:
    return type(image).__module__.split(".")[0] == "dask"


def _cell_text(value) -> str:
    """A table cell: floats to 4 significant digits, NaN empty."""
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else f"{float(value):.4g}"
    return str(value)


MAX_PLANE_ROWS = 12  # per-plane count rows shown in the summary; the rest are summed in the total


def _counts_text(summary: dict, class_names) -> str:
    counts = " · ".join(f"{n} {summary[f'{n}_cells']}" for _, n in foreground_classes(class_names))
    via = summary["viability_percent"]
    if "live" in class_names and "dead" in class_names:
        counts += f" · viability {'n/a' if np.isnan(via) else f'{via:.1f}%'}"
    return counts


def summary_text(summary: dict, class_names, nfe: int, seconds: float, device: str, n_planes: int,
                 image: str = "", plane_summaries=()) -> str:
    """The widget's summary: the image, pixel fractions, cell counts (the instances, as in the
    cell layers), per plane for a stack with a total, and what the run cost."""
    head = f"{image}: " if image else ""
    fractions = " · ".join(f"{n} {100 * summary[f'fraction_{n}']:.1f}%" for n in class_names)
    lines = [f"{head}{fractions}"]
    if n_planes > 1:
        for i, ps in enumerate(plane_summaries[:MAX_PLANE_ROWS]):
            lines.append(f"plane {i + 1}: cells {_counts_text(ps, class_names)}")
        if len(plane_summaries) > MAX_PLANE_ROWS:
            lines.append(f"... {len(plane_summaries) - MAX_PLANE_ROWS} more planes")
        lines.append(f"total over {n_planes} planes: cells {_counts_text(summary, class_names)}")
    else:
        lines.append(f"cells {_counts_text(summary, class_names)}")
    masses = [(n, summary.get(f"{n}_dry_mass_total_pg"), summary.get(f"{n}_dry_mass_mean_pg"))
              for _, n in foreground_classes(class_names)]
    if any(t is not None and np.isfinite(t) for _, t, _ in masses):
        lines.append("dry mass: " + " · ".join(f"{n} {t:.4g} pg (mean {m:.3g} pg)" for n, t, m in masses
                                               if t is not None and np.isfinite(t)))
    if summary.get("unlike_training"):
        lines.append(f"warning: {summary['unlike_training']}")
    if summary.get("nan_pixels"):
        lines.append(f"note: {summary['nan_pixels']} pixel(s) without a phase (NaN) were labelled background")
    if summary.get("outlier_pixels"):
        lines.append(f"note: {summary['outlier_pixels']} hot/dead pixel(s) far outside the image's range were "
                     "replaced by their neighbours' median")
    lines.append(f"NFE {nfe} · {seconds:.1f} s · {device}")
    return "\n".join(lines)


def plot_cell_histograms(figure, cells: list[dict], class_names, colors, theme: dict,
                         viability: list[dict] | None = None) -> None:
    """Histograms of area and dry mass per class (dry mass only where it was computed), in the
    class colours and the viewer's theme; for a time-lapse also viability % per frame."""
    figure.clear()
    figure.set_facecolor(theme["background"])
    has_mass = any(c["dry_mass_pg"] is not None for c in cells)
    keys = [("area_um2" if any(c["area_um2"] is not None for c in cells) else "area_px", "area")]
    if has_mass:
        keys.append(("dry_mass_pg", "dry mass (pg)"))
    n_plots = len(keys) + (1 if viability else 0)
    if viability:
        ax = figure.add_subplot(1, n_plots, n_plots)
        ax.set_facecolor(theme["background"])
        ax.plot([v["frame"] for v in viability], [v["viability_percent"] for v in viability], "o-",
                color="#009e73", ms=3)
        ax.set_ylim(-2, 102)
        ax.set_xlabel("frame", color=theme["text"])
        ax.set_ylabel("viability (%)", color=theme["text"])
        ax.tick_params(colors=theme["text"], labelsize="small")
        for spine in ax.spines.values():
            spine.set_color(theme["grid"])
    for k, (key, title) in enumerate(keys):
        ax = figure.add_subplot(1, n_plots, k + 1)
        ax.set_facecolor(theme["background"])
        for cid, name in foreground_classes(class_names):
            v = [c[key] for c in cells if c["class"] == name and c[key] is not None]
            if v:
                ax.hist(v, bins=20, histtype="stepfilled", alpha=0.55, label=f"{name} ({len(v)})",
                        color=np.asarray(colors[cid][:3]) / 255)
        label = {"area_um2": "area (um^2)", "area_px": "area (px)"}.get(key, title)
        ax.set_xlabel(label, color=theme["text"])
        ax.set_ylabel("cells", color=theme["text"])
        ax.tick_params(colors=theme["text"], labelsize="small")
        for spine in ax.spines.values():
            spine.set_color(theme["grid"])
        if k == 0 and cells:
            leg = ax.legend(fontsize="x-small", facecolor=theme["background"], edgecolor=theme["grid"])
            for t in leg.get_texts():
                t.set_color(theme["text"])
    figure.canvas.draw_idle()


class SegmentRunner(Runner):
    """Segments a captured image plane by plane and returns the layers to add (no Qt)."""

    def __call__(self, report: Callable[[PlaneProgress], None], cancel: threading.Event) -> SegmentOutcome:
        req = self.request
        planes, lead = _planes(req.image)
        bundle = self.load_bundle(req.bundle_dir)
        send = Throttle(report)

        def progress(i: int, n: int, p: Progress) -> None:
            send(PlaneProgress(i, n, p), force=p.evals_done in (0, p.evals_total))

        results = segment_stack(planes, bundle, req.config, progress=progress, cancel=cancel)
        return self.outcome(results, planes, lead, bundle.card)

    def outcome(self, results, planes, lead, card) -> SegmentOutcome:
        req, opt = self.request, self.request.outputs
        names = tuple(card.class_names)
        shape = lead + planes.shape[1:]
        labels = np.stack([r.labels for r in results]).reshape(shape)
        icfg = InstanceConfig.from_dict(card.instances)
        icfg = replace(icfg, min_area=opt.min_area or icfg.min_area, min_distance=opt.min_distance or icfg.min_distance)
        cells = [cell_instances(r.labels, p, names, icfg) for r, p in zip(results, planes)]
        summary = summarize_planes([r.labels for r in results], names, instances=cells)
        cal = opt.calibration or Calibration()
        stack = len(results) > 1
        per_cell = []
        for k, (r, p, c) in enumerate(zip(results, planes, cells)):
            per_cell += cell_table(c, r.labels, np.asarray(p), names, cal, plane=k + 1 if stack else None)
        mass_note = cal.why_no_mass(np.asarray(planes[:1]).dtype)
        summary.update(mass_summary(per_cell, names), mass_note=mass_note)
        per_plane = [summarize_planes([r.labels], names, instances=[c]) for r, c in zip(results, cells)]
        seconds = sum(r.seconds for r in results)
        r0 = results[0]
        summary.update(nfe=r0.nfe, seconds=seconds, device=r0.device, planes=len(results),
                       outlier_pixels=sum(r.outlier_pixels for r in results),
                       nan_pixels=sum(r.nan_pixels for r in results),
                       unlikeness=max((r.ood_score for r in results), default=float("nan")),
                       unlike_training=next((r.ood_warning for r in results if r.ood_warning), ""),
                       noise_ssim=float(np.mean([r.noise_ssim for r in results])),
                       noise_kld=float(np.mean([r.noise_kld for r in results])))
        text = summary_text(summary, names, r0.nfe, seconds, r0.device, len(results), req.name, per_plane)
        if summary["unlike_training"]:
            show_warning(f"PG-DiffSeg: {req.name}: {summary['unlike_training']}")
        summary["per_plane"] = per_plane if len(results) > 1 else []
        summary["cells"] = per_cell
        tracks_layer = None
        if stack and opt.time_lapse:
            from ..core.tracking import link_frames, track_rows, tracks_layer_data, viability_over_time

            links = link_frames(cells)
            summary["tracks"] = track_rows(links, per_cell)
            summary["viability_over_time"] = viability_over_time(per_cell, len(results))
            data = tracks_layer_data(links, per_cell)
            if len(data):
                tscale = (1.0,) + tuple(req.scale[-2:])
                tracks_layer = (data, {"name": f"{req.name} pgdiffseg tracks", "scale": tscale,
                                       "translate": (0.0,) + tuple(req.translate[-2:]),
                                       "metadata": {OUTPUT_TAG: req.name}, "tail_length": 10}, "tracks")
            dead = [t for t in summary["tracks"] if t["dead_from_frame"]]
            text += (f"\ntracks: {len(summary['tracks'])} cells followed over {len(results)} frames; "
                     f"{len(dead)} turned dead" + (" (frames " + ", ".join(str(t['dead_from_frame']) for t in dead[:8])
                                                  + (" ..." if len(dead) > 8 else "") + ")" if dead else ""))
        meta = {OUTPUT_TAG: req.name, "pgdiffseg_summary": summary, "pgdiffseg_config": req.config.to_dict(),
                "pgdiffseg_bundle": str(req.bundle_dir)}
        images, labelled = [], []  # images first, so the labels are drawn on top of them
        if opt.labels in ("classes", "both"):
            labelled.append(class_labels_layer(labels, req.name, names, card.colors, req.scale, req.translate, meta))
        if opt.labels in ("cells", "both"):
            ids = np.stack(cells).reshape(shape)
            for class_id, class_name in foreground_classes(names):  # one layer of cell ids per class
                layer = np.where(labels == class_id, ids, 0).astype(ids.dtype)
                # The per-cell table as the layer's features (2D: a stack's ids restart in every plane).
                feats = None if stack else cell_features([c for c in per_cell if c["class"] == class_name])
                labelled.append(cell_labels_layer(layer, req.name, class_name, req.scale, req.translate, meta,
                                                  color=card.colors[class_id],
                                                  n_cells=summary[f"{class_name}_cells"], features=feats))
        if opt.agreement:
            agreement = np.stack([r.agreement for r in results]).reshape(shape)
            images.append(image_layer(agreement, f"{req.name} pgdiffseg agreement", req.scale, req.translate, meta,
                                      colormap="viridis", contrast_limits=(0.0, 1.0)))
        if opt.noise or opt.edges:
            noise = np.stack([r.noise for r in results])  # (planes, n, h, w)
            lshape = lead + noise.shape[2:]
            lscale, ltranslate = latent_geometry(req.scale, req.translate, input_scale=card.input_scale)
            if opt.noise:
                images.append(image_layer(noise[:, 0].reshape(lshape), f"{req.name} pgdiffseg noise", lscale,
                                          ltranslate, meta, colormap="gray"))
            if opt.edges:
                edges = np.stack([noise_edges(nz) for nz in noise]).astype(np.uint8).reshape(lshape)
                images.append(image_layer(edges, f"{req.name} pgdiffseg noise edges", lscale, ltranslate, meta,
                                          colormap="cyan", blending="additive", contrast_limits=(0, 1)))
        layers = images + labelled + ([tracks_layer] if tracks_layer is not None else [])
        return SegmentOutcome(req.name, layers, summary, text)


class SegmentWidget(RunWidget):
    """Segment QPI (PG-DiffSeg): the main dock widget."""

    def __init__(self, napari_viewer, *, use_thread: bool = True):
        super().__init__(napari_viewer, SettingsWidget("segment"), use_thread=use_thread)
        self.defaults_button = self.side_button
        self.image = self._image_choice()
        self.labels_output = ComboBox(label="labels", choices=list(LABEL_OUTPUTS), tooltip=tooltip("labels_output"))
        self.add_noise = CheckBox(text="starting noise", tooltip=tooltip("add_noise"))
        self.add_edges = CheckBox(text="noise edges", tooltip=tooltip("add_edges"))
        self.add_agreement = CheckBox(text="agreement", tooltip=tooltip("add_agreement"))
        self.time_lapse = CheckBox(text="a stack's planes are time points (track the cells)", value=False,
                                   tooltip=tooltip("time_lapse"))
        extra = Container(widgets=[self.add_noise, self.add_edges, self.add_agreement], layout="horizontal",
                          labels=False, label="extra layers")
        extra.margins = (0, 0, 0, 0)
        self.min_area = SpinBox(label="min cell area", min=0, max=100_000, tooltip=tooltip("min_area"))
        self.min_distance = SpinBox(label="cell split distance", min=0, max=1000, tooltip=tooltip("min_distance"))
        self.measures = _settings.CalibrationFields("segment_measures")
        self.summary = _settings.text_label(label="summary")
        self.preview_toggle = CheckBox(text="Preview (follows the view)", value=False, tooltip=tooltip("preview"))
        self.preview = LivePreview(self)
        self.kept_note = ""  # after a run: which edited output layers were kept
        self.preview_toggle.changed.connect(self.preview.set_enabled)
        self.image.changed.connect(self.preview.schedule)
        self.extend([self.image, self.settings, self.labels_output, extra, self.min_area, self.min_distance,
                     self.time_lapse, self.measures, self.buttons, self.progress.widget, self.preview_toggle, self.status, self.summary])
        self.save_labels_button = PushButton(text="Save labels...", enabled=False, tooltip=tooltip("save_labels"))
        self.save_table_button = PushButton(text="Save table...", enabled=False, tooltip=tooltip("save_table"))
        self.save_labels_button.changed.connect(self._ask_save_labels)
        self.save_table_button.changed.connect(self._ask_save_table)
        self.save_cells_button = PushButton(text="Save cells...", enabled=False, tooltip=tooltip("save_cells"))
        self.cell_table_button = PushButton(text="Cell table", enabled=False, tooltip=tooltip("cell_table"))
        self.save_cells_button.changed.connect(self._ask_save_cells)
        self.cell_table_button.changed.connect(self.show_cell_table)
        self.track_table_button = PushButton(text="Track table", enabled=False, tooltip=tooltip("track_table"))
        self.track_table_button.changed.connect(self.show_track_table)
        self.add_training_button = PushButton(text="Add to training set", enabled=False,
                                              tooltip=tooltip("add_to_training"))
        self.add_training_button.changed.connect(self._add_to_training)
        saves = Container(widgets=[self.save_labels_button, self.save_table_button, self.save_cells_button],
                          layout="horizontal", labels=False, label="")
        more = Container(widgets=[self.cell_table_button, self.track_table_button, self.add_training_button],
                         layout="horizontal",
                         labels=False, label="")
        more.margins = (0, 0, 0, 0)
        saves.margins = (0, 0, 0, 0)
        self.append(saves)
        self.append(more)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.cell_plot = FigureCanvasQTAgg(Figure(figsize=(4, 2.2), tight_layout=True))
        self.cell_plot.setMinimumHeight(150)
        self.cell_plot.setVisible(False)
        self.native.layout().addWidget(self.cell_plot)
        self.last_outcome: SegmentOutcome | None = None
        self.output_layers: list = []  # the layers of the last run, as the user may have edited them

        d = OutputOptions()
        self.outputs_persist = PersistedFields(
            SettingsStore("segment_outputs"),
            {"labels_output": self.labels_output, "add_noise": self.add_noise, "add_edges": self.add_edges,
             "add_agreement": self.add_agreement, "min_area": self.min_area, "min_distance": self.min_distance,
             "time_lapse": self.time_lapse},
            {"labels_output": d.labels, "add_noise": d.noise, "add_edges": d.edges, "add_agreement": d.agreement,
             "min_area": d.min_area, "min_distance": d.min_distance, "time_lapse": d.time_lapse},
        )
        self._update_state()

    def problem(self) -> str:
        return self.settings.problem or self._image_problem()

    def calibration(self) -> Calibration:
        """The per-cell table's calibration from the fields (0: not known)."""
        return self.measures.calibration()

    def output_options(self) -> OutputOptions:
        return OutputOptions(self.labels_output.value, self.add_noise.value, self.add_edges.value,
                             self.add_agreement.value, self.min_area.value, self.min_distance.value,
                             self.calibration(), self.time_lapse.value)

    def restore_defaults(self, *_):
        super().restore_defaults()
        self.outputs_persist.restore_defaults()
        self.measures.restore_defaults()

    # -- run
    def request(self) -> SegmentRequest:
        """Capture the chosen layer and the settings (switching layers later changes nothing)."""
        layer = self.image.value
        data = layer.data[0] if layer.multiscale else layer.data
        problem = self._image_problem()
        if problem:
            raise InputImageError(problem)
        if layer.rgb:  # equal channels (checked above): a grey image saved as RGB
            data = np.asarray(data)[..., 0]
            show_info(f"PG-DiffSeg: {layer.name!r} is RGB with equal channels; segmenting it as a grey image")
        opts = self.output_options()
        stored = layer.metadata.get("pgdiffseg_calibration") or {}  # a QPI file's own (napari reader)
        if stored:
            from ..core.measure import Calibration as _Cal

            opts = replace(opts, calibration=opts.calibration.merged(
                _Cal(stored.get("wavelength_nm"), stored.get("pixel_size_um"))))
        return SegmentRequest(data, layer.name, tuple(layer.scale), tuple(layer.translate),
                              self.settings.bundle_dir(), self.settings.config(), opts)

    def run(self, *_) -> None:
        req = self._take_request()
        if req is None:
            return
        n_planes = int(np.prod(np.shape(req.image)[:-2], dtype=int))
        self.summary.value = ""
        self.kept_note = ""
        self._running_bundle = req.bundle_dir
        self._running_layer = self.image.value
        self._start(SegmentRunner(req, self._load_bundle), ProgressBars(f"PG-DiffSeg {req.name}", n_planes, "planes"),
                    f"segmenting {req.name} ...")

    def _on_progress(self, p: PlaneProgress) -> None:
        bars = self.bars  # updating a bar may process events, including the end of the job
        if bars is None:
            return
        pr = p.progress
        bars.set_inner(pr.evals_done, pr.evals_total, f"tiles {pr.tiles_done}/{pr.tiles_total}")
        bars.set_outer(p.plane, f"plane {p.plane + 1}/{p.n_planes}")

    def _on_result(self, outcome: SegmentOutcome) -> None:
        replaced = _viewer.replace_layers(self.viewer, outcome.layers, OUTPUT_TAG, outcome.source)
        self.output_layers = replaced.added
        self.save_labels_button.enabled = self.save_table_button.enabled = True
        self.add_training_button.enabled = self.save_cells_button.enabled = True
        self.cell_table_button.enabled = any("class_name" in ly.metadata and len(ly.features)
                                             for ly in self.output_layers)
        self._last_image = self._running_layer
        self.summary.value = outcome.text
        self.kept_note = _viewer.kept_message(replaced)
        if self.kept_note:
            show_info(f"PG-DiffSeg: {self.kept_note}")
        self.last_outcome = outcome
        self.last_outcome_bundle = self._running_bundle
        self.track_table_button.enabled = bool(outcome.summary.get("tracks")) and self._tracks_layer() is not None
        cells = outcome.summary.get("cells") or []
        self.cell_plot.setVisible(bool(cells))
        if cells:
            from ..core.bundle import peek_bundle
            from ._inspector import theme_colors

            try:
                card = peek_bundle(self._running_bundle)[0]
                plot_cell_histograms(self.cell_plot.figure, cells, card.class_names, card.colors,
                                     theme_colors(self.viewer), outcome.summary.get("viability_over_time"))
            except PGDiffSegError:  # the model folder went away: no plot, the layers are there
                self.cell_plot.setVisible(False)

    def finished_text(self) -> str:
        return self.kept_note

    # -- saving what the user sees (corrections painted into the layers included)
    def _labels_layers(self) -> list:
        return [ly for ly in self.output_layers if ly._type_string == "labels" and ly in self.viewer.layers]

    def save_labels(self, path: str | Path) -> list[Path]:
        """Write the last run's labels layers as they are now (with the user's edits): the class
        labels to `path` (`<stem>_labels.tif` metadata, so the reader opens it with class colours),
        and one id per cell, if shown, to `<stem>_cells.tif` beside it. Atomic writes."""
        from ..core.filejob import output_metadata
        from ..core.files import write_tiff

        layers = self._labels_layers()
        if not layers or self.last_outcome is None:
            raise InputImageError("no labels to save: run the segmentation first (its layers were removed)")
        from ..core.bundle import peek_bundle

        card = peek_bundle(self.last_outcome_bundle)[0]  # the card alone: no weights on the GUI thread
        path = Path(path)
        if path.suffix.lower() not in (".tif", ".tiff"):
            path = path.with_suffix(".tif")
        stem = path.stem[: -len("_labels")] if path.stem.endswith("_labels") else path.stem
        written = []
        classes = [ly for ly in layers if "class_names" in ly.metadata]
        cells = [ly for ly in layers if "class_name" in ly.metadata]
        axes = "YX" if np.ndim(layers[0].data) == 2 else "ZYX"
        if classes:
            written.append(write_tiff(path, np.asarray(classes[0].data), metadata=output_metadata(card, "classes", axes)))
        if cells:
            ids = np.zeros(np.shape(cells[0].data), np.uint32)
            for ly in cells:  # the class layers hold disjoint ids
                ids = np.where(np.asarray(ly.data) > 0, np.asarray(ly.data), ids)
            from ..core.cells import instance_dtype

            written.append(write_tiff(path.with_name(f"{stem}_cells.tif"), ids.astype(instance_dtype(int(ids.max()))),
                                      metadata=output_metadata(card, "cells", axes)))
        return written

    def save_table(self, path: str | Path) -> Path:
        """Write the last run's summary as CSV: one row per plane (a stack) and a total row."""
        import csv
        import io

        from ..core.files import atomic_write

        if self.last_outcome is None:
            raise InputImageError("no result to save: run the segmentation first")
        summary = self.last_outcome.summary
        rows = [dict(p, plane=i + 1) for i, p in enumerate(summary.get("per_plane") or [])]
        skip = ("per_plane", "cells", "tracks", "viability_over_time")
        rows.append(dict({k: v for k, v in summary.items() if k not in skip}, plane="total"))
        fields = ["image", "plane"] + [k for k in rows[-1] if k not in ("image", "plane")]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell_text(r.get(k, "")) for k in fields} | {"image": self.last_outcome.source})
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_suffix(".csv")
        return atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))

    def add_to_training_set(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """Store the segmented image and its class labels as they are now (the user's corrections
        included) as a pair in the training folder (the Train widget's): ``images/NAME.tif`` and
        ``masks/NAME.tif``, a new name if one exists. Atomic writes. Returns both paths."""
        from ..core.files import write_tiff
        from ..core.training.finetune import check_pairs

        layers = self._labels_layers()
        classes = [ly for ly in layers if "class_names" in ly.metadata]
        cells = [ly for ly in layers if "class_name" in ly.metadata]
        image = getattr(self, "_last_image", None)
        if self.last_outcome is None or not layers or image is None or image not in self.viewer.layers:
            raise InputImageError("nothing to add: segment an image first (its image and labels layers must still "
                                  "be in the viewer)")
        names = tuple(classes[0].metadata["class_names"]) if classes else None
        if classes:
            labels = np.asarray(classes[0].data)
        else:  # only the cell layers: each cell's class from its layer
            from ..core.bundle import peek_bundle

            names = tuple(peek_bundle(self.last_outcome_bundle)[0].class_names)
            labels = np.zeros(np.shape(cells[0].data), np.uint8)
            for ly in cells:
                labels[np.asarray(ly.data) > 0] = names.index(ly.metadata["class_name"])
        data = np.asarray(image.data[0] if image.multiscale else image.data)
        if image.rgb:
            data = data[..., 0]
        check_pairs([data], [labels], [image.name], names)  # the same checks as training
        folder = Path(folder) if folder is not None else _settings.training_folder()
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in image.name) or "image"
        n, name = 1, stem
        while (folder / "images" / f"{name}.tif").exists() or (folder / "masks" / f"{name}.tif").exists():
            n += 1
            name = f"{stem}_{n}"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        mask = write_tiff(folder / "masks" / f"{name}.tif", labels.astype(np.uint8))
        img = write_tiff(folder / "images" / f"{name}.tif", data)  # the image last: a pair is complete once listed
        return img, mask

    def _add_to_training(self, *_) -> None:
        from ._jobs import notify_error

        try:
            img, _ = self.add_to_training_set()
        except (PGDiffSegError, OSError) as e:
            notify_error(e)
            return
        folder = img.parent.parent
        n = len(list((folder / "masks").glob("*.tif")))
        self.status.value = f"added {img.stem} to the training set {folder} ({n} pair(s))"
        show_info(f"PG-DiffSeg: added {img.stem} to the training set {folder} ({n} pair(s)); train on it in "
                  "'Train PG-DiffSeg on your labels'")

    def save_cells(self, path: str | Path) -> Path:
        """Write the last run's per-cell table (`<name>_cells.csv` columns; a '# ...' line first
        when the dry mass could not be computed, saying why). Atomic."""
        from ..core.files import atomic_write

        if self.last_outcome is None:
            raise InputImageError("no result to save: run the segmentation first")
        s = self.last_outcome.summary
        text = cells_csv_text(s.get("cells", []), s.get("mass_note", ""), stack=bool(s.get("per_plane")))
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_suffix(".csv")
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def show_cell_table(self, *_):
        """The cell table dock (`_cell_table.CellTable`) with the last run's cells: sorting, and a
        selected row selects the cell in its layer (and the other way round). Returns the table."""
        from ._cell_table import show_cell_table

        if self.last_outcome is None:
            return None
        s = self.last_outcome.summary
        layers = {ly.metadata["class_name"]: ly.name for ly in self._labels_layers()
                  if "class_name" in ly.metadata and len(ly.features)}
        rows = [r for r in s.get("cells", []) if r["class"] in layers]
        if not rows:
            return None
        return show_cell_table(self.viewer, rows, layers, self.last_outcome.source)

    def _tracks_layer(self):
        """The last run's Tracks layer, or None."""
        if self.last_outcome is None:
            return None
        name = f"{self.last_outcome.source} pgdiffseg tracks"
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def show_track_table(self, *_):
        """The track table dock (`_cell_table.TrackTable`) with the last time-lapse run's tracks:
        sorting, and a selected row moves the time slider to the frame the cell dies. Returns it."""
        from ._cell_table import show_track_table

        layer = self._tracks_layer()
        tracks = self.last_outcome.summary.get("tracks", []) if self.last_outcome is not None else []
        if layer is None or not tracks:
            return None
        return show_track_table(self.viewer, tracks, layer.name, self.last_outcome.source)

    def _ask_save_cells(self, *_) -> None:
        self._ask_and_save("Save cells", "CSV (*.csv)", f"{self.last_outcome.source}_cells.csv", self.save_cells)

    def _ask_save_labels(self, *_) -> None:
        self._ask_and_save("Save labels", "TIFF (*.tif *.tiff)", f"{self.last_outcome.source}_labels.tif",
                           self.save_labels)

    def _ask_save_table(self, *_) -> None:
        self._ask_and_save("Save table", "CSV (*.csv)", f"{self.last_outcome.source}_summary.csv", self.save_table)

    def _ask_and_save(self, title: str, filters: str, name: str, save) -> None:
        from qtpy.QtWidgets import QFileDialog

        from ._jobs import notify_error

        path, _ = QFileDialog.getSaveFileName(self.native, title, name, filters)
        if not path:
            return
        try:
            out = save(path)
        except (PGDiffSegError, OSError) as e:  # e.g. the model folder is gone: one line, no traceback
            notify_error(e)
            return
        names = ", ".join(str(p) for p in (out if isinstance(out, list) else [out]))
        self.status.value = f"saved {names}"
        show_info(f"PG-DiffSeg: saved {names}")

    def _on_cancelled(self) -> None:
        show_info("PG-DiffSeg: segmentation cancelled; no layer was changed")

    def _on_finished(self) -> None:
        super()._on_finished()
        self.preview.resume()

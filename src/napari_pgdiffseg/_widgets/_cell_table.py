"""The cell table dock: one row per cell of a Segment run, sortable, tied to the cell layers;
and the track table dock of a time-lapse run, tied to its Tracks layer and the time slider.

Selecting a row makes that cell's layer active, selects the cell (`Labels.selected_label`)
and centres the view on it; picking a cell in the viewer (the layer's selected label)
selects its row. napari's own "Features table widget" lists the same `features`, but it
selects a Labels layer's label by the row's *position*, not by the ``index`` column that
maps rows to cell ids, so on cell layers (ids 3, 7, 12 ... of one class) it would select the
wrong cell: hence this small table of our own, on Qt's model/view classes.
"""

from __future__ import annotations

import math

import numpy as np
from collections.abc import Sequence

from qtpy.QtCore import QSortFilterProxyModel, Qt
from qtpy.QtGui import QStandardItem, QStandardItemModel
from qtpy.QtWidgets import QAbstractItemView, QLabel, QTableView, QVBoxLayout, QWidget

from ..core.measure import CELL_COLUMNS

#: The columns shown (a 2D run has no plane) and their headers.
COLUMNS = tuple(c for c in CELL_COLUMNS if c != "plane")
HEADERS = {"cell_id": "id", "class": "class", "area_px": "area (px)", "area_um2": "area (um²)",
           "centroid_y": "y", "centroid_x": "x", "mean_phase_rad": "mean phase (rad)",
           "integrated_phase_rad": "phase sum (rad)", "dry_mass_pg": "dry mass (pg)"}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2  # (class, cell id) of a row
DOCK_NAME = "PG-DiffSeg cells"


def _text(column: str, value) -> tuple[str, object]:
    """(display text, sort value) of one table cell; unknown numbers show empty and sort last."""
    if column == "class":
        return str(value), str(value)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "", math.inf
    if column in ("cell_id", "area_px"):
        return str(int(value)), float(value)
    v = float(value)
    return (f"{v:.1f}" if column in ("centroid_y", "centroid_x", "area_um2") else f"{v:.4g}"), v


class SortableTable(QWidget):
    """A read-only table of dict rows on Qt's model/view classes: one row selected at a time,
    columns sorted by value (not by text), each row carrying a key (`KEY_ROLE`)."""

    columns: tuple[str, ...] = ()
    headers: dict[str, str] = {}
    text_columns: tuple[str, ...] = ()  # left-aligned; the others are numbers

    def __init__(self, viewer, empty_title: str, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.rows: list[dict] = []
        self.title = QLabel(empty_title)
        self.model = QStandardItemModel(0, len(self.columns), self)
        self.model.setHorizontalHeaderLabels([self.headers[c] for c in self.columns])
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.selectionModel().selectionChanged.connect(self._row_selected)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.view)
        self._syncing = False

    def row_key(self, row: dict):
        raise NotImplementedError

    def text(self, column: str, value) -> tuple[str, object]:
        return _text(column, value)

    def fill(self, rows: Sequence[dict]) -> None:
        """Replace the rows (filled unsorted, then sorted once)."""
        self.rows = [dict(r) for r in rows]
        self.view.setSortingEnabled(False)
        self.model.removeRows(0, self.model.rowCount())
        for r in self.rows:
            items = []
            for c in self.columns:
                text, key = self.text(c, r.get(c))
                item = QStandardItem(text)
                item.setData(key, SORT_ROLE)
                item.setData(self.row_key(r), KEY_ROLE)
                if c not in self.text_columns:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                items.append(item)
            self.model.appendRow(items)
        self.view.setSortingEnabled(True)
        self.view.resizeColumnsToContents()

    def selected_key(self):
        rows = self.view.selectionModel().selectedRows()
        return None if not rows else rows[0].data(KEY_ROLE)

    def _row_selected(self, *_) -> None:
        key = self.selected_key()
        if key is None or self._syncing:
            return
        self.key_selected(key)

    def key_selected(self, key) -> None:
        raise NotImplementedError

    def _select_row(self, key) -> None:
        """Select (and scroll to) the row of `key` without acting on it; none if no row has it."""
        for i in range(self.proxy.rowCount()):
            index = self.proxy.index(i, 0)
            if index.data(KEY_ROLE) == key:
                if self.selected_key() != key:
                    self._syncing = True
                    try:
                        self.view.selectRow(i)
                    finally:
                        self._syncing = False
                self.view.scrollTo(index)
                return
        self._syncing = True
        try:
            self.view.clearSelection()
        finally:
            self._syncing = False

    def sorted_column(self, column: str) -> list:
        """The shown values of `column`, top to bottom (tests, and what the user sees)."""
        j = self.columns.index(column)
        return [self.proxy.index(i, j).data(SORT_ROLE) for i in range(self.proxy.rowCount())]


class CellTable(SortableTable):
    """The cells of one Segment run: rows from `measure.cell_table`, the layers by class name."""

    columns = COLUMNS
    headers = HEADERS
    text_columns = ("class",)

    def __init__(self, viewer, parent=None):
        super().__init__(viewer, "no cells yet: segment an image with cell layers", parent)
        self.layer_names: dict[str, str] = {}
        self._watched: list = []

    def row_key(self, row: dict):
        return (str(row["class"]), int(row["cell_id"]))

    # -- contents
    def set_cells(self, rows: Sequence[dict], layer_names: dict[str, str], title: str) -> None:
        """Show `rows` (one dict per cell, `CELL_COLUMNS`); `layer_names`: class -> cell layer name."""
        self._unwatch()
        self.layer_names = dict(layer_names)
        self.fill(rows)
        self.title.setText(f"{title}: {len(self.rows)} cell(s); select a row to select the cell, click a column "
                           "to sort")
        for cls, name in self.layer_names.items():
            layer = self._layer(cls)
            if layer is not None:
                cb = (lambda *_, c=cls: self._label_picked(c))
                layer.events.selected_label.connect(cb)
                self._watched.append((layer, cb))

    def _unwatch(self) -> None:
        for layer, cb in self._watched:
            try:
                layer.events.selected_label.disconnect(cb)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._watched = []

    def _layer(self, cls: str):
        name = self.layer_names.get(cls)
        return self.viewer.layers[name] if name is not None and name in self.viewer.layers else None

    # -- row -> viewer
    def key_selected(self, key) -> None:
        self.select_cell(*key)

    def select_cell(self, cls: str, cell_id: int) -> bool:
        """Make `cls`'s cell layer active, select `cell_id` in it and centre the view on it."""
        layer = self._layer(cls)
        if layer is None:
            self.title.setText(f"the '{cls}' cell layer is gone: segment again to tie the table to new layers")
            return False
        row = next((r for r in self.rows if str(r["class"]) == cls and int(r["cell_id"]) == cell_id), None)
        self._syncing = True
        try:
            self.viewer.layers.selection.active = layer
            layer.selected_label = int(cell_id)
            if row is not None and row.get("centroid_y") is not None:
                y, x = float(row["centroid_y"]), float(row["centroid_x"])
                world = layer.data_to_world([*([0] * (layer.ndim - 2)), y, x])
                self.viewer.camera.center = tuple(world)[-2:]
        finally:
            self._syncing = False
        self._select_row((cls, cell_id))
        return True

    # -- viewer -> row
    def _label_picked(self, cls: str) -> None:
        layer = self._layer(cls)
        if layer is None or self._syncing:
            return
        self._select_row((cls, int(layer.selected_label)))

    def closeEvent(self, event):  # noqa: N802 - Qt's name
        self._unwatch()
        super().closeEvent(event)


def show_cell_table(viewer, rows: Sequence[dict], layer_names: dict[str, str], title: str) -> CellTable:
    """The viewer's cell table dock (made once, then refilled) showing `rows`."""
    docks = viewer.window.dock_widgets
    table = docks[DOCK_NAME] if DOCK_NAME in docks else None  # [] gives the inner widget; .get the dock
    if not isinstance(table, CellTable):
        table = CellTable(viewer)
        viewer.window.add_dock_widget(table, name=DOCK_NAME, area="right", tabify=True)
    table.set_cells(rows, layer_names, title)
    return table


# --------------------------------------------------------------------------- tracks

TRACK_TABLE_COLUMNS = ("track_id", "first_frame", "last_frame", "frames", "first_class", "last_class",
                       "dead_from_frame", "dry_mass_first_pg", "dry_mass_last_pg")
TRACK_HEADERS = {"track_id": "track", "first_frame": "first frame", "last_frame": "last frame", "frames": "frames",
                 "first_class": "first class", "last_class": "last class", "dead_from_frame": "dead from frame",
                 "dry_mass_first_pg": "dry mass first (pg)", "dry_mass_last_pg": "dry mass last (pg)"}
TRACK_DOCK_NAME = "PG-DiffSeg tracks"
_INT_COLUMNS = ("track_id", "first_frame", "last_frame", "frames", "dead_from_frame")


class TrackTable(SortableTable):
    """The tracks of one time-lapse run (`tracking.track_rows`): sort by the frame a cell dies
    or its dry mass; selecting a row moves the time slider to the frame the cell dies (or its
    first frame) and centres the view on the cell there."""

    columns = TRACK_TABLE_COLUMNS
    headers = TRACK_HEADERS
    text_columns = ("first_class", "last_class")

    def __init__(self, viewer, parent=None):
        super().__init__(viewer, "no tracks yet: segment a time-lapse stack", parent)
        self.layer_name = ""

    def row_key(self, row: dict):
        return int(row["track_id"])

    def text(self, column: str, value) -> tuple[str, object]:
        if column in self.text_columns:
            return str(value), str(value)
        if column in _INT_COLUMNS and value is not None and value != "":
            return str(int(value)), float(value)
        return _text(column, value)

    def set_tracks(self, rows: Sequence[dict], layer_name: str, title: str) -> None:
        self.layer_name = layer_name
        self.fill(rows)
        dying = sum(1 for r in self.rows if r.get("dead_from_frame"))
        self.title.setText(f"{title}: {len(self.rows)} track(s), {dying} die; select a row to go to the frame "
                           "where the cell dies (or first appears)")

    def key_selected(self, key) -> None:
        self.go_to_track(int(key))

    def go_to_track(self, track_id: int) -> int | None:
        """Move the view to the track's death frame (else its first frame); returns that frame (1-based)."""
        row = next((r for r in self.rows if int(r["track_id"]) == track_id), None)
        layer = self.viewer.layers[self.layer_name] if self.layer_name in self.viewer.layers else None
        if row is None or layer is None:
            self.title.setText("the tracks layer is gone: segment the time-lapse again")
            return None
        frame = int(row.get("dead_from_frame") or row["first_frame"])
        data = np.asarray(layer.data)
        at = data[(data[:, 0] == track_id) & (data[:, 1] == frame - 1)]
        if not len(at):
            return None
        world = layer.data_to_world(at[0, 1:])
        self.viewer.dims.set_point(self.viewer.dims.ndim - 3, float(world[0]))
        self.viewer.camera.center = tuple(float(v) for v in world[-2:])
        self._select_row(track_id)
        return frame


def show_track_table(viewer, rows: Sequence[dict], layer_name: str, title: str) -> TrackTable:
    """The viewer's track table dock (made once, then refilled) showing `rows`."""
    docks = viewer.window.dock_widgets
    table = docks[TRACK_DOCK_NAME] if TRACK_DOCK_NAME in docks else None
    if not isinstance(table, TrackTable):
        table = TrackTable(viewer)
        viewer.window.add_dock_widget(table, name=TRACK_DOCK_NAME, area="right", tabify=True)
    table.set_tracks(rows, layer_name, title)
    return table

"""Time-lapse viability: cells linked across frames by overlap, per-track tables, viability over time.

Consecutive frames are linked by a one-to-one assignment that maximises the summed overlap
(IoU) of the cells: scipy's `linear_sum_assignment` on the IoU matrix, matches below
`min_iou` refused. A cell with no match starts a new track; a track that finds no match
ends (no gap closing: a cell missed in one frame becomes two tracks; laptrack adds gap
closing and splitting for data that needs them). The IoU matrix comes from scikit-image's
contingency table of the two id images, not from per-pair masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .errors import ConfigError

TRACK_COLUMNS = ("track_id", "first_frame", "last_frame", "frames", "first_class", "last_class",
                 "dead_from_frame", "dry_mass_first_pg", "dry_mass_last_pg", "dry_mass_pg_by_frame")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every cell of `a` (ids 1..A) with every cell of `b` (1..B): (A, B) float64, from
    scikit-image's contingency table of the two id images (pixel counts of every id pair)."""
    from skimage.metrics import contingency_table

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if a.shape != b.shape:
        raise ConfigError(f"frames of a time-lapse must have one shape, got {a.shape} and {b.shape}")
    na, nb = int(a.max(initial=0)), int(b.max(initial=0))
    if na == 0 or nb == 0:
        return np.zeros((na, nb))
    full = np.zeros((na + 1, nb + 1))
    table = contingency_table(a, b).toarray()  # shape (max id of a + 1, max id of b + 1)
    full[: table.shape[0], : table.shape[1]] = table
    area_a, area_b = full.sum(axis=1), full.sum(axis=0)
    inter = full[1:, 1:]
    union = area_a[1:, None] + area_b[None, 1:] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def link_frames(frames: Sequence[np.ndarray], min_iou: float = 0.2) -> list[dict[int, int]]:
    """For each frame, {cell id: track id}; tracks are numbered 1, 2, ... in order of appearance."""
    if not 0 < min_iou <= 1:
        raise ConfigError(f"min_iou must be in (0, 1], got {min_iou!r}")
    out: list[dict[int, int]] = []
    next_track = 1
    prev = None
    for ids in frames:
        ids = np.asarray(ids)
        cells = [int(c) for c in np.unique(ids) if c > 0]
        assign: dict[int, int] = {}
        if prev is not None and cells and out[-1]:
            iou = iou_matrix(prev, ids)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= min_iou and (r + 1) in out[-1] and (c + 1) in cells:
                    assign[c + 1] = out[-1][r + 1]
        for c in cells:
            if c not in assign:
                assign[c] = next_track
                next_track += 1
        out.append(assign)
        prev = ids
    return out


def track_rows(links: Sequence[dict[int, int]], cell_rows: Sequence[dict], dead: str = "dead") -> list[dict]:
    """One row per track from the per-cell rows (`measure.cell_table`, with ``plane`` = frame 1..T):
    first/last frame, first/last class, the frame from which it is `dead` (after being
    another class; empty if it never dies or is dead from its first frame), dry mass first,
    last and per frame."""
    by_cell = {(int(r["plane"] or 1), int(r["cell_id"])): r for r in cell_rows}
    tracks: dict[int, list[tuple[int, dict]]] = {}
    for t, assign in enumerate(links, 1):
        for cid, tid in assign.items():
            row = by_cell.get((t, cid))
            if row is not None:
                tracks.setdefault(tid, []).append((t, row))
    out = []
    for tid in sorted(tracks):
        seq = sorted(tracks[tid], key=lambda x: x[0])
        classes = [r["class"] for _, r in seq]
        dead_from = None
        if classes[0] != dead:
            dead_from = next((t for t, r in seq if r["class"] == dead), None)
        masses = [r.get("dry_mass_pg") for _, r in seq]
        out.append({
            "track_id": tid, "first_frame": seq[0][0], "last_frame": seq[-1][0], "frames": len(seq),
            "first_class": classes[0], "last_class": classes[-1], "dead_from_frame": dead_from,
            "dry_mass_first_pg": masses[0], "dry_mass_last_pg": masses[-1],
            "dry_mass_pg_by_frame": ";".join("" if m is None else f"{m:.4g}" for m in masses),
        })
    return out


def viability_over_time(cell_rows: Sequence[dict], n_frames: int, live: str = "live", dead: str = "dead"
                        ) -> list[dict]:
    """Per frame: live and dead cell counts and viability % (NaN without cells)."""
    out = []
    for t in range(1, n_frames + 1):
        cls = [r["class"] for r in cell_rows if int(r["plane"] or 1) == t]
        n_live, n_dead = cls.count(live), cls.count(dead)
        via = 100.0 * n_live / (n_live + n_dead) if n_live + n_dead else float("nan")
        out.append({"frame": t, "live_cells": n_live, "dead_cells": n_dead, "viability_percent": via})
    return out


def tracks_layer_data(links: Sequence[dict[int, int]], cell_rows: Sequence[dict]) -> np.ndarray:
    """napari Tracks data: (N, 4) rows of track id, frame (0-based), centroid y, x."""
    by_cell = {(int(r["plane"] or 1), int(r["cell_id"])): r for r in cell_rows}
    data = [(tid, t - 1, by_cell[(t, cid)]["centroid_y"], by_cell[(t, cid)]["centroid_x"])
            for t, assign in enumerate(links, 1) for cid, tid in assign.items() if (t, cid) in by_cell]
    data.sort(key=lambda r: (r[0], r[1]))
    return np.asarray(data, np.float64).reshape(-1, 4)


def tracks_csv_text(rows: Sequence[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(TRACK_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r[k] is None else (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k])
                    for k in TRACK_COLUMNS})
    return buf.getvalue()


def viability_figure(path, viability: Sequence[dict], title: str = "") -> None:
    """PNG of viability % and live/dead counts per frame (matplotlib, no display), atomically."""
    from matplotlib.figure import Figure

    from .files import atomic_write

    t = [v["frame"] for v in viability]
    fig = Figure(figsize=(6, 3.2), tight_layout=True)
    ax = fig.add_subplot(111)
    ax.plot(t, [v["viability_percent"] for v in viability], "o-", color="#009e73", label="viability %")
    ax.set_xlabel("frame")
    ax.set_ylabel("viability (%)")
    ax.set_ylim(-2, 102)
    ax2 = ax.twinx()
    ax2.plot(t, [v["live_cells"] for v in viability], "--", color="#00be6e", lw=1, label="live cells")
    ax2.plot(t, [v["dead_cells"] for v in viability], "--", color="#e628c8", lw=1, label="dead cells")
    ax2.set_ylabel("cells")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize="small", loc="lower left")
    if title:
        ax.set_title(title, fontsize="small")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


__all__ = ["TRACK_COLUMNS", "iou_matrix", "link_frames", "track_rows", "tracks_csv_text", "tracks_layer_data",
           "viability_figure", "viability_over_time"]

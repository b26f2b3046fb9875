"""Cancelling a batch and starting it again gives exactly the outputs of an uninterrupted run."""

import csv
import threading

import numpy as np
import pytest
import tifffile

from napari_pgdiffseg import SegmentConfig
from napari_pgdiffseg.core.batch import CSV_NAME, segment_files
from napari_pgdiffseg.core.errors import SegmentationCancelled

CFG = SegmentConfig(inversion_steps=2, sampling_steps=2, noise_metrics=False, device="cpu")
RESULT_COLUMNS = ("planes", "fraction_background", "fraction_live", "fraction_dead", "live_cells", "dead_cells", "nfe")


def _frames(folder, n=4):
    folder.mkdir()
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        p = folder / f"f{i}.tif"
        tifffile.imwrite(p, rng.normal(size=(48, 40)).astype(np.float32))
        paths.append(p)
    return paths


def _table(out):
    with open(out / CSV_NAME) as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


def test_cancel_then_restart_equals_an_uninterrupted_run(tiny_bundle, tmp_path):
    paths = _frames(tmp_path / "in")
    segment_files(paths, tiny_bundle, CFG, tmp_path / "a")

    stop = threading.Event()

    def on_file(i, n, row):
        if i == 1:
            stop.set()  # cancel during the third file

    with pytest.raises(SegmentationCancelled):
        segment_files(paths, tiny_bundle, CFG, tmp_path / "b", on_file=on_file, cancel=stop)
    done = sorted(p.name for p in (tmp_path / "b").glob("*_labels.tif"))
    assert done == ["f0_labels.tif", "f1_labels.tif"]
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]  # no temporary files
    rows = segment_files(paths, tiny_bundle, CFG, tmp_path / "b")
    assert [r["status"].split(":")[0] for r in rows] == ["skipped", "skipped", "ok", "ok"]

    a_files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert a_files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in a_files:
        if name.endswith(".tif"):
            assert np.array_equal(tifffile.imread(tmp_path / "a" / name), tifffile.imread(tmp_path / "b" / name))
    ta, tb = _table(tmp_path / "a"), _table(tmp_path / "b")
    assert ta.keys() == tb.keys()
    for f in ta:  # the resumed table keeps the earlier run's numbers for skipped files
        assert [ta[f][c] for c in RESULT_COLUMNS] == [tb[f][c] for c in RESULT_COLUMNS]

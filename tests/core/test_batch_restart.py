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


def test_the_table_is_rounded_with_paths_relative_to_it_and_still_resumes(tiny_bundle, tmp_path):
    paths = _frames(tmp_path / "in")
    out = tmp_path / "out"
    segment_files(paths, tiny_bundle, CFG, out)
    text = (out / CSV_NAME).read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["file"] for r in rows] == [f"../in/{p.name}" for p in paths]
    assert rows[0]["output"] == paths[0].stem + "_labels.tif" and str(tmp_path) not in text
    for r in rows:  # 4 significant digits at most, seconds to 0.01 s
        for key in ("fraction_background", "fraction_live", "fraction_dead"):
            assert len(r[key].replace(".", "").lstrip("0")) <= 4, (key, r[key])
        assert len(r["seconds"].split(".")[1]) == 2
    # A second run finds the outputs through the relative paths and keeps their numbers.
    again = segment_files(paths, tiny_bundle, CFG, out)
    assert [r["status"] for r in again] == ["skipped: output exists"] * len(paths)
    assert again[0]["fraction_live"] == rows[0]["fraction_live"]
    assert list(csv.DictReader((out / CSV_NAME).read_text().splitlines()))[0]["fraction_live"] == rows[0]["fraction_live"]

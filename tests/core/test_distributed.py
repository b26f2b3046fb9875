"""Batch segmentation on Dask: a LocalCluster of 2 worker processes, and a worker killed mid-batch."""

import csv
import os
import signal

import numpy as np
import pytest
import tifffile
import torch

from napari_pgdiffseg import SegmentConfig
from napari_pgdiffseg.core.batch import CSV_NAME, segment_files
from napari_pgdiffseg.core.errors import ConfigError

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

CFG = SegmentConfig(inversion_steps=10, sampling_steps=10, noise_metrics=False, device="cpu")


def _frames(folder, n, bad=False):
    folder.mkdir()
    rng = np.random.default_rng(5)
    paths = []
    for i in range(n):
        p = folder / f"f{i}.tif"
        tifffile.imwrite(p, rng.normal(size=(160, 136)).astype(np.float32))
        paths.append(p)
    if bad:
        p = folder / "rgb.tif"
        tifffile.imwrite(p, rng.integers(0, 255, size=(40, 40, 3), dtype=np.uint8))
        paths.append(p)
    return paths


def _table(out):
    """The CSV's rows with its paths (relative to the table's folder) made absolute again."""
    from napari_pgdiffseg.core.batch import file_key

    with open(out / CSV_NAME) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["file"] = file_key(out / r["file"])
    return rows


def _labels(out):
    return {p.name: tifffile.imread(p) for p in sorted(out.glob("*_labels.tif"))}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def _on_workers(c, fn):
    """fn() on every worker, through a client of its own (closed before segment_files opens
    one: one client at a time, as in the CLI)."""
    with distributed.Client(c.scheduler_address, set_as_default=False) as client:
        return client.run(fn)


def test_local_cluster_writes_every_output_and_the_csv(tiny_bundle_dir, tmp_path):
    paths = _frames(tmp_path / "in", 4, bad=True)
    rows = segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "out", scheduler="local", workers=2)
    assert [r["file"] for r in rows] == [str(p) for p in paths]  # input order, one row each
    assert [r["status"] for r in rows[:4]] == ["ok"] * 4
    assert rows[4]["status"].startswith("error:") and "RGB" in rows[4]["status"]
    assert len({r["worker_pid"] for r in rows}) >= 1 and all(r["worker_pid"] != os.getpid() for r in rows)
    table = _table(tmp_path / "out")
    assert [r["file"] for r in table] == [str(p) for p in paths]
    assert not os.path.isabs(open(tmp_path / "out" / CSV_NAME).read().splitlines()[1].split(",")[0])
    assert [r["status"] for r in table[:4]] == ["ok"] * 4 and table[0]["nfe"] == "20"
    assert sorted(_labels(tmp_path / "out")) == [f"f{i}_labels.tif" for i in range(4)]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files

    # The same files in this process, with the workers' torch threads (cores // 2 workers;
    # thread counts split CPU reductions differently): the same labels (same seeds, one
    # tile per network call).
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        segment_files(paths[:4], tiny_bundle_dir, CFG, tmp_path / "here")
    finally:
        torch.set_num_threads(threads)
    here, there = _labels(tmp_path / "here"), _labels(tmp_path / "out")
    assert here.keys() == there.keys()
    for name in here:
        assert here[name].dtype == np.uint8 and np.array_equal(here[name], there[name])


def test_each_worker_loads_the_bundle_once(cluster, tiny_bundle_dir, tmp_path):
    c = cluster
    paths = _frames(tmp_path / "in", 6)
    rows = segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "out", scheduler=c.scheduler_address)
    assert [r["status"] for r in rows] == ["ok"] * 6
    loads = _on_workers(c, lambda: dict(__import__("napari_pgdiffseg.core.distributed", fromlist=["LOADS"]).LOADS))
    assert len(loads) == 2
    assert all(v == {str(tiny_bundle_dir): 1} for v in loads.values())


def test_killing_a_worker_mid_batch_loses_and_duplicates_nothing(cluster, tiny_bundle_dir, tmp_path):
    c = cluster
    paths = _frames(tmp_path / "in", 8)
    reference = segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "ref", scheduler=c.scheduler_address)
    assert [r["status"] for r in reference] == ["ok"] * 8

    pids = _on_workers(c, os.getpid)
    victim = sorted(pids.values())[0]
    killed = []

    def on_file(i, n, row):
        if not killed:  # after the first file: the other tasks are running or queued
            os.kill(victim, signal.SIGKILL)
            killed.append(i)

    rows = segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "out", scheduler=c.scheduler_address,
                         on_file=on_file)
    assert killed == [0]
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)  # the worker is gone; its nanny started a new one
    assert [r["status"] for r in rows] == ["ok"] * 8
    table = _table(tmp_path / "out")
    assert sorted(r["file"] for r in table) == sorted(str(p) for p in paths)  # once each
    out, ref = _labels(tmp_path / "out"), _labels(tmp_path / "ref")
    assert out.keys() == ref.keys() and len(out) == 8
    for name in out:
        assert np.array_equal(out[name], ref[name])
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_bad_scheduler_and_in_memory_bundle_are_clear_errors(tiny_bundle, tmp_path):
    paths = _frames(tmp_path / "in", 1)
    with pytest.raises(ConfigError, match="neither 'local' nor an address"):
        segment_files(paths, None, CFG, tmp_path / "out", scheduler="bogus")
    with pytest.raises(ConfigError, match="save_bundle it"):
        segment_files(paths, tiny_bundle, CFG, tmp_path / "out", scheduler="local")
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        segment_files(paths, None, CFG, tmp_path / "out", scheduler="local", workers=0)


def test_cancel_then_restart_on_the_cluster_equals_an_uninterrupted_run(cluster, tiny_bundle_dir, tmp_path):
    import threading

    from napari_pgdiffseg.core.errors import SegmentationCancelled

    c = cluster
    paths = _frames(tmp_path / "in", 6)
    segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "a", scheduler=c.scheduler_address)
    stop = threading.Event()
    with pytest.raises(SegmentationCancelled):
        segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "b", scheduler=c.scheduler_address,
                      on_file=lambda i, n, row: stop.set(), cancel=stop)
    partial = _table(tmp_path / "b")
    assert 1 <= len(partial) < 6 and all(r["status"] == "ok" for r in partial)
    # (.*.tmp files in b/ at this point could only be those of tasks still running)
    rows = segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "b", scheduler=c.scheduler_address)
    assert len(rows) == 6 and all(r["status"] in ("ok", "skipped: output exists") for r in rows)
    a, b = _labels(tmp_path / "a"), _labels(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]


def test_a_users_own_client_in_this_process_is_left_alone(cluster, tiny_bundle_dir, tmp_path):
    c = cluster
    paths = _frames(tmp_path / "in", 3)
    with distributed.Client(c.scheduler_address) as mine:  # the process's default client
        for _ in range(2):  # twice: the batch's own client must not take over the default
            rows = segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "out", scheduler=c.scheduler_address,
                                 overwrite=True)
            assert [r["status"] for r in rows] == ["ok"] * 3
        assert distributed.default_client() is mine and mine.submit(sum, [1, 2]).result() == 3


def test_failed_tasks_are_retried_once_then_recorded(tiny_bundle_dir, tmp_path, monkeypatch):
    from collections import Counter
    from pathlib import Path

    from napari_pgdiffseg.core import distributed as tasks

    calls = Counter()
    real = tasks.segment_file

    def flaky(path, *args, **kwargs):  # the workers below are threads of this process
        name = Path(path).name
        calls[name] += 1
        if name == "f0.tif" and calls[name] == 1:
            raise OSError("a network share went away for a moment")
        if name == "f1.tif":
            raise RuntimeError("always fails")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(tasks, "segment_file", flaky)
    paths = _frames(tmp_path / "in", 3)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        rows = segment_files(paths, tiny_bundle_dir, CFG, tmp_path / "out", scheduler=c.scheduler_address)
    assert rows[0]["status"] == "ok" and calls["f0.tif"] == 2  # failed, retried, done
    assert rows[1]["status"] == "error: RuntimeError: always fails" and calls["f1.tif"] == 2  # tried twice
    assert rows[2]["status"] == "ok" and calls["f2.tif"] == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*_labels.tif")) == ["f0_labels.tif", "f2_labels.tif"]

"""Batch segmentation on a `dask.distributed` cluster: one task per file, one bundle per worker.

`core.batch.segment_files(..., scheduler=...)` comes here; nothing in this module is a
cluster of our own: dask schedules, retries and reassigns work when a worker dies.

- Each worker loads the bundle once, when `BundleOnWorker` (a dask `WorkerPlugin`) is set
  up on it, and keeps it for every task; a worker restarted by its nanny loads it again.
- Each task segments one file (a frame, or a stack of planes kept in one labels file) and
  writes its labels itself, atomically (`core.io.write_tiff`: temp file, then rename). A
  task that dies half-way leaves no output, and a task run twice (its worker died after the
  write) writes the same bytes again: nothing is lost or duplicated.
- Bad input (`PGDiffSegError`, e.g. an RGB file) is recorded in the file's row at once; it
  would fail again. Anything else (a worker's `OSError`, `MemoryError`, ...) is retried
  once by dask (`retries=1`), then recorded with its error. Tasks lost with a dead worker
  are rescheduled by dask itself.
- The caller assembles the CSV from the returned rows (`core.batch`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, PGDiffSegError, SegmentationCancelled

# Bundles loaded in this (worker) process: {bundle dir or "" for the shipped one: Bundle}.
_BUNDLES: dict[str, object] = {}
# How often this process loaded each bundle (read by the tests through `Client.run`).
LOADS: dict[str, int] = {}

_KEY = "shipped"
# How long to try to reach a scheduler address before giving up with a clear error.
CONNECT_TIMEOUT = "10s"


def _key(bundle_dir: str | None) -> str:
    return _KEY if bundle_dir is None else str(bundle_dir)


def _load(bundle_dir: str | None):
    from .bundle import load_bundle, load_default_bundle

    key = _key(bundle_dir)
    bundle = load_default_bundle() if bundle_dir is None else load_bundle(bundle_dir)
    _BUNDLES[key] = bundle
    LOADS[key] = LOADS.get(key, 0) + 1
    return bundle


def worker_bundle(bundle_dir: str | None):
    """The bundle of this worker process (loaded by the plugin; loaded here if it was not)."""
    bundle = _BUNDLES.get(_key(bundle_dir))
    return bundle if bundle is not None else _load(bundle_dir)


def _plugin_class():
    from distributed.diagnostics.plugin import WorkerPlugin

    class BundleOnWorker(WorkerPlugin):
        """Load the model bundle once per worker, and set torch's threads for its tasks.

        bundle_dir None means the bundle shipped in the package installed on the worker.
        torch_threads None leaves torch's default (all cores: right for one worker a host).
        """

        def __init__(self, bundle_dir: str | None, torch_threads: int | None):
            self.bundle_dir = bundle_dir
            self.torch_threads = torch_threads
            self.name = f"pgdiffseg-bundle-{_key(bundle_dir)}"

        def setup(self, worker):
            import torch

            if self.torch_threads:
                torch.set_num_threads(self.torch_threads)
            _load(self.bundle_dir)

    return BundleOnWorker


def segment_task(path: str, bundle_dir: str | None, config, out_dir: str, min_area: int) -> dict:
    """One task: segment `path` on this worker, write its labels atomically, return its row.

    Bad input is returned as an error row; other exceptions propagate so that dask retries.
    """
    from .batch import segment_file

    bundle = worker_bundle(bundle_dir)
    try:
        row = segment_file(path, bundle, config, out_dir, min_area=min_area)
    except PGDiffSegError as e:
        row = {"file": str(path), "status": f"error: {e}", "output": ""}
    row["worker_pid"] = os.getpid()
    return row


def parse_scheduler(scheduler: str, workers: int | None = None) -> str:
    """'local' or a scheduler address ('tcp://host:8786', 'host:8786'); anything else is an error."""
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers}")
    text = str(scheduler).strip()
    if not text:
        raise ConfigError("the Dask scheduler is empty; give 'local' or an address such as tcp://host:8786")
    if text == "local" or "://" in text or ":" in text:
        return text
    raise ConfigError(
        f"Dask scheduler {scheduler!r} is neither 'local' nor an address such as tcp://host:8786"
    )


@contextmanager
def open_client(scheduler: str, workers: int | None = None):
    """A `distributed.Client` for `scheduler`, closed (with its LocalCluster) on exit.

    'local' starts a LocalCluster of `workers` processes (default: one per 2 cores, at
    least 1), one task at a time each, torch threads = cores // workers. An address
    connects to a running scheduler; its workers keep torch's default threads.
    Yields (client, torch_threads).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise ConfigError("the Dask scheduler needs the 'distributed' package: pip install distributed") from None
    scheduler = parse_scheduler(scheduler, workers)
    if scheduler == "local":
        cores = os.cpu_count() or 1
        n = workers or max(1, cores // 2)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster, set_as_default=False)
        try:
            yield client, max(1, cores // n)
        finally:
            client.close()
            cluster.close()
    else:
        try:
            # Not the default client: a user's own client in this process stays theirs.
            client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        try:
            yield client, None
        finally:
            client.close()


def run_distributed(
    paths: Sequence[Path],
    bundle_dir: str | None,
    config,
    out_dir: Path,
    *,
    scheduler: str,
    workers: int | None,
    on_row: Callable[[int, dict], None],
    cancelled: Callable[[], bool],
    min_area: int,
) -> None:
    """Segment `paths` on the cluster; `on_row(index, row)` as each file finishes (any order).

    Raises SegmentationCancelled when `cancelled()` turns true (pending tasks are cancelled;
    the rows so far have been handed to on_row).
    """
    from distributed import as_completed

    with open_client(scheduler, workers) as (client, threads):
        client.register_plugin(_plugin_class()(bundle_dir, threads))
        futures = {
            client.submit(segment_task, str(p), bundle_dir, config, str(out_dir), min_area,
                          key=f"pgdiffseg-{i}-{p.name}-{time.time_ns()}", retries=1, pure=False): i
            for i, p in enumerate(paths)
        }
        # as_completed would take the process's default client's loop; this client is not
        # the default (another client in this process once gave "bound to a different
        # event loop" errors), so name its loop.
        done = as_completed(futures, loop=client.loop)
        while not done.is_empty():
            if cancelled():
                client.cancel(list(futures))
                raise SegmentationCancelled("batch cancelled")
            if not done.has_ready():
                time.sleep(0.05)
                continue
            for fut in done.next_batch(block=False):
                i = futures[fut]
                if fut.status == "finished":
                    row = fut.result()
                else:  # failed twice, or lost with workers too often (KilledWorker)
                    exc = fut.exception()
                    row = {"file": str(paths[i]), "status": f"error: {type(exc).__name__}: {exc}", "output": ""}
                on_row(i, row)

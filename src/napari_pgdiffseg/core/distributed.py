"""Batch segmentation on a `dask.distributed` cluster: one task per file, one bundle per worker.

`core.batch.segment_files(..., scheduler=...)` comes here; nothing in this module is a
cluster of our own: dask schedules, retries and reassigns work when a worker dies.

- Each worker loads the bundle once, when `BundleOnWorker` (a dask `WorkerPlugin`) is set
  up on it, and keeps it for every task; a worker restarted by its nanny loads it again.
  Tasks run with cores // workers torch threads on a LocalCluster.
- Each task segments one file (a frame, or a stack of planes kept in one labels file) and
  writes its labels itself, atomically (`core.filejob`, `core.files.write_tiff`: temp file, then rename). A
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
from .filejob import error_row, segment_file

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
    from .bundle import load_model

    key = _key(bundle_dir)
    bundle = load_model(bundle_dir)
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
        """Load the model bundle once per worker (bundle_dir None: the one shipped in the
        package installed on the worker)."""

        def __init__(self, bundle_dir: str | None):
            self.bundle_dir = bundle_dir
            self.name = f"pgdiffseg-bundle-{_key(bundle_dir)}"

        def setup(self, worker):
            _load(self.bundle_dir)

    return BundleOnWorker


def segment_task(path: str, bundle_dir: str | None, config, out_dir: str, min_area: int | None,
                 torch_threads: int | None = None, calibration=None, time_lapse: bool | None = None,
                 channel=None) -> dict:
    """One task: segment `path` on this worker, write its labels atomically, return its row.

    Bad input is returned as an error row; other exceptions propagate so that dask retries.
    torch_threads is set here, in the task's own thread: OpenMP keeps the thread count per
    thread, so the plugin's setting (made in another thread) does not reach the tasks.
    """
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    bundle = worker_bundle(bundle_dir)
    try:
        row = segment_file(path, bundle, config, out_dir, min_area=min_area, calibration=calibration,
                           time_lapse=time_lapse, channel=channel)
    except PGDiffSegError as e:
        row = error_row(path, e)
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


def default_workers() -> int:
    """Workers of a LocalCluster: one per core (one torch thread each) on CPUs, one with a GPU.

    On 2 cores, 2 one-thread workers segmented 8 frames 1.7x faster than 1 two-thread
    worker (benchmarks/results/batch_scaling_cpu.md): OpenMP teams of several threads slow
    down whenever the worker's own event loop or the scheduler takes a core for a moment.
    Workers of a LocalCluster share GPU 0; for one worker per GPU start a dask-cuda
    LocalCUDACluster and pass its address.
    """
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, os.cpu_count() or 1)


@contextmanager
def open_client(scheduler: str, workers: int | None = None):
    """A `distributed.Client` for `scheduler`, closed (with its LocalCluster) on exit.

    'local' starts a LocalCluster of `workers` processes (default: `default_workers()`),
    one task at a time each, torch threads = cores // workers. An address
    connects to a running scheduler; its workers keep torch's default threads.
    Yields (client, torch_threads).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise ConfigError("the Dask scheduler needs the 'distributed' package: pip install distributed") from None
    scheduler = parse_scheduler(scheduler, workers)
    if scheduler == "local":
        import dask

        cores = os.cpu_count() or 1
        n = workers or default_workers()
        threads = max(1, cores // n)
        # dask's nanny puts MALLOC_TRIM_THRESHOLD_=65536 into the environment of the workers
        # (and of this process, before it spawns them). That setting also switches off
        # glibc's adaptive mmap threshold, so every large tensor is mmap'ed and unmapped
        # again: an 832 px frame took 1.79x as long with it (benchmarks/malloc_trim.py:
        # 20.6 s against 11.5 s in a fresh process, one torch thread).
        key = "distributed.nanny.pre-spawn-environ"
        trim = dask.config.get(f"{key}.MALLOC_TRIM_THRESHOLD_", None)
        if trim is not None and os.environ.get("MALLOC_TRIM_THRESHOLD_") == str(trim):
            del os.environ["MALLOC_TRIM_THRESHOLD_"]  # left behind by an earlier cluster
        with dask.config.set({f"{key}.MALLOC_TRIM_THRESHOLD_": None, f"{key}.OMP_NUM_THREADS": threads,
                              f"{key}.MKL_NUM_THREADS": threads}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster, set_as_default=False)
        try:
            yield client, threads
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
    min_area: int | None,
    calibration=None,
    time_lapse: bool | None = None,
    channel=None,
) -> None:
    """Segment `paths` on the cluster; `on_row(index, row)` as each file finishes (any order).

    Raises SegmentationCancelled when `cancelled()` turns true (pending tasks are cancelled;
    the rows so far have been handed to on_row).
    """
    from distributed import as_completed

    with open_client(scheduler, workers) as (client, threads):
        client.register_plugin(_plugin_class()(bundle_dir))
        futures = {
            client.submit(segment_task, str(p), bundle_dir, config, str(out_dir), min_area, threads, calibration,
                          time_lapse, channel,
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
                    row = error_row(paths[i], exc, with_type=True)
                on_row(i, row)

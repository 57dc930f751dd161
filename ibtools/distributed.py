"""Run a sweep's units on Dask workers: a local cluster of processes, or any running Dask
scheduler (and so any cluster that Dask reaches, e.g. SLURM or PBS through dask-jobqueue).

The coordinator (the process that calls :func:`ibtools.sweep.run_sweep`) keeps the cache: it
submits each unfinished unit as one task, receives the finished :class:`~ibtools.results.RunResult`
and writes it atomically into its own cache directory. Workers never write results, so a result
lands where the coordinator says and is stored once. Dask reschedules the task of a worker that
dies; a unit whose worker died is recomputed elsewhere (from its checkpoint when the worker
shares the cache's filesystem), and nothing finished is recomputed. A unit that fails for a reason
of its own (bad parameters, an exception in training) is reported with its configuration and
does not stop the others.

Security: a local cluster (``n_workers``) listens on loopback only (scheduler, nannies, workers
and the dashboard), so nothing on the network can reach it. Dask's own protocol carries pickled
functions and has no authentication of its own: whoever can connect to a scheduler can run code
on its workers. A real cluster must therefore be reachable only by its users: a private network,
an SSH tunnel, or TLS with client certificates (see the book's *Scaling out* page).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from .config import TrainConfig
from .validation import check_int

__all__ = ["DaskExecutor", "UnitFailure", "SweepFailed", "compute_unit"]


class UnitFailure(RuntimeError):
    """A unit failed on a worker; ``config`` says which."""

    def __init__(self, config: TrainConfig, error: BaseException):
        self.config, self.error = config, error
        super().__init__(
            f"unit {config.activation} l2={config.l2:g} seeds {config.seeds[0]}..{config.seeds[-1]} failed: "
            f"{type(error).__name__}: {error}"
        )


class SweepFailed(RuntimeError):
    """Raised at the end of a distributed sweep when some units failed (the others are stored)."""

    def __init__(self, failures: list[UnitFailure]):
        self.failures = failures
        super().__init__(f"{len(failures)} unit(s) failed:\n" + "\n".join(f"  - {f}" for f in failures))


def _undo_dask_malloc_trim() -> None:
    """Give glibc's allocator back its usual thresholds in a Dask worker.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also switches off
    glibc's adaptive mmap threshold: every tensor above 128 kB (a 50-network batch is 0.5 MB) is
    then mmap-ed and unmapped anew, and a unit ran about twice as slowly on a worker as in a plain
    process (measured: 32 s instead of 17 s of CPU for the same loop). Raising both thresholds
    restores plain-process speed; units are small (under 0.4 GB), so returning memory to the
    system later costs nothing here. No-op outside glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 27)  # M_TRIM_THRESHOLD: 128 MB
        libc.mallopt(-3, 1 << 25)  # M_MMAP_THRESHOLD: 32 MB, glibc's maximum
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def compute_unit(config_dict: dict, checkpoint: str | None, threads: int):
    """Train one unit on a worker and return its :class:`~ibtools.results.RunResult`.

    Runs in the worker process; ``checkpoint`` is used only if its directory can be created
    there (a worker on another machine without the coordinator's filesystem trains without one).
    """
    import torch

    from .training import train

    _undo_dask_malloc_trim()
    torch.set_num_threads(max(1, int(threads)))
    config = TrainConfig.from_dict(config_dict)
    ckpt = None
    if checkpoint is not None:
        try:
            Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
            ckpt = checkpoint
        except OSError:
            ckpt = None
    return train(config, checkpoint=ckpt, progress=False)


class DaskExecutor:
    """Where :func:`ibtools.sweep.run_sweep` runs units when they should run on Dask.

    Parameters
    ----------
    n_workers : int, optional
        Start a local cluster of this many worker processes. Everything it opens (scheduler,
        nannies, workers, dashboard) listens on 127.0.0.1 only.
    address : str, optional
        Connect to a running scheduler instead, e.g. ``"tcp://10.0.0.1:8786"`` (or
        ``"tls://..."`` with a ``distributed`` security configuration).
    threads_per_worker : int
        Torch threads of each unit (and Dask threads per local worker): 1 is best when there
        is one worker per core.
    client : distributed.Client, optional
        Use an existing client (e.g. from dask-jobqueue).
    connect_timeout : float
        Seconds to wait for the scheduler at ``address``.

    Raises
    ------
    ConnectionError
        If the scheduler at ``address`` cannot be reached within ``connect_timeout`` seconds.
    """

    def __init__(self, n_workers: int | None = None, address: str | None = None, threads_per_worker: int = 1,
                 client=None, connect_timeout: float = 10.0):
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - depends on the environment
            raise ValueError("running on Dask needs the 'distributed' package: pip install distributed") from None
        if sum(x is not None for x in (n_workers, address, client)) != 1:
            raise ValueError("give exactly one of n_workers (local cluster), address (running scheduler) or client")
        self.threads = check_int(threads_per_worker, "threads_per_worker", 1)
        self._cluster = None
        if client is not None:
            self.client = client
        elif address is not None:
            try:
                self.client = Client(address, timeout=f"{float(connect_timeout)}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConnectionError(
                    f"cannot reach a Dask scheduler at {address} within {connect_timeout:g} s "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}); "
                    "check the address, that the scheduler is running, and the tunnel or network to it") from None
        else:
            n_workers = check_int(n_workers, "n_workers", 1)
            self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=self.threads, processes=True,
                                         host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                         worker_dashboard_address="127.0.0.1:0", silence_logs=40)
            self.client = Client(self._cluster)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, units, todo, cache, done, *, progress: bool = True, log=print) -> None:
        """Compute ``units[i]`` for ``i in todo`` on the workers; store each result in ``cache``
        as it arrives and put it in ``done``. Raises :class:`SweepFailed` at the end if any unit
        failed (all others are stored first)."""
        from distributed import as_completed

        futures = {}
        for i in todo:
            unit = units[i]
            ckpt = str(cache.checkpoint_path(unit).resolve())
            fut = self.client.submit(compute_unit, unit.to_dict(), ckpt, self.threads,
                                     key=f"ibtools-unit-{cache.name(unit)}-{time.time_ns()}", pure=False)
            futures[fut] = i
        n_workers = len(self.client.scheduler_info().get("workers", {}))
        log(f"dask: {len(futures)} units submitted to {n_workers} worker(s) at {self.client.scheduler.address}")
        failures: list[UnitFailure] = []
        bar = tqdm(total=len(futures), unit="unit", desc="sweep (dask)", file=sys.stderr, dynamic_ncols=True,
                   disable=not progress)
        try:
            for fut in as_completed(list(futures)):
                i = futures[fut]
                if fut.status == "error":
                    failure = UnitFailure(units[i], fut.exception())
                    failures.append(failure)
                    log(f"dask: {failure}")
                else:
                    result = fut.result()
                    cache.store(result)
                    done[i] = result
                bar.update(1)
                running = sum(len(v) for v in self.client.processing().values())
                bar.set_postfix_str(f"done {len(done)}, running {running}, failed {len(failures)}")
        finally:
            bar.close()
            for fut in futures:
                fut.release()
        if failures:
            raise SweepFailed(failures)


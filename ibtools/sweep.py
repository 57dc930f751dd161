"""Running sweeps over activations x L2 strengths x seeds, cached unit by unit so that they
survive interruption.

A sweep is a grid (:class:`~ibtools.sweep_grid.SweepConfig`) cut into *units*: one activation,
one L2 strength and one block of seeds, trained together by :func:`ibtools.training.train`. Each
finished unit is stored in a :class:`~ibtools.result_cache.ResultCache` under a name that ends in
a hash of its full configuration; a unit is finished exactly when its result loads and checks out
(see :mod:`ibtools.results`). :func:`run_sweep` skips finished units, resumes a unit from its
checkpoint, and recomputes anything stale or corrupt (with a warning); :func:`run_sweeps` does
the same for several sweeps in one pass over their pooled units.

Several sweeps may share one cache directory: a unit is trained only by the process that holds
its lock (:class:`~ibtools.unit_lock.UnitLock`). A sweep that finds a unit locked works on its
other units first (with :func:`run_sweeps`, those of all its sweeps) and then waits for that one,
loading the other process's result.

The grid, the cache and the lock live in :mod:`ibtools.sweep_grid`, :mod:`ibtools.result_cache`
and :mod:`ibtools.unit_lock`; their names are also importable from here
(``from ibtools.sweep import SweepConfig, ResultCache, UnitLock``), as they always were.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Iterable

import pandas as pd
from tqdm import tqdm

from .config import TrainConfig
from .result_cache import ResultCache
from .results import CorruptResultError, RunResult, check_writable_dir, load_run, result_paths
from .sweep_grid import SweepConfig, work_summary
from .training import train
from .unit_lock import UnitLock  # noqa: F401 - re-exported: it lived here before

__all__ = ["SweepConfig", "ResultCache", "SweepResult", "run_sweep", "run_sweeps", "load_sweep", "work_summary", "pending_units", "stored_units", "missing_units", "UnitsRead"]


@dataclass
class SweepResult:
    """The runs of a sweep (one :class:`~ibtools.results.RunResult` per unit)."""

    runs: list[RunResult]

    def table(self, estimators=None) -> pd.DataFrame:
        """Tidy information-plane table of every run (see :meth:`RunResult.table`)."""
        return pd.concat([r.table(estimators) for r in self.runs], ignore_index=True)

    def history_table(self) -> pd.DataFrame:
        return pd.concat([r.history_table() for r in self.runs], ignore_index=True)

    def select(self, **fields) -> "SweepResult":
        """Runs whose config matches every given field, e.g. ``select(activation="relu")``."""
        return SweepResult([r for r in self.runs if all(getattr(r.config, k) == v for k, v in fields.items())])

    def diverged(self) -> dict[tuple[str, float, int], int]:
        return {(r.config.activation, r.config.l2, s): e for r in self.runs for s, e in r.diverged_seeds().items()}


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def pending_units(sweep: SweepConfig, cache_dir) -> list[TrainConfig]:
    """Units of ``sweep`` that have no valid result in ``cache_dir`` yet."""
    cache = ResultCache(cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # run_sweep reports unusable entries when it meets them
        return [u for u in sweep.units() if not _is_finished(cache, u)]


class UnitsRead:
    """What the chapters' data classes share: ``runs`` (``{condition: SweepResult}`` of the units
    read) and ``layer_names`` (the last is the softmax output)."""

    runs: dict
    layer_names: tuple

    @property
    def hidden_layers(self) -> tuple:
        """Indices (from 1) of the hidden layers."""
        return tuple(range(1, len(self.layer_names)))

    @property
    def all_runs(self) -> list:
        """Every RunResult read, unit by unit."""
        return [r for res in self.runs.values() for r in res.runs]


def missing_units(sweep: SweepConfig, cache_dir) -> list[str]:
    """File names of the units of ``sweep`` whose result or sidecar is not in ``cache_dir``
    (nothing is read or checked beyond their presence); empty when every unit is stored."""
    cache = ResultCache(cache_dir)
    missing = []
    for unit in sweep.units():
        npz, sidecar = result_paths(cache.path(unit))
        if not (npz.exists() and sidecar.exists()):
            missing.append(cache.name(unit))
    return missing


def stored_units(sweep: SweepConfig, cache_dir) -> tuple[bool, str]:
    """Whether every unit of ``sweep`` is stored in ``cache_dir`` (its result and its sidecar;
    nothing is read or checked beyond their presence), and the units' file names, comma-separated
    (for a message or a table of what is missing)."""
    cache = ResultCache(cache_dir)
    return not missing_units(sweep, cache_dir), ", ".join(cache.name(unit) for unit in sweep.units())


def _is_finished(cache: ResultCache, unit: TrainConfig) -> bool:
    try:
        load_run(cache.path(unit), expected=unit)
        return True
    except (FileNotFoundError, CorruptResultError):
        return False


def run_sweep(
    sweep: SweepConfig,
    cache_dir,
    *,
    progress: bool = True,
    checkpoint_every: float = 120.0,
    executor=None,
    log=None,
) -> SweepResult:
    """Run every unfinished unit of ``sweep`` and return all units' results.

    Parameters
    ----------
    sweep : SweepConfig
    cache_dir : path
        Where finished units (and checkpoints of unfinished ones) live.
    progress : bool
        Progress bar over network-epochs, with rate and ETA.
    checkpoint_every : float
        Seconds between checkpoints inside a unit.
    executor : optional
        Where to run units: None runs them here, one after another; a
        :class:`ibtools.distributed.DaskExecutor` spreads them over Dask workers.
    log : callable, optional
        Receives one-line status messages (default: print to stderr when ``progress``).

    See Also
    --------
    run_sweeps : several sweeps in one pass over their units.
    """
    return run_sweeps([sweep], cache_dir, progress=progress, checkpoint_every=checkpoint_every,
                      executor=executor, log=log)[0]


def run_sweeps(
    sweeps: Iterable[SweepConfig],
    cache_dir,
    *,
    progress: bool = True,
    checkpoint_every: float = 120.0,
    executor=None,
    log=None,
) -> list[SweepResult]:
    """Run every unfinished unit of several sweeps in one pass; one :class:`SweepResult` per sweep.

    The sweeps' units are pooled (a unit that two sweeps share, e.g. the ReLU unit without L2
    of an activation sweep and of an L2 sweep, is trained once, and both results hold the same
    :class:`~ibtools.results.RunResult` object) and run as one list. So a process that finds a
    unit locked by another process sharing ``cache_dir`` goes on with the units of *every* sweep
    before it waits for that one, where running the sweeps one after another would leave it
    idle until the other process finishes the locked unit. Parameters as in :func:`run_sweep`.
    """
    sweeps = list(sweeps)
    log = log or ((lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None))
    cache = ResultCache(cache_dir)
    check_writable_dir(cache.root, "sweep cache")  # before any work, not after the first unit
    units: list[TrainConfig] = []
    index: dict[str, int] = {}
    for sweep in sweeps:
        for unit in sweep.units():
            if unit.key() not in index:
                index[unit.key()] = len(units)
                units.append(unit)
    done: dict[int, RunResult] = {}
    for i, unit in enumerate(units):
        cached = cache.load(unit)
        if cached is not None:
            done[i] = cached
    todo = [i for i in range(len(units)) if i not in done]
    work = work_summary([units[i] for i in todo])
    log(f"sweep: {len(units)} units, {len(done)} already finished in {cache.root}; "
        f"to do: {work['networks']} networks, {work['network_epochs']:,} network-epochs, "
        f"{work['estimator_evaluations']:,} estimator evaluations")
    if todo and executor is not None:
        locks = {}
        try:
            for i in todo:
                lock = cache.lock(units[i])
                if lock is not None:
                    locks[i] = lock
            for i in locks:
                finished_elsewhere = cache.load(units[i])
                if finished_elsewhere is not None:
                    done[i] = finished_elsewhere
            mine = [i for i in todo if i in locks and i not in done]
            if len(mine) < len(todo):
                log(f"sweep: {len(todo) - len(mine)} unit(s) are locked by another process sharing {cache.root}; "
                    "they are loaded (or computed here) once it lets go")
            if mine:
                executor.run(units, mine, cache, done, progress=progress, log=log)
        finally:
            for lock in locks.values():
                lock.release()
    rest = [i for i in todo if i not in done]
    if rest:
        _run_here(units, rest, cache, done, progress, checkpoint_every, log)
    return [SweepResult([done[index[u.key()]] for u in sweep.units()]) for sweep in sweeps]


def _run_here(units, todo, cache, done, progress, checkpoint_every, log=lambda msg: None):
    """Train the units ``todo`` in this process, each while holding its lock. Units locked by
    another process are skipped in a first pass and waited for in a second one; after the wait a
    unit's result is loaded, or computed here if the other process stopped without one."""
    total = sum(len(units[i].seeds) * units[i].epochs for i in todo)
    bar = tqdm(total=total, unit="net-epoch", unit_scale=True, desc="sweep", file=sys.stderr,
               dynamic_ncols=True, disable=not progress, smoothing=0.05)
    try:
        pending, wait = list(todo), False
        while pending:
            deferred = []
            for i in pending:
                unit = units[i]
                lock = cache.lock(unit, wait=wait)
                if lock is None:
                    deferred.append(i)
                    continue
                with lock:
                    finished_elsewhere = cache.load(unit)  # another process sharing the cache may have done it
                    if finished_elsewhere is not None:
                        done[i] = finished_elsewhere
                        bar.update(len(unit.seeds) * unit.epochs)
                        continue
                    bar.set_postfix_str(f"{unit.activation} l2={unit.l2:g} seeds {unit.seeds[0]}..{unit.seeds[-1]}")
                    result = train(unit, checkpoint=cache.checkpoint_path(unit), checkpoint_every=checkpoint_every,
                                   progress=bar if progress else False)
                    cache.store(result)
                    done[i] = result
            if deferred:
                log(f"sweep: waiting for {len(deferred)} unit(s) that another process sharing {cache.root} is computing")
            pending, wait = deferred, True
    finally:
        bar.close()


def load_sweep(cache_dir, configs: Iterable[TrainConfig] | None = None) -> SweepResult:
    """Load finished units from ``cache_dir``: all of them, or exactly ``configs`` (an error
    names the first one that is missing)."""
    cache = ResultCache(cache_dir)
    if configs is None:
        return SweepResult(cache.finished())
    runs = []
    for c in configs:
        r = cache.load(c)
        if r is None:
            raise FileNotFoundError(f"unit {cache.name(c)} is not in {cache.root}; run the sweep first")
        runs.append(r)
    return SweepResult(runs)


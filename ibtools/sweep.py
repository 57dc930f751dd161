"""Sweeps over activations x L2 strengths x seeds, cached unit by unit so that they survive
interruption.

A sweep is cut into *units*: one activation, one L2 strength and one block of seeds, trained
together by :func:`ibtools.training.train`. Each finished unit is stored in the cache directory
under a name that ends in a hash of its full configuration; a unit is finished exactly when its
result loads and checks out (see :mod:`ibtools.results`). Re-running a sweep skips finished units,
resumes a unit from its checkpoint, and recomputes anything stale or corrupt (with a warning).

Several sweeps may share one cache directory (two terminals, two machines on a shared file
system): a unit is trained only by the process that holds its lock file
(``locks/<name>.lock``, an ``fcntl`` lock, which the system releases when its holder exits or
dies, so a lock is never left stale). A sweep that finds a unit locked works on its other units
first and then waits for that one, loading the other process's result.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
from tqdm import tqdm

from .activations import get_activation
from .config import TrainConfig
from .training import train
from .results import CorruptResultError, RunResult, check_writable_dir, load_run, result_paths
from .tasks import DEFAULT_TASK
from .validation import check_int

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: units are not locked
    fcntl = None

__all__ = ["SweepConfig", "ResultCache", "SweepResult", "run_sweep", "load_sweep", "work_summary", "pending_units"]


@dataclass(frozen=True)
class SweepConfig:
    """A grid of training runs.

    Attributes
    ----------
    base : TrainConfig
        Everything not swept (task, epochs, estimators, split, ...). Its ``activation``, ``l2`` and
        ``seeds`` are the defaults of the three swept fields.
    activations : tuple of str, optional
    l2s : tuple of float, optional
    seeds : tuple of int, optional
    seeds_per_unit : int
        Networks trained together in one unit; a unit is also the granule of caching and of
        distribution over workers.
    """

    base: TrainConfig = TrainConfig()
    activations: tuple[str, ...] | None = None
    l2s: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None
    seeds_per_unit: int = 50

    def __post_init__(self):
        if not isinstance(self.base, TrainConfig):
            raise ValueError(f"base must be a TrainConfig, got {type(self.base).__name__}")
        acts = tuple(self.activations) if self.activations is not None else (self.base.activation,)
        for a in acts:
            get_activation(a)
        l2s = tuple(self.l2s) if self.l2s is not None else (self.base.l2,)
        seeds = tuple(self.seeds) if self.seeds is not None else self.base.seeds
        if not acts or not l2s or not seeds:
            raise ValueError("a sweep needs at least one activation, one l2 strength and one seed")
        for name, values in (("activations", acts), ("l2s", l2s), ("seeds", seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct, got {values}")
        object.__setattr__(self, "seeds_per_unit", check_int(self.seeds_per_unit, "seeds_per_unit", 1))
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "l2s", l2s)
        object.__setattr__(self, "seeds", seeds)
        self.units()  # validates every unit's configuration up front

    def units(self) -> list[TrainConfig]:
        """The unit configurations, in a fixed order (activation, then l2, then seed block)."""
        blocks = [self.seeds[i : i + self.seeds_per_unit] for i in range(0, len(self.seeds), self.seeds_per_unit)]
        return [
            self.base.replace(activation=a, l2=l2, seeds=tuple(block))
            for a in self.activations
            for l2 in self.l2s
            for block in blocks
        ]


def work_summary(configs: Sequence[TrainConfig]) -> dict[str, int]:
    """How much work a list of run configurations holds: networks, network-epochs, and
    estimator evaluations (one estimator on one layer of one network at one epoch)."""
    networks = sum(len(c.seeds) for c in configs)
    net_epochs = sum(len(c.seeds) * c.epochs for c in configs)
    evaluations = sum(
        len(c.seeds) * c.n_layers * len(c.estimator_schedule(s)) for c in configs for s in c.estimators
    )
    return {"units": len(configs), "networks": networks, "network_epochs": net_epochs, "estimator_evaluations": evaluations}


class ResultCache:
    """A directory of finished units, each stored as ``<name>.npz`` + ``<name>.json``."""

    def __init__(self, root):
        self.root = Path(root)

    def name(self, config: TrainConfig) -> str:
        seeds = config.seeds
        span = f"s{seeds[0]}" if len(seeds) == 1 else f"s{seeds[0]}-{seeds[-1]}x{len(seeds)}"
        l2 = f"{config.l2:g}".replace(".", "p")
        # units of the default task keep the names they always had; others start with the task
        task = "" if config.task == DEFAULT_TASK else re.sub(r"[^A-Za-z0-9]+", "-", config.task) + "_"
        return f"{task}{config.activation}_l2-{l2}_{span}_{config.key()[:12]}"

    def path(self, config: TrainConfig) -> Path:
        return self.root / self.name(config)

    def checkpoint_path(self, config: TrainConfig) -> Path:
        return self.root / "checkpoints" / (self.name(config) + ".ckpt")

    def read(self, config: TrainConfig) -> RunResult | None:
        """The cached result of ``config``, or None if it is missing; touches nothing.

        Raises
        ------
        CorruptResultError
            If the entry is stale, corrupt, or not stored under its configuration's name.
        """
        path = self.path(config)
        try:
            return load_run(path, expected=config)
        except FileNotFoundError:
            return None

    def load(self, config: TrainConfig) -> RunResult | None:
        """The cached result of ``config``, or None if it is missing. A stale or corrupt entry is
        moved to ``quarantine/`` with a warning and reported as missing."""
        path = self.path(config)
        try:
            return self.read(config)
        except CorruptResultError as exc:
            self._quarantine(path)
            warnings.warn(f"cache entry {path.name} is unusable ({exc}); it will be recomputed", RuntimeWarning, stacklevel=2)
            return None

    def _quarantine(self, path: Path) -> None:
        target = self.root / "quarantine"
        target.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for src in result_paths(path)[::-1]:
            if src.exists():
                shutil.move(str(src), str(target / f"{src.name}.{stamp}"))

    def store(self, result: RunResult) -> Path:
        return result.save(self.path(result.config))

    def finished(self) -> list[RunResult]:
        """Every valid result in the directory (corrupt ones, and ones whose unit name, ending in a
        configuration hash, is not their configuration's, are skipped with a warning). Results
        saved under other names (``python -m ibtools run --out``) are included."""
        runs = []
        for sidecar in sorted(self.root.glob("*.json")):
            try:
                run = load_run(sidecar)
                if re.search(r"_[0-9a-f]{12}$", sidecar.stem) and sidecar.stem != self.name(run.config):
                    raise CorruptResultError(
                        f"{sidecar} holds the configuration of {self.name(run.config)}, not of its file name")
                runs.append(run)
            except (CorruptResultError, FileNotFoundError) as exc:
                warnings.warn(f"skipping {sidecar.name}: {exc}", RuntimeWarning, stacklevel=2)
        return runs

    def lock(self, config: TrainConfig, wait: bool = False) -> "UnitLock | None":
        """Take the lock of ``config``'s unit: a :class:`UnitLock`, or None if another process
        holds it and ``wait`` is False (with ``wait``, block until it is free)."""
        return UnitLock.acquire(self.root / "locks" / (self.name(config) + ".lock"), wait)


class UnitLock:
    """An exclusive ``fcntl.flock`` on a unit's lock file, released by :meth:`release` or when
    the process ends (killed included): there are no stale locks to clean up by hand.

    The lock file is removed on release. A process that opened it just before would then hold a
    lock on a removed file, so :meth:`acquire` checks after locking that the path still names the
    file it locked, and retries otherwise.
    """

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, path: Path, wait: bool = False) -> "UnitLock | None":
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    return None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {os.uname().nodename if hasattr(os, 'uname') else '?'}\n".encode())
                return cls(path, fd)
            os.close(fd)  # the holder removed the file while we waited: lock the new one

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


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
    """
    log = log or ((lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None))
    cache = ResultCache(cache_dir)
    check_writable_dir(cache.root, "sweep cache")  # before any work, not after the first unit
    units = sweep.units()
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
    return SweepResult([done[i] for i in range(len(units))])


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


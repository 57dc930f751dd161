"""The cache of a sweep: a directory of finished units, found by names that end in a hash of
their configuration.

Each finished unit is stored as ``<name>.npz`` + ``<name>.json`` (see :mod:`ibtools.results`),
its checkpoint as ``checkpoints/<name>.ckpt`` and its lock as ``locks/<name>.lock``
(:mod:`ibtools.unit_lock`). A unit is finished exactly when its result loads and checks out; a
stale or corrupt entry is moved to ``quarantine/`` with a warning, to be recomputed.

The names are how stored results are found (``results/paper``, ``results/rerun``): changing
:meth:`ResultCache.name` orphans every stored unit.
"""

from __future__ import annotations

import re
import shutil
import time
import warnings
from pathlib import Path

from .config import TrainConfig
from .results import CorruptResultError, RunResult, load_run, result_paths
from .tasks import DEFAULT_TASK
from .unit_lock import UnitLock

__all__ = ["ResultCache"]


class ResultCache:
    """A directory of finished units, each stored as ``<name>.npz`` + ``<name>.json``."""

    def __init__(self, root):
        self.root = Path(root)

    def name(self, config: TrainConfig) -> str:
        """The unit's file name (without suffix): task (except the default one), activation, L2
        strength, seeds and the first 12 hex digits of ``config.key()``, e.g.
        ``relu_l2-0_s0-49x50_946f09150302``."""
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

    def lock(self, config: TrainConfig, wait: bool = False) -> UnitLock | None:
        """Take the lock of ``config``'s unit: a :class:`~ibtools.unit_lock.UnitLock`, or None if
        another process holds it and ``wait`` is False (with ``wait``, block until it is free)."""
        return UnitLock.acquire(self.root / "locks" / (self.name(config) + ".lock"), wait)

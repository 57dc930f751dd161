"""The re-run of the stored study: what the verdicts need, on equal terms, from a clean commit.

The stored study (``results/paper``) was computed before several of the checks a critical
reviewer asks for existed (issue 10): its estimators were sampled on different, non-nested
epochs; a network's numbers depended in the last bits on which networks shared its ensemble;
11 of its 19 units came from uncommitted code; and its activation comparison has one arm only
(the paper code's initialization, gain 1 for tanh and abs and gain 2 for the rest). This module
defines the re-run once, so that ``python -m ibtools.rerun`` computes it into ``results/rerun``
and the chapters can read it:

* every unit with ``ensemble_invariant=True``: any subset of seeds re-run alone reproduces the
  stored values bit for bit (``tests/test_provenance.py`` checks it for every such unit);
* ``nested_schedules=True``: every sparse estimator schedule is a subset of the main 274-epoch
  one and of every denser one, so every setting can be compared on common epochs;
* the study's estimators (:data:`RERUN_ESTIMATORS`) plus the exact I(X;T) of the float32 network
  (distinct rows) at every recorded epoch, and geometric measures of the representation
  (:data:`RERUN_MEASURES`) for the clustering analysis;
* two initialization arms for the activation comparison (:data:`INIT_ARMS`): the paper code's
  scales and one scale for all activations (``init="tishby"``, gain 1);
* the L2 sweep of ReLU networks as before, and the single networks of the estimator-comparison
  chapters (ReLU and tanh, seed 0, every estimator at every epoch; the network-wide range variant; the snapshots).

Stored results must come from a clean, committed tree: :func:`run_rerun` refuses to write into
``results/rerun`` when the source tree has uncommitted changes (it may compute into any other
directory, e.g. to try the pipeline).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .activations import PAPER_ACTIVATIONS
from .config import EstimatorSpec, TrainConfig
from .settings import AKDE, AKDE_LARGE_ALPHA, AKDE_SMALL_ALPHA, EBAB, EBAB_10_BINS, EBAB_100_BINS
from .study import (L2_STRENGTHS, PAPER_EPOCHS, PAPER_RESULTS, PAPER_SEEDS, global_range_config,
                    single_network_config, snapshot_config)
from .sweep import SweepConfig, pending_units, run_sweep

__all__ = [
    "RERUN_RESULTS",
    "EXACT",
    "RERUN_ESTIMATORS",
    "RERUN_MEASURES",
    "INIT_ARMS",
    "RERUN_PARTS",
    "rerun_base",
    "SINGLE_ACTIVATIONS",
    "single_rerun_config",
    "rerun_sweeps",
    "rerun_units",
    "DirtyTreeError",
    "run_rerun",
]

#: Where the re-run's units are stored (beside ``results/paper``).
RERUN_RESULTS = PAPER_RESULTS.parent / "rerun"

#: Exact I(X;T) and I(T;Y) of the float32 network: entropy of its distinct rows over the 4096
#: inputs (:mod:`ibtools.estimators.exact`), at every recorded epoch.
EXACT = EstimatorSpec.make("exact")

#: Every estimator of the stored study (same settings, now on nested schedules) and the exact MI.
RERUN_ESTIMATORS = (EBAB, AKDE, EBAB_10_BINS, EBAB_100_BINS, AKDE_SMALL_ALPHA, AKDE_LARGE_ALPHA, EXACT)

#: Geometric measures recorded at every epoch of the main schedule (:mod:`ibtools.geometry`):
#: within- over between-class scatter, and distinct EBAB-binned rows per class.
RERUN_MEASURES = ("within_between", "distinct_binned_rows_per_class")

#: Initialization arms of the activation comparison: the paper code's (gain 1 for tanh and abs,
#: 2 for the others) and one scale for every activation (gain 1).
INIT_ARMS = ("paper", "tishby")

#: Parts of the re-run, in the order :func:`run_rerun` computes them.
RERUN_PARTS = ("single", "activations-paper", "activations-tishby", "l2")


def rerun_base(epochs: int = PAPER_EPOCHS, init: str = "paper", estimators=RERUN_ESTIMATORS,
               measures=RERUN_MEASURES) -> TrainConfig:
    """The configuration every unit of the re-run shares (before activation, L2 and seeds)."""
    return TrainConfig(epochs=epochs, init=init, estimators=tuple(estimators), measures=tuple(measures),
                       ensemble_invariant=True, nested_schedules=True)


def rerun_sweeps(epochs: int = PAPER_EPOCHS, seeds=PAPER_SEEDS, parts=RERUN_PARTS, seeds_per_unit: int = 50,
                 estimators=RERUN_ESTIMATORS, measures=RERUN_MEASURES) -> dict[str, SweepConfig]:
    """``{part: SweepConfig}`` of the re-run; smaller ``epochs``/``seeds`` give a cheap version
    with the same structure (what the tests and a trial run use)."""
    unknown = [p for p in parts if p not in RERUN_PARTS]
    if unknown:
        raise ValueError(f"unknown re-run part(s) {unknown}; choose from {RERUN_PARTS}")
    seeds = tuple(seeds)
    out = {}
    for part in parts:
        if part.startswith("activations-"):
            init = part.split("-", 1)[1]
            out[part] = SweepConfig(rerun_base(epochs, init, estimators, measures), activations=PAPER_ACTIVATIONS,
                                    l2s=(0.0,), seeds=seeds, seeds_per_unit=seeds_per_unit)
        else:  # l2: ReLU, paper initialization; strength 0 is the activations-paper unit
            out[part] = SweepConfig(rerun_base(epochs, "paper", estimators, measures), activations=("relu",),
                                    l2s=tuple(v for v in L2_STRENGTHS if v), seeds=seeds,
                                    seeds_per_unit=seeds_per_unit)
    return out


def rerun_units(**kwargs) -> list[TrainConfig]:
    """Every unit of the re-run (distinct configurations, in computing order)."""
    seen, units = set(), []
    for sweep in rerun_sweeps(**kwargs).values():
        for unit in sweep.units():
            if unit.key() not in seen:
                seen.add(unit.key())
                units.append(unit)
    return units


#: Activations of the single networks of the estimator-comparison chapters.
SINGLE_ACTIVATIONS = ("relu", "tanh")


def _invariant(config: TrainConfig) -> TrainConfig:
    return config.replace(ensemble_invariant=True, nested_schedules=True)


def single_rerun_config(activation: str, epochs: int = PAPER_EPOCHS) -> TrainConfig:
    """A single network of the estimator-comparison chapters (seed 0, every estimator at every epoch), as re-run."""
    return _invariant(single_network_config(activation, 0, epochs))


class DirtyTreeError(RuntimeError):
    """Stored results asked for from a source tree with uncommitted changes."""


def _check_clean(cache: Path, stored_dir: Path = RERUN_RESULTS) -> str:
    """The source commit; raises :class:`DirtyTreeError` when ``cache`` is ``stored_dir`` (a
    directory of stored results, :data:`RERUN_RESULTS` by default) and the tree is not clean."""
    from ._version import source_commit

    commit = source_commit()
    stored = Path(cache).resolve() == Path(stored_dir).resolve()
    if stored and (not commit or commit.endswith("-dirty")):
        name = f"results/{Path(stored_dir).name}"
        raise DirtyTreeError(
            f"{name} holds stored results, which must come from a clean, committed tree; the source "
            f"tree is at {commit or 'an unknown commit'}. Commit (or stash) the changes first, or compute into "
            "another directory with --cache.")
    return commit or "unknown"


def run_rerun(cache=None, parts=RERUN_PARTS, progress: bool = True, **kwargs) -> None:
    """Compute (or resume) the re-run's units into ``cache`` (default :data:`RERUN_RESULTS`).

    Units already finished are skipped; an interrupted unit resumes from its checkpoint; several
    processes may run this at once on one cache (each unit is locked while computed), which is
    how two cores are used.

    Raises
    ------
    DirtyTreeError
        When ``cache`` is :data:`RERUN_RESULTS` and the source tree has uncommitted changes.
    """
    cache = Path(cache) if cache is not None else RERUN_RESULTS
    _check_clean(cache)
    if "single" in parts:
        from .study import _compute_run

        store = cache
        for activation in SINGLE_ACTIVATIONS:
            first = _compute_run(single_rerun_config(activation, kwargs.get("epochs", PAPER_EPOCHS)), store, progress)
            _compute_run(_invariant(global_range_config(first)), store, progress)
            _compute_run(_invariant(snapshot_config(activation, epochs=kwargs.get("epochs", PAPER_EPOCHS))), store,
                         progress)
    for part, sweep in rerun_sweeps(parts=[p for p in parts if p != "single"], **kwargs).items():
        if progress:
            print(f"[rerun] {part}: {len(pending_units(sweep, cache))} of {len(sweep.units())} units to compute",
                  flush=True)
        run_sweep(sweep, cache, progress=progress)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ibtools.rerun", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=list(RERUN_PARTS), choices=RERUN_PARTS,
                   help="parts to compute (default: all)")
    p.add_argument("--cache", default=None, help="where to store units (default: results/rerun, clean tree only)")
    p.add_argument("--dry-run", action="store_true", help="list the units and what is left; compute nothing")
    args = p.parse_args(argv)
    cache = Path(args.cache) if args.cache else RERUN_RESULTS
    sweeps = rerun_sweeps(parts=tuple(args.parts))
    if args.dry_run:
        for part, sweep in sweeps.items():
            todo = pending_units(sweep, cache)
            print(f"{part}: {len(sweep.units())} units, {len(todo)} to compute")
            for unit in todo:
                print(f"  {unit.activation:18s} init={unit.init:7s} l2={unit.l2:<7g} seeds {unit.seeds[0]}-{unit.seeds[-1]}")
        return 0
    try:
        run_rerun(cache, tuple(args.parts))
    except DirtyTreeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

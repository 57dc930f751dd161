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
  chapters (ReLU and tanh, seed 0, every estimator at every epoch; the network-wide range variant; the snapshots;
  the exact I(X;T) of the same network at every epoch, a unit of its own: :func:`single_exact_config`).

Reading it: :func:`rerun_activations` (per initialization arm), :func:`rerun_l2` and
:func:`rerun_single` return the re-run's results through :func:`ibtools.study.obtain`, so the
stored units load when the parameters match them exactly and a cheap setting (fewer epochs or
seeds) computes a small version in a scratch directory; :func:`rerun_status` lists which units
are stored, with their commit. :mod:`ibtools.studies` lets a chapter choose between the stored
study and the re-run, and :func:`ibtools.verdicts.rerun_verdicts` judges the claims on it.

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
from .results import result_paths
from .study import (L2_STRENGTHS, PAPER_EPOCHS, PAPER_RESULTS, PAPER_SEEDS, global_range_config, obtain, obtain_run,
                    single_network_config, snapshot_config)
from .sweep import ResultCache, SweepConfig, SweepResult, pending_units, run_sweeps

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
    "exit_status",
    "run_rerun",
    "single_exact_config",
    "rerun_activations",
    "rerun_l2",
    "rerun_single",
    "SINGLE_KINDS",
    "rerun_status",
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


def single_rerun_config(activation: str, epochs: int = PAPER_EPOCHS, seed: int = 0) -> TrainConfig:
    """A single network of the estimator-comparison chapters (seed 0, every estimator at every epoch), as re-run."""
    return _invariant(single_network_config(activation, seed, epochs))


def single_exact_config(activation: str, epochs: int = PAPER_EPOCHS, seed: int = 0) -> TrainConfig:
    """The same single network as :func:`single_rerun_config` (training is deterministic and
    ensemble-invariant, so it is the same network bit for bit), recording only the exact I(X;T)
    and I(T;Y) of the float32 activity (:data:`EXACT`: entropy of the distinct rows over the
    4096 inputs, bits) at every epoch of the main schedule. A unit of its own, so that the
    stored estimator unit keeps its key."""
    return single_rerun_config(activation, epochs, seed).replace(estimators=(EXACT,))


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


def exit_status(compute, *args, **kwargs) -> int:
    """A study command's exit status: run ``compute(*args, **kwargs)``; 0 when it finishes, 2 (with
    the reason on one line of stderr, no traceback) when it refuses to store results computed
    from a dirty tree (:class:`DirtyTreeError`). Shared by the ``main()`` of every stored study."""
    try:
        compute(*args, **kwargs)
    except DirtyTreeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


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
            _compute_run(single_exact_config(activation, kwargs.get("epochs", PAPER_EPOCHS)), store, progress)
    sweeps = rerun_sweeps(parts=[p for p in parts if p != "single"], **kwargs)
    if progress:
        for part, sweep in sweeps.items():
            print(f"[rerun] {part}: {len(pending_units(sweep, cache))} of {len(sweep.units())} units to compute",
                  flush=True)
    # one pass over every sweep part's units: a unit locked by another process does not hold up the
    # next sweep part (the single-network runs above still go one at a time)
    run_sweeps(sweeps.values(), cache, progress=progress)


# ----------------------------------------------------------------------------------------------
# Reading the re-run (what the chapters call)


def _seeds(seeds) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    return seeds


def rerun_activations(init: str = "paper", activations=PAPER_ACTIVATIONS, epochs: int = PAPER_EPOCHS,
                      seeds=PAPER_SEEDS, estimators=RERUN_ESTIMATORS, measures=RERUN_MEASURES,
                      results_dir=None, scratch_dir=None, progress: bool = True) -> SweepResult:
    """The re-run's activation comparison under one initialization arm (:data:`INIT_ARMS`).

    Loaded from ``results_dir`` (default :data:`RERUN_RESULTS`) when every unit is stored there
    with exactly this configuration (the full study: 50 seeds, 8000 epochs, every estimator of
    :data:`RERUN_ESTIMATORS` on nested schedules, the exact I(X;T) among them); otherwise computed
    in ``scratch_dir`` (:func:`ibtools.study.obtain`), which is what a cheap setting (fewer
    ``epochs``/``seeds``) does. The stored directory is only read.

    Raises
    ------
    ValueError
        For an unknown ``init`` or activation, or no seeds.
    """
    if init not in INIT_ARMS:
        raise ValueError(f"unknown initialization arm {init!r}; choose one of {INIT_ARMS}")
    sweep = SweepConfig(rerun_base(epochs, init, estimators, measures), activations=tuple(activations), l2s=(0.0,),
                        seeds=_seeds(seeds), seeds_per_unit=50)
    return obtain(sweep, results_dir or RERUN_RESULTS, scratch_dir, progress)


def rerun_l2(l2s=L2_STRENGTHS, activation: str = "relu", epochs: int = PAPER_EPOCHS, seeds=PAPER_SEEDS,
             estimators=RERUN_ESTIMATORS, measures=RERUN_MEASURES, results_dir=None, scratch_dir=None,
             progress: bool = True) -> SweepResult:
    """The re-run's L2 sweep (paper initialization); strength 0 is the ReLU unit of
    ``rerun_activations("paper")`` (same configuration, stored once). Loaded or computed as
    :func:`rerun_activations`."""
    sweep = SweepConfig(rerun_base(epochs, "paper", estimators, measures), activations=(activation,),
                        l2s=tuple(float(v) for v in l2s), seeds=_seeds(seeds), seeds_per_unit=50)
    return obtain(sweep, results_dir or RERUN_RESULTS, scratch_dir, progress)


#: What :func:`rerun_single` returns: the network with every estimator; its re-run with the
#: network-wide binning range; the snapshot run (raw activity at a few epochs); the exact MI.
SINGLE_KINDS = ("estimators", "ranged", "snapshot", "exact")


def rerun_single(activation: str, kind: str = "estimators", epochs: int = PAPER_EPOCHS, seed: int = 0,
                 results_dir=None, scratch_dir=None, progress: bool = True):
    """One single network of the re-run, as a RunResult: ``kind`` one of :data:`SINGLE_KINDS`.
    Loaded when stored with exactly this configuration (seed 0 at 8000 epochs is stored),
    computed otherwise (see :func:`ibtools.study.obtain_run`); ``"ranged"`` first obtains the
    ``"estimators"`` run, whose largest hidden activity sets the range."""
    if kind not in SINGLE_KINDS:
        raise ValueError(f"unknown single-network kind {kind!r}; choose one of {SINGLE_KINDS}")
    root = results_dir or RERUN_RESULTS
    if kind == "snapshot":
        config = _invariant(snapshot_config(activation, seed, epochs))
    elif kind == "exact":
        config = single_exact_config(activation, epochs, seed)
    else:
        config = single_rerun_config(activation, epochs, seed)
        if kind == "ranged":
            config = _invariant(global_range_config(obtain_run(config, root, scratch_dir, progress)))
    return obtain_run(config, root, scratch_dir, progress)


def _part_units(**kwargs) -> list[tuple[str, str, TrainConfig]]:
    out, seen = [], set()
    for activation in SINGLE_ACTIVATIONS:
        epochs = kwargs.get("epochs", PAPER_EPOCHS)
        for config in (single_rerun_config(activation, epochs), _invariant(snapshot_config(activation, epochs=epochs)),
                       single_exact_config(activation, epochs)):
            out.append(("single", "paper", config))
    parts = [p for p in kwargs.pop("parts", RERUN_PARTS) if p != "single"]
    for part, sweep in rerun_sweeps(parts=parts, **kwargs).items():
        for unit in sweep.units():
            if unit.key() not in seen:
                seen.add(unit.key())
                out.append((part, unit.init, unit))
    return out


def rerun_status(results_dir=None, **kwargs) -> "pd.DataFrame":
    """Which units of the re-run are stored (finished) in ``results_dir`` (default
    :data:`RERUN_RESULTS`): one row per unit, columns ``unit, part, init, activation, l2, seeds,
    finished, commit, dirty, created``. ``commit``/``dirty``/``created`` come from the unit's
    provenance sidecar (None when not finished); ``dirty`` is True when the recorded commit is
    marked ``-dirty`` or missing. Reads sidecars only (no data loaded or verified: loading does
    that). The network-wide-range runs are not listed (their key depends on the stored run).
    ``kwargs`` go to :func:`rerun_sweeps` (e.g. a cheap ``epochs``/``seeds``)."""
    import json

    import pandas as pd

    cache = ResultCache(results_dir or RERUN_RESULTS)
    rows = []
    for part, init, unit in _part_units(**kwargs):
        npz, sidecar = result_paths(cache.path(unit))
        finished = npz.exists() and sidecar.exists()
        commit = created = dirty = None
        if finished:
            try:
                meta = json.loads(sidecar.read_text()).get("meta", {})
            except (OSError, ValueError):
                meta = {}
            commit = meta.get("git_commit")
            created = meta.get("created")
            dirty = (not commit) or str(commit).endswith("-dirty")
        rows.append({"unit": cache.name(unit), "part": part, "init": init, "activation": unit.activation,
                     "l2": unit.l2, "seeds": len(unit.seeds), "finished": finished, "commit": commit,
                     "dirty": dirty, "created": created})
    return pd.DataFrame(rows)


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
    return exit_status(run_rerun, cache, tuple(args.parts))


if __name__ == "__main__":
    sys.exit(main())

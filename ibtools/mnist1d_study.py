"""The study beyond the 12-bit task: the paper's questions on MNIST-1D, defined once.

The paper (like Shwartz-Ziv & Tishby) uses one 12-bit task with 4096 binary inputs. This module
asks the same questions on MNIST-1D (:mod:`ibtools.tasks`: 5000 signals of 40 values in 10
classes, MNIST-1D's own 4000/1000 split), with the hidden widths and training length chosen by
the pilot (``experiments/mnist1d_pilot.md``; :data:`ibtools.study.MNIST1D_HIDDEN` = 100-50-20-10-5,
:data:`ibtools.study.MNIST1D_EPOCHS` = 4000) and the paper's training settings otherwise (Adam,
lr 4e-4, batch 256, the paper code's initialization). ``python -m ibtools.mnist1d_study``
computes it into ``results/mnist1d``; the chapter ``book/10_beyond_12_bits.ipynb``
reads it (:mod:`ibtools.beyond`).

Parts (:data:`MNIST1D_PARTS`), each answering the claims of the 12-bit study the same way:

``single``
    one ReLU network (seed 0) and its re-run with the network-wide binning range (claim R1);
``activations``
    the paper's eight activations (:data:`ibtools.activations.PAPER_ACTIVATIONS`), no L2
    (claims R2-R5, and R7 over the pool);
``l2``
    ReLU at the study's L2 strengths (claim R6); strength 0 is the ``activations`` part's ReLU
    unit (the same key, stored once).

Every unit records EBAB (30 bins) on the 274-point log schedule of 4000 epochs, adaptive KDE on
25 of its epochs and the exact I(X;T) of the float32 network (distinct rows, at every recorded
epoch: on 5000 distinct continuous inputs it sits at log2 5000 = 12.29 bits unless rows coincide
exactly, the objection the exact estimator makes measurable), with ``ensemble_invariant=True``
(any subset of seeds re-run alone gives the same numbers bit for bit) and
``nested_schedules=True`` (the aKDE epochs are a subset of the EBAB epochs).

Why all eight activations and 50 seeds. The pilot justifies no subset: its only activations were
tanh and ReLU, and every claim about activations (R2, R5a-c) names others (ELU, Swish, centered
softplus, softplus). The cost (measured 2026-11-26 04:36-04:40 UTC, one thread, recorded in
``experiments/mnist1d_pilot.md``): :func:`ibtools.training.probe_seconds`, which times wall clock,
put the 14 runs at 171,822 s = 47.7 h of one thread at a load average of 7.6 on this machine's
2 cores (``python -m ibtools.mnist1d_study --dry-run`` prints it per unit); measured as process
CPU time at the same load, a 50-network unit costs 4,295 CPU-s for ReLU (training 2,361 s:
0.59 s per epoch; adaptive KDE 1,180 s: 0.94 s per network and recorded epoch, 25 epochs; EBAB
514 s, exact 240 s over 260 recorded epochs) and 5,181 CPU-s for tanh; scaling the other
activations' probes by the same ratio of CPU to wall time (0.39-0.43), the 13 units need about
69,000 CPU-s = 19 CPU-hours, about 10 hours of wall time as two processes on a quiet 2-core
machine. That is
more than a session, but the study is resumable (checkpoints, one lock per unit), so it needs no
cut: 50 seeds give the verdicts the same resolution as on the 12-bit task (whose rules test
means over 50 networks); 20 seeds (the issue's minimum) would widen every interval by a factor of
about 1.6 to save 60 % of the time. ``--seeds 20`` runs that version if the machine time is not
there (the units then get other keys: the two versions never mix).

Which engine. The units train with the torch engine (``backend="torch"``, the default). The fused
kernel (:mod:`ibtools.fused`) is built for the 12-bit task's layers of 2-12 units; at this
study's widths it is slower: 0.27 s against 0.24 s of CPU per epoch of 50 ReLU networks
(measured side by side in one process, one thread, 2026-11-27 05:52 UTC, two niced study
processes on the 2 cores). That also puts training at about 4000 x 0.24 s = 16 minutes of a
unit, well below the pilot's wall-clock-based figure above.

Stored results must come from a clean, committed tree: :func:`run_mnist1d_study` refuses to
write into ``results/mnist1d`` when the source tree has uncommitted changes (the check of
:mod:`ibtools.rerun`); any other directory may be used to try the pipeline.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .activations import PAPER_ACTIVATIONS
from .config import TrainConfig
from .rerun import EXACT, DirtyTreeError, _check_clean, exit_status
from .settings import AKDE, EBAB
from .study import (L2_STRENGTHS, MNIST1D_EPOCHS, MNIST1D_HIDDEN, MNIST1D_TASK, PAPER_RESULTS, PAPER_SEEDS,
                    _compute_run, global_range_config)
from .sweep import SweepConfig, pending_units, run_sweeps

__all__ = [
    "MNIST1D_RESULTS",
    "MNIST1D_ESTIMATORS",
    "MNIST1D_L2S",
    "MNIST1D_PARTS",
    "mnist1d_base",
    "mnist1d_sweeps",
    "mnist1d_single_config",
    "mnist1d_units",
    "estimate_seconds",
    "run_mnist1d_study",
    "main",
]

#: Where the study's units are stored (beside ``results/paper`` and ``results/rerun``).
MNIST1D_RESULTS = PAPER_RESULTS.parent / "mnist1d"

#: Recorded for every network: EBAB (30 bins, every recorded epoch), adaptive KDE (25 epochs)
#: and the exact I(X;T) of the float32 network (every recorded epoch).
MNIST1D_ESTIMATORS = (EBAB, AKDE, EXACT)

#: L2 strengths of the ReLU sweep: those of the 12-bit study (0 is the activations unit).
MNIST1D_L2S = L2_STRENGTHS

#: Parts of the study, in the order :func:`run_mnist1d_study` computes them.
MNIST1D_PARTS = ("single", "activations", "l2")


def mnist1d_base(epochs: int = MNIST1D_EPOCHS, task: str = MNIST1D_TASK, hidden=MNIST1D_HIDDEN,
                 estimators=MNIST1D_ESTIMATORS) -> TrainConfig:
    """The configuration every unit of the study shares (before activation, L2 and seeds).

    ``task`` and ``hidden`` may name another registered task and architecture: the same study
    on, e.g., ``"digits"`` (what the chapter's parameters allow)."""
    return TrainConfig(task=task, hidden=tuple(hidden), epochs=epochs, estimators=tuple(estimators),
                       ensemble_invariant=True, nested_schedules=True)


def mnist1d_sweeps(epochs: int = MNIST1D_EPOCHS, seeds=PAPER_SEEDS, activations=PAPER_ACTIVATIONS, l2s=MNIST1D_L2S,
                   parts=MNIST1D_PARTS, seeds_per_unit: int = 50, task: str = MNIST1D_TASK, hidden=MNIST1D_HIDDEN,
                   estimators=MNIST1D_ESTIMATORS) -> dict[str, SweepConfig]:
    """``{part: SweepConfig}`` of the sweep parts (``"activations"``, ``"l2"``; ``"single"`` is
    :func:`mnist1d_single_config`). Smaller ``epochs``/``seeds`` give a cheap version with the
    same structure (the tests and the chapter's cheap setting)."""
    unknown = [p for p in parts if p not in MNIST1D_PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown} of the MNIST-1D study; choose from {MNIST1D_PARTS}")
    base = mnist1d_base(epochs, task, hidden, estimators)
    seeds = tuple(seeds)
    out = {}
    if "activations" in parts:
        out["activations"] = SweepConfig(base, activations=tuple(activations), l2s=(0.0,), seeds=seeds,
                                         seeds_per_unit=seeds_per_unit)
    if "l2" in parts:
        l2s = tuple(float(v) for v in l2s)
        if 0.0 not in l2s or len(l2s) < 2:
            raise ValueError(f"the l2 part compares L2 strengths with none: it needs 0 and at least one nonzero "
                             f"strength, got {l2s}")
        # strength 0 is the same unit (same key) as the activations part's ReLU unit: stored once
        out["l2"] = SweepConfig(base, activations=("relu",), l2s=l2s, seeds=seeds, seeds_per_unit=seeds_per_unit)
    return out


def mnist1d_single_config(epochs: int = MNIST1D_EPOCHS, task: str = MNIST1D_TASK, hidden=MNIST1D_HIDDEN,
                          estimators=MNIST1D_ESTIMATORS) -> TrainConfig:
    """The single ReLU network (seed 0) of claim R1; its network-wide-range re-run is
    :func:`ibtools.study.global_range_config` of its result (same flags, same network)."""
    return mnist1d_base(epochs, task, hidden, estimators).replace(activation="relu", seeds=(0,))


def mnist1d_units(parts=MNIST1D_PARTS, **kwargs) -> list[TrainConfig]:
    """Every sweep unit of the study (distinct configurations, in computing order), and the
    single network first when ``"single"`` is among ``parts`` (its range re-run is known only
    after it has been trained)."""
    single_kwargs = {k: kwargs[k] for k in ("epochs", "task", "hidden", "estimators") if k in kwargs}
    units = [mnist1d_single_config(**single_kwargs)] if "single" in parts else []
    seen = {u.key() for u in units}
    for sweep in mnist1d_sweeps(parts=[p for p in parts if p != "single"], **kwargs).values():
        for unit in sweep.units():
            if unit.key() not in seen:
                seen.add(unit.key())
                units.append(unit)
    return units


def estimate_seconds(units, probe=None) -> list[float]:
    """Estimated seconds of each unit on this machine (:func:`ibtools.training.probe_seconds`).

    Units that differ only in their L2 strength cost the same to train and to record, so one
    probe per (activation, number of networks) is taken and reused. Rough: within a factor of
    about 1.5, and proportional to the machine's load."""
    if probe is None:
        from .training import probe_seconds as probe
    cache, out = {}, []
    for unit in units:
        key = (unit.activation, len(unit.seeds), unit.estimators)
        if key not in cache:
            cache[key] = float(probe(unit))
        out.append(cache[key])
    return out


def run_mnist1d_study(cache=None, parts=MNIST1D_PARTS, progress: bool = True, **kwargs) -> None:
    """Compute (or resume) the study's units into ``cache`` (default :data:`MNIST1D_RESULTS`).

    Finished units are skipped, an interrupted unit resumes from its checkpoint, and several
    processes may share one cache (each unit is locked while computed).

    Raises
    ------
    DirtyTreeError
        When ``cache`` is :data:`MNIST1D_RESULTS` and the source tree has uncommitted changes.
    """
    cache = Path(cache) if cache is not None else MNIST1D_RESULTS
    _check_clean(cache, MNIST1D_RESULTS)
    if "single" in parts:
        single_kwargs = {k: kwargs[k] for k in ("epochs", "task", "hidden", "estimators") if k in kwargs}
        first = _compute_run(mnist1d_single_config(**single_kwargs), cache, progress)
        _compute_run(global_range_config(first), cache, progress)
    sweeps = mnist1d_sweeps(parts=[p for p in parts if p != "single"], **kwargs)
    if progress:
        for part, sweep in sweeps.items():
            print(f"[mnist1d] {part}: {len(pending_units(sweep, cache))} of {len(sweep.units())} units to compute",
                  flush=True)
    # one pass over every sweep part's units: a unit locked by another process does not hold up the
    # next sweep part (the single-network runs above still go one at a time)
    run_sweeps(sweeps.values(), cache, progress=progress)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ibtools.mnist1d_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=list(MNIST1D_PARTS), choices=MNIST1D_PARTS,
                   help="parts to compute (default: all)")
    p.add_argument("--seeds", type=int, default=len(PAPER_SEEDS), help="networks per condition (default: 50)")
    p.add_argument("--epochs", type=int, default=MNIST1D_EPOCHS, help=f"epochs (default: {MNIST1D_EPOCHS})")
    p.add_argument("--cache", default=None, help="where to store units (default: results/mnist1d, clean tree only)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the units and what is left, with a cost estimate from a short timing probe; compute nothing")
    p.add_argument("--no-estimate", action="store_true", help="with --dry-run: skip the timing probe")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1:
        p.error("--seeds and --epochs must be >= 1")
    cache = Path(args.cache) if args.cache else MNIST1D_RESULTS
    kwargs = {"seeds": range(args.seeds), "epochs": args.epochs}
    if args.dry_run:
        import warnings

        from .sweep import ResultCache, _is_finished

        units = mnist1d_units(parts=tuple(args.parts), **kwargs)
        store = ResultCache(cache)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unusable entry is reported when the study meets it
            todo = [u for u in units if not _is_finished(store, u)]
        print(f"MNIST-1D study: {len(units)} units ({len(todo)} to compute) in {cache}; task {units[0].task}, "
              f"hidden {'-'.join(map(str, units[0].hidden))}, {args.epochs} epochs" + (
                  "; plus the single network's network-wide-range re-run" if "single" in args.parts else ""))
        seconds = None if args.no_estimate else estimate_seconds(units)
        for i, unit in enumerate(units):
            cost = "" if seconds is None else f"  ~{seconds[i]:7.0f} s"
            mark = "todo" if unit in todo else "done"
            print(f"  {mark}  {unit.activation:18s} l2={unit.l2:<7g} seeds {unit.seeds[0]}-{unit.seeds[-1]}{cost}")
        if seconds is not None:
            total = sum(s for s, u in zip(seconds, units) if u in todo)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"estimated: {total:,.0f} s = {_hours(total)} of one thread for the units to compute "
                  f"({_hours(total / 2)} as two processes); load average at the probe: {load:.2f}")
        return 0
    return exit_status(run_mnist1d_study, cache, tuple(args.parts), **kwargs)


if __name__ == "__main__":
    sys.exit(main())

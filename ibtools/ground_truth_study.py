"""The ground-truth study (issue 11): networks whose I(X;T) is exact or finite, defined once.

In a deterministic float32 network with distinct inputs, I(X;T) is log2 N whatever the weights,
so the estimators' "compression" may measure geometry, not information. This module defines the
full-scale runs that put a ground truth beside the estimators, on the paper's task, widths,
optimizer and 8000-epoch schedule, so that ``python -m ibtools.ground_truth_study`` computes
them into ``results/ground_truth`` and the chapters can read them:

* ``quantized-8``, ``quantized-4``: every hidden layer quantized to 8 or 4 bits during training
  and evaluation (straight-through gradients, :mod:`ibtools.perturb`), all eight activations of
  the paper, 50 seeds; I(X;T) and I(T;Y) **exact** by counting distinct rows (``exact``) at every
  recorded epoch, beside EBAB (every epoch) and adaptive KDE (25 epochs);
* ``noisy``: tanh with Gaussian noise of std :data:`NOISE_STD` (0.1, the pilot's choice, see
  ``experiments/ground_truth_pilot.md``) in every hidden layer, 50 seeds; the Monte Carlo
  mixture estimate of I(X;T) (``mixture``) with one draw of the earlier layers' noise on
  :data:`MIXTURE_POINTS` epochs and with K = 2 and K = 4 draws (:data:`DEEP_DRAWS`) on
  :data:`DEEP_POINTS` of them (one draw over-states deeper layers; more draws lower that), the
  Kolchinsky-Tracey lower and upper bounds on the clean means (``mixture_bounds``, which bracket
  the one-draw value), and EBAB and adaptive KDE on the noisy activity;
* ``noisy-sensitivity``: the same at :data:`SENSITIVITY_STDS` (0.05 and 0.3) on
  :data:`SENSITIVITY_SEEDS` (10 seeds), with K = 1 and K = 4 only.

Every unit has ``ensemble_invariant=True`` (a network's numbers do not depend on the networks
sharing its ensemble; the mixture's Monte Carlo draws and the noise are seeded per network) and
``nested_schedules=True`` (every sparse schedule is a subset of the denser ones and of the main
274-epoch schedule). Stored results must come from a clean, committed tree: :func:`run_ground_truth`
refuses to write into ``results/ground_truth`` otherwise (the check of :mod:`ibtools.rerun`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .activations import PAPER_ACTIVATIONS
from .config import EstimatorSpec, TrainConfig
from .rerun import EXACT, DirtyTreeError, _check_clean, exit_status
from .settings import AKDE, EBAB
from .study import PAPER_EPOCHS, PAPER_RESULTS, PAPER_SEEDS
from .sweep import SweepConfig, pending_units, run_sweeps

__all__ = [
    "GROUND_TRUTH_RESULTS",
    "GROUND_TRUTH_PARTS",
    "QUANTIZE_BITS",
    "QUANTIZED_ESTIMATORS",
    "NOISE_STD",
    "SENSITIVITY_STDS",
    "SENSITIVITY_SEEDS",
    "MIXTURE_POINTS",
    "DEEP_POINTS",
    "DEEP_DRAWS",
    "NOISY_SEEDS_PER_UNIT",
    "noisy_estimators",
    "quantized_base",
    "noisy_base",
    "ground_truth_sweeps",
    "ground_truth_units",
    "estimate_seconds",
    "run_ground_truth",
    "main",
]

#: Where the study's units are stored (beside ``results/paper`` and ``results/rerun``).
GROUND_TRUTH_RESULTS = PAPER_RESULTS.parent / "ground_truth"

#: Parts, in the order :func:`run_ground_truth` computes them.
GROUND_TRUTH_PARTS = ("quantized-8", "quantized-4", "noisy", "noisy-sensitivity")

#: Bits of the quantized parts (``quantize-8``, ``quantize-4``). At 4 bits EBAB with 30 bins
#: merged no rows of any hidden layer in the pilot (it equals the exact value there), so the
#: 8-bit units carry the estimator comparison and the 4-bit ones a coarser ground truth.
QUANTIZE_BITS = (8, 4)

#: Exact MI (every epoch), EBAB (every epoch) and adaptive KDE (the study's alpha, 25 epochs).
QUANTIZED_ESTIMATORS = (EXACT, EBAB, AKDE)

#: Noise std of the main noisy part: the smallest of the pilot's levels that brings every hidden
#: layer below the 12-bit ceiling at a moderate cost in accuracy (Goldfeld et al.'s value).
NOISE_STD = 0.1
#: Noise levels of the sensitivity part, and its seeds.
SENSITIVITY_STDS = (0.05, 0.3)
#: Seeds of the sensitivity part (10: it shows how a verdict moves with the noise level, at a
#: fifth of the main part's cost).
SENSITIVITY_SEEDS = tuple(range(10))

#: Epochs (drawn from the main schedule) of the one-draw mixture estimate and of the bounds.
MIXTURE_POINTS = 30
#: Epochs (a nested subset of those) of the K-draw estimates of the deeper layers; the cost of
#: one estimate grows like K**2 (K * 4096 components): about 0.4, 1.7 and 7 CPU s per layer
#: for K = 1, 2, 4 in the first hidden layer of a tanh network (loaded 2-core machine).
DEEP_POINTS = 6
#: Draws of the earlier layers' noise per input of the main noisy part (1 is the MIXTURE_POINTS spec).
DEEP_DRAWS = (2, 4)
#: Networks per stored unit of the noisy parts. The Monte Carlo mixture makes a noisy network
#: about 20 times as costly as a quantized one, so the main part is stored as five units of 10
#: seeds: two processes can share it and a checkpoint comes every few minutes. The units are
#: ensemble-invariant, so a network's numbers are the same in a unit of 10 as in one of 50.
NOISY_SEEDS_PER_UNIT = 10


def noisy_estimators(noise_std: float, deep_draws=DEEP_DRAWS) -> tuple[EstimatorSpec, ...]:
    """The estimators of a noisy unit with noise std ``noise_std``.

    ``mixture`` with one draw on :data:`MIXTURE_POINTS` epochs, the Kolchinsky-Tracey lower and
    upper bounds on the same clean means and epochs, ``mixture`` with each K of ``deep_draws``
    on :data:`DEEP_POINTS` epochs, and EBAB (every epoch) and adaptive KDE (25 epochs) on the
    noisy activity."""
    specs = [EstimatorSpec.make("mixture", noise_std=noise_std, n_points=MIXTURE_POINTS),
             EstimatorSpec.make("mixture_bounds", noise_std=noise_std, bound="lower", n_points=MIXTURE_POINTS),
             EstimatorSpec.make("mixture_bounds", noise_std=noise_std, bound="upper", n_points=MIXTURE_POINTS)]
    specs += [EstimatorSpec.make("mixture", noise_std=noise_std, draws=int(k), n_points=DEEP_POINTS)
              for k in deep_draws]
    return tuple(specs) + (EBAB, AKDE)


def _base(epochs: int, estimators, **kw) -> TrainConfig:
    return TrainConfig(epochs=epochs, estimators=tuple(estimators), ensemble_invariant=True,
                       nested_schedules=True, **kw)


def quantized_base(bits: int, epochs: int = PAPER_EPOCHS, estimators=QUANTIZED_ESTIMATORS) -> TrainConfig:
    """What every unit of a quantized part shares (before activation and seeds)."""
    return _base(epochs, estimators, quantize_bits=bits)


def noisy_base(noise_std: float, epochs: int = PAPER_EPOCHS, deep_draws=DEEP_DRAWS) -> TrainConfig:
    """What every unit of a noisy part shares: tanh, noise std ``noise_std``, its estimators."""
    return _base(epochs, noisy_estimators(noise_std, deep_draws), activation="tanh", noise_std=noise_std)


def ground_truth_sweeps(epochs: int = PAPER_EPOCHS, seeds=PAPER_SEEDS, sensitivity_seeds=SENSITIVITY_SEEDS,
                        parts=GROUND_TRUTH_PARTS, seeds_per_unit: int = 50) -> dict[str, tuple[SweepConfig, ...]]:
    """``{part: (SweepConfig, ...)}`` of the study; smaller ``epochs``/``seeds`` give a cheap
    version with the same structure (what the tests and a trial run use). ``seeds_per_unit``
    caps the networks of a stored unit; the noisy parts use at most :data:`NOISY_SEEDS_PER_UNIT`.

    Raises
    ------
    ValueError
        For an unknown part (the message lists the valid ones).
    """
    unknown = [p for p in parts if p not in GROUND_TRUTH_PARTS]
    if unknown:
        raise ValueError(f"unknown ground-truth part(s) {unknown}; choose from {GROUND_TRUTH_PARTS}")
    seeds, sensitivity_seeds = tuple(seeds), tuple(sensitivity_seeds)
    out = {}
    for part in parts:
        if part.startswith("quantized-"):
            bits = int(part.split("-", 1)[1])
            out[part] = (SweepConfig(quantized_base(bits, epochs), activations=PAPER_ACTIVATIONS, seeds=seeds,
                                     seeds_per_unit=seeds_per_unit),)
        elif part == "noisy":
            out[part] = (SweepConfig(noisy_base(NOISE_STD, epochs), seeds=seeds,
                                     seeds_per_unit=min(seeds_per_unit, NOISY_SEEDS_PER_UNIT)),)
        else:
            out[part] = tuple(SweepConfig(noisy_base(s, epochs, deep_draws=(4,)), seeds=sensitivity_seeds,
                                          seeds_per_unit=min(seeds_per_unit, NOISY_SEEDS_PER_UNIT))
                              for s in SENSITIVITY_STDS)
    return out


def ground_truth_units(**kwargs) -> list[TrainConfig]:
    """Every unit of the study (distinct configurations, in computing order)."""
    seen, units = set(), []
    for sweeps in ground_truth_sweeps(**kwargs).values():
        for sweep in sweeps:
            for unit in sweep.units():
                if unit.key() not in seen:
                    seen.add(unit.key())
                    units.append(unit)
    return units


def estimate_seconds(units, probe_networks: int = 2, train_epochs: int = 3) -> list[float]:
    """Estimated wall seconds of each unit run as one single-threaded process, from
    :func:`ibtools.training.probe_seconds` on this machine now: a short probe (a few epochs of
    training, one evaluation of every estimator on ``probe_networks`` networks) extrapolated
    linearly. Rough (a factor of about 1.5), and wall time: on a machine loaded by other
    processes it is longer than the CPU time the unit needs, by about the load per core."""
    from .training import probe_seconds

    return [probe_seconds(u, train_epochs=train_epochs, probe_networks=probe_networks) for u in units]


def run_ground_truth(cache=None, parts=GROUND_TRUTH_PARTS, progress: bool = True, **kwargs) -> None:
    """Compute (or resume) the study's units into ``cache`` (default :data:`GROUND_TRUTH_RESULTS`).

    Finished units are skipped; an interrupted unit resumes from its checkpoint; several
    processes may run this at once on one cache (each unit is locked while computed).

    Raises
    ------
    DirtyTreeError
        When ``cache`` is :data:`GROUND_TRUTH_RESULTS` and the source tree has uncommitted changes.
    """
    cache = Path(cache) if cache is not None else GROUND_TRUTH_RESULTS
    _check_clean(cache, GROUND_TRUTH_RESULTS)
    parts_sweeps = ground_truth_sweeps(parts=tuple(parts), **kwargs)
    if progress:
        for part, sweeps in parts_sweeps.items():
            for sweep in sweeps:
                print(f"[ground truth] {part}: {len(pending_units(sweep, cache))} of {len(sweep.units())} units "
                      "to compute", flush=True)
    # one pass over every part's units: a unit locked by another process does not hold up the next one
    run_sweeps([sweep for sweeps in parts_sweeps.values() for sweep in sweeps], cache, progress=progress)


def _describe(unit: TrainConfig) -> str:
    what = f"{unit.quantize_bits} bits" if unit.quantize_bits is not None else f"noise {unit.noise_std:g}"
    return f"{unit.activation:18s} {what:10s} seeds {unit.seeds[0]}-{unit.seeds[-1]} ({len(unit.seeds)})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ibtools.ground_truth_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=list(GROUND_TRUTH_PARTS), choices=GROUND_TRUTH_PARTS,
                   help="parts to compute (default: all)")
    p.add_argument("--cache", default=None, help="where to store units (default: results/ground_truth, clean tree only)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the units left to compute with an estimate of their cost (a short probe per unit); "
                        "compute nothing")
    p.add_argument("--no-estimate", action="store_true", help="with --dry-run: list the units only, no probe")
    args = p.parse_args(argv)
    cache = Path(args.cache) if args.cache else GROUND_TRUTH_RESULTS
    if args.dry_run:
        total = 0.0
        for part, sweeps in ground_truth_sweeps(parts=tuple(args.parts)).items():
            units = [u for s in sweeps for u in s.units()]
            todo = [u for s in sweeps for u in pending_units(s, cache)]
            print(f"{part}: {len(units)} units, {len(todo)} to compute", flush=True)
            costs = [None] * len(todo) if args.no_estimate else estimate_seconds(todo)
            for unit, cost in zip(todo, costs):
                print(f"  {_describe(unit)}" + ("" if cost is None else f"  ~{cost / 3600:.2f} h"), flush=True)
            if not args.no_estimate:
                total += sum(costs)
        if not args.no_estimate:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"estimated total: {total / 3600:.1f} hours of one single-threaded process (wall time at the "
                  f"probe's load: load average {load:.1f} on {os.cpu_count()} cores; units run in parallel "
                  "processes share the cores)")
        return 0
    return exit_status(run_ground_truth, cache, tuple(args.parts))


if __name__ == "__main__":
    sys.exit(main())

"""The paper-scale study behind the book's figures, defined in one place.

Everything the reproduction chapters show at full scale comes from these configurations:
50 initializations x 8000 epochs for each of the paper's eight activations, an L2 sweep for ReLU,
and two single networks (ReLU and tanh) recorded with every estimator. Run it with
``python -m ibtools paper`` (or ``make paper``); finished units land in ``results/paper`` with
their provenance sidecars and are committed, so the book renders without recomputing.

Chapters call :func:`obtain`: it loads the committed units when a chapter's parameters match
them exactly, and otherwise computes (in a scratch directory, never touching the committed
results). A committed unit that fails its checks is an error that says how to restore it; it is
never moved or recomputed behind the reader's back.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .activations import PAPER_ACTIVATIONS
from .config import EstimatorSpec, TrainConfig
from . import settings
from .results import CorruptResultError, RunResult, result_paths
from .sweep import ResultCache, SweepConfig, SweepResult, run_sweep, run_sweeps

__all__ = [
    "StoredResultError",
    "PAPER_RESULTS",
    "COLLAPSE_RESULTS",
    "extra_failure_runs",
    "pooled_reference_failures",
    "PAPER_EPOCHS",
    "PAPER_SEEDS",
    "L2_STRENGTHS",
    "MAIN_ESTIMATORS",
    "SENSITIVITY_ESTIMATORS",
    "SINGLE_NETWORK_ESTIMATORS",
    "study_estimators",
    "ESTIMATOR_NAMES",
    "estimator_label",
    "activation_sweep",
    "l2_sweep",
    "single_network_config",
    "global_range_config",
    "snapshot_config",
    "snapshot_epochs",
    "obtain",
    "obtain_run",
    "run_paper_study",
    "compiled_engines",
    "compiled_sweep",
    "MNIST1D_TASK",
    "MNIST1D_HIDDEN",
    "MNIST1D_EPOCHS",
]

#: Where the committed full-scale results live: ``results/paper`` at the repository root, or
#: the directory in the environment variable ``IBTOOLS_RESULTS`` (set by the chapters' Colab
#: setup cell, which clones the repository).
PAPER_RESULTS = Path(os.environ.get("IBTOOLS_RESULTS") or Path(__file__).resolve().parent.parent / "results" / "paper")

#: Extra networks trained to pin down a failure rate (``results/collapse`` beside the stored
#: study): ReLU at the paper code's λ = 0.015, seeds 50-199, EBAB on a 30-point schedule,
#: ``ensemble_invariant`` (see the README there).
COLLAPSE_RESULTS = PAPER_RESULTS.parent / "collapse"

PAPER_EPOCHS = 8000
PAPER_SEEDS = tuple(range(50))
#: L2 strengths of the sweep; 0.015 is the default of the paper's code.
L2_STRENGTHS = (0.0, 1e-4, 1e-3, 5e-3, 0.015, 0.05)

#: The study beyond the 12-bit task runs on MNIST-1D (:mod:`ibtools.tasks`): 5000 signals of 40
#: values in 10 classes, so every estimate of I(X;T) is capped at log2 5000 = 12.29 bits.
MNIST1D_TASK = "mnist1d"
#: Hidden widths for MNIST-1D, chosen by the pilot in ``experiments/mnist1d_pilot.md``
#: (``scripts/pilot_mnist1d.py``). With 5000 distinct continuous inputs, EBAB with 30 bins puts
#: every input in a bin of its own in every layer of 16 or more units, from initialization to the
#: end (and keeps 10-unit layers within about 0.1 bit of the ceiling): such a layer shows neither
#: fitting nor compression. The widths narrow, like the paper's 10-7-5-4-3 and Saxe et al.'s
#: 1024-20-20-20 for MNIST: a wide front end (100, 50, 20) lets the networks fit the task
#: (networks with the paper's narrow tail, ...-5-4-3 or ...-8-4, fit badly in 1000 epochs at the
#: paper's learning rate), then a 10-unit layer that adaptive KDE resolves below the ceiling and
#: a 5-unit layer that EBAB resolves too. (The paper's 12-bit networks likewise saturate EBAB in
#: their first layers.)
MNIST1D_HIDDEN = (100, 50, 20, 10, 5)
#: Epochs of the MNIST-1D study: in the pilot, tanh networks of these widths were still improving
#: their test accuracy after 1000 epochs (ReLU networks had just passed their best); four times
#: that leaves room to fit and then overfit, at half the 12-bit study's 8000 epochs.
MNIST1D_EPOCHS = 4000

#: Recorded for every network of the study: EBAB at all 274 epochs, adaptive KDE at 24
#: log-spaced epochs (it costs ~100x more per evaluation). Each setting is defined once, in
#: :mod:`ibtools.settings`.
MAIN_ESTIMATORS = (settings.EBAB, settings.AKDE)
#: Settings for the sensitivity of each verdict: EBAB with 10 and 100 bins (83 epochs), adaptive
#: KDE with 10x smaller and larger constants (10 epochs).
SENSITIVITY_ESTIMATORS = (settings.EBAB_10_BINS, settings.EBAB_100_BINS, settings.AKDE_SMALL_ALPHA,
                          settings.AKDE_LARGE_ALPHA)
#: The single networks of the estimator-comparison chapter get every estimator at every epoch.
SINGLE_NETWORK_ESTIMATORS = (
    settings.EBAB,
    settings.FIXED_UNIT_RANGE,
    settings.FIXED_BIN_SIZE,
    settings.OWN_RANGE,
    settings.NETWORK_RANGE,
    settings.KDE_FIXED_NOISE,
    settings.AKDE_EVERY_EPOCH,
)


def study_estimators(sensitivity: bool = True) -> tuple[EstimatorSpec, ...]:
    """The estimators recorded for every network of the study (without the sensitivity set:
    a cheaper study whose main results are the same)."""
    return MAIN_ESTIMATORS + (SENSITIVITY_ESTIMATORS if sensitivity else ())


#: Short names of the study's estimators, as chapters' parameters use them.
ESTIMATOR_NAMES = {
    "ebab": MAIN_ESTIMATORS[0].label,
    "akde": MAIN_ESTIMATORS[1].label,
    "ebab_10bins": SENSITIVITY_ESTIMATORS[0].label,
    "ebab_100bins": SENSITIVITY_ESTIMATORS[1].label,
    "akde_small_alpha": SENSITIVITY_ESTIMATORS[2].label,
    "akde_large_alpha": SENSITIVITY_ESTIMATORS[3].label,
}


def estimator_label(name: str, sensitivity: bool = True) -> str:
    """The result-table label of a study estimator given by its short name (``"ebab"``,
    ``"akde"``, ``"ebab_10bins"``...)."""
    allowed = list(ESTIMATOR_NAMES) if sensitivity else ["ebab", "akde"]
    if name not in allowed:
        raise ValueError(f"unknown study estimator {name!r}; choose one of {allowed}")
    return ESTIMATOR_NAMES[name]


def _base(epochs: int, seeds, estimators) -> TrainConfig:
    return TrainConfig(epochs=epochs, seeds=tuple(seeds), estimators=tuple(estimators))


def activation_sweep(activations=PAPER_ACTIVATIONS, epochs: int = PAPER_EPOCHS, seeds=PAPER_SEEDS,
                     estimators=None, seeds_per_unit: int = 50, sensitivity: bool = True) -> SweepConfig:
    """The paper's eight activations without regularization (Figs. 5-7)."""
    estimators = study_estimators(sensitivity) if estimators is None else estimators
    return SweepConfig(_base(epochs, seeds, estimators), activations=tuple(activations), l2s=(0.0,),
                       seeds=tuple(seeds), seeds_per_unit=seeds_per_unit)


def l2_sweep(l2s=L2_STRENGTHS, activation: str = "relu", epochs: int = PAPER_EPOCHS, seeds=PAPER_SEEDS,
             estimators=None, seeds_per_unit: int = 50, sensitivity: bool = True) -> SweepConfig:
    """ReLU networks at several L2 strengths (0 is shared with :func:`activation_sweep`)."""
    estimators = study_estimators(sensitivity) if estimators is None else estimators
    return SweepConfig(_base(epochs, seeds, estimators), activations=(activation,), l2s=tuple(l2s),
                       seeds=tuple(seeds), seeds_per_unit=seeds_per_unit)


def single_network_config(activation: str, seed: int = 0, epochs: int = PAPER_EPOCHS,
                          estimators=SINGLE_NETWORK_ESTIMATORS) -> TrainConfig:
    """One network recorded with every estimator at every scheduled epoch."""
    return _base(epochs, (seed,), estimators).replace(activation=activation)


def snapshot_epochs(epochs: int = PAPER_EPOCHS) -> tuple[int, ...]:
    """Epochs at which :func:`snapshot_config` keeps raw activity: start, 1/80, 1/8, end."""
    return tuple(sorted({0, epochs // 80, epochs // 8, epochs - 1}))


def snapshot_config(activation: str = "relu", seed: int = 0, epochs: int = PAPER_EPOCHS) -> TrainConfig:
    """One network whose raw activity is kept at a few epochs (for figures of the binning)."""
    return _base(epochs, (seed,), (settings.EBAB,)).replace(
        activation=activation, record_activations=snapshot_epochs(epochs))


def global_range_config(first: RunResult) -> TrainConfig:
    """Re-run of a single network with the binning range the paper criticizes: equal-width bins
    from 0 to the largest activity of *any* layer over *all* of training (known only after
    training once; training is deterministic, so the re-run is the same network)."""
    global_max = float(np.nanmax(first.layer_max[:, :-1]))  # hidden layers
    spec = EstimatorSpec.make("max", n_bins=settings.N_BINS, max_value=round(global_max, 6))
    return first.config.replace(estimators=(spec,))


class StoredResultError(CorruptResultError):
    """A committed (stored) result fails its checks. Stored results are read-only: this says
    what is wrong and how to restore the file; nothing is moved or recomputed."""


def _scratch(scratch_dir) -> Path:
    return Path(scratch_dir) if scratch_dir is not None else Path.cwd() / "_scratch_results"


def obtain(sweep: SweepConfig, results_dir=PAPER_RESULTS, scratch_dir=None, progress: bool = True) -> SweepResult:
    """Results of ``sweep``: loaded from ``results_dir`` if every unit is there (the committed
    study), otherwise computed in ``scratch_dir`` (resumable; default ``./_scratch_results``).

    The committed directory is only ever read: nothing there is moved, written or recomputed.

    Raises
    ------
    StoredResultError
        If a unit stored in ``results_dir`` is corrupt, edited or stale. The message names the
        file, what is wrong, and how to restore it (``git checkout`` of the committed files, or
        an explicit recompute with ``python -m ibtools paper``).
    """
    committed = ResultCache(results_dir)
    runs = []
    for unit in sweep.units():
        try:
            runs.append(committed.read(unit))
        except CorruptResultError as exc:
            npz, sidecar = result_paths(committed.path(unit))
            raise StoredResultError(
                f"stored result {committed.name(unit)} in {committed.root} is unusable: {exc}. Stored results are "
                f"read-only and are not recomputed silently. Restore the committed files with "
                f"`git checkout -- {npz} {sidecar}` (or fetch them again), or recompute them explicitly "
                f"with `python -m ibtools paper --cache {committed.root}`, which moves the bad files to "
                f"{committed.root / 'quarantine'}") from None
    if all(r is not None for r in runs):
        return SweepResult(runs)
    return run_sweep(sweep, _scratch(scratch_dir), progress=progress)


def _compute_run(config: TrainConfig, cache, progress: bool) -> RunResult:
    """One run, loaded from ``cache`` or computed into it (explicit recompute: a corrupt entry
    is quarantined with a warning and computed again)."""
    return run_sweep(SweepConfig(config, seeds_per_unit=len(config.seeds)), cache, progress=progress).runs[0]


def obtain_run(config: TrainConfig, results_dir=PAPER_RESULTS, scratch_dir=None, progress: bool = True) -> RunResult:
    """One run's results, loaded if committed, otherwise computed (see :func:`obtain`)."""
    return obtain(SweepConfig(config, seeds_per_unit=len(config.seeds)), results_dir, scratch_dir, progress).runs[0]


PARTS = ("single", "activations", "l2")


#: Estimators that take ``engine="fused"`` (:data:`ibtools.estimators.ENGINES`).
_ENGINE_ESTIMATORS = ("kde", "akde")


def compiled_engines(config: TrainConfig) -> TrainConfig:
    """``config`` with both compiled CPU paths: training by the fused kernel
    (``backend="fused"``, :mod:`ibtools.fused`) and the kernel sums of KDE and adaptive KDE by
    theirs (``engine="fused"``, :mod:`ibtools.estimators.kde_fused`); every other estimator as
    it was.

    Both agree with the reference paths to float32 rounding, not bit for bit, so the result is
    another set of numbers than the stored study's: its units have other keys and its kernel
    estimators other labels (``akde(alpha=0.01,engine=fused)``), and nothing of it mixes with
    stored results."""
    specs = tuple(EstimatorSpec.make(s.name, n_points=s.n_points, **{**s.kwargs, "engine": "fused"})
                  if s.name in _ENGINE_ESTIMATORS else s for s in config.estimators)
    return config.replace(backend="fused", estimators=specs)


def compiled_sweep(sweep: SweepConfig) -> SweepConfig:
    """``sweep`` with :func:`compiled_engines` on its base configuration (so on every unit)."""
    return dataclasses.replace(sweep, base=compiled_engines(sweep.base))


def _refuse_stored_directories(cache) -> None:
    """A ``ValueError`` if ``cache`` is, lies inside or contains the stored study
    (:data:`PAPER_RESULTS`) or the repository's ``results`` directory (symbolic links and relative
    paths resolved)."""
    target = Path(cache).resolve()
    for stored in {Path(PAPER_RESULTS).resolve(), Path(__file__).resolve().parent.parent / "results"}:
        if target == stored or stored in target.parents or target in stored.parents:
            raise ValueError(f"the compiled study writes another set of numbers than the stored ones: give it a cache "
                             f"of its own, outside {stored} (got {cache})")


def run_paper_study(cache=PAPER_RESULTS, parts=PARTS, executor=None, progress: bool = True,
                    compiled: bool = False) -> None:
    """Run (or resume) the full study into ``cache``. ``parts`` selects among ``"single"``,
    ``"activations"`` and ``"l2"``. ``compiled``: every run with :func:`compiled_engines` (a
    faster study whose numbers are not the stored ones; give it a ``cache`` of its own)."""
    for part in parts:
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; choose from {PARTS}")
    if compiled:
        _refuse_stored_directories(cache)
    single_activations = ("relu", "tanh") if "single" in parts else ()
    # the single networks with every estimator first, then those with raw activity kept
    singles = ([single_network_config(a) for a in single_activations] + [snapshot_config(a) for a in single_activations])
    sweeps = ([SweepConfig(config, seeds_per_unit=1) for config in singles]
              + ([activation_sweep()] if "activations" in parts else []) + ([l2_sweep()] if "l2" in parts else []))
    sweeps = [compiled_sweep(sweep) for sweep in sweeps] if compiled else sweeps
    # one pass over every part's units: a unit locked by another process sharing the cache does
    # not hold up the next one
    results = run_sweeps(sweeps, cache, progress=progress, executor=executor) if sweeps else []
    for result in results[:len(single_activations)]:  # each single network again, with the global range
        _compute_run(global_range_config(result.runs[0]), cache, progress)


def extra_failure_runs(activation: str, l2: float, epochs: int = PAPER_EPOCHS, results_dir=None) -> list[RunResult]:
    """The stored extra units (``results/collapse``) of one condition, for failure rates.

    Parameters
    ----------
    activation, l2, epochs
        The condition; only units whose configuration matches all three (and the study's
        architecture, initialization and split) are returned.
    results_dir : path, optional
        Default :data:`COLLAPSE_RESULTS`.

    Returns
    -------
    list of RunResult
        Possibly empty (no extra networks for this condition). Each unit is verified on loading
        (checksum and configuration), like every stored result.
    """
    from .results import load_run

    root = Path(results_dir) if results_dir is not None else COLLAPSE_RESULTS
    reference = TrainConfig(activation=activation, l2=float(l2), epochs=int(epochs))
    runs = []
    for sidecar in sorted(root.glob("*.json")):
        run = load_run(sidecar.with_suffix(""))
        c = run.config
        same = (c.activation, c.l2, c.epochs, c.hidden, c.init, c.split, c.lr, c.batch_size) == (
            reference.activation, reference.l2, reference.epochs, reference.hidden, reference.init, reference.split,
            reference.lr, reference.batch_size)
        if same:
            runs.append(run)
    return runs


def pooled_reference_failures(runs, activation: str = "relu", l2: float = 0.015, epochs: int = PAPER_EPOCHS,
                              estimator: str | None = None, results_dir=None):
    """Failure counts of one condition: the networks of ``runs`` at that condition, the extra
    networks stored for it (:func:`extra_failure_runs`), and both pooled
    (:func:`ibtools.failures.pooled_failure_rate`).

    Returns None when either group is empty (no extra networks were trained for the condition).
    ``estimator`` supplies I(X;T) for the failure criteria (default: EBAB with 30 bins, which
    every stored unit records).
    """
    from .failures import pooled_failure_rate

    ref = [r for r in runs if r.config.activation == activation and np.isclose(r.config.l2, l2)
           and r.config.epochs == epochs]
    extra = extra_failure_runs(activation, l2, epochs, results_dir)
    if not ref or not extra:
        return None
    return pooled_failure_rate({"stored study": ref, "extra networks (results/collapse)": extra},
                               estimator=estimator or MAIN_ESTIMATORS[0].label)


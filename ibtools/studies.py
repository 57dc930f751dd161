"""Which study a chapter reads: the stored study (``"paper"``, ``results/paper``) or its re-run
(``"rerun"``, ``results/rerun``: clean commit, nested schedules, ensemble-invariant arithmetic,
the exact I(X;T), two initialization arms; see :mod:`ibtools.rerun`).

The chapters that show the 50-network study have one parameter ``STUDY`` and get their runs
through these functions, so switching the book to the re-run is one value per chapter. Both
studies record the same estimator settings under the same labels
(:data:`ibtools.study.ESTIMATOR_NAMES`); the re-run also records :data:`ibtools.rerun.EXACT`.
As everywhere, parameters that match the stored units exactly load them, other parameters compute
a smaller study in the scratch directory.
"""

from __future__ import annotations

from pathlib import Path

from .study import PAPER_EPOCHS, PAPER_RESULTS, activation_sweep, l2_sweep, obtain

__all__ = ["STUDIES", "check_study", "study_results_dir", "study_estimators", "study_activations", "study_l2",
           "study_single"]

#: The studies a chapter can read.
STUDIES = ("paper", "rerun")


def check_study(study) -> str:
    """``study`` if it is one of :data:`STUDIES`; otherwise a ValueError saying what is allowed."""
    if not isinstance(study, str) or study not in STUDIES:
        raise ValueError(f"STUDY must be one of {STUDIES}, got {study!r}")
    return study


def study_results_dir(study: str, results_dir=None) -> Path:
    """Where ``study``'s stored units are: ``results_dir`` if given, else ``results/paper`` or
    ``results/rerun``."""
    from .rerun import RERUN_RESULTS

    if results_dir is not None:
        return Path(results_dir)
    return PAPER_RESULTS if check_study(study) == "paper" else RERUN_RESULTS


def study_estimators(study: str, sensitivity: bool = True) -> tuple:
    """Estimators recorded for every network of ``study``; without ``sensitivity`` only the main
    ones (and, in the re-run, the exact MI), a cheaper study whose main results are the same."""
    from . import settings
    from .rerun import EXACT, RERUN_ESTIMATORS
    from .study import study_estimators as paper_estimators

    if check_study(study) == "paper":
        return paper_estimators(sensitivity)
    return RERUN_ESTIMATORS if sensitivity else (settings.EBAB, settings.AKDE, EXACT)


def study_activations(study: str, activations, epochs: int = PAPER_EPOCHS, seeds=range(50), *,
                      sensitivity: bool = True, init: str = "paper", results_dir=None, scratch_dir=None,
                      progress: bool = True):
    """The activation comparison of ``study`` (a SweepResult). ``init`` picks the re-run's
    initialization arm (:data:`ibtools.rerun.INIT_ARMS`); the stored study has the paper arm only."""
    from .rerun import rerun_activations

    root = study_results_dir(study, results_dir)
    if study == "paper":
        if init != "paper":
            raise ValueError(f"the stored study has the paper initialization only; init={init!r} needs STUDY='rerun'")
        sweep = activation_sweep(activations=tuple(activations), epochs=epochs, seeds=seeds, sensitivity=sensitivity)
        return obtain(sweep, root, scratch_dir, progress)
    return rerun_activations(init, tuple(activations), epochs, seeds, study_estimators(study, sensitivity),
                             results_dir=root, scratch_dir=scratch_dir, progress=progress)


def study_l2(study: str, l2s, activation: str = "relu", epochs: int = PAPER_EPOCHS, seeds=range(50), *,
             sensitivity: bool = True, results_dir=None, scratch_dir=None, progress: bool = True):
    """The L2 sweep of ``study`` (a SweepResult)."""
    from .rerun import rerun_l2

    root = study_results_dir(study, results_dir)
    if study == "paper":
        sweep = l2_sweep(l2s=tuple(l2s), activation=activation, epochs=epochs, seeds=seeds, sensitivity=sensitivity)
        return obtain(sweep, root, scratch_dir, progress)
    return rerun_l2(tuple(l2s), activation, epochs, seeds, study_estimators(study, sensitivity), results_dir=root,
                    scratch_dir=scratch_dir, progress=progress)


def study_single(study: str, activation: str, kind: str = "estimators", epochs: int = PAPER_EPOCHS, *,
                 results_dir=None, scratch_dir=None, progress: bool = True):
    """A single network of ``study`` (seed 0): ``kind`` ``"estimators"`` or ``"ranged"``
    (its re-run with the network-wide binning range); the re-run also has ``"snapshot"`` and
    ``"exact"`` (:data:`ibtools.rerun.SINGLE_KINDS`)."""
    from .rerun import rerun_single
    from .study import global_range_config, obtain_run, single_network_config

    root = study_results_dir(study, results_dir)
    if study == "rerun":
        return rerun_single(activation, kind, epochs, results_dir=root, scratch_dir=scratch_dir, progress=progress)
    if kind not in ("estimators", "ranged"):
        raise ValueError(f"the stored study's single networks are 'estimators' or 'ranged', got {kind!r}")
    run = obtain_run(single_network_config(activation, 0, epochs), root, scratch_dir, progress)
    return run if kind == "estimators" else obtain_run(global_range_config(run), root, scratch_dir, progress)

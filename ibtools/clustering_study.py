"""The clustering chapter's data and figures: the re-run's networks (:mod:`ibtools.rerun`) as the
tables that :mod:`ibtools.clustering_verdicts` judges, and the plots of its results.

:func:`clustering_data` reads the re-run's activation comparison (one or both initialization
arms) and its L2 sweep, unit by unit, so that a chapter runs on whatever units are stored and
lists the rest (``compute_missing=False``), or computes what is not stored in a scratch directory
(``compute_missing=True``: the chapter's cheap settings). Every network carries its arm, so that
networks of the two arms with the same activation and seed stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .activations import PAPER_ACTIVATIONS
from .analysis import restrict_epochs
from .clustering_verdicts import NETWORK_SETS, common_epochs
from .failures import classify_runs
from .plotting import plot_mean_ci
from .sweep import SweepConfig, UnitsRead, stored_units
from .tracking import curve_correlations

__all__ = ["JUDGEABLE", "ClusteringData", "judged_specs", "recorded_estimators", "clustering_data", "arm_curve_correlations",
           "verdict_pivot", "plot_compression_vs_change", "plot_tracking", "plot_curve_correlations"]

#: Short names of the estimator settings this chapter can judge (:data:`ibtools.study.ESTIMATOR_NAMES`).
JUDGEABLE = ("ebab", "akde", "ebab_10bins", "ebab_100bins", "akde_small_alpha", "akde_large_alpha")


@dataclass
class ClusteringData(UnitsRead):
    """What the chapter judges.

    Attributes
    ----------
    table, measures : DataFrame
        Information-plane and measure tables of every network read, with an ``arm`` column.
    status : DataFrame
        :func:`ibtools.failures.classify_runs` of the same networks (by EBAB), with ``arm``.
    runs : dict
        ``{(arm, activation, l2): SweepResult}`` of the units read.
    missing : DataFrame
        Units asked for but neither stored nor computed: ``arm, activation, l2, unit``.
    layer_names : tuple of str
        Names of the layers (the last is the softmax output).
    """

    table: pd.DataFrame
    measures: pd.DataFrame
    status: pd.DataFrame
    runs: dict
    missing: pd.DataFrame
    layer_names: tuple


def judged_specs(names) -> tuple:
    """The EstimatorSpecs of the settings named (short names of :data:`JUDGEABLE`)."""
    from . import settings

    names = [names] if isinstance(names, str) else list(names)
    specs = {"ebab": settings.EBAB, "akde": settings.AKDE, "ebab_10bins": settings.EBAB_10_BINS,
             "ebab_100bins": settings.EBAB_100_BINS, "akde_small_alpha": settings.AKDE_SMALL_ALPHA,
             "akde_large_alpha": settings.AKDE_LARGE_ALPHA}
    if not names:
        raise ValueError("name at least one estimator to judge")
    for n in names:
        if n not in specs:
            raise ValueError(f"unknown study estimator {n!r}; choose from {', '.join(JUDGEABLE)}")
    return tuple(specs[n] for n in names)


def recorded_estimators(names, sensitivity: bool = True) -> tuple:
    """Estimators every network records: with ``sensitivity`` those of the stored re-run
    (:data:`ibtools.rerun.RERUN_ESTIMATORS`, needed to load it); without, EBAB (the failure
    criteria read it), the settings judged and the exact I(X;T) only (a cheaper study)."""
    from .rerun import EXACT, RERUN_ESTIMATORS
    from .settings import EBAB

    judged = judged_specs(names)
    if sensitivity:
        return RERUN_ESTIMATORS
    out = [EBAB] + [s for s in judged if s != EBAB] + [EXACT]
    return tuple(out)


def clustering_data(arms=("paper", "tishby"), activations=PAPER_ACTIVATIONS, l2s=(), *, epochs=None, seeds=None,
                    estimators=("ebab", "akde"), sensitivity: bool = True, compute_missing: bool = False,
                    results_dir=None, scratch_dir=None, progress: bool = True) -> ClusteringData:
    """The re-run's networks for the clustering chapter.

    Parameters
    ----------
    arms : sequence of str
        Initialization arms (:data:`ibtools.rerun.INIT_ARMS`) of the activation comparison.
    activations : sequence of str
        Activations of the comparison.
    l2s : sequence of float
        L2 strengths of the ReLU sweep (paper arm) beyond 0 (0 itself is the activation
        comparison's ReLU unit and is skipped here); read only when ``"paper"`` is among ``arms``.
    epochs, seeds : optional
        Training epochs and seeds (default: the stored study's 8000 and 0-49).
    estimators : sequence of str
        Short names of the settings to be judged (:func:`judged_specs`).
    sensitivity : bool
        Record every estimator of the stored re-run (True, needed to load it) or only EBAB, the
        judged ones and the exact I(X;T) (:func:`recorded_estimators`).
    compute_missing : bool
        False: read only the units stored in ``results_dir`` (default ``results/rerun``) and list
        the others in ``missing``. True: compute the units that are not stored in
        ``scratch_dir`` (resumable; what a cheap setting does).

    Raises
    ------
    ValueError
        For an unknown arm, activation or estimator, or when no unit could be read (with the
        reason and what to do).
    """
    from .rerun import EXACT, INIT_ARMS, RERUN_MEASURES, RERUN_RESULTS, rerun_activations, rerun_base, rerun_l2
    from .settings import EBAB
    from .study import PAPER_EPOCHS, PAPER_SEEDS

    arms, activations = list(arms), list(activations)
    for arm in arms:
        if arm not in INIT_ARMS:
            raise ValueError(f"unknown initialization arm {arm!r}; choose from {INIT_ARMS}")
    if not arms or not activations:
        raise ValueError("name at least one arm and one activation")
    epochs = PAPER_EPOCHS if epochs is None else int(epochs)
    seeds = PAPER_SEEDS if seeds is None else tuple(seeds)
    recorded = recorded_estimators(estimators, sensitivity)
    labels = [s.label for s in judged_specs(estimators)] + [EXACT.label]
    root = results_dir or RERUN_RESULTS
    kw = dict(epochs=epochs, seeds=seeds, estimators=recorded, measures=RERUN_MEASURES, results_dir=root,
              scratch_dir=scratch_dir, progress=progress)
    conditions = [(arm, a, 0.0) for arm in arms for a in activations]
    if "paper" in arms:
        conditions += [("paper", "relu", float(v)) for v in l2s if float(v) != 0.0]
    runs, missing = {}, []
    for arm, activation, l2 in conditions:
        sweep = SweepConfig(rerun_base(epochs, arm, recorded, RERUN_MEASURES), activations=(activation,), l2s=(l2,),
                            seeds=seeds, seeds_per_unit=50)
        stored, name = stored_units(sweep, root)
        if not (stored or compute_missing):
            missing.append({"arm": arm, "activation": activation, "l2": l2, "unit": name})
            continue
        if l2 == 0.0:
            runs[(arm, activation, l2)] = rerun_activations(arm, (activation,), **kw)
        else:
            runs[(arm, activation, l2)] = rerun_l2((l2,), activation, **kw)
    missing = pd.DataFrame(missing, columns=["arm", "activation", "l2", "unit"])
    if not runs:
        raise ValueError(f"none of the {len(conditions)} units asked for is stored in {root} (for these epochs, "
                         "seeds and estimators); compute the re-run (python -m ibtools.rerun) or set "
                         "compute_missing=True to compute them in the scratch directory")
    tables, measures, status = [], [], []
    for (arm, _, _), res in runs.items():
        for run in res.runs:
            tables.append(run.table(labels).assign(arm=arm))
            measures.append(run.measure_table().assign(arm=arm))
        status.append(classify_runs(res.runs, EBAB.label).assign(arm=arm))
    first = next(iter(runs.values())).runs[0]
    return ClusteringData(pd.concat(tables, ignore_index=True), pd.concat(measures, ignore_index=True),
                          pd.concat(status, ignore_index=True), runs, missing, tuple(first.layer_names))


def arm_curve_correlations(data: ClusteringData, estimators, exact: str = "exact") -> pd.DataFrame:
    """Within-network curve correlations (:func:`ibtools.tracking.curve_correlations`) of the
    estimators and of the exact I(X;T) with every measure, on the epochs all of them share
    (:func:`ibtools.clustering_verdicts.common_epochs`), arm by arm; an ``arm`` column first."""
    labels = [estimators] if isinstance(estimators, str) else list(estimators)
    epochs = common_epochs(data.table, data.measures, labels, exact)
    table = restrict_epochs(data.table, epochs)
    measures = restrict_epochs(data.measures, epochs)
    out = []
    for arm in sorted(table["arm"].unique()):
        per = curve_correlations(table[table["arm"] == arm], measures[measures["arm"] == arm], [*labels, exact])
        out.append(per.assign(n_common=len(epochs)).assign(arm=arm))
    frame = pd.concat(out, ignore_index=True)
    return frame[["arm"] + [c for c in frame.columns if c != "arm"]]


def verdict_pivot(verdicts: pd.DataFrame, layer_names) -> pd.DataFrame:
    """The verdicts of :func:`ibtools.clustering_verdicts.clustering_verdicts` as a table: rows
    (estimator, measure, layer), columns (network set, question), cells ``verdict (rho)``."""
    v = verdicts.copy()
    v["layer"] = [layer_names[int(k) - 1] for k in v["layer"]]

    def fmt(verdict, rho):
        return f"{verdict} ({rho:+.2f})" if np.isfinite(rho) else verdict

    v["tracks clustering?"] = [fmt(a, r) for a, r in zip(v["tracking"], v["rho"])]
    v["better than information?"] = [fmt(a, r) for a, r in zip(v["vs_information"], v["diff"])]
    wide = v.set_index(["estimator", "measure", "layer", "networks"])[["tracks clustering?", "better than information?"]]
    wide = wide.unstack("networks")
    wide = wide.swaplevel(0, 1, axis=1)
    order = [(n, q) for n in NETWORK_SETS for q in ("tracks clustering?", "better than information?") if (n, q) in wide]
    rows = verdicts.drop_duplicates(["estimator", "measure", "layer"])
    idx = [(e, m, layer_names[int(k) - 1]) for e, m, k in zip(rows["estimator"], rows["measure"], rows["layer"])]
    return wide.loc[idx, order]


def _offsets(n: int, width: float = 0.5) -> np.ndarray:
    return np.linspace(-width / 2, width / 2, n) if n > 1 else np.zeros(1)


def plot_compression_vs_change(frame: pd.DataFrame, estimator: str, measure: str, layer: int, ax=None, *,
                               layer_name: str | None = None):
    """One cell of the rule drawn: each network's compression score (x, bits) against its
    measure's change (y), one colour per condition (arm, activation, L2). Returns the axes."""
    ax = ax or plt.gca()
    sub = frame[(frame["estimator"] == estimator) & (frame["measure"] == measure) & (frame["layer"] == layer)]
    sub = sub[np.isfinite(sub["compression"].astype(float)) & np.isfinite(sub["change"].astype(float))]
    if sub.empty:
        raise ValueError(f"no defined values for {estimator}, {measure}, layer {layer}")
    groups = list(sub.groupby(["arm", "activation", "l2"], sort=True))
    cmap = plt.get_cmap("tab20" if len(groups) > 10 else "tab10")
    for k, ((arm, act, l2), g) in enumerate(groups):
        label = f"{act}" + (f", L2 {l2:g}" if l2 else "") + (f" ({arm})" if arm else "")
        ax.scatter(g["compression"], g["change"], s=14, alpha=0.75, color=cmap(k % cmap.N), label=label,
                   edgecolors="none")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel(f"compression by {estimator} (peak − final, bits)")
    ax.set_ylabel(f"change of {measure}\n(positive = clustered)")
    ax.set_title(f"{layer_name or f'layer {layer}'}: one point per network", fontsize=10)
    return ax


def plot_tracking(verdicts: pd.DataFrame, measure: str, layer_names, *, networks: str = "all networks", ax=None):
    """Q1's rho (filled) and the same rho against the exact I(X;T)'s change (hollow), per layer
    and estimator, with their intervals; a missing point is a cell without a rho (its verdict says
    why). Returns the axes."""
    ax = ax or plt.gca()
    v = verdicts[(verdicts["measure"] == measure) & (verdicts["networks"] == networks)]
    if v.empty:
        raise ValueError(f"no verdicts for measure {measure!r} with {networks}")
    ests = sorted(v["estimator"].unique())
    offs = _offsets(2 * len(ests), 0.6)
    for k, est in enumerate(ests):
        g = v[v["estimator"] == est].sort_values("layer")
        color = f"C{k}"
        ok = np.isfinite(g["rho"].to_numpy(float))
        if ok.any():
            plot_mean_ci(g["layer"][ok] + offs[2 * k], g["rho"][ok], g["rho_low"][ok].fillna(g["rho"][ok]),
                         g["rho_high"][ok].fillna(g["rho"][ok]), ax, color=color, label=f"{est}: with the measure")
        ok = np.isfinite(g["rho_info"].to_numpy(float))
        if ok.any():
            plot_mean_ci(g["layer"][ok] + offs[2 * k + 1], g["rho_info"][ok], g["rho_info_low"][ok].fillna(g["rho_info"][ok]),
                         g["rho_info_high"][ok].fillna(g["rho_info"][ok]), ax, color=color, marker="o", mfc="white",
                         label=f"{est}: with exact I(X;T)")
    return _rho_axes(ax, layer_names, "within-condition Spearman ρ", f"compression vs change of {measure}")


def plot_curve_correlations(summary: pd.DataFrame, measure: str, layer_names, ax=None):
    """Mean over networks of the within-network curve correlation (estimate vs measure over
    epochs; :func:`ibtools.tracking.summarize_curve_correlations`), per layer and estimator, with
    bootstrap intervals. Returns the axes."""
    ax = ax or plt.gca()
    s = summary[summary["measure"] == measure]
    if s.empty:
        raise ValueError(f"no curve correlations for measure {measure!r}")
    ests = sorted(s["estimator"].unique())
    offs = _offsets(len(ests), 0.45)
    for k, est in enumerate(ests):
        g = s[s["estimator"] == est].sort_values("layer")
        ok = np.isfinite(g["mean_rho"].to_numpy(float))
        if ok.any():
            plot_mean_ci(g["layer"][ok] + offs[k], g["mean_rho"][ok], g["mean_rho_low"][ok], g["mean_rho_high"][ok], ax,
                         color=f"C{k}", label=est)
    return _rho_axes(ax, layer_names, "mean Spearman ρ over epochs", f"I(X;T) curve vs {measure} curve")


def _rho_axes(ax, layer_names, ylabel: str, title: str):
    """The frame both rho-per-layer figures share: a zero line, rho's range, the layers on x."""
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xticks(range(1, len(layer_names) + 1), list(layer_names))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return ax

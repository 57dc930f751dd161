"""Beyond the 12-bit task: the paper's claims on another task, beside their verdicts on the 12-bit task.

What the chapter ``book/10_beyond_12_bits.ipynb`` computes, kept here so the chapter
holds no reusable code. The claims, their measurements and their versioned rules are those of
:mod:`ibtools.claims`, judged on a whole study by :func:`ibtools.verdicts.study_claims`, exactly as
the summary chapter judges the 12-bit study; nothing here re-implements a rule. What this module
adds:

* :func:`task_study_data` and :func:`tishby_study_data`: the runs each verdict needs
  (:class:`ibtools.verdicts.StudyData`), loaded from the stored study when the parameters match
  it and computed otherwise (:func:`ibtools.study.obtain`);
* :func:`claims_with_and_without_failed`: every claim with all networks and without the networks
  that failed to train (:mod:`ibtools.failures`);
* :func:`verdict_table` / :func:`verdict_markdown`: the verdicts of several columns (tasks,
  with/without failed networks) side by side;
* :func:`layer_scores` and :func:`plot_layer_scores`: compression scores per activation and layer
  with 95 % confidence intervals over networks (bits);
* :func:`ceiling_bits`: log2 N, the most any estimate of I(X;T) can give on a task's N inputs;
* :func:`task_column`: the summary chapter's column, each claim's verdict on the stored MNIST-1D
  study, or :data:`~ibtools.ground_truth_summary.NOT_STORED` in every row until all of its units are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .activations import PAPER_ACTIVATIONS
from .analysis import compression_scores, mean_ci
from .failures import classify_runs
from .ground_truth_summary import NOT_STORED  # what a column says while its units are not all stored
from .mnist1d_study import (MNIST1D_ESTIMATORS, MNIST1D_L2S, MNIST1D_RESULTS, mnist1d_single_config,
                            mnist1d_sweeps)
from .study import (MNIST1D_EPOCHS, MNIST1D_HIDDEN, MNIST1D_TASK, PAPER_EPOCHS, PAPER_SEEDS, global_range_config, obtain,
                    obtain_run)
from .sweep import SweepConfig
from .tasks import load_task
from .verdicts import StudyData, study_claims, verdict_frame

__all__ = [
    "STUDY_ESTIMATORS",
    "estimator_specs",
    "ceiling_bits",
    "task_study_data",
    "tishby_study_data",
    "claims_with_and_without_failed",
    "verdict_table",
    "verdict_markdown",
    "layer_scores",
    "layer_findings",
    "plot_layer_scores",
    "plot_task_examples",
    "MNIST1D_COLUMN",
    "MNIST1D_KEPT_COLUMN",
    "NOT_STORED",
    "TaskColumn",
    "task_column",
]


#: The estimators of the MNIST-1D study by short name, as the chapter's parameters give them.
STUDY_ESTIMATORS = {"ebab": MNIST1D_ESTIMATORS[0], "akde": MNIST1D_ESTIMATORS[1], "exact": MNIST1D_ESTIMATORS[2]}


def estimator_specs(names) -> tuple:
    """The :class:`~ibtools.config.EstimatorSpec` of each short name (``"ebab"``, ``"akde"``,
    ``"exact"``), in the study's order; ``"ebab"`` is always recorded (the failure criteria and
    the network-wide-range claim read it).

    Raises
    ------
    ValueError
        For an unknown or repeated name (the message lists the valid ones).
    """
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in STUDY_ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown study estimator(s) {unknown}; choose from {list(STUDY_ESTIMATORS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"study estimators must be distinct, got {names}")
    if "ebab" not in names:
        raise ValueError(f"the study estimators must include 'ebab' (the failure criteria and claim R1 read it), got {names}")
    return tuple(spec for name, spec in STUDY_ESTIMATORS.items() if name in names)


def ceiling_bits(task: str) -> float:
    """log2 N (bits) for a task's N inputs: the most any estimate of I(X;T) can give (each input
    equally likely; 12 for the 12-bit task, 12.29 for MNIST-1D's 5000 samples)."""
    return float(np.log2(len(load_task(task).y)))


def task_study_data(*, epochs: int = MNIST1D_EPOCHS, seeds=PAPER_SEEDS, activations=PAPER_ACTIVATIONS,
                    l2s=MNIST1D_L2S, task: str = MNIST1D_TASK, hidden=MNIST1D_HIDDEN, estimators=MNIST1D_ESTIMATORS,
                    results_dir=None, scratch_dir=None, progress: bool = True) -> StudyData:
    """The study of :mod:`ibtools.mnist1d_study` (or its version with other parameters, on any
    registered task), loaded from ``results_dir`` (default ``results/mnist1d``) when every unit
    is stored there and computed in ``scratch_dir`` otherwise."""
    results_dir = MNIST1D_RESULTS if results_dir is None else results_dir
    sweeps = mnist1d_sweeps(epochs=epochs, seeds=seeds, activations=activations, l2s=l2s, task=task, hidden=hidden,
                            estimators=estimators)
    acts = obtain(sweeps["activations"], results_dir, scratch_dir, progress)
    l2 = obtain(sweeps["l2"], results_dir, scratch_dir, progress)
    single = obtain_run(mnist1d_single_config(epochs, task, hidden, estimators), results_dir, scratch_dir, progress)
    ranged = obtain_run(global_range_config(single), results_dir, scratch_dir, progress)
    return StudyData.from_sweeps(acts, l2, single, ranged)


def tishby_study_data(*, study: str = "rerun", epochs: int = PAPER_EPOCHS, seeds=PAPER_SEEDS,
                      activations=PAPER_ACTIVATIONS, l2s=None, sensitivity: bool = True, results_dir=None,
                      scratch_dir=None, progress: bool = True) -> StudyData:
    """The 12-bit study as the summary chapter judges it: ``study`` ``"rerun"`` (``results/rerun``,
    the study the chapters read by default: ensemble-invariant, nested schedules, the same
    engine and flags as the MNIST-1D study) or ``"paper"`` (``results/paper``, the first study),
    through :mod:`ibtools.studies` exactly as the summary chapter loads it; stored units at the
    full-scale parameters, computed in ``scratch_dir`` otherwise.

    Raises
    ------
    ValueError
        For an unknown ``study`` (the message lists :data:`ibtools.studies.STUDIES`).
    """
    from .study import L2_STRENGTHS
    from .studies import check_study, study_activations, study_l2, study_single

    check_study(study)
    l2s = L2_STRENGTHS if l2s is None else l2s
    where = dict(results_dir=results_dir, scratch_dir=scratch_dir, progress=progress)
    acts = study_activations(study, tuple(activations), epochs, seeds, sensitivity=sensitivity, **where)
    l2 = study_l2(study, tuple(l2s), "relu", epochs, seeds, sensitivity=sensitivity, **where)
    single = study_single(study, "relu", "estimators", epochs, **where)
    ranged = study_single(study, "relu", "ranged", epochs, **where)
    return StudyData.from_sweeps(acts, l2, single, ranged)


def _kept_networks(status: pd.DataFrame) -> pd.Series:
    return status[~status["failed"]].groupby(["activation", "l2"]).size()


def claims_with_and_without_failed(data: StudyData, label: str, *, rng=0, min_networks: int = 2):
    """Every claim (:func:`ibtools.verdicts.study_claims`) with all networks and without the
    failed ones.

    Returns
    -------
    all_claims : list of ClaimResult
    kept_claims : list of ClaimResult or None
        None when some condition (activation, L2 strength) keeps fewer than ``min_networks``
        networks (the tests behind the rules need at least two); ``reason`` says which.
    status : DataFrame
        :func:`ibtools.failures.classify_runs` of the pool.
    reason : str
        Empty, or why ``kept_claims`` is None.
    """
    status = classify_runs(data.pool.runs, label)
    all_claims = study_claims(data, label, rng=rng)
    kept = _kept_networks(status)
    conditions = status.groupby(["activation", "l2"]).size()
    short = [f"{a} (L2 {l2:g}): {int(kept.get((a, l2), 0))}" for (a, l2) in conditions.index
             if kept.get((a, l2), 0) < min_networks]
    if short:
        reason = (f"not judged without the failed networks: fewer than {min_networks} networks left in "
                  + "; ".join(short))
        return all_claims, None, status, reason
    return all_claims, study_claims(data, label, status=status, rng=rng), status, ""


def verdict_table(columns: dict) -> pd.DataFrame:
    """Rows claims (R1...R7), columns ``columns``' keys, cells verdicts; ``columns`` maps a
    column name to a list of ClaimResults or to None (a column that could not be judged: all
    its cells "not judged"). Reuses :func:`ibtools.verdicts.verdict_frame`."""
    judged = {k: v for k, v in columns.items() if v is not None}
    frame = verdict_frame(judged, skip=()) if judged else pd.DataFrame()
    keys = sorted({c.key for v in judged.values() for c in v}, key=lambda k: (k[:2], k))
    frame = frame.reindex(index=keys)
    for name in columns:
        if name not in frame.columns:
            frame[name] = "not judged"
    return frame[list(columns)].fillna("not judged")


def verdict_markdown(columns: dict) -> str:
    """:func:`verdict_table` as a Markdown table with each claim's text (from the first column
    that judged it)."""
    table = verdict_table(columns)
    text = {}
    for claims in columns.values():
        for c in claims or ():
            text.setdefault(c.key, c.claim)
    head = ["", "claim", *table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in table.iterrows():
        cells = [key, text.get(key, ""), *(f"**{v}**" for v in row)]
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in cells) + " |")
    return "\n".join(lines)


def layer_scores(table: pd.DataFrame, estimator: str, level: float = 0.95) -> pd.DataFrame:
    """Compression scores (:func:`ibtools.analysis.compression_scores`, bits) per activation and
    layer: mean and ``level`` confidence interval over networks of the peak - final score
    (``absolute``, never negative, biased up by noise; see its noise floor) and of the signed
    post-fitting score. Columns ``activation, layer, n, absolute, abs_low, abs_high, post_fit,
    post_low, post_high, floor``."""
    scores = compression_scores(table, estimator)
    rows = []
    for (activation, layer), g in scores.groupby(["activation", "layer"], sort=False):
        a, p = mean_ci(g["absolute"], level), mean_ci(g["post_fit"], level)
        rows.append({"activation": activation, "layer": int(layer), "n": len(g), "absolute": a[0], "abs_low": a[1],
                     "abs_high": a[2], "post_fit": p[0], "post_low": p[1], "post_high": p[2],
                     "floor": float(g["floor"].mean())})
    return pd.DataFrame(rows)


def _names(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def layer_findings(table: pd.DataFrame, summary: pd.DataFrame, estimator: str, ceiling: float, layer_names,
                   tol: float = 0.1) -> dict:
    """Where the compression is, in words for a chapter's prose (each value a string to glue).

    Parameters
    ----------
    table : DataFrame
        The information-plane table (:meth:`ibtools.sweep.SweepResult.table`).
    summary : DataFrame
        :func:`layer_scores` of that table.
    estimator : str
        The estimator's label in ``table``.
    ceiling : float
        log2 of the number of distinct inputs (bits): no estimate of I(X;T) exceeds it.
    layer_names : sequence of str
        Names of the layers, in order (the last is the softmax output).
    tol : float
        Bits below the ceiling that still count as "at the ceiling".

    Returns
    -------
    dict
        ``at_ceiling``: the layers whose mean I(X;T) over networks stays within ``tol`` of the
        ceiling at every recorded epoch for every activation (or "no layer");
        ``top_last_hidden`` and ``top_output``: the activation with the largest mean peak - final
        score (bits, biased up by noise: compare with the noise floor) in the last hidden layer
        and in the output layer, with its 95 % interval.
    """
    t = table[table["estimator"] == estimator]
    if t.empty:
        raise ValueError(f"no rows of estimator {estimator!r} in the table; it has {sorted(table['estimator'].unique())}")
    means = t.groupby(["activation", "layer", "epoch"])["i_xt"].mean()
    lowest = means.groupby(level="layer").min()
    flat = [layer_names[int(layer) - 1] for layer, v in lowest.items() if v >= ceiling - tol]
    out = {"at_ceiling": _names(flat) if flat else "no layer"}
    for key, layer in (("top_last_hidden", len(layer_names) - 1), ("top_output", len(layer_names))):
        rows = summary[summary["layer"] == layer]
        if rows.empty or rows["absolute"].isna().all():
            out[key] = "not measured"
            continue
        top = rows.loc[rows["absolute"].idxmax()]
        out[key] = (f"{str(top['activation']).replace('_', ' ')} ({top['absolute']:.2f} bits, 95 % CI "
                    f"[{top['abs_low']:.2f}, {top['abs_high']:.2f}]; noise floor {top['floor']:.2f})")
    return out


def plot_layer_scores(summary: pd.DataFrame, layer_names, axes=None, activations=None):
    """Two panels of :func:`layer_scores`: peak - final (top, grey ticks: the mean noise floor)
    and post-fitting (bottom), mean and interval per activation and layer. ``axes``: two axes
    (default: a new figure). Returns the two axes."""
    import matplotlib.pyplot as plt

    from .plotting import activation_style, plot_mean_ci

    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(7, 6.4), sharex=True)
    a1, a2 = axes
    activations = list(dict.fromkeys(summary["activation"])) if activations is None else list(activations)
    offsets = np.linspace(-0.3, 0.3, len(activations)) if len(activations) > 1 else [0.0]
    for off, activation in zip(offsets, activations):
        s = summary[summary["activation"] == activation]
        style = dict(activation_style(activation), ms=4)
        plot_mean_ci(s["layer"] + off, s["absolute"], s["abs_low"], s["abs_high"], a1, **style)
        plot_mean_ci(s["layer"] + off, s["post_fit"], s["post_low"], s["post_high"], a2, **style)
    floor = summary.groupby("layer")["floor"].mean()
    a1.scatter(floor.index, floor.values, marker="_", s=200, color="0.4", zorder=5, label="noise floor")
    for ax, title in ((a1, "peak − final"), (a2, "post-fitting (signed)")):
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(range(1, len(layer_names) + 1), list(layer_names))
        ax.set_ylabel("compression (bits)")
        ax.set_title(f"{title}: mean and 95 % CI over networks", fontsize=10)
    return a1, a2


def plot_task_examples(task: str, per_class: int = 1, ax=None, seed: int = 0):
    """A few inputs of each class of a task, drawn as curves offset by class (MNIST-1D's signals
    of 40 values; any task's feature vectors), drawn at random from all its samples.

    Parameters
    ----------
    task : str
        A registered task (:mod:`ibtools.tasks`).
    per_class : int
        Inputs drawn per class (chosen at random by ``seed``).
    ax : matplotlib axes, optional
    seed : int
        Which inputs are drawn.

    Returns
    -------
    matplotlib axes
    """
    import matplotlib.pyplot as plt

    from .validation import check_int

    per_class = check_int(per_class, "per_class", 1)
    ax = ax or plt.gca()
    data = load_task(task)
    rng = np.random.default_rng(seed)
    classes = np.unique(data.y)
    span = float(np.ptp(data.X)) or 1.0
    for k in classes:
        rows = rng.choice(np.flatnonzero(data.y == k), size=min(per_class, int(np.sum(data.y == k))), replace=False)
        for r in rows:
            ax.plot(np.arange(data.X.shape[1]), data.X[r] + k * span, color=f"C{k % 10}", lw=1)
    ax.set_yticks(classes * span, [str(k) for k in classes])
    ax.set_ylabel("class")
    ax.set_xlabel("feature (position in the signal)")
    return ax


#: Name of the summary chapter's column judged on the MNIST-1D study (with every network).
MNIST1D_COLUMN = "holds on MNIST-1D"
#: The same column without the networks that failed to train.
MNIST1D_KEPT_COLUMN = "holds on MNIST-1D, without failed"


@dataclass(frozen=True)
class TaskColumn:
    """What :func:`task_column` returns.

    Attributes
    ----------
    verdicts : DataFrame
        Rows the claim keys (R1 ... R7, every key of :data:`ibtools.claims.RULES`), columns
        :data:`MNIST1D_COLUMN` (every network) and :data:`MNIST1D_KEPT_COLUMN` (without the
        failed ones; "not judged" when a condition keeps fewer than two networks, see
        ``kept_reason``). Each verdict is decided by the rule version that
        :func:`ibtools.claims.current_versions` gives for ``"mnist1d"``. Every cell reads
        :data:`~ibtools.ground_truth_summary.NOT_STORED` while ``missing`` is not empty.
    claims, kept_claims : tuple of ClaimResult
        The claims behind the two columns (with every version's verdict in ``by_version``), empty
        while units are missing; ``kept_claims`` also empty when not judged.
    networks, failed : int
        Networks judged (0 while units are missing) and, of them, those that failed to train
        (:mod:`ibtools.failures`).
    missing : tuple of str
        File names of the study's units that are not stored (the single network's
        network-wide-range re-run counts as one, named after the single network, while the single
        network itself is missing).
    kept_reason : str
        Empty, or why the column without failed networks is not judged.
    """

    verdicts: pd.DataFrame
    claims: tuple
    kept_claims: tuple
    networks: int
    failed: int
    missing: tuple
    kept_reason: str = ""


_STUDY_PARAMETERS = ("epochs", "seeds", "activations", "l2s", "task", "hidden", "estimators")


def task_column(estimator: str = "ebab", *, compute_missing: bool = False, results_dir=None, scratch_dir=None,
                rng=0, progress: bool = False, **study) -> TaskColumn:
    """Each claim's verdict on the MNIST-1D study (:mod:`ibtools.mnist1d_study`), for the summary,
    with every network and without the failed ones.

    Parameters
    ----------
    estimator : str
        Short name of the study estimator the claims are judged with (:data:`STUDY_ESTIMATORS`:
        ``"ebab"``, ``"akde"``; ``"exact"`` is recorded but R1 needs EBAB's binning range).
    compute_missing : bool
        False (the summary): read ``results_dir`` (default ``results/mnist1d``); while a unit is
        not stored every cell reads :data:`~ibtools.ground_truth_summary.NOT_STORED`, and no verdict is drawn from part of the
        networks. True: compute the missing units in ``scratch_dir``, which must then be given;
        at the default parameters that is the whole study (about 19 CPU-hours), so pass smaller
        ones.
    rng : int
        Seed of the bootstrap confidence intervals.
    **study
        The study's parameters as :func:`ibtools.mnist1d_study.mnist1d_sweeps` takes them
        (``epochs``, ``seeds``, ``activations``, ``l2s``, ``task``, ``hidden``, ``estimators``);
        the defaults are the stored study. ``seeds`` is a sequence of seeds (e.g. ``range(50)``).

    Raises
    ------
    ValueError
        For an unknown estimator or study parameter, seeds that are not a sequence of integers,
        or ``compute_missing`` without ``scratch_dir`` (the message says what is allowed).
    """
    from .claims import RULES, for_study
    from .sweep import ResultCache, missing_units

    if estimator not in STUDY_ESTIMATORS or estimator == "exact":
        raise ValueError(f"estimator must be one of {[e for e in STUDY_ESTIMATORS if e != 'exact']} (the MNIST-1D "
                         f"study's estimators that claim R1 can be judged with), got {estimator!r}")
    label = STUDY_ESTIMATORS[estimator].label
    unknown = sorted(set(study) - set(_STUDY_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown study parameter(s) {unknown}; choose from {list(_STUDY_PARAMETERS)} "
                         "(see ibtools.mnist1d_study.mnist1d_sweeps)")
    if "seeds" in study:
        seeds = study["seeds"]
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__") or not all(
                isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in seeds) or not len(seeds):
            raise ValueError(f"seeds must be a non-empty sequence of integer seeds such as range(50), got {seeds!r}")
    if compute_missing and scratch_dir is None:
        raise ValueError("compute_missing=True needs a scratch_dir to compute the missing units in")
    results_dir = MNIST1D_RESULTS if results_dir is None else results_dir
    sweeps = mnist1d_sweeps(**study)  # validates the parameters
    if STUDY_ESTIMATORS[estimator] not in sweeps["activations"].base.estimators:
        raise ValueError(f"estimator {estimator!r} is not among the study's recorded estimators")
    missing = []
    if not compute_missing:
        single_kwargs = {k: study[k] for k in ("epochs", "task", "hidden", "estimators") if k in study}
        single = mnist1d_single_config(**single_kwargs)
        lone = missing_units(SweepConfig(single, seeds_per_unit=1), results_dir)
        missing += lone
        if not lone:  # the re-run's configuration follows from the single network's stored range
            ranged = global_range_config(obtain_run(single, results_dir, None, progress=False))
            missing += missing_units(SweepConfig(ranged, seeds_per_unit=1), results_dir)
        else:
            missing.append(f"{ResultCache(results_dir).name(single)} (its network-wide-range re-run)")
        for sweep in sweeps.values():
            missing += [m for m in missing_units(sweep, results_dir) if m not in missing]
    keys = list(RULES)
    columns = [MNIST1D_COLUMN, MNIST1D_KEPT_COLUMN]
    if missing:
        return TaskColumn(pd.DataFrame(NOT_STORED, index=keys, columns=columns), (), (), 0, 0, tuple(missing))
    data = task_study_data(**study, results_dir=results_dir, scratch_dir=scratch_dir, progress=progress)
    all_claims, kept_claims, status, reason = claims_with_and_without_failed(data, label, rng=rng)
    all_claims = for_study(all_claims, "mnist1d")
    kept_claims = for_study(kept_claims, "mnist1d") if kept_claims is not None else []
    frame = pd.DataFrame({MNIST1D_COLUMN: pd.Series({c.key: c.verdict for c in all_claims}),
                          MNIST1D_KEPT_COLUMN: pd.Series({c.key: c.verdict for c in kept_claims}, dtype=object)})
    frame = frame.reindex(index=keys, columns=columns).fillna("not judged")
    return TaskColumn(frame, tuple(all_claims), tuple(kept_claims), len(status), int(status["failed"].sum()), (),
                      reason)

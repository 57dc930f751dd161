"""Networks that failed to train, as an outcome of the study rather than noise in its averages.

A network is classified from what the study stores for it (information-plane values of one
estimator, the accuracy history and the divergence flag), by the explicit criteria of
:class:`FailureCriteria`:

``diverged``
    training blew up: the engine flagged the network as diverged, or a loss is not finite.
``dead_at_init``
    some hidden layer is constant on all 4096 inputs at initialization (its estimated I(X;T) at
    the first recorded epoch is at most ``constant_bits``), and the network has collapsed at the
    end (below). A network dead at initialization that recovers is ``recovered``, not failed.
``collapsed``
    at the last recorded epoch some layer (hidden or the softmax output) is constant on all
    inputs, or the training accuracy is within ``majority_margin`` of the majority-class rate of
    the training set (the network predicts one class).
``recovered``
    dead at initialization but not collapsed at the end (counted as a success).
``ok``
    none of the above.

``failed`` means diverged, dead at initialization or collapsed. A constant layer has exactly 0
bits under every binning estimator (one bin) and under the KDE estimators (zero distances), so
the criterion does not depend on which estimator is given, as long as it is one of the study's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .analysis import wilson_interval

__all__ = [
    "FailureCriteria",
    "pooled_failure_rate",
    "rate_text",
    "FAILURE_CRITERIA",
    "FAILED",
    "STATUSES",
    "majority_rate",
    "classify_network",
    "classify_runs",
    "failure_counts",
    "failed_keys",
    "drop_failed",
]

#: Statuses that count as a failed network.
FAILED = ("diverged", "dead_at_init", "collapsed")
#: Every status a network can get, successes first.
STATUSES = ("ok", "recovered") + FAILED


@dataclass(frozen=True)
class FailureCriteria:
    """Thresholds of the failure classification (a version is never edited; a new one is added).

    Attributes
    ----------
    version : int
    constant_bits : float
        A layer whose estimated I(X;T) is at most this (bits) is constant on the inputs.
    majority_margin : float
        A training accuracy within this of the training set's majority-class rate means the
        network predicts one class.
    """

    version: int = 1
    constant_bits: float = 0.01
    majority_margin: float = 0.005

    def text(self) -> str:
        return (f"failure criteria v{self.version}: a layer is constant if its I(X;T) <= {self.constant_bits:g} bits; "
                "dead at initialization = a constant hidden layer at the first recorded epoch and still failed at "
                "the end; collapsed = a constant layer (hidden or softmax) at the last recorded epoch, or training "
                f"accuracy within {self.majority_margin:g} of the majority-class rate; diverged = flagged by the "
                "engine or a non-finite loss")


#: The criteria the book uses.
FAILURE_CRITERIA = FailureCriteria()


def majority_rate(config) -> float:
    """Share of the majority class in the training set of a :class:`~ibtools.config.TrainConfig`
    (0.563 for the paper's unshuffled 80 % split)."""
    from .data import make_split
    from .tasks import load_task

    task = load_task(getattr(config, "task", "tishby"))
    split = make_split(task, config.split, config.train_fraction, config.split_seed)
    y = task.y[split.train]
    return float(np.bincount(y).max() / y.size)


def classify_network(xt_first, xt_last, train_acc_final: float, majority: float, diverged: bool = False,
                     criteria: FailureCriteria = FAILURE_CRITERIA) -> str:
    """Status of one network (one of :data:`STATUSES`).

    Parameters
    ----------
    xt_first, xt_last : array (L,)
        Estimated I(X;T) (bits) of every layer, hidden layers first and the softmax output last,
        at the first and the last recorded epoch.
    train_acc_final : float
        Training accuracy at the end.
    majority : float
        Majority-class rate of the training set.
    diverged : bool
        The engine's divergence flag.
    """
    first, last = np.asarray(xt_first, float), np.asarray(xt_last, float)
    if first.ndim != 1 or last.shape != first.shape or first.size < 2:
        raise ValueError("xt_first and xt_last must be 1-d arrays of the same length >= 2 (hidden layers, then softmax)")
    if not 0 < majority <= 1:
        raise ValueError(f"majority must be a rate in (0, 1], got {majority}")
    if diverged or not np.isfinite(train_acc_final) or not np.all(np.isfinite(last)):
        return "diverged"
    constant_at_start = bool(np.any(first[:-1] <= criteria.constant_bits))
    collapsed = bool(np.any(last <= criteria.constant_bits)) or abs(train_acc_final - majority) <= criteria.majority_margin
    if constant_at_start:
        return "dead_at_init" if collapsed else "recovered"
    return "collapsed" if collapsed else "ok"


def classify_runs(runs, estimator: str | None = None, criteria: FailureCriteria = FAILURE_CRITERIA) -> pd.DataFrame:
    """Status of every network of ``runs`` (RunResults; a network of a unit stored twice counts
    once). Columns ``activation, l2, seed, status, failed, final_train_acc, final_test_acc,
    majority_rate``; ``estimator`` (default: the run's first) supplies I(X;T)."""
    rows, seen = [], set()
    for run in runs:
        label = estimator or run.estimator_labels[0]
        mi = run.mi[label][..., 0]  # (E, L, S)
        recorded = np.flatnonzero(~np.all(np.isnan(mi), axis=(1, 2)))
        first, last = recorded[0], recorded[-1]
        majority = majority_rate(run.config)
        for j, seed in enumerate(run.seeds):
            key = (run.config.activation, float(run.config.l2), int(seed))
            if key in seen:
                continue
            seen.add(key)
            loss_ok = np.all(np.isfinite(run.history["train_loss"][:, j]))
            status = classify_network(mi[first, :, j], mi[last, :, j], float(run.history["train_acc"][-1, j]), majority,
                                      bool(run.diverged[j] >= 0) or not loss_ok, criteria)
            rows.append((*key, status, status in FAILED, float(run.history["train_acc"][-1, j]),
                         float(run.history["test_acc"][-1, j]), majority))
    return pd.DataFrame(rows, columns=["activation", "l2", "seed", "status", "failed", "final_train_acc",
                                       "final_test_acc", "majority_rate"])


def failure_counts(status: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per condition (activation, l2): networks, count of each status, failed networks and the
    failure rate with its Wilson score interval at ``level``."""
    rows = []
    for (activation, l2), g in status.groupby(["activation", "l2"], sort=False):
        k, n = int(g["failed"].sum()), len(g)
        lo, hi = wilson_interval(k, n, level)
        counts = {s: int((g["status"] == s).sum()) for s in STATUSES}
        rows.append({"activation": activation, "l2": l2, "networks": n, **counts, "failed": k,
                     "rate": k / n, "rate_low": lo, "rate_high": hi})
    return pd.DataFrame(rows)


def failed_keys(status: pd.DataFrame) -> set:
    """``{(activation, l2, seed)}`` of the failed networks."""
    f = status[status["failed"]]
    return {(a, float(l2), int(s)) for a, l2, s in zip(f["activation"], f["l2"], f["seed"])}


def drop_failed(table: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    """Rows of a tidy table (information plane or history) that belong to networks that did not
    fail."""
    keys = failed_keys(status)
    if not keys:
        return table
    idx = pd.MultiIndex.from_arrays([table["activation"], table["l2"].astype(float), table["seed"].astype(int)])
    return table[~idx.isin(list(keys))]


def criteria_dict(criteria: FailureCriteria = FAILURE_CRITERIA) -> dict:
    return asdict(criteria)


def pooled_failure_rate(parts: dict, estimator: str | None = None, level: float = 0.95,
                        criteria: FailureCriteria = FAILURE_CRITERIA) -> pd.DataFrame:
    """Failure counts of several groups of runs of one condition, each group alone and all pooled.

    Parameters
    ----------
    parts : dict
        ``{name: [RunResult, ...]}``, e.g. the stored study's unit and extra units of the same
        configuration trained later with other seeds. Groups must not share networks (the same
        ``(activation, l2, seed)`` in two groups is an error: it would be counted twice).
    estimator : str, optional
        Label of the estimator that supplies I(X;T) for the criteria (default: each run's first).
    level : float
        Confidence level of the Wilson interval on each rate.

    Returns
    -------
    DataFrame
        One row per group and a last row ``"pooled"``: the columns of :func:`failure_counts`
        with ``group`` first. Empty groups are left out.
    """
    statuses, rows = [], []
    for name, runs in parts.items():
        if not runs:
            continue
        status = classify_runs(runs, estimator, criteria)
        statuses.append(status)
        counts = failure_counts(status, level)
        counts.insert(0, "group", name)
        rows.append(counts)
    if not statuses:
        raise ValueError("pooled_failure_rate needs at least one group with runs")
    pooled = pd.concat(statuses, ignore_index=True)
    dup = pooled.duplicated(["activation", "l2", "seed"])
    if dup.any():
        first = pooled[dup].iloc[0]
        raise ValueError(f"network {first.activation}, l2={first.l2:g}, seed {int(first.seed)} is in more than one "
                         "group; groups must hold different networks")
    if len(statuses) > 1:
        counts = failure_counts(pooled, level)
        counts.insert(0, "group", "pooled")
        rows.append(counts)
    return pd.concat(rows, ignore_index=True)


def rate_text(row) -> str:
    """``"9 of 200 (4.5 %, 95 % CI 2.4–8.3 %)"`` from a row of :func:`failure_counts` or
    :func:`pooled_failure_rate`."""
    return (f"{int(row.failed)} of {int(row.networks)} ({row.rate * 100:.1f} %, 95 % CI "
            f"{row.rate_low * 100:.1f}–{row.rate_high * 100:.1f} %)")


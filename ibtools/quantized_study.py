"""The quantized-networks chapter's data, comparisons and figures (issue 11, part 2).

A network whose hidden activity is quantized (:mod:`ibtools.perturb`, straight-through gradients;
the stored units are defined in :mod:`ibtools.ground_truth_study`) has finitely many possible rows
per layer, so over the 4096 equally likely inputs its I(X;T) and I(T;Y) are **exact** by counting
distinct rows (the ``exact`` estimator): in such a network, inputs that merge into one row *are*
information lost (after Lorenzen, Igel & Nielsen, 2022). This module reads those units and puts
EBAB and adaptive KDE, recorded on the same networks and epochs, beside the exact values:

* :func:`quantized_data`: the units, as tables with a ``bits`` column;
* :func:`estimator_errors`: estimator minus exact I(X;T), in bits (EBAB can only read low:
  binning merges rows, it never splits them);
* :func:`compression_agreement`: do the networks that compress more by an estimator lose more
  exact information? (within-activation Spearman rho, bootstrap interval);
* :func:`quantized_claims` and :func:`quantized_verdicts`: every claim of the paper under the rule
  below.

**Verdict rule, version 1** (:data:`RULE_VERSION`; when it was adopted: :data:`RULE_ADOPTED`; the
rule in words: :data:`RULE_TEXT`). The summary column "holds under exact MI of quantized nets"
(:data:`RULE_COLUMN`) gives, for each claim, the verdict of the claim's own rule in
:mod:`ibtools.claims` (its default version) applied by
:func:`ibtools.ground_truth_verdicts.ground_truth_claims` to the exact I(X;T) and I(T;Y) of the :data:`RULE_BITS`-bit networks of every activation stored, all networks. The
same rule on the 4-bit networks, on the networks that did not fail (:mod:`ibtools.failures`),
and on EBAB and adaptive KDE of the same networks is shown beside it, never in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .activations import PAPER_ACTIVATIONS
from .analysis import common_epochs, compression_scores, mean_over_seeds, restrict_epochs
from .clustering_verdicts import within_condition_rho_ci
from .failures import classify_runs
from .ground_truth_study import GROUND_TRUTH_RESULTS, QUANTIZE_BITS, QUANTIZED_ESTIMATORS, quantized_base
from .ground_truth_verdicts import ground_truth_claims, ground_truth_verdicts
from .rerun import EXACT
from .settings import EBAB
from .study import PAPER_EPOCHS, PAPER_SEEDS, obtain
from .sweep import SweepConfig, UnitsRead, stored_units
from .validation import as_generator, check_int

__all__ = ["RULE_VERSION", "RULE_ADOPTED", "RULE_BITS", "RULE_COLUMN", "RULE_TEXT", "ERROR_TOL_BITS", "QuantizedData",
           "quantized_data", "estimator_errors", "compression_agreement", "quantized_claims", "quantized_verdicts",
           "plot_mean_curves", "plot_errors", "plot_agreement"]

#: Version of the verdict rule of the module docstring.
RULE_VERSION = 1
#: When and where version 1 was fixed (the commit that adds this module).
RULE_ADOPTED = ("commit 043caa4, 2026-11-26 17:03 UTC, before any number of the stored quantized units was read beyond "
                "the first rows of one table (epoch 0 of one network), while 4 of their 16 units were stored",)
#: The quantization whose exact values decide the summary column (8 bits: the estimators merge rows
#: there; at 4 bits EBAB with 30 bins merges none in hidden layers, see the pilot).
RULE_BITS = 8
#: Name of the column that decides (in :func:`quantized_verdicts`).
RULE_COLUMN = f"exact, {RULE_BITS} bits"
#: The verdict rule in words (what the chapter shows).
RULE_TEXT = (f"For each claim, the summary column \"holds under exact MI of quantized nets\" ({RULE_COLUMN}) gives the "
             "verdict of the claim's own rule (ibtools.claims, its default version) applied to the exact I(X;T) and "
             f"I(T;Y) of the {RULE_BITS}-bit networks of every activation stored, all networks. The same rule on the "
             "4-bit networks, on the networks that did not fail, and on EBAB and adaptive KDE of the same networks is "
             "shown beside it, never in its place. A claim that these networks cannot decide (one that needs the "
             "L2 sweep or the main study's single networks) is \"not testable\".")
#: An estimator "equals" the exact value when it is within this many bits of it (the exact values
#: are entropies of row counts in float64: equal counts give equal values to ~1e-12).
ERROR_TOL_BITS = 1e-6

def _network(condition: str) -> list[str]:
    """The columns that name one network's one layer: its unit's ``condition`` (``"bits"`` here,
    ``"noise_std"`` for the noisy networks), activation, seed and layer."""
    return [condition, "activation", "seed", "layer"]


@dataclass
class QuantizedData(UnitsRead):
    """The quantized units read or computed by :func:`quantized_data`.

    Attributes
    ----------
    table, history : DataFrame
        Information-plane table and training history of every network, with a ``bits`` column.
    status : DataFrame
        :func:`ibtools.failures.classify_runs` of every network (by EBAB), with ``bits``.
    runs : dict
        ``{(bits, activation): SweepResult}`` of the units read.
    missing : DataFrame
        Units asked for but neither stored nor computed: ``bits, activation, unit``.
    layer_names : tuple of str
        Names of the layers (the last is the softmax output, which is never quantized).
    """

    table: pd.DataFrame
    history: pd.DataFrame
    status: pd.DataFrame
    runs: dict
    missing: pd.DataFrame
    layer_names: tuple

    @property
    def bits(self) -> tuple:
        """The quantizations read, in the order asked for."""
        return tuple(dict.fromkeys(b for b, _ in self.runs))


def quantized_data(bits=QUANTIZE_BITS, activations=PAPER_ACTIVATIONS, *, epochs=None, seeds=None,
                   estimators=QUANTIZED_ESTIMATORS, compute_missing: bool = False, results_dir=None,
                   scratch_dir=None, progress: bool = True) -> QuantizedData:
    """The quantized networks of the ground-truth study, unit by unit.

    Parameters
    ----------
    bits : sequence of int
        Quantizations (bits per hidden unit, 1 to 16) to read.
    activations : sequence of str
        Activations to read.
    epochs, seeds : optional
        Training epochs and seeds (default: the stored study's 8000 and 0-49).
    estimators : sequence of EstimatorSpec
        What every network records; must include the exact MI (``ibtools.rerun.EXACT``) and EBAB
        (``ibtools.settings.EBAB``, which the failure criteria read). The stored study recorded
        :data:`ibtools.ground_truth_study.QUANTIZED_ESTIMATORS`; other choices are computed.
    compute_missing : bool
        False: read only the units stored in ``results_dir`` (default ``results/ground_truth``) and
        list the others in ``missing``. True: compute the units that are not stored, in
        ``scratch_dir`` (resumable; what a cheap setting does).

    Raises
    ------
    ValueError
        For impossible bits, an empty list, estimators without the exact MI or EBAB, or when no
        unit could be read (with what to do).
    """
    bits = [check_int(b, "bits", minimum=1, maximum=16) for b in bits]
    activations = list(activations)
    if not bits or not activations:
        raise ValueError("name at least one quantization (bits) and one activation")
    unknown = [a for a in activations if a not in PAPER_ACTIVATIONS]
    if unknown:
        raise ValueError(f"unknown activation(s) {unknown}; the quantized study has {', '.join(PAPER_ACTIVATIONS)}")
    estimators = tuple(estimators)
    labels = [s.label for s in estimators]
    for need in (EXACT, EBAB):
        if need.label not in labels:
            raise ValueError(f"estimators must include {need.label!r} (got {labels})")
    epochs = PAPER_EPOCHS if epochs is None else check_int(epochs, "epochs", minimum=1)
    seeds = PAPER_SEEDS if seeds is None else tuple(seeds)
    root = Path(results_dir) if results_dir is not None else GROUND_TRUTH_RESULTS
    runs, missing = {}, []
    for b in bits:
        for activation in activations:
            sweep = SweepConfig(quantized_base(b, epochs, estimators), activations=(activation,), seeds=seeds,
                                seeds_per_unit=50)
            stored, name = stored_units(sweep, root)
            if not (stored or compute_missing):
                missing.append({"bits": b, "activation": activation, "unit": name})
                continue
            runs[(b, activation)] = obtain(sweep, root, scratch_dir, progress)
    missing = pd.DataFrame(missing, columns=["bits", "activation", "unit"])
    if not runs:
        raise ValueError(f"none of the {len(bits) * len(activations)} quantized units asked for is stored in {root} "
                         "(for these epochs, seeds and estimators); compute them (python -m ibtools.ground_truth_study "
                         "--parts quantized-8 quantized-4) or set compute_missing=True to compute them in the scratch "
                         "directory")
    tables, histories, status = [], [], []
    for (b, _), res in runs.items():
        tables.append(res.table().assign(bits=b))
        histories.append(res.history_table().assign(bits=b))
        status.append(classify_runs(res.runs, EBAB.label).assign(bits=b))
    first = next(iter(runs.values())).runs[0]
    return QuantizedData(pd.concat(tables, ignore_index=True), pd.concat(histories, ignore_index=True),
                         pd.concat(status, ignore_index=True), runs, missing, tuple(first.layer_names))


def _check_labels(table: pd.DataFrame, labels) -> None:
    have = set(table["estimator"].unique())
    absent = [lab for lab in labels if lab not in have]
    if absent:
        raise ValueError(f"no values of estimator(s) {absent} in the table; it has {sorted(have)}")


def estimator_errors(table: pd.DataFrame, estimators, reference: str = EXACT.label, *, by=None,
                     quantity: str = "i_xt", tol: float = ERROR_TOL_BITS, condition: str = "bits") -> pd.DataFrame:
    """Estimator minus exact value, in bits, on the epochs where both were recorded.

    Parameters
    ----------
    table : DataFrame
        Information-plane table with a ``bits`` column (``QuantizedData.table``).
    estimators : sequence of str
        Labels of the estimators to compare with ``reference``.
    by : sequence of str, optional
        Grouping of the rows (default ``(condition, "activation", "layer")``; e.g.
        ``("bits", "layer")`` pools the activations).
    quantity : {"i_xt", "i_ty"}
        Which information term.
    tol : float
        Errors within ``tol`` bits count as "equal" in ``equal_share``.
    condition : str
        The column that tells the units apart (``"bits"``; ``"noise_std"`` for noisy networks).

    Returns
    -------
    DataFrame
        One row per group and estimator: ``networks`` and ``points`` (network-epochs) compared;
        ``final`` (mean over networks of the error at the last common epoch), ``mean`` (over every
        network-epoch), ``most_negative`` and ``largest`` (extremes over network-epochs), and
        ``equal_share`` (share of network-epochs within ``tol``). Diverged networks (no finite
        values) are left out. Negative means the estimator reads less information than there is.

    Raises
    ------
    ValueError
        For an estimator absent from the table, an unknown quantity or grouping column.
    """
    if quantity not in ("i_xt", "i_ty"):
        raise ValueError(f"quantity must be 'i_xt' or 'i_ty', got {quantity!r}")
    network = _network(condition)
    if condition not in table.columns:
        raise ValueError(f"the table has no column {condition!r} (the condition that tells its units apart)")
    by = [condition, "activation", "layer"] if by is None else list(by)
    bad = [c for c in by if c not in network]
    if bad:
        raise ValueError(f"cannot group by {bad}; choose among {network}")
    estimators = [estimators] if isinstance(estimators, str) else list(estimators)
    _check_labels(table, estimators + [reference])
    keys = network + ["epoch"]
    ref = table[table["estimator"] == reference].set_index(keys)[quantity]
    out = []
    for est in estimators:
        sub = table[table["estimator"] == est].set_index(keys)[quantity]
        both = pd.concat({"est": sub, "ref": ref}, axis=1, join="inner").dropna().reset_index()
        both["error"] = both["est"] - both["ref"]
        both["equal"] = both["error"].abs() <= tol
        last = both.loc[both.groupby(network)["epoch"].idxmax()]
        g = both.groupby(by)
        frame = pd.DataFrame({
            "networks": g[["activation", "seed"]].apply(lambda d: len(d.drop_duplicates())),
            "points": g.size(),
            "final": last.groupby(by)["error"].mean(),
            "mean": g["error"].mean(),
            "most_negative": g["error"].min(),
            "largest": g["error"].max(),
            "equal_share": g["equal"].mean(),
        }).reset_index()
        frame.insert(len(by), "estimator", est)
        out.append(frame)
    return pd.concat(out, ignore_index=True)


def compression_agreement(table: pd.DataFrame, estimators, reference: str = EXACT.label, *, score: str = "absolute",
                          smooth: int = 5, level: float = 0.95, n_boot: int = 2000, rng=0,
                          tol: float = ERROR_TOL_BITS, condition: str = "bits") -> pd.DataFrame:
    """Do the networks that compress more by an estimator lose more exact information?

    For every quantization (or other ``condition``), estimator and layer: each network's compression score ``score`` of
    :func:`ibtools.analysis.compression_scores` (default peak - final I(X;T), bits) by the
    estimator and by ``reference``, both on the epochs where the two were recorded; their
    within-activation Spearman rho (ranks within each activation, so that activations that
    differ in both cannot make a correlation alone) with a stratified bootstrap interval
    (:func:`ibtools.clustering_verdicts.within_condition_rho_ci`).

    Returns
    -------
    DataFrame
        ``{condition}, estimator, layer, n, rho, low, high, defined_share, ref_changed, est_mean,
        ref_mean``: ``ref_changed`` counts networks whose exact score exceeds ``tol`` (where it is
        0, rho is undefined: no information was lost to agree with); the means are of the scores.
    """
    estimators = [estimators] if isinstance(estimators, str) else list(estimators)
    _check_labels(table, estimators + [reference])
    if condition not in table.columns:
        raise ValueError(f"the table has no column {condition!r} (the condition that tells its units apart)")
    gen = as_generator(rng, "rng")
    rows = []
    for b in pd.unique(table[condition]):
        sub = table[table[condition] == b]
        for est in estimators:
            t = restrict_epochs(sub, common_epochs(sub, [est, reference]))
            cols = ["activation", "seed", "layer", score]
            s = compression_scores(t, est, smooth)[cols].merge(compression_scores(t, reference, smooth)[cols],
                                                               on=["activation", "seed", "layer"],
                                                               suffixes=("_est", "_ref"))
            for layer, g in s.groupby("layer", sort=True):
                x, y = g[f"{score}_est"].to_numpy(float), g[f"{score}_ref"].to_numpy(float)
                r = within_condition_rho_ci(x, y, g["activation"].to_numpy(), level=level, n_boot=n_boot, rng=gen)
                rows.append({condition: b.item() if hasattr(b, "item") else b, "estimator": est, "layer": int(layer), "n": r["n"], "rho": r["rho"],
                             "low": r["low"], "high": r["high"], "defined_share": r["defined_share"],
                             "ref_changed": int((y > tol).sum()), "est_mean": float(np.nanmean(x)),
                             "ref_mean": float(np.nanmean(y))})
    return pd.DataFrame(rows)


def _subset(frame: pd.DataFrame, bits: int, keep=None) -> pd.DataFrame:
    out = frame[frame["bits"] == bits].drop(columns="bits")
    if keep is not None:
        out = out.merge(keep, on=["activation", "seed"])
    return out


def quantized_claims(data: QuantizedData, estimators=(), *, rule_bits: int = RULE_BITS, rng=0) -> dict:
    """Every claim the quantized networks can decide, per column of :func:`quantized_verdicts`.

    Columns: ``"exact, {b} bits"`` for every quantization read (the one of ``rule_bits`` decides:
    :data:`RULE_COLUMN`); ``"exact, {rule_bits} bits, without failed"``; and ``"{label}, {rule_bits}
    bits"`` for each estimator label in ``estimators`` (the same networks, for comparison).
    Each value is a list of :class:`ibtools.claims.ClaimResult`.

    Raises
    ------
    ValueError
        When ``rule_bits`` was not read.
    """
    if rule_bits not in data.bits:
        raise ValueError(f"the verdicts are decided at {rule_bits} bits, which was not read (read: {data.bits})")
    out = {}
    for b in data.bits:
        out[f"exact, {b} bits"] = ground_truth_claims(_subset(data.table, b), _subset(data.history, b), EXACT.label,
                                                      rng=rng)
    st = data.status[(data.status["bits"] == rule_bits) & ~data.status["failed"]][["activation", "seed"]]
    out[f"exact, {rule_bits} bits, without failed"] = ground_truth_claims(
        _subset(data.table, rule_bits, st), _subset(data.history, rule_bits, st), EXACT.label, rng=rng)
    for label in estimators:
        out[f"{label}, {rule_bits} bits"] = ground_truth_claims(_subset(data.table, rule_bits),
                                                                _subset(data.history, rule_bits), label, rng=rng)
    return out


def quantized_verdicts(claims: dict) -> pd.DataFrame:
    """Rows claims, columns those of :func:`quantized_claims`, cells verdicts ("not testable"
    where the networks cannot decide a claim)."""
    return ground_truth_verdicts(claims)


def _offset(k: int, n: int, span: float) -> float:
    """Horizontal offset of the k-th of n estimators drawn side by side within ``span``."""
    return (k - (n - 1) / 2) * span / max(n, 1)


def plot_mean_curves(table: pd.DataFrame, activation: str, bits, layer: int, estimators, *,
                     reference: str = EXACT.label, names=None, condition: str = "bits", ax=None):
    """Mean I(X;T) over networks (95 % band) against epoch for ``reference`` (solid, black) and
    each estimator, in one layer of the ``activation`` networks whose ``condition`` column is
    ``bits`` (the quantization; or e.g. the noise std). ``names`` maps labels to legend names.
    Returns the axes."""
    ax = ax or plt.gca()
    names = dict(names or {})
    sub = table[(table[condition] == bits) & (table["activation"] == activation)]
    if sub.empty:
        raise ValueError(f"no {activation} networks with {condition} = {bits} in the table")
    for k, label in enumerate([reference] + list(estimators)):
        m = mean_over_seeds(sub, label)
        m = m[(m["layer"] == layer) & (m["epoch"] > 0)]
        color = "black" if label == reference else f"C{k - 1}"
        ax.plot(m["epoch"], m["i_xt"], color=color, lw=1.6 if label == reference else 1.2,
                label=names.get(label, label), marker=None if len(m) > 40 else ".")
        ax.fill_between(m["epoch"], m["i_xt_low"], m["i_xt_high"], color=color, alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("I(X;T) (bits)")
    return ax


def plot_errors(errors: pd.DataFrame, bits, layer_names, *, names=None, condition: str = "bits", ax=None,
                reference: str = "exact"):
    """Estimator minus exact I(X;T) per layer at ``bits`` bits: one small dot per activation (its
    mean over network-epochs), a large marker for their mean. ``errors`` is
    :func:`estimator_errors` grouped by ``(condition, "activation", "layer")``; ``reference``
    names what was subtracted (axis label). Returns the axes."""
    ax = ax or plt.gca()
    names = dict(names or {})
    sub = errors[errors[condition] == bits]
    labels = list(dict.fromkeys(sub["estimator"]))
    for k, est in enumerate(labels):
        e = sub[sub["estimator"] == est]
        x = e["layer"].to_numpy(float) + _offset(k, len(labels), 0.5)
        ax.plot(x, e["mean"], ".", color=f"C{k}", alpha=0.5, ms=4)
        pooled = e.groupby("layer")["mean"].mean()
        ax.plot(pooled.index.to_numpy(float) + _offset(k, len(labels), 0.5), pooled.to_numpy(), "D",
                color=f"C{k}", ms=6, label=names.get(est, est))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(1, len(layer_names) + 1), layer_names)
    ax.set_ylabel(f"estimate − {reference} I(X;T) (bits)")
    ax.set_title(f"{bits}-bit networks" if condition == "bits" else f"{condition} = {bits}")
    return ax


def plot_agreement(agreement: pd.DataFrame, bits, layer_names, *, names=None, condition: str = "bits", ax=None,
                   reference: str = "exact"):
    """Within-activation rho between each estimator's compression and the exact compression, per
    layer, with bootstrap intervals (:func:`compression_agreement`). A layer without a point had
    no network whose exact I(X;T) fell (rho undefined). Returns the axes."""
    from .plotting import plot_mean_ci

    ax = ax or plt.gca()
    names = dict(names or {})
    sub = agreement[agreement[condition] == bits]
    labels = list(dict.fromkeys(sub["estimator"]))
    for k, est in enumerate(labels):
        e = sub[(sub["estimator"] == est) & np.isfinite(sub["rho"])]
        x = e["layer"].to_numpy(float) + _offset(k, len(labels), 0.4)
        low = np.where(np.isfinite(e["low"]), e["low"], e["rho"])
        high = np.where(np.isfinite(e["high"]), e["high"], e["rho"])
        plot_mean_ci(x, e["rho"], np.minimum(low, e["rho"]), np.maximum(high, e["rho"]), ax=ax, color=f"C{k}",
                     label=names.get(est, est))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(1, len(layer_names) + 1), layer_names)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel(f"rho(estimated, {reference} compression)")
    ax.set_title(f"{bits}-bit networks" if condition == "bits" else f"{condition} = {bits}")
    return ax

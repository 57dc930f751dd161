"""Does estimated compression track clustering, and does it track clustering better than
information? A pre-registered decision rule (issue 11, item 4).

The critique (Goldfeld et al. 2019; Geiger 2021; Lorenzen et al. 2022): in a deterministic
network with distinct inputs, I(X;T) = H(X) whatever the weights, so what binning and KDE
estimators report as "compression" is the representation clustering, not information being
lost. This module turns that into two questions per estimator, geometric measure and layer,
answered across networks on the re-run of the study (:mod:`ibtools.rerun`), which records the
estimators, the exact I(X;T) of the float32 network (entropy of its distinct rows) and the
geometric measures (:mod:`ibtools.geometry`) of the same networks:

**Q1, tracking**: do the networks whose layer compresses more by the estimator also cluster more
over the same stretch of training? Within-condition Spearman rho (:func:`within_condition_rho`)
between the estimator's compression score and the change of the measure
(:func:`ibtools.tracking.measure_changes`), with a stratified percentile-bootstrap interval.

**Q2, clustering or information**: is that rho larger than the rho between the same compression
score and the change of the *exact* I(X;T) over the same epochs (:func:`information_changes`)?
A paired bootstrap of the difference, on the same networks. Where the exact I(X;T) did not change
in any network (e.g. 12 bits at every epoch), the verdict says so: there was no information lost
to track, and no number stands in for a verdict.

The rule (:data:`RULE_TEXT`, version :data:`RULE_VERSION`) and all its thresholds were fixed and
committed before any stored number of the re-run was read (:data:`RULE_ADOPTED`); three of the
re-run's fifty-network units were already stored then, unread by the rule's author. A changed
rule must be a new version shown beside this one, as in :mod:`ibtools.claims`.

Like with like: every estimator is scored on the same epochs (those at which every compared
estimator, the exact I(X;T) and the measures were all recorded: :func:`common_epochs`; on the
re-run, the 25 epochs of adaptive KDE's schedule) and, within a cell, on the same networks (those
for which the compression score, the measure's change and the information change are all
defined). Failed networks (:mod:`ibtools.failures`) are an outcome, so the primary analysis keeps
them; every verdict is also given without them (:func:`clustering_verdicts`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .analysis import _one_estimator, compression_scores, restrict_epochs
from .tracking import NETWORK, SCORES, _change_block, measure_changes
from .validation import as_generator, check_int

__all__ = [
    "RULE_VERSION", "RULE_ADOPTED", "within_condition_rho_ci", "SCORE", "SMOOTH", "LEVEL", "N_BOOT", "MIN_NETWORKS", "WEAK_RHO",
    "INFO_TOL_BITS", "MIN_DEFINED_SHARE", "PRIMARY_MEASURE", "SUMMARY_NETWORKS", "CONDITION",
    "TRACKS", "OPPOSITE", "DOES_NOT_TRACK", "INCONCLUSIVE", "TOO_FEW", "UNDEFINED", "TRACKING_VERDICTS",
    "CLUSTERING", "INFORMATION", "NO_DIFFERENCE", "INFO_UNCHANGED", "INFO_NO_VARIATION", "INFO_RARELY_VARIES",
    "NOT_JUDGED", "COMPARISON_VERDICTS", "NETWORK_SETS", "RULE_TEXT", "SUMMARY_TEXT",
    "common_epochs", "information_changes", "tracking_frame", "within_condition_rho", "judge_tracking",
    "clustering_verdicts", "tracking_summary",
]

#: Version of the rule; a rule changed after results exist is a new version, shown beside this one.
RULE_VERSION = 1
#: When version 1 was fixed: before any stored number of the re-run was read.
RULE_ADOPTED = ("branch clustering, 2026-11-26 07:27 UTC, before any stored re-run number was read",
                "2026-11-26T07:27:00+0000")

#: Compression score compared with the changes (:data:`ibtools.tracking.SCORES`): peak - final
#: I(X;T), bits, the score of the claims' R3 and R5b. Never negative, biased upward by jitter;
#: only its ranks across networks enter the rule, so a bias shared by every network does not.
SCORE = "absolute"
#: Running-median width (recorded epochs) of the scores and of the changes.
SMOOTH = 5
#: Confidence level of every interval of the rule (per cell; not adjusted for the number of cells,
#: which are read as a description: the single pre-registered number is :func:`tracking_summary`).
LEVEL = 0.95
#: Bootstrap resamples of networks (stratified by condition).
N_BOOT = 2000
#: A cell with fewer networks (all three quantities defined) gets :data:`TOO_FEW`, no verdict.
MIN_NETWORKS = 10
#: "Does not track": the interval's upper bound is below this rho, so at most a weak association is
#: compatible with the data (0.3: the conventional boundary between a weak and a moderate
#: correlation, Cohen 1988). An interval that contains 0 but reaches this value is inconclusive.
WEAK_RHO = 0.3
#: An exact-I(X;T) change no larger than this (bits) is no change: the exact I(X;T) of 4096
#: distinct rows is exactly 12 bits, and a layer whose rows stay distinct changes by exactly 0.
INFO_TOL_BITS = 1e-6
#: An interval is read only from resamples on which its rho is defined (the resampled values vary
#: within some condition); when fewer than this share of resamples define it, Q1 reads
#: :data:`UNDEFINED` and Q2 :data:`INFO_RARELY_VARIES` instead of a verdict.
MIN_DEFINED_SHARE = 0.5
#: The measure of the summary number: within- over between-class scatter, a continuous measure of
#: clustering by class that does not share EBAB's bins (``distinct_binned_rows_per_class`` does,
#: so its agreement with EBAB is partly built in; it is reported, not summarized).
PRIMARY_MEASURE = "within_between"
#: The networks behind the summary number: all of them (failure is an outcome of training).
SUMMARY_NETWORKS = "all networks"
#: What a condition is: networks that differ only in their seed. Ranks are taken within a
#: condition, so differences between conditions (an activation that both compresses and clusters
#: more) cannot make a correlation.
CONDITION = ("arm", "activation", "l2")

# Q1 verdicts
#: Q1: the lower bound of rho's interval is above 0.
TRACKS = "tracks"
#: Q1: the upper bound of rho's interval is below 0.
OPPOSITE = "opposite"
#: Q1: the interval contains 0 and its upper bound is below :data:`WEAK_RHO`.
DOES_NOT_TRACK = "does not track"
#: Q1: none of the above (the interval contains 0 and reaches :data:`WEAK_RHO`).
INCONCLUSIVE = "inconclusive"
#: Q1: fewer than :data:`MIN_NETWORKS` networks with every value defined (Q2 is then :data:`NOT_JUDGED`).
TOO_FEW = "too few networks"
#: Q1: rho undefined (a constant quantity), or defined on fewer than :data:`MIN_DEFINED_SHARE` of the
#: bootstrap resamples (Q2 is then :data:`NOT_JUDGED`).
UNDEFINED = "undefined (no variation)"
#: Every Q1 verdict.
TRACKING_VERDICTS = (TRACKS, OPPOSITE, DOES_NOT_TRACK, INCONCLUSIVE, TOO_FEW, UNDEFINED)
# Q2 verdicts
#: Q2: the lower bound of rho(clustering) - rho(information) is above 0.
CLUSTERING = "clustering better"
#: Q2: the upper bound of rho(clustering) - rho(information) is below 0.
INFORMATION = "information better"
#: Q2: the interval of the difference contains 0.
NO_DIFFERENCE = "no difference shown"
#: Q2: the exact I(X;T) changed by at most :data:`INFO_TOL_BITS` in every network: nothing to track.
INFO_UNCHANGED = "information did not change"
#: Q2: the exact I(X;T) changed, but equally in every network of each condition.
INFO_NO_VARIATION = "information did not vary"
#: Q2: both rhos are defined on fewer than :data:`MIN_DEFINED_SHARE` of the bootstrap resamples.
INFO_RARELY_VARIES = "information rarely varies"
#: Q2: not judged, because Q1 has no verdict for the cell (:data:`TOO_FEW` or :data:`UNDEFINED`).
NOT_JUDGED = "not judged"
#: Every Q2 verdict.
COMPARISON_VERDICTS = (CLUSTERING, INFORMATION, NO_DIFFERENCE, INFO_UNCHANGED, INFO_NO_VARIATION,
                       INFO_RARELY_VARIES, NOT_JUDGED)
#: The two network sets of every verdict.
NETWORK_SETS = ("all networks", "without failed")

_P = dict(score=SCORE, smooth=SMOOTH, level=LEVEL, n_boot=N_BOOT, min_n=MIN_NETWORKS, weak=WEAK_RHO,
          tol=INFO_TOL_BITS, share=MIN_DEFINED_SHARE, share_not=1 - MIN_DEFINED_SHARE, primary=PRIMARY_MEASURE)

#: The rule, as the chapter prints it (numbers filled in from the constants above).
RULE_TEXT = (
    "Per estimator, geometric measure and layer, across networks: rho = within-condition Spearman "
    "correlation (ranks taken within each condition = initialization arm x activation x L2 strength, "
    "pooled) between the estimator's '{score}' compression score (peak - final I(X;T), running median "
    "of {smooth}) and the change of the measure over the same epochs (oriented so that positive = the "
    "layer clustered), on the epochs every compared estimator, the exact I(X;T) and the measures share. "
    "Interval: {level:.0%} percentile bootstrap ({n_boot} resamples of networks within conditions). "
    "Q1 (does estimated compression track clustering?): 'tracks' if the lower bound > 0; 'opposite' if "
    "the upper bound < 0; 'does not track' if the upper bound < {weak:g}; otherwise 'inconclusive'; "
    "no verdict with fewer than {min_n} networks, or without variation (rho undefined, or undefined on more than "
    "{share_not:.0%} of the resamples). Q2 (better than information?): "
    "the same rho against the change of the exact I(X;T) (distinct rows) over the same epochs on the "
    "same networks; paired bootstrap of the difference rho(clustering) - rho(information): 'clustering "
    "better' if its lower bound > 0, 'information better' if its upper bound < 0, else 'no difference "
    "shown'; 'information did not change' if the exact I(X;T) changed by at most {tol:g} bits in every "
    "network (nothing to track), 'information did not vary' if it changed but not differently within "
    "any condition, 'information rarely varies' if its rho is defined on fewer than {share:.0%} of the "
    "resamples. Every verdict with all networks and without the failed ones."
).format(**_P)
#: The one number of the summary chapter's column (:func:`tracking_summary`).
SUMMARY_TEXT = (
    "estimated compression tracks clustering: rho = median over the hidden layers of Q1's rho for the "
    "measure '{primary}', with all networks"
).format(**_P)


# ----------------------------------------------------------------------------------------------
# Inputs


def _check_tables(table: pd.DataFrame, measures: pd.DataFrame) -> None:
    if not isinstance(table, pd.DataFrame) or not isinstance(measures, pd.DataFrame):
        raise TypeError("table and measures must be DataFrames (RunResult.table() and RunResult.measure_table())")
    need_t = set(NETWORK) | {"epoch", "estimator", "i_xt", "diverged"}
    need_m = set(NETWORK) | {"epoch", "measure", "value", "diverged"}
    for name, frame, need in (("table", table, need_t), ("measures", measures, need_m)):
        missing = sorted(need - set(frame.columns))
        if missing:
            raise ValueError(f"{name} lacks the column(s) {missing}; pass RunResult.table() / measure_table() "
                             "(or their concatenation, with an 'arm' column for several initialization arms)")
        if frame.empty:
            raise ValueError(f"{name} is empty")
    arms_t = set(table["arm"]) if "arm" in table else {""}
    arms_m = set(measures["arm"]) if "arm" in measures else {""}
    if arms_t != arms_m:
        raise ValueError(f"table and measures hold different arms: {sorted(arms_t)} vs {sorted(arms_m)}")


def _labels(table: pd.DataFrame, estimators, exact: str) -> list[str]:
    if estimators is None:
        estimators = [e for e in sorted(table["estimator"].unique()) if e != exact]
    estimators = [estimators] if isinstance(estimators, str) else list(estimators)
    if not estimators:
        raise ValueError("no estimator to judge: the table holds only the exact I(X;T)")
    for est in estimators:
        if est == exact:
            raise ValueError(f"{exact!r} is the ground truth the estimators are compared with, not an estimator to judge")
        _one_estimator(table, est)
    if not (table["estimator"] == exact).any():
        raise ValueError(f"no rows for the exact I(X;T) {exact!r} (Q2 compares with it); the table has "
                         f"{sorted(table['estimator'].unique())}. Record EstimatorSpec.make('exact') (ibtools.rerun.EXACT)")
    return estimators


def common_epochs(table: pd.DataFrame, measures: pd.DataFrame, estimators, exact: str = "exact") -> np.ndarray:
    """Epochs at which every estimator of ``estimators``, the exact I(X;T) ``exact`` and every
    measure of ``measures`` have rows (sorted, int). Every quantity of the rule is computed on
    these epochs only, so that all estimators are compared on equal terms.

    Raises
    ------
    ValueError
        When they share no epoch.
    """
    estimators = [estimators] if isinstance(estimators, str) else list(estimators)
    sets = [set(table.loc[table["estimator"] == e, "epoch"].unique().tolist()) for e in [*estimators, exact]]
    sets += [set(g["epoch"].unique().tolist()) for _, g in measures.groupby("measure")]
    common = set.intersection(*sets) if sets else set()
    if not common:
        raise ValueError(f"the estimators {[*estimators, exact]} and the measures share no recorded epoch")
    return np.array(sorted(common), dtype=int)


def information_changes(table: pd.DataFrame, estimator: str, exact: str = "exact", *, score: str = SCORE,
                        smooth: int = SMOOTH) -> pd.DataFrame:
    """Every network's compression score by ``estimator`` beside the change of the exact I(X;T)
    over the same epochs.

    The change is defined exactly as a measure's change (:data:`ibtools.tracking.CHANGE_DEFINITION`),
    on a linear scale (bits): the exact I(X;T), smoothed by the same running median, read where the
    estimator's score starts (its I(X;T) peak for ``absolute``) minus its mean over the last 10 % of
    epochs. Positive when information was lost; 0 for a layer whose rows stay distinct (12 bits
    throughout). Both are computed on the epochs the two share (pass a table restricted to
    :func:`common_epochs` to compare several estimators on equal terms).

    Returns
    -------
    DataFrame
        One row per (activation, l2, seed, layer): ``compression`` (the score, bits),
        ``info_change`` (bits; NaN where the exact I(X;T) is missing at an epoch used, e.g. a
        diverged network).
    """
    if score not in SCORES:
        raise ValueError(f"unknown compression score {score!r}; choose one of {', '.join(SCORES)}")
    est = _one_estimator(table, estimator)
    ex = _one_estimator(table, exact)
    shared = np.array(sorted(set(est["epoch"].unique().tolist()) & set(ex["epoch"].unique().tolist())))
    if shared.size == 0:
        raise ValueError(f"estimator {estimator!r} and {exact!r} share no recorded epoch")
    scores = compression_scores(restrict_epochs(table, shared), estimator, smooth=smooth)
    cols = NETWORK + ["compression", "info_change"]
    if scores.empty:
        return pd.DataFrame(columns=cols)
    keys = pd.MultiIndex.from_frame(scores[NETWORK])
    ex = ex[~ex["diverged"] & ex["epoch"].isin(shared)]
    wide = ex.set_index(NETWORK + ["epoch"])["i_xt"].astype(float).unstack("epoch").reindex(index=keys, columns=shared)
    est = est[~est["diverged"] & est["epoch"].isin(shared)]
    present = est.set_index(NETWORK + ["epoch"])["i_xt"].unstack("epoch").reindex(index=keys, columns=shared).notna()
    values = wide.to_numpy(float)
    mask_all = present.to_numpy() & ~np.isnan(values)
    start = scores["fit_epoch" if SCORES[score] == "fit" else "peak_epoch"].to_numpy(float)
    change = np.full(len(scores), np.nan)
    patterns, which = np.unique(mask_all, axis=0, return_inverse=True)
    for k, mask in enumerate(patterns):
        if not mask.any():
            continue
        rows = np.flatnonzero(np.ravel(which) == k)
        change[rows] = _change_block(shared[mask].astype(float), values[np.ix_(rows, mask)], start[rows],
                                     SCORES[score], smooth)
    out = scores[NETWORK].copy()
    out["compression"] = scores[score].to_numpy(float)
    out["info_change"] = np.where(np.isfinite(change), change, np.nan)
    return out[cols]


def tracking_frame(table: pd.DataFrame, measures: pd.DataFrame, estimators=None, names=None, *,
                   exact: str = "exact", score: str = SCORE, smooth: int = SMOOTH) -> pd.DataFrame:
    """Per network, layer, estimator and measure: the compression score, the measure's change and
    the exact I(X;T)'s change, all on :func:`common_epochs`.

    Parameters
    ----------
    table, measures : DataFrame
        :meth:`~ibtools.results.RunResult.table` and :meth:`~ibtools.results.RunResult.measure_table`
        of the same runs (concatenations allowed); an ``arm`` column tells initialization arms
        apart (networks of two arms may share activation, L2 and seed).
    estimators : str or list of str, optional
        Estimator labels to judge (default: every label but ``exact``).
    names : str or list of str, optional
        Measures (default: all in ``measures``).
    exact : str
        Label of the exact I(X;T) (:data:`ibtools.rerun.EXACT`'s ``"exact"``).

    Returns
    -------
    DataFrame
        Columns ``arm, activation, l2, seed, layer, estimator, measure, compression`` (bits),
        ``change`` (the measure's, :data:`ibtools.tracking.CHANGE_DEFINITION`), ``info_change``
        (bits) and ``n_epochs`` (the common epochs).
    """
    _check_tables(table, measures)
    labels = _labels(table, estimators, exact)
    epochs = common_epochs(table, measures, labels, exact)
    table = restrict_epochs(table, epochs)
    measures = restrict_epochs(measures, epochs)
    if "arm" not in table:
        table, measures = table.assign(arm=""), measures.assign(arm="")
    frames = []
    for arm in sorted(table["arm"].unique()):
        t, m = table[table["arm"] == arm], measures[measures["arm"] == arm]
        for est in labels:
            geo = measure_changes(t, m, est, names, score=score, smooth=smooth)
            info = information_changes(t, est, exact, score=score, smooth=smooth)
            both = geo.merge(info[NETWORK + ["info_change"]], on=NETWORK, how="left")
            both.insert(0, "arm", arm)
            frames.append(both)
    out = pd.concat(frames, ignore_index=True)
    out["n_epochs"] = len(epochs)
    return out[["arm", *NETWORK, "estimator", "measure", "compression", "change", "info_change", "n_epochs"]]


# ----------------------------------------------------------------------------------------------
# The statistic


def _centered_ranks(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Ranks within each group (columns ``groups``, last axis), centred and divided by the group's
    size; ``values`` is ``(B, n)``."""
    out = np.zeros_like(values, dtype=float)
    for cols in groups:
        n = cols.size
        if n < 2:
            continue
        r = stats.rankdata(values[:, cols], axis=1)
        out[:, cols] = (r - (n + 1) / 2) / n
    return out


def _rho_rows(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    den = np.sqrt((u * u).sum(axis=1) * (v * v).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (u * v).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def within_condition_rho(x, y, groups) -> float:
    """Within-condition Spearman correlation of ``x`` and ``y``: ranks taken within each group of
    ``groups`` (mean ranks for ties), centred and scaled by the group's size, then correlated over
    all pairs. For one group it is Spearman's rho; a group of one pair adds nothing. NaN when no
    group has variation in ``x`` or in ``y`` (rho undefined). Pairs with a NaN are dropped.

    Raises
    ------
    ValueError
        When the three have different lengths.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    g = pd.factorize(pd.Series(list(groups)) if not isinstance(groups, pd.Series) else groups)[0]
    if not (x.shape == y.shape == g.shape) or x.ndim != 1:
        raise ValueError(f"x, y and groups must be 1-d of one length, got {x.shape}, {y.shape}, {g.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[ok], y[ok], g[ok]
    cols = [np.flatnonzero(g == k) for k in np.unique(g)]
    return float(_rho_rows(_centered_ranks(x[None], cols), _centered_ranks(y[None], cols))[0])


def within_condition_rho_ci(x, y, groups, *, level: float = LEVEL, n_boot: int = N_BOOT, rng=0) -> dict:
    """:func:`within_condition_rho` with a stratified bootstrap interval (networks resampled
    within their group), as the rule's cells compute it.

    Returns
    -------
    dict
        ``rho, low, high`` (``level`` interval; NaN where undefined), ``n`` (pairs without a NaN)
        and ``defined_share``: the share of resamples in which rho was defined (a group with no
        variation in ``x`` or ``y`` leaves it undefined; judge an interval only when this share is
        large, e.g. at least :data:`MIN_DEFINED_SHARE`).

    Raises
    ------
    ValueError
        As :func:`within_condition_rho`, or for ``level`` outside (0, 1) or ``n_boot`` < 1.
    """
    if not 0 < float(level) < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    rho = within_condition_rho(x, y, groups)
    x, y = np.asarray(x, float), np.asarray(y, float)
    g = pd.factorize(pd.Series(list(groups)))[0]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[ok], y[ok], g[ok]
    out = {"rho": rho, "low": np.nan, "high": np.nan, "n": int(ok.sum()), "defined_share": 0.0}
    if not np.isfinite(rho):
        return out
    order = np.argsort(g, kind="stable")
    x, y, g = x[order], y[order], g[order]
    cols = [np.flatnonzero(g == k) for k in np.unique(g)]
    idx = _boot_cols([(c[0], c.size) for c in cols], as_generator(rng), n_boot)
    b = _rho_rows(_centered_ranks(x[idx], cols), _centered_ranks(y[idx], cols))
    defined = np.isfinite(b)
    out["defined_share"] = float(defined.mean())
    if defined.any():
        lo, hi = np.quantile(b[defined], [0.5 - level / 2, 0.5 + level / 2])
        out["low"], out["high"] = float(lo), float(hi)
    return out


def _boot_cols(sizes_starts, rng, n_boot):
    """Stratified resample: ``(n_boot, n)`` indices, each condition resampled within itself."""
    parts = [start + rng.integers(0, size, size=(n_boot, size)) for start, size in sizes_starts]
    return np.concatenate(parts, axis=1)


def _cell(g: pd.DataFrame, level: float, n_boot: int, rng) -> dict:
    """Q1 and Q2 for one (estimator, measure, layer) cell of :func:`tracking_frame` rows."""
    defined = np.isfinite(g["compression"].to_numpy(float)) & np.isfinite(g["change"].to_numpy(float)) \
        & np.isfinite(g["info_change"].to_numpy(float))
    d = g[defined].sort_values(list(CONDITION) + ["seed"])
    out = {"n": int(len(d)), "n_undefined": int((~defined).sum()),
           "n_conditions": int(d.groupby(list(CONDITION)).ngroups) if len(d) else 0,
           "n_info_changed": int((d["info_change"].abs() > INFO_TOL_BITS).sum())}
    nan = dict(rho=np.nan, rho_low=np.nan, rho_high=np.nan, rho_info=np.nan, rho_info_low=np.nan, rho_info_high=np.nan,
               diff=np.nan, diff_low=np.nan, diff_high=np.nan)
    if len(d) < MIN_NETWORKS:
        return out | nan | {"tracking": TOO_FEW, "vs_information": NOT_JUDGED}
    x, y, z = (d[c].to_numpy(float) for c in ("compression", "change", "info_change"))
    codes = d.groupby(list(CONDITION), sort=False).ngroup().to_numpy()
    cols = [np.flatnonzero(codes == k) for k in np.unique(codes)]
    ux = _centered_ranks(x[None], cols)
    rho = float(_rho_rows(ux, _centered_ranks(y[None], cols))[0])
    rho_info = float(_rho_rows(ux, _centered_ranks(z[None], cols))[0])
    out |= nan | {"rho": rho, "rho_info": rho_info}
    if not np.isfinite(rho):
        return out | {"tracking": UNDEFINED, "vs_information": NOT_JUDGED}
    idx = _boot_cols([(c[0], c.size) for c in cols], rng, n_boot)  # conditions are contiguous after sorting
    bx = _centered_ranks(x[idx], cols)
    b_rho = _rho_rows(bx, _centered_ranks(y[idx], cols))
    b_info = _rho_rows(bx, _centered_ranks(z[idx], cols))
    q = [0.5 - level / 2, 0.5 + level / 2]
    ok = np.isfinite(b_rho)
    lo, hi = np.quantile(b_rho[ok], q) if ok.any() else (np.nan, np.nan)
    out |= {"rho_low": float(lo), "rho_high": float(hi)}
    if ok.mean() < MIN_DEFINED_SHARE:  # too many resamples without variation: no interval to judge by
        out["tracking"], out["vs_information"] = UNDEFINED, NOT_JUDGED
        return out
    if lo > 0:
        out["tracking"] = TRACKS
    elif hi < 0:
        out["tracking"] = OPPOSITE
    elif hi < WEAK_RHO:
        out["tracking"] = DOES_NOT_TRACK
    else:
        out["tracking"] = INCONCLUSIVE
    # Q2
    if out["n_info_changed"] == 0:
        out["vs_information"] = INFO_UNCHANGED
        return out
    if not np.isfinite(rho_info):
        out["vs_information"] = INFO_NO_VARIATION
        return out
    both = ok & np.isfinite(b_info)
    if both.mean() < MIN_DEFINED_SHARE:
        out["vs_information"] = INFO_RARELY_VARIES
        return out
    ilo, ihi = np.quantile(b_info[both], q)
    dlo, dhi = np.quantile(b_rho[both] - b_info[both], q)
    out |= {"rho_info_low": float(ilo), "rho_info_high": float(ihi), "diff": rho - rho_info,
            "diff_low": float(dlo), "diff_high": float(dhi)}
    out["vs_information"] = CLUSTERING if dlo > 0 else INFORMATION if dhi < 0 else NO_DIFFERENCE
    return out


def judge_tracking(frame: pd.DataFrame, *, level: float = LEVEL, n_boot: int = N_BOOT, rng=None) -> pd.DataFrame:
    """Q1 and Q2 of the rule for every (estimator, measure, layer) of a :func:`tracking_frame`.

    Parameters
    ----------
    frame : DataFrame
        Rows of :func:`tracking_frame` (all networks, or a subset such as the networks that did
        not fail).
    level : float
        Confidence level (the rule's: :data:`LEVEL`).
    n_boot : int
        Bootstrap resamples (the rule's: :data:`N_BOOT`; at least 100).
    rng : numpy Generator or int, optional
        Randomness of the bootstrap; cells are resampled in the order of the returned rows.

    Returns
    -------
    DataFrame
        One row per (estimator, measure, layer): ``n`` (networks with all three quantities
        defined), ``n_undefined``, ``n_conditions``, ``n_info_changed`` (networks whose exact
        I(X;T) changed by more than :data:`INFO_TOL_BITS`), ``rho, rho_low, rho_high`` (Q1),
        ``rho_info, rho_info_low, rho_info_high`` (the same against the information change),
        ``diff, diff_low, diff_high`` (rho - rho_info, paired), ``tracking`` (a Q1 verdict of
        :data:`TRACKING_VERDICTS`) and ``vs_information`` (a Q2 verdict of
        :data:`COMPARISON_VERDICTS`). A rho is NaN only beside a verdict that says why.
    """
    if not (0 < float(level) < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if int(n_boot) < 100:
        raise ValueError(f"n_boot must be at least 100 for a percentile interval, got {n_boot!r}")
    need = {"arm", *NETWORK, "estimator", "measure", "compression", "change", "info_change"}
    missing = sorted(need - set(frame.columns))
    if missing:
        raise ValueError(f"frame lacks the column(s) {missing}: pass the output of tracking_frame()")
    rng = np.random.default_rng(rng)
    rows = []
    for (est, name, layer), g in frame.groupby(["estimator", "measure", "layer"], sort=True):
        rows.append({"estimator": est, "measure": name, "layer": int(layer), **_cell(g, float(level), int(n_boot), rng)})
    cols = ["estimator", "measure", "layer", "n", "n_undefined", "n_conditions", "n_info_changed", "rho", "rho_low",
            "rho_high", "rho_info", "rho_info_low", "rho_info_high", "diff", "diff_low", "diff_high", "tracking",
            "vs_information"]
    return pd.DataFrame(rows, columns=cols)


def _failed_mask(frame: pd.DataFrame, status: pd.DataFrame) -> np.ndarray:
    need = {"activation", "l2", "seed", "failed"}
    if not need <= set(status.columns):
        raise ValueError(f"status lacks the column(s) {sorted(need - set(status.columns))}: pass "
                         "ibtools.failures.classify_runs(...) (with an 'arm' column for several arms)")
    st = status if "arm" in status else status.assign(arm="")
    failed = st[st["failed"].astype(bool)]
    keys = set(zip(failed["arm"], failed["activation"], failed["l2"].astype(float), failed["seed"].astype(int)))
    return np.array([k in keys for k in zip(frame["arm"], frame["activation"], frame["l2"].astype(float),
                                            frame["seed"].astype(int))], dtype=bool)


def clustering_verdicts(table: pd.DataFrame, measures: pd.DataFrame, status: pd.DataFrame | None = None,
                        estimators=None, names=None, *, exact: str = "exact", level: float = LEVEL,
                        n_boot: int = N_BOOT, rng=0) -> pd.DataFrame:
    """The rule's verdicts with all networks and without the failed ones.

    Parameters
    ----------
    table, measures, estimators, names, exact
        As for :func:`tracking_frame`.
    status : DataFrame, optional
        :func:`ibtools.failures.classify_runs` of the same networks (with an ``arm`` column when
        the tables have one). None: no network counts as failed (both sets are then equal).
    level, n_boot, rng
        As for :func:`judge_tracking` (``rng=0``: reproducible intervals; both network sets use the
        same seed).

    Returns
    -------
    DataFrame
        :func:`judge_tracking`'s rows with ``networks`` (one of :data:`NETWORK_SETS`) first and
        ``n_failed`` (failed networks in the cell, removed in the second set).
    """
    frame = tracking_frame(table, measures, estimators, names, exact=exact)
    failed = _failed_mask(frame, status) if status is not None else np.zeros(len(frame), bool)
    n_failed = frame.assign(f=failed).groupby(["estimator", "measure", "layer"])["f"].sum()
    out = []
    for net_set, sub in zip(NETWORK_SETS, (frame, frame[~failed])):
        judged = judge_tracking(sub, level=level, n_boot=n_boot, rng=np.random.default_rng(rng))
        judged.insert(0, "networks", net_set)
        key = pd.MultiIndex.from_frame(judged[["estimator", "measure", "layer"]])
        judged.insert(4, "n_failed", n_failed.reindex(key).fillna(0).astype(int).to_numpy())
        out.append(judged)
    return pd.concat(out, ignore_index=True)


def tracking_summary(verdicts: pd.DataFrame, hidden_layers) -> pd.DataFrame:
    """The one number per estimator for the summary chapter's column (:data:`SUMMARY_TEXT`).

    Parameters
    ----------
    verdicts : DataFrame
        Output of :func:`clustering_verdicts`.
    hidden_layers : sequence of int
        The hidden layers' indices (the softmax output is left out).

    Returns
    -------
    DataFrame
        One row per estimator: ``rho`` (median over the hidden layers of Q1's rho for
        :data:`PRIMARY_MEASURE` with :data:`SUMMARY_NETWORKS`; NaN only when no hidden layer has a
        defined rho, and ``n_layers`` then says 0), ``n_layers`` (layers with a defined rho),
        ``tracks`` (of them, how many have the verdict :data:`TRACKS`) and ``clustering_better``
        (how many :data:`CLUSTERING`).

    Raises
    ------
    ValueError
        When the verdicts lack the primary measure or the hidden layers.
    """
    hidden = [int(h) for h in hidden_layers]
    if not hidden:
        raise ValueError("hidden_layers must name at least one layer")
    v = verdicts[(verdicts["networks"] == SUMMARY_NETWORKS) & (verdicts["measure"] == PRIMARY_MEASURE)]
    if v.empty:
        raise ValueError(f"the verdicts have no rows for the primary measure {PRIMARY_MEASURE!r} with {SUMMARY_NETWORKS}")
    v = v[v["layer"].isin(hidden)]
    if v.empty:
        raise ValueError(f"the verdicts have none of the hidden layers {hidden}")
    rows = []
    for est, g in v.groupby("estimator", sort=True):
        ok = g[np.isfinite(g["rho"].to_numpy(float))]
        rows.append({"estimator": est, "rho": float(ok["rho"].median()) if len(ok) else np.nan, "n_layers": len(ok),
                     "tracks": int((ok["tracking"] == TRACKS).sum()),
                     "clustering_better": int((ok["vs_information"] == CLUSTERING).sum())})
    return pd.DataFrame(rows, columns=["estimator", "rho", "n_layers", "tracks", "clustering_better"])

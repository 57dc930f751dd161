"""Does estimated compression track clustering? Rank correlations between each estimator's
compression and the change of each geometric measure (:mod:`ibtools.geometry`).

Two questions, each answered per layer with confidence intervals:

* **Across networks** (:func:`compression_vs_geometry`): do the networks whose layer compresses
  more, by an estimator's compression score (:func:`ibtools.analysis.compression_scores`), also
  cluster more over the same epochs? Spearman's rho between the score and the measure's change
  (:func:`measure_changes`), with a percentile-bootstrap interval over networks.
* **Within a network, over epochs** (:func:`curve_correlations`, summarized by
  :func:`summarize_curve_correlations`): does the estimator's I(X;T) curve rise and fall with the
  measure's curve? Spearman's rho over the epochs both were recorded at, per network and layer;
  then its mean over networks with a bootstrap interval.

Inputs are the tidy tables of :meth:`ibtools.results.RunResult.table` and
:meth:`~ibtools.results.RunResult.measure_table` (or their concatenations over runs). Diverged
rows are dropped, as in :mod:`ibtools.analysis`; the number of networks (or epochs) behind
every value is returned in ``n``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .analysis import _one_estimator, _running_median_rows, compression_scores, correlate, restrict_epochs
from .geometry import get_measure

__all__ = ["SCORES", "CHANGE_DEFINITION", "measure_changes", "compression_vs_geometry", "curve_correlations",
           "summarize_curve_correlations"]

NETWORK = ["activation", "l2", "seed", "layer"]

#: Compression scores of :func:`ibtools.analysis.compression_scores` that can be compared with a
#: measure's change, and the epochs the change is taken between.
SCORES = {
    "absolute": "peak", "excess": "peak", "relative": "peak",  # from the I(X;T) peak to the end
    "post_fit": "fit",  # from the end of fitting to the end
    "slope": "slope",  # minus the slope against log10(epoch + 1) over the late window
}

#: How a measure's change is defined (the text the chapters show).
CHANGE_DEFINITION = (
    "The measure's curve, on the epochs at which the estimator was recorded (and the measure too), "
    "on a log10 scale for ratios, counts and variances (Measure.log_change), smoothed by the same running "
    "median as I(X;T), is read at the epoch where the compression score starts (the I(X;T) peak for "
    "'absolute', 'relative' and 'excess'; the end of fitting for 'post_fit') minus its mean over the last "
    "10 % of epochs; for 'slope', minus its least-squares slope against log10(epoch + 1) over epochs >= "
    "sqrt(last epoch). Positive when the measure fell, i.e. the layer clustered, the orientation of the "
    "compression scores. Undefined (dropped and counted in n_undefined) for a network whose measure is "
    "infinite, or zero on a log scale, at any of those epochs."
)


def _check_score(score: str) -> str:
    if score not in SCORES:
        raise ValueError(f"unknown compression score {score!r}; choose one of {', '.join(SCORES)}")
    return score


def _measure_names(measures: pd.DataFrame, names) -> list[str]:
    present = sorted(measures["measure"].unique()) if len(measures) else []
    if names is None:
        if not present:
            raise ValueError("the measure table is empty: record measures with TrainConfig(measures=...)")
        return present
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        get_measure(name)  # unknown names: the registry's error
        if name not in present:
            raise ValueError(f"no rows for measure {name!r}; the table has {present}")
    return names


def _estimators(table: pd.DataFrame, estimators) -> list[str]:
    if estimators is None:
        return sorted(table["estimator"].unique())
    estimators = [estimators] if isinstance(estimators, str) else list(estimators)
    for est in estimators:
        _one_estimator(table, est)
    return estimators


def _wide(measures: pd.DataFrame, name: str, epochs) -> pd.DataFrame:
    """The measure's curves, one row per network and layer, columns ``epochs`` (log10 if the
    measure's changes are compared on a log scale)."""
    sub = measures[(measures["measure"] == name) & ~measures["diverged"]]
    sub = sub[sub["epoch"].isin(epochs)]
    wide = sub.set_index(NETWORK + ["epoch"])["value"].astype(float).unstack("epoch").sort_index()
    if get_measure(name).log_change:
        with np.errstate(divide="ignore", invalid="ignore"):
            wide = np.log10(wide)
    return wide


def measure_changes(table: pd.DataFrame, measures: pd.DataFrame, estimator: str, names=None, *,
                    score: str = "absolute", smooth: int = 5) -> pd.DataFrame:
    """Every network's compression score beside the change of each measure over the same epochs.

    Parameters
    ----------
    table : DataFrame
        Information-plane table (:meth:`~ibtools.results.RunResult.table`).
    measures : DataFrame
        Measure table (:meth:`~ibtools.results.RunResult.measure_table`) of the same runs.
    estimator : str
        Estimator label in ``table``.
    names : str or list of str, optional
        Measures to use; all in ``measures`` by default.
    score : str
        Compression score (:data:`SCORES`; the scores of
        :func:`ibtools.analysis.compression_scores`, bits per decade for ``slope``).
    smooth : int
        Width of the running median, as for the compression score.

    Returns
    -------
    DataFrame
        One row per (activation, l2, seed, layer, measure): ``estimator, score, compression``
        (the score, bits), ``change`` (:data:`CHANGE_DEFINITION`; log10 units for log-scale
        measures, else the measure's unit), ``from_epoch`` (where the change starts; NaN for
        ``slope``) and ``n_epochs`` (epochs both curves share). The score is computed on those
        shared epochs only, so that both describe the same stretch of training.

    Raises
    ------
    ValueError
        Unknown estimator, measure or score, or no epoch shared by the estimator and a measure.
    """
    score = _check_score(score)
    names = _measure_names(measures, names)
    _one_estimator(table, estimator)
    est_epochs = set(table.loc[table["estimator"] == estimator, "epoch"].unique().tolist())
    frames = []
    for name in names:
        shared = np.array(sorted(est_epochs & set(measures.loc[measures["measure"] == name, "epoch"].unique().tolist())))
        if shared.size == 0:
            raise ValueError(f"estimator {estimator!r} and measure {name!r} share no recorded epoch")
        scores = compression_scores(restrict_epochs(table, shared), estimator, smooth=smooth)
        if scores.empty:
            continue
        wide = _wide(measures, name, shared)
        keys = pd.MultiIndex.from_frame(scores[NETWORK])
        wide = wide.reindex(keys)  # networks without measures get NaN (undefined change)
        # the estimator's own recorded epochs per network (a diverged network stops early)
        est = _one_estimator(table, estimator)
        est = est[~est["diverged"] & est["epoch"].isin(shared)]
        present = est.set_index(NETWORK + ["epoch"])["i_xt"].unstack("epoch").reindex(keys)
        present = present.reindex(columns=wide.columns).notna().to_numpy()
        values = wide.to_numpy(float)
        epochs = wide.columns.to_numpy(float)
        start = scores["fit_epoch" if SCORES[score] == "fit" else "peak_epoch"].to_numpy(float)
        change = np.full(len(scores), np.nan)
        mask_all = present & ~np.isnan(values)
        patterns, which = np.unique(mask_all, axis=0, return_inverse=True)
        for k, mask in enumerate(patterns):
            rows = np.flatnonzero(np.ravel(which) == k)
            if not mask.any():
                continue
            change[rows] = _change_block(epochs[mask], values[np.ix_(rows, mask)], start[rows], SCORES[score], smooth)
        frame = scores[NETWORK].copy()
        frame["measure"] = name
        frame["estimator"] = estimator
        frame["score"] = score
        frame["compression"] = scores[score].to_numpy(float)
        frame["change"] = np.where(np.isfinite(change), change, np.nan)
        frame["from_epoch"] = np.nan if SCORES[score] == "slope" else start
        frame["n_epochs"] = mask_all.sum(axis=1)
        frames.append(frame)
    cols = NETWORK + ["measure", "estimator", "score", "compression", "change", "from_epoch", "n_epochs"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def _change_block(e: np.ndarray, values: np.ndarray, start: np.ndarray, kind: str, smooth: int) -> np.ndarray:
    """Change of curves recorded at the same epochs ``e`` (rows of ``values``); inf where the
    curve is infinite somewhere it is used (dropped by the caller)."""
    finite = np.isfinite(values)
    v = _running_median_rows(np.where(finite, values, 0.0), smooth)
    # a non-finite value anywhere makes the smoothed curve near it meaningless: mark the row
    bad = ~finite.all(axis=1)
    last = e.max()
    tail = e >= 0.9 * last
    final = v[:, tail].mean(axis=1)
    if kind == "slope":
        late = e >= np.sqrt(max(last, 1.0))
        if late.sum() < 3:
            return np.full(len(values), np.nan)
        x = np.log10(e[late] + 1)
        xc = x - x.mean()
        y = v[:, late]
        out = -((y - y.mean(axis=1, keepdims=True)) @ xc) / (xc @ xc)
    else:
        idx = np.searchsorted(e, start)
        ok = (idx < e.size) & (e[np.minimum(idx, e.size - 1)] == start)
        out = np.where(ok, v[np.arange(len(v)), np.minimum(idx, e.size - 1)] - final, np.nan)
    return np.where(bad, np.inf, out)


def compression_vs_geometry(table: pd.DataFrame, measures: pd.DataFrame, estimators=None, names=None, *,
                            score: str = "absolute", by=("layer",), smooth: int = 5, level: float = 0.95,
                            n_boot: int = 2000, rng=None) -> pd.DataFrame:
    """Rank correlation, across networks, between compression and clustering, per layer.

    For every estimator, measure and group of ``by`` (default: every layer, all activations and
    L2 strengths of the tables pooled; pass ``by=("activation", "layer")`` to keep them apart):
    Spearman's rho between the networks' compression scores and the changes of the measure over
    the same epochs (:func:`measure_changes`). Every measure falls as a layer clusters and both
    quantities are oriented so that positive means "compressed" / "clustered", so rho > 0 means
    that the networks that compress more by the estimator also cluster more.

    Parameters
    ----------
    table, measures : DataFrame
        As for :func:`measure_changes`.
    estimators : str or list of str, optional
        Estimator labels; all in ``table`` by default.
    names : str or list of str, optional
        Measures; all in ``measures`` by default.
    score : str
        Compression score (:data:`SCORES`).
    by : tuple of str
        Columns of the network key (``activation``, ``l2``, ``layer``) to group by.
    smooth : int
        Running-median width (recorded epochs).
    level : float
        Confidence level of the intervals.
    n_boot : int
        Bootstrap resamples of networks (percentile interval of rho).
    rng : numpy Generator or int, optional
        Randomness of the bootstrap; pass a seeded Generator for reproducible intervals (groups
        are resampled in the order of the returned rows).

    Returns
    -------
    DataFrame
        One row per (estimator, measure, *by*): ``score, n`` (networks with both values),
        ``n_undefined`` (networks whose change is undefined, see :data:`CHANGE_DEFINITION`),
        ``rho, rho_low, rho_high`` (Spearman with its bootstrap interval) and ``p`` (two-sided,
        scipy's). rho and its interval are NaN when fewer than 4 networks remain or either
        quantity is constant (Spearman undefined); ``n`` says how many there were.
    """
    by = [by] if isinstance(by, str) else list(by)
    for col in by:
        if col not in ("activation", "l2", "layer"):
            raise ValueError(f"by must name columns among activation, l2, layer; got {col!r}")
    rng = np.random.default_rng(rng)
    rows = []
    for est in _estimators(table, estimators):
        changes = measure_changes(table, measures, est, names, score=score, smooth=smooth)
        for key, g in changes.groupby(["measure"] + by, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            defined = g["change"].notna() & np.isfinite(g["compression"].to_numpy(float))
            c = correlate(g.loc[defined, "compression"], g.loc[defined, "change"], level=level, n_boot=n_boot, rng=rng)
            rows.append((est, *key, score, c["n"], int((~g["change"].notna()).sum()),
                         c["spearman_rho"], c["spearman_low"], c["spearman_high"], c["spearman_p"]))
    cols = ["estimator", "measure", *by, "score", "n", "n_undefined", "rho", "rho_low", "rho_high", "p"]
    return pd.DataFrame(rows, columns=cols)


def curve_correlations(table: pd.DataFrame, measures: pd.DataFrame, estimators=None, names=None, *,
                       quantity: str = "i_xt") -> pd.DataFrame:
    """Per network and layer: Spearman's rho over epochs between an estimator's curve and a
    measure's curve.

    Parameters
    ----------
    table, measures : DataFrame
        As for :func:`measure_changes`.
    estimators, names : optional
        Estimator labels and measure names (all by default).
    quantity : str
        ``"i_xt"`` (default) or ``"i_ty"``.

    Returns
    -------
    DataFrame
        One row per (activation, l2, seed, layer, estimator, measure): ``n`` (epochs at which
        both were recorded, unsmoothed) and ``rho``. rho > 0: the estimate is high when the
        measure is high, i.e. it falls as the layer clusters. NaN where fewer than 3 epochs are
        shared or either curve is constant over them (Spearman undefined; e.g. a layer whose
        rows stay distinct at every epoch); an infinite measure value ranks above every finite
        one.
    """
    if quantity not in ("i_xt", "i_ty"):
        raise ValueError(f"quantity must be 'i_xt' or 'i_ty', got {quantity!r}")
    names = _measure_names(measures, names)
    out = []
    for est in _estimators(table, estimators):
        sub = _one_estimator(table, est)
        sub = sub[~sub["diverged"]]
        curves = sub.set_index(NETWORK + ["epoch"])[quantity].astype(float).unstack("epoch").sort_index()
        for name in names:
            m = measures[(measures["measure"] == name) & ~measures["diverged"]]
            mw = m.set_index(NETWORK + ["epoch"])["value"].astype(float).unstack("epoch")
            epochs = curves.columns.intersection(mw.columns)
            keys = curves.index.intersection(mw.index)
            a = curves.reindex(index=keys, columns=epochs).to_numpy(float)
            b = mw.reindex(index=keys, columns=epochs).to_numpy(float)
            rho, n = _rowwise_spearman(a, b)
            frame = keys.to_frame(index=False)
            frame["estimator"] = est
            frame["measure"] = name
            frame["n"] = n
            frame["rho"] = rho
            out.append(frame)
    cols = NETWORK + ["estimator", "measure", "n", "rho"]
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


def _rowwise_spearman(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman's rho of every row pair over the columns where both are present (not NaN)."""
    both = ~np.isnan(a) & ~np.isnan(b)
    rho = np.full(len(a), np.nan)
    n = both.sum(axis=1)
    if not len(a):
        return rho, n
    patterns, which = np.unique(both, axis=0, return_inverse=True)
    for k, mask in enumerate(patterns):
        if mask.sum() < 3:
            continue
        rows = np.flatnonzero(np.ravel(which) == k)
        ra = stats.rankdata(a[np.ix_(rows, mask)], axis=1)  # inf ranks last, ties get mean ranks
        rb = stats.rankdata(b[np.ix_(rows, mask)], axis=1)
        ra -= ra.mean(axis=1, keepdims=True)
        rb -= rb.mean(axis=1, keepdims=True)
        den = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[rows] = np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)
    return rho, n


def summarize_curve_correlations(per_network: pd.DataFrame, *, by=("layer",), level: float = 0.95,
                                 n_boot: int = 2000, rng=None) -> pd.DataFrame:
    """Mean of the per-network rho of :func:`curve_correlations` per estimator, measure and
    ``by`` group, with a percentile-bootstrap interval over networks.

    Returns
    -------
    DataFrame
        ``estimator, measure, *by, n`` (networks with a defined rho), ``n_undefined``,
        ``mean_rho, mean_rho_low, mean_rho_high, median_rho`` and ``share_positive`` (share of
        networks with rho > 0). NaN statistics where no network has a defined rho.
    """
    by = [by] if isinstance(by, str) else list(by)
    rng = np.random.default_rng(rng)
    rows = []
    for key, g in per_network.groupby(["estimator", "measure"] + by, sort=True):
        rho = g["rho"].to_numpy(float)
        ok = rho[np.isfinite(rho)]
        if ok.size:
            boot = ok[rng.integers(0, ok.size, size=(n_boot, ok.size))].mean(axis=1)
            lo, hi = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2])
            stats_ = (float(ok.mean()), float(lo), float(hi), float(np.median(ok)), float((ok > 0).mean()))
        else:
            stats_ = (np.nan,) * 5
        rows.append((*key, int(ok.size), int(rho.size - ok.size), *stats_))
    cols = ["estimator", "measure", *by, "n", "n_undefined", "mean_rho", "mean_rho_low", "mean_rho_high",
            "median_rho", "share_positive"]
    return pd.DataFrame(rows, columns=cols)

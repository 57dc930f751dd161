"""Summaries of information-plane tables: averages over initializations, compression scores,
generalization, correlations, each with its uncertainty.

All functions take the tidy tables of :meth:`ibtools.results.RunResult.table` /
:meth:`~ibtools.results.RunResult.history_table` (or their concatenation over runs). Networks
that diverged are never averaged silently: they are dropped, and the number of networks behind
every value is returned in a column ``n``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .validation import check_int

__all__ = [
    "plane_arrays",
    "mean_over_seeds",
    "mean_curve_shape",
    "exact_information_changes",
    "compression_scores",
    "COMPRESSION_DEFINITIONS",
    "final_generalization",
    "mean_ci",
    "correlate",
    "holm",
    "wilson_interval",
    "one_sided_t",
    "recorded_epochs",
    "common_epochs",
    "restrict_epochs",
    "NOISE_FLOOR_DEFINITION",
    "NOISE_DRAWS",
    "noise_null",
]

GROUP = ["activation", "l2", "estimator"]


def _one_estimator(table: pd.DataFrame, estimator: str) -> pd.DataFrame:
    sub = table[table["estimator"] == estimator]
    if sub.empty:
        raise ValueError(f"no rows for estimator {estimator!r}; the table has {sorted(table['estimator'].unique())}")
    return sub


def plane_arrays(table: pd.DataFrame, estimator: str, seed: int | None = None):
    """``(epochs, i_xt, i_ty)`` with (E, L) arrays for one network (``seed``) or the mean over
    all non-diverged networks (``seed=None``), from a table holding one activation and l2."""
    sub = _one_estimator(table, estimator)
    if sub[["activation", "l2"]].drop_duplicates().shape[0] != 1:
        raise ValueError("plane_arrays needs a table of one activation and one l2; select first")
    sub = sub[~sub["diverged"]]
    if seed is not None:
        sub = sub[sub["seed"] == seed]
        if sub.empty:
            raise ValueError(f"no (non-diverged) network with seed {seed}")
    mean = sub.groupby(["epoch", "layer"])[["i_xt", "i_ty"]].mean()
    xt = mean["i_xt"].unstack("layer")
    ty = mean["i_ty"].unstack("layer")
    return xt.index.to_numpy(), xt.to_numpy(), ty.to_numpy()


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its Student-t confidence interval, ignoring NaN. ``(mean, low, high)``."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (np.nan, np.nan, np.nan)
    m = float(v.mean())
    if v.size < 2:
        return (m, np.nan, np.nan)
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return (m, m - half, m + half)


def mean_over_seeds(table: pd.DataFrame, estimator: str, level: float = 0.95) -> pd.DataFrame:
    """Average I(X;T) and I(T;Y) over networks per (activation, l2, epoch, layer).

    Returns columns ``i_xt, i_xt_low, i_xt_high, i_ty, i_ty_low, i_ty_high, n``: means with
    Student-t confidence intervals at ``level`` over the ``n`` non-diverged networks.
    """
    sub = _one_estimator(table, estimator)
    sub = sub[~sub["diverged"]]
    keys = GROUP + ["epoch", "layer"]
    sub = sub.astype({"i_xt": float, "i_ty": float})
    g = sub.groupby(keys, sort=True)[["i_xt", "i_ty"]]
    mean, sd, count = g.mean(), g.std(ddof=1), g.count()
    out = mean.index.to_frame(index=False)
    for col in ("i_xt", "i_ty"):
        m, k = mean[col].to_numpy(), count[col].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            half = stats.t.ppf(0.5 + level / 2, np.where(k > 1, k - 1, np.nan)) * sd[col].to_numpy() / np.sqrt(k)
        out[col], out[f"{col}_low"], out[f"{col}_high"] = m, m - half, m + half
    out["n"] = g.size().to_numpy()
    cols = GROUP + ["epoch", "layer", "i_xt", "i_xt_low", "i_xt_high", "i_ty", "i_ty_low", "i_ty_high", "n"]
    return out[cols]


def mean_curve_shape(table: pd.DataFrame, estimator: str, early: int = 100) -> pd.DataFrame:
    """Landmarks of the curves averaged over networks (:func:`mean_over_seeds`), one row per layer.

    For a single (activation, l2) condition. Columns, all in bits except ``fit_epoch``:
    ``start`` (mean I(X;T) at the first recorded epoch), ``early_dip`` (``start`` minus the lowest
    mean I(X;T) at epochs <= ``early``; >= 0), ``peak`` and ``final`` (largest and last mean
    I(X;T)), ``late_drop`` (``peak`` minus ``final``, over epochs after ``early``; >= 0),
    ``gain`` (``final`` minus ``start``; positive when the layer ends with more information
    about the input than it started with) and ``fit_epoch`` (first epoch where the mean I(T;Y)
    reaches 95 % of its final value). These describe the *average* curve, not single networks:
    the average hides compression that single networks show at different times.
    """
    means = mean_over_seeds(table, estimator)
    if means[["activation", "l2"]].drop_duplicates().shape[0] != 1:
        raise ValueError("mean_curve_shape expects the networks of one (activation, l2) condition; "
                         f"got {means[['activation', 'l2']].drop_duplicates().to_dict('records')}")
    early = check_int(early, "early", minimum=0)
    rows = []
    for layer, g in means.sort_values("epoch").groupby("layer", sort=True):
        e, xt, ty = g["epoch"].to_numpy(), g["i_xt"].to_numpy(), g["i_ty"].to_numpy()
        first = e <= early
        late = ~first if (~first).any() else np.ones_like(first)
        reached = np.flatnonzero(ty >= 0.95 * ty[-1])
        rows.append({
            "layer": layer, "start": xt[0], "early_dip": max(0.0, xt[0] - xt[first].min()) if first.any() else 0.0,
            "peak": xt.max(), "final": xt[-1], "late_drop": max(0.0, xt[late].max() - xt[-1]),
            "gain": xt[-1] - xt[0], "fit_epoch": int(e[reached[0]]) if reached.size else int(e[-1]),
        })
    return pd.DataFrame(rows).set_index("layer")


def exact_information_changes(table: pd.DataFrame, estimator: str, tol: float = 1e-6) -> pd.DataFrame:
    """Where the exact I(X;T) of the float32 network changes during training, per condition and layer.

    ``table`` holds the exact I(X;T) (the entropy of a layer's distinct activity rows over the
    inputs, ``ibtools.rerun.EXACT``) under the label ``estimator``. It is exact, not an
    estimate: a layer whose rows stay distinct keeps H(X) bits (12 on the paper's task) whatever
    its geometry, and it falls only where the network maps different inputs onto the same
    activity. One row per (activation, l2, layer): ``networks``, ``changed`` (share of networks
    whose value moves by more than ``tol`` bits between recorded epochs), ``lowest`` (bits, over
    networks and epochs) and ``final`` (bits, mean over networks at the last recorded epoch).
    Diverged networks are left out.
    """
    sub = _one_estimator(table, estimator)
    sub = sub[~sub["diverged"]].astype({"i_xt": float})
    per_net = sub.groupby(GROUP[:2] + ["layer", "seed"]).i_xt
    spread = per_net.max() - per_net.min()
    last = sub[sub.epoch == sub.epoch.max()].groupby(GROUP[:2] + ["layer"]).i_xt.mean()
    out = pd.DataFrame({
        "networks": spread.groupby(level=[0, 1, 2]).size(),
        "changed": (spread > tol).groupby(level=[0, 1, 2]).mean(),
        "lowest": per_net.min().groupby(level=[0, 1, 2]).min(),
        "final": last,
    })
    return out.reset_index()


#: Compression scores, computed per network and layer from its I(X;T) and I(T;Y) curves (bits,
#: except "relative"). Positive means compression. The paper's own formula is not known.
COMPRESSION_DEFINITIONS = {
    "absolute": "peak of I(X;T) over training minus its final value (mean over the last 10 % of epochs); "
                "curves are first smoothed by a running median over 5 recorded epochs. Never negative.",
    "relative": "the absolute score divided by the peak: the share of the peak given up",
    "post_fit": "I(X;T) when fitting ends (the first epoch where I(T;Y) reaches 95 % of its final value) "
                "minus its final value; signed: negative when the layer gains information after fitting",
    "slope": "minus the least-squares slope of I(X;T) against log10(epoch + 1) over the second half of "
             "training in log time (epochs >= sqrt(last epoch)), bits per decade; signed",
    "floor": "noise floor of the absolute score: what peak - final gives on a curve that does not compress "
             "(flat, plus the layer's own epoch-to-epoch jitter), see NOISE_FLOOR_DEFINITION; bits",
    "excess": "absolute score minus its noise floor; signed, about 0 for a layer that does not compress",
}

#: Draws and seed of the Monte-Carlo null of the noise floor (fixed: the floor is reproducible).
NOISE_DRAWS = 400
NOISE_SEED = 20190101
#: Points of the late window (or fewer) below which the jitter, and so the floor, is not estimated.
NOISE_MIN_DIFFS = 3

#: How the noise floor of a compression score is estimated (the text the chapters show).
NOISE_FLOOR_DEFINITION = (
    "Jitter sigma of a layer's I(X;T): robust standard deviation (1.4826 x median absolute deviation) of "
    "the epoch-to-epoch differences of the unsmoothed curve over the second half of training in log time "
    "(epochs >= sqrt(last epoch)), divided by sqrt(2). Floor: sigma times the mean of peak - final over "
    f"{NOISE_DRAWS} flat curves of standard-normal noise recorded at the same epochs and smoothed the same "
    "way (peak - final scales with sigma); q95: sigma times their 95th percentile. A slow trend in the late "
    "window inflates sigma, so the floor errs high (conservative for 'compresses')."
)

_NULL_CACHE: dict = {}


def noise_null(epochs, smooth: int = 5) -> tuple[float, float]:
    """Peak - final of unit-variance flat noise recorded at ``epochs`` and smoothed by a running
    median over ``smooth`` points: ``(mean, 95th percentile)`` over ``NOISE_DRAWS`` draws with
    a fixed seed. Multiply by a layer's jitter sigma to get its floor (bits)."""
    e = np.asarray(epochs, float)
    key = (e.tobytes(), int(smooth))
    if key not in _NULL_CACHE:
        z = np.random.default_rng(NOISE_SEED).standard_normal((NOISE_DRAWS, e.size))
        m = np.stack([_running_median(row, smooth) for row in z]) if e.size else z
        tail = e >= 0.9 * e.max() if e.size else e.astype(bool)
        score = m.max(axis=1) - m[:, tail].mean(axis=1)
        _NULL_CACHE[key] = (float(score.mean()), float(np.quantile(score, 0.95)))
    return _NULL_CACHE[key]


def _jitter(e: np.ndarray, xt: np.ndarray) -> float:
    late = e >= np.sqrt(max(e.max(), 1.0))
    d = np.diff(xt[late])
    if d.size < NOISE_MIN_DIFFS:
        return np.nan
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def _running_median(v: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or v.size < width:
        return v
    half = width // 2
    padded = np.pad(v, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    return np.median(windows, axis=1)


def compression_scores(table: pd.DataFrame, estimator: str, smooth: int = 5) -> pd.DataFrame:
    """Compression of every network's every layer, by the definitions of
    :data:`COMPRESSION_DEFINITIONS`.

    Returns one row per (activation, l2, seed, layer) with ``peak, peak_epoch, final,
    fit_epoch, absolute, relative, post_fit, slope, noise, floor, floor_q95, excess``. The
    absolute and relative scores cannot be negative and are biased upward by epoch-to-epoch
    jitter (smoothing reduces this); ``floor`` is that bias for a layer that does not compress
    (``NOISE_FLOOR_DEFINITION``) and ``excess = absolute - floor`` is signed. Use ``excess``,
    the signed ``post_fit`` or ``slope`` scores to ask whether compression is distinguishable
    from none.
    """
    sub = _one_estimator(table, estimator)
    sub = sub[~sub["diverged"]]
    keys = ["activation", "l2", "seed", "layer"]
    if sub.empty:
        return pd.DataFrame(columns=keys + SCORE_COLUMNS)
    wide = sub.set_index(keys + ["epoch"])[["i_xt", "i_ty"]].unstack("epoch").sort_index()
    xt_wide, ty_wide = wide["i_xt"], wide["i_ty"]
    epochs = xt_wide.columns.to_numpy(float)
    xt_all, ty_all = xt_wide.to_numpy(float), ty_wide.to_numpy(float)
    present = ~np.isnan(xt_all)
    # networks recorded on the same epochs are scored together (usually all of them)
    patterns, which = np.unique(present, axis=0, return_inverse=True)
    out = np.full((len(xt_all), len(SCORE_COLUMNS)), np.nan)
    for k, mask in enumerate(patterns):
        rows = np.flatnonzero(np.ravel(which) == k)
        if mask.sum() == 0:
            continue
        out[rows] = _scores_block(epochs[mask], xt_all[np.ix_(rows, mask)], ty_all[np.ix_(rows, mask)], smooth)
    frame = xt_wide.index.to_frame(index=False)
    frame[SCORE_COLUMNS] = out
    frame = frame[frame["peak"].notna()].reset_index(drop=True)
    for col in ("peak_epoch", "fit_epoch"):
        frame[col] = frame[col].astype(int)
    frame["seed"] = frame["seed"].astype(int)
    frame["layer"] = frame["layer"].astype(int)
    return frame


SCORE_COLUMNS = ["peak", "peak_epoch", "final", "fit_epoch", "absolute", "relative", "post_fit", "slope",
                 "noise", "floor", "floor_q95", "excess"]


def _running_median_rows(v: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or v.shape[1] < width:
        return v
    half = width // 2
    padded = np.pad(v, ((0, 0), (half, half)), mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width, axis=1), axis=2)


def _scores_block(e: np.ndarray, xt_raw: np.ndarray, ty_raw: np.ndarray, smooth: int) -> np.ndarray:
    """Scores of networks recorded at the same epochs ``e``: rows of ``xt_raw``/``ty_raw``."""
    n, E = xt_raw.shape
    xt = _running_median_rows(xt_raw, smooth)
    ty = _running_median_rows(ty_raw, smooth)
    last = e.max()
    tail = e >= 0.9 * last
    final, final_ty = xt[:, tail].mean(axis=1), ty[:, tail].mean(axis=1)
    peak_i = np.argmax(xt, axis=1)
    peak = xt[np.arange(n), peak_i]
    reached = ty >= 0.95 * final_ty[:, None]
    fit_i = np.where(reached.any(axis=1), np.argmax(reached, axis=1), E - 1)
    fit_i = np.where(final_ty > 0, fit_i, 0)
    late = e >= np.sqrt(max(last, 1.0))
    if late.sum() >= 3:
        x = np.log10(e[late] + 1)
        xc = x - x.mean()
        y = xt[:, late]
        slope = -((y - y.mean(axis=1, keepdims=True)) @ xc) / (xc @ xc)
    else:
        slope = np.full(n, np.nan)
    d = np.diff(xt_raw[:, late], axis=1)
    if d.shape[1] >= NOISE_MIN_DIFFS:
        med = np.median(d, axis=1, keepdims=True)
        sigma = 1.4826 * np.median(np.abs(d - med), axis=1) / np.sqrt(2)
    else:
        sigma = np.full(n, np.nan)
    null_mean, null_q95 = noise_null(e, smooth)
    absolute = peak - final
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(peak > 0, absolute / np.where(peak > 0, peak, 1), np.nan)
    return np.column_stack([peak, e[peak_i], final, e[fit_i], absolute, relative, xt[np.arange(n), fit_i] - final,
                            slope, sigma, sigma * null_mean, sigma * null_q95, absolute - sigma * null_mean])


def _compression_scores_loop(table: pd.DataFrame, estimator: str, smooth: int = 5) -> pd.DataFrame:
    """Reference implementation of :func:`compression_scores`, one network and layer at a time
    (slow; kept for the test that the vectorized version agrees with it)."""
    sub = _one_estimator(table, estimator)
    sub = sub[~sub["diverged"]]
    rows = []
    for (activation, l2, seed, layer), g in sub.groupby(["activation", "l2", "seed", "layer"], sort=True):
        g = g.sort_values("epoch")
        e = g["epoch"].to_numpy(float)
        xt = _running_median(g["i_xt"].to_numpy(float), smooth)
        ty = _running_median(g["i_ty"].to_numpy(float), smooth)
        last = e.max()
        tail = e >= 0.9 * last
        final, final_ty = xt[tail].mean(), ty[tail].mean()
        peak_i = int(np.argmax(xt))
        peak = xt[peak_i]
        fitted = np.flatnonzero(ty >= 0.95 * final_ty) if final_ty > 0 else np.array([0])
        fit_i = int(fitted[0]) if fitted.size else len(e) - 1
        late = e >= np.sqrt(max(last, 1.0))
        slope = -np.polyfit(np.log10(e[late] + 1), xt[late], 1)[0] if late.sum() >= 3 else np.nan
        sigma = _jitter(e, g["i_xt"].to_numpy(float))
        null_mean, null_q95 = noise_null(e, smooth)
        rows.append((activation, l2, seed, layer, peak, int(e[peak_i]), final, int(e[fit_i]), peak - final,
                     (peak - final) / peak if peak > 0 else np.nan, xt[fit_i] - final, slope,
                     sigma, sigma * null_mean, sigma * null_q95, peak - final - sigma * null_mean))
    return pd.DataFrame(rows, columns=["activation", "l2", "seed", "layer", "peak", "peak_epoch", "final",
                                       "fit_epoch", "absolute", "relative", "post_fit", "slope",
                                       "noise", "floor", "floor_q95", "excess"])


def final_generalization(history: pd.DataFrame, last_fraction: float = 0.1) -> pd.DataFrame:
    """Per network: train and test accuracy and loss averaged over the last ``last_fraction`` of
    its evaluation epochs, and the generalization gap ``train_acc - test_acc``."""
    keys = ["activation", "l2", "seed"]
    last = history.groupby(keys, sort=True)["epoch"].transform("max")
    tail = history[history["epoch"] >= (1 - last_fraction) * last]
    tail = tail.astype({c: float for c in ("train_acc", "test_acc", "train_loss", "test_loss")})
    m = tail.groupby(keys, sort=True)[["train_acc", "test_acc", "train_loss", "test_loss"]].mean().reset_index()
    m["gap"] = m["train_acc"] - m["test_acc"]
    m["loss_gap"] = m["test_loss"] - m["train_loss"]
    return m[keys + ["train_acc", "test_acc", "train_loss", "test_loss", "gap", "loss_gap"]]


def correlate(x, y, *, level: float = 0.95, n_boot: int = 2000, rng=None) -> dict:
    """Pearson and Spearman correlation of paired samples, with p-values and intervals.

    Pearson's interval uses Fisher's z transform; Spearman's a percentile bootstrap over pairs
    (``rng``: numpy Generator or seed). Pairs with a NaN are dropped; ``n`` is what is left.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    out = {"n": n}
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out | {k: np.nan for k in ("pearson_r", "pearson_p", "pearson_low", "pearson_high",
                                          "spearman_rho", "spearman_p", "spearman_low", "spearman_high")}
    r, p = stats.pearsonr(x, y)
    z, se = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1 / np.sqrt(n - 3)
    zc = stats.norm.ppf(0.5 + level / 2)
    rho, p_s = stats.spearmanr(x, y)
    rng = np.random.default_rng(rng)
    idx = rng.integers(0, n, size=(n_boot, n))
    rx, ry = stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1)  # Spearman = Pearson of ranks
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2]) if boot.size else (np.nan, np.nan)
    return out | {
        "pearson_r": float(r), "pearson_p": float(p),
        "pearson_low": float(np.tanh(z - zc * se)), "pearson_high": float(np.tanh(z + zc * se)),
        "spearman_rho": float(rho), "spearman_p": float(p_s),
        "spearman_low": float(lo), "spearman_high": float(hi),
    }


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down; family-wise error rate), same order as
    given. NaN p-values are ignored (stay NaN) and do not count towards the family size."""
    p = np.asarray(pvalues, float)
    if p.ndim != 1:
        raise ValueError(f"holm needs a 1-d sequence of p-values, got shape {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a rate of ``k`` events in ``n`` trials: ``(low, high)``.

    ``k`` and ``n`` are integers (Python or NumPy) with 0 <= k <= n and n >= 1; anything else
    (a float included: it is refused, not truncated) is a ValueError."""
    k, n = check_int(k, "k (events)", 0), check_int(n, "n (trials)", 1)
    if k > n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    z = float(stats.norm.ppf(0.5 + level / 2))
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends (no rounding residue)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (float(lo), float(hi))


def one_sided_t(values) -> tuple[float, float, int]:
    """One-sample t-test of ``mean > 0`` ignoring NaN: ``(mean, p, n)``; p is NaN below 2 values
    or with zero spread."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) == 0:
        return (float(v.mean()) if v.size else np.nan, np.nan, int(v.size))
    return float(v.mean()), float(stats.ttest_1samp(v, 0.0, alternative="greater").pvalue), int(v.size)


def recorded_epochs(table: pd.DataFrame, estimator: str) -> np.ndarray:
    """The epochs at which ``estimator`` was recorded in ``table`` (sorted)."""
    return np.sort(_one_estimator(table, estimator)["epoch"].unique())


def common_epochs(table: pd.DataFrame, estimators) -> np.ndarray:
    """Epochs at which *every* one of ``estimators`` was recorded: the equal-terms schedule on
    which settings recorded on different schedules can be compared."""
    estimators = list(estimators)
    if not estimators:
        raise ValueError("common_epochs needs at least one estimator")
    common = set(recorded_epochs(table, estimators[0]).tolist())
    for est in estimators[1:]:
        common &= set(recorded_epochs(table, est).tolist())
    return np.array(sorted(common), dtype=int)


def restrict_epochs(table: pd.DataFrame, epochs) -> pd.DataFrame:
    """Rows of ``table`` (information-plane or history table) at ``epochs`` only."""
    epochs = np.asarray(epochs)
    if epochs.size == 0:
        raise ValueError("restrict_epochs got no epochs: the schedules have none in common")
    return table[table["epoch"].isin(epochs)]

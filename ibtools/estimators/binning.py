"""Binning estimators: each unit's activity is replaced by a bin index, and I(X;T), I(T;Y) are
the plug-in mutual informations of the resulting discrete layer state.

All four share one assumption and one bias. The network is deterministic and evaluated once on
each of the N distinct inputs, so H(T|X) = 0 and I(X;T) = H(T_binned), at most log2 N bits
(12 bits for the Tishby task). Binning can only merge inputs, so every binning estimate is a
*lower* bound on the information the unquantized activity carries about X; what it measures is
how finely the chosen bins resolve the layer, and coarser bins read as "compression".
"""

from __future__ import annotations

import numpy as np

from ._core import (
    InformationEstimate,
    check_positive_float,
    _c_log_c_table,
    finish,
    information_from_sums,
    plugin_information,
    prepare,
    row_codes,
    safe_int_bins,
    value_ranks,
)
from ..validation import check_int

__all__ = ["information_from_bins", "fixed_binning", "binsize_binning", "max_binning", "ebab", "ebab_edges", "ebab_bin_indices", "digitize"]


def _from_bins(prepared, bins: np.ndarray) -> InformationEstimate:
    labels = prepared.labels.cpu().numpy()
    i_xt, i_ty = plugin_information(row_codes(bins), labels, prepared.n_classes)
    return finish(prepared, i_xt, i_ty)


def information_from_bins(bins, labels) -> InformationEstimate:
    """Plug-in I(X;T) and I(T;Y), in bits, of a layer already replaced by integer bin indices.

    The building block of every binning estimator, public so that new ones can be written in a
    few lines: compute bins of shape (n_samples, n_units) (or (n_networks, n_samples, n_units))
    any way you like and pass them here. Rows with equal bins are the same layer state.
    """
    bins = np.asarray(bins)
    if bins.dtype.kind not in "iub":
        raise ValueError(f"bins must be integers, got dtype {bins.dtype}")
    # checks shape and labels; the bins themselves are integers and need no float conversion
    p = prepare(np.zeros(bins.shape, dtype=np.float32), labels)
    return _from_bins(p, safe_int_bins(bins if bins.ndim == 3 else bins[None]))  # any integer range, exactly


def _numpy(prepared) -> np.ndarray:
    return prepared.activity.cpu().numpy()


def fixed_binning(activity, labels, lo: float = -1.0, hi: float = 1.0, n_edges: int = 30) -> InformationEstimate:
    """Equal-width bins on a fixed range, as in Shwartz-Ziv & Tishby (2017).

    ``n_edges`` edges ``linspace(lo, hi, n_edges)`` delimit ``n_edges - 1`` bins (29 bins of width
    2/29 by default). Values below ``lo`` go to the first bin and values above ``hi`` to the last;
    nothing wraps around (the original code put values below -1 into the top bin, and gave the
    value +1.0 a bin of its own).

    Parameters
    ----------
    activity : array or tensor, shape (n_samples, n_units) or (n_networks, n_samples, n_units)
        One layer's activity on every distinct input.
    labels : array of int, shape (n_samples,)
    lo, hi : float
        Range of the bins, ``lo < hi``.
    n_edges : int
        Number of bin edges, at least 2.

    Returns
    -------
    InformationEstimate
        ``(i_xt, i_ty)`` in bits. Biased low (see the module notes); for unbounded activations
        (ReLU) every value above ``hi`` is merged, so growing activity reads as compression.
    """
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"fixed_binning needs finite lo < hi, got lo={lo}, hi={hi}")
    n_edges = check_int(n_edges, "n_edges", 2)
    p = prepare(activity, labels)
    a = _numpy(p)
    edges = np.linspace(lo, hi, n_edges).astype(a.dtype)
    bins = np.clip(digitize(a.reshape(a.shape[0], -1), edges), 0, n_edges - 2).reshape(a.shape)
    return _from_bins(p, bins)


def binsize_binning(activity, labels, bin_size: float = 0.07) -> InformationEstimate:
    """Bins of fixed width with no range limit, ``floor(activity / bin_size)``, as in Saxe et al. (2018).

    Parameters
    ----------
    activity, labels
        As for :func:`fixed_binning`.
    bin_size : float
        Bin width in activity units, > 0 (0.07 matches the width of Shwartz-Ziv & Tishby's bins).

    Returns
    -------
    InformationEstimate
        In bits. The number of bins grows with the spread of the activity, so a layer whose
        activity grows reads as gaining information even when its shape is unchanged.
    """
    bin_size = check_positive_float(bin_size, "bin_size")
    p = prepare(activity, labels)
    with np.errstate(over="ignore"):
        scaled = np.floor(_numpy(p).astype(np.float64) / bin_size)
    if not np.isfinite(scaled).all():
        raise ValueError(
            f"binsize_binning: activity / bin_size overflows float64 (largest |activity| "
            f"{float(np.abs(_numpy(p)).max()):.3g}, bin_size {bin_size:.3g}); use a larger bin_size"
        )
    if np.abs(scaled).max() < 2.0**62:
        bins = scaled.astype(np.int64)
    else:  # bin numbers beyond int64: number the distinct bins of each unit instead
        S, N, d = scaled.shape
        columns = np.ascontiguousarray(scaled.transpose(0, 2, 1)).reshape(S * d, N)
        bins = value_ranks(columns).reshape(S, d, N).transpose(0, 2, 1)
    return _from_bins(p, bins)


#: The value of :func:`max_binning`'s ``max_value`` in an estimator setting (an
#: :class:`~ibtools.config.EstimatorSpec` or a registry call through
#: :func:`~ibtools.estimators.resolve_params`) that stands for the network-wide range:
#: the largest absolute activity of any layer of the same network seen so far in training.
NETWORK_MAX = "network"


def max_binning(activity, labels, n_bins: int = 30, max_value=None) -> InformationEstimate:
    """Equal-width bins from the bottom of the activity to its maximum.

    The range starts at 0, or at the layer's minimum when the activity goes below 0, and ends at
    the layer's own maximum (per network, per call), or at ``max_value`` when given. Passing the
    largest activity of the whole network over all of training reproduces the non-adaptive range
    that Chelombiev et al. criticize: early ReLU layers then see only a few of the bins. In a
    recorded run that is the setting ``EstimatorSpec.make("max", max_value="network")``
    (``NETWORK_MAX``), which :func:`~ibtools.estimators.resolve_params` turns into
    these numbers at every recorded epoch.

    Parameters
    ----------
    activity, labels
        As for :func:`fixed_binning`.
    n_bins : int
        Number of bins, at least 1. The maximum falls in the last bin.
    max_value : float, or array of shape (n_networks,), optional
        Upper end of the range. Values above it go to the last bin.

    Returns
    -------
    InformationEstimate
        In bits; biased low like every binning.
    """
    n_bins = check_int(n_bins, "n_bins", 1)
    p = prepare(activity, labels)
    a = _numpy(p).astype(np.float64)
    S = a.shape[0]
    lo = np.minimum(a.reshape(S, -1).min(1), 0.0)
    if max_value is None:
        hi = a.reshape(S, -1).max(1)
    else:
        if isinstance(max_value, str) and max_value == NETWORK_MAX:
            raise ValueError(f"max_value={NETWORK_MAX!r} (the network-wide range) needs the network's maxima over "
                             "training: record it with EstimatorSpec.make('max', max_value='network') in a "
                             "TrainConfig, or pass the numbers through ibtools.estimators.resolve_params")
        try:
            hi = np.asarray(max_value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"max_value must be a number or one number per network, got {max_value!r}") from None
        if hi.ndim > 1 or (hi.ndim == 1 and hi.shape[0] not in (1, S)):
            raise ValueError(f"max_value must be a number or hold one number per network ({S}), got shape {hi.shape}")
        if not np.isfinite(hi).all():
            raise ValueError(f"max_value must be finite, got {max_value!r}")
        hi = np.broadcast_to(hi, (S,))
        if (hi <= lo).any():
            raise ValueError(f"max_value must exceed the bottom of the range ({lo.min():.4g}), got {max_value!r}")
    width = (hi - lo) / n_bins
    width = np.where(width > 0, width, 1.0)  # constant layer: one bin
    scaled = (a - lo[:, None, None]) / width[:, None, None]
    bins = np.clip(np.floor(scaled), 0, n_bins - 1).astype(np.int64)
    return _from_bins(p, bins)


def digitize(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Number of edges <= each value, minus one (``numpy.digitize(values, edges) - 1``).

    ``values`` is (S, n) and ``edges`` (S, K) (one sorted set of edges per row) or (K,). With a
    few dozen edges, K vectorized comparisons beat a binary search several times over.
    """
    edges = np.asarray(edges)
    if edges.ndim == 1:
        edges = np.broadcast_to(edges, (values.shape[0], edges.size))
    K = edges.shape[1]
    if K >= 2**7 or values.ndim != 2:
        out = np.full(values.shape, -1, dtype=np.int16 if K < 2**15 else np.int64)
        for k in range(K):
            out += values >= edges[:, k : k + 1]
        return out
    # the same K comparisons, a block of rows of about _DIGITIZE_BLOCK values at a time,
    # counted in int8 without temporaries (several times faster than whole-array passes)
    S, n = values.shape
    out = np.empty((S, n), dtype=np.int16)
    rows = max(1, _DIGITIZE_BLOCK // max(n, 1))
    acc = np.empty((min(rows, S), n), dtype=np.int8)
    hit = np.empty(acc.shape, dtype=bool)
    hit8 = hit.view(np.int8)
    for s0 in range(0, S, rows):
        v = values[s0 : s0 + rows]
        e = edges[s0 : s0 + rows]
        r = v.shape[0]
        a, h, h8 = acc[:r], hit[:r], hit8[:r]
        a.fill(-1)
        for k in range(K):
            np.greater_equal(v, e[:, k : k + 1], out=h)
            a += h8
        out[s0 : s0 + r] = a
    return out


_DIGITIZE_BLOCK = 1 << 18


def _edges_from_sorted(srt: np.ndarray, n_bins: int, low) -> np.ndarray:
    bottom = srt[0] if low is None else srt.dtype.type(low)
    if srt[0] < bottom:
        raise ValueError(f"ebab: activity goes below low={low} (minimum {srt[0]:.6g}); low must be <= every value")
    distinct = np.empty(srt.size, dtype=bool)
    distinct[0] = True
    np.not_equal(srt[1:], srt[:-1], out=distinct[1:])
    u = srt[distinct]
    if u[0] == bottom:
        u = u[1:]
    if u.size == 0:  # every value equals `low`: one bin
        return np.full(n_bins + 2, bottom, dtype=srt.dtype)
    ranks = (np.arange(n_bins) * u.size) // n_bins
    return np.concatenate(([bottom], u[ranks], u[-1:])).astype(srt.dtype)


def ebab_edges(values: np.ndarray, n_bins: int = 30, low=None) -> np.ndarray:
    """EBAB bin edges for one layer of one network, from all its values (any shape).

    Returns the ``n_bins + 2`` edges ``[low, u[floor(k * len(u) / n_bins)] for k < n_bins,
    u[-1]]`` where ``u`` are the sorted distinct values other than ``low`` (``low`` defaults to
    the minimum value). Edges repeat when the layer has fewer than ``n_bins`` distinct values.
    """
    return _edges_from_sorted(np.sort(np.asarray(values).ravel()), n_bins, low)


def ebab_bin_indices(activity: np.ndarray, n_bins: int = 30, low=None) -> np.ndarray:
    """Bin index of every value under entropy-based adaptive binning, shape like ``activity``.

    ``activity`` is a numpy array (S, N, d); each network's layer gets its own edges
    (:func:`ebab_edges`) and a value's bin is the number of edges <= it, minus one, as with
    ``numpy.digitize`` in the paper's code.
    """
    activity = np.asarray(activity)
    S = activity.shape[0]
    flat = activity.reshape(S, -1)
    srt = np.sort(flat, axis=1)
    edges = np.stack([_edges_from_sorted(srt[k], n_bins, low) for k in range(S)])
    return digitize(flat, edges).reshape(activity.shape)


def ebab(activity, labels, n_bins: int = 30, low=None) -> InformationEstimate:
    """Entropy-based adaptive binning (EBAB) of Chelombiev, Houghton & O'Donnell (2019).

    Bin edges are chosen per layer (and per call, i.e. per epoch) so that each bin holds the same
    number of *distinct* activity values, pooled over all units of the layer; all units share the
    edges. This follows the paper's code exactly: with ``u`` the sorted distinct values other than
    ``low``, the edges are ``[low, u[floor(k * len(u) / n_bins)] for k < n_bins, u[-1]]`` and a
    value's bin is the number of edges <= it, minus one (``numpy.digitize``). So up to
    ``n_bins + 2`` bins: one for values equal to ``low`` (e.g. the exact zeros of dead ReLU
    units), ``n_bins`` equal-count bins, and one for the maximum.

    Because only ranks matter, the estimate is invariant to any strictly increasing transform of
    the activity (rescaling, shifting, squashing): the number of bins never needs tuning to the
    activity's magnitude. Computed from integer ranks with no per-row Python loops.

    Parameters
    ----------
    activity, labels
        As for :func:`ibtools.estimators.fixed_binning`.
    n_bins : int
        Number of equal-count bins (30 in the paper).
    low : float, optional
        Bottom edge. Default: the layer's minimum, so a mass of values at the minimum (dead ReLU
        units, saturated units) gets its own bin. The paper's code uses 0 for ReLU/softplus and
        -1.000001 for tanh/ELU; pass those to match it exactly. Must not exceed any value.

    Returns
    -------
    InformationEstimate
        In bits. Biased low like every binning, but much less than fixed ranges for unbounded or
        saturating activity; still blind to differences within a bin.
    """
    n_bins = check_int(n_bins, "n_bins", 1)
    if low is not None and not np.isfinite(float(low)):
        raise ValueError(f"ebab: low must be a finite number or None, got {low!r}")
    p = prepare(activity, labels)
    labels_np = p.labels.cpu().numpy()
    i_xt, i_ty = _ebab_information(_numpy(p), labels_np, p.n_classes, n_bins, low)
    return finish(p, i_xt, i_ty)


def _ebab_information(a: np.ndarray, labels: np.ndarray, n_classes: int, n_bins: int, low):
    """EBAB's (I(X;T), I(T;Y)) in bits, (S,) each, for activity ``a`` (S, N, d) and dense labels.

    The same numbers as ``plugin_information(row_codes(ebab_bin_indices(a)))``, bit for bit: the
    same edges, the same bins, the same groups of rows summed in the same (ascending) order; but
    edges, bins, row codes and the sums come from compiled loops (:mod:`._kernels`) in a few
    passes over memory, and the one sort of the codes is an int32 sort when they fit.
    """
    from . import _kernels

    S, N, d = a.shape
    flat = np.ascontiguousarray(a.reshape(S, N * d))
    srt = np.sort(flat, axis=1)  # numpy's SIMD sort (a radix sort in numba was slower)
    if low is None:
        bottoms = np.ascontiguousarray(srt[:, 0])
    else:
        bottom = srt.dtype.type(low)
        below = np.flatnonzero(srt[:, 0] < bottom)
        if below.size:
            raise ValueError(f"ebab: activity goes below low={low} (minimum {srt[below[0], 0]:.6g}); low must be <= every value")
        bottoms = np.full(S, bottom, dtype=srt.dtype)
    K = n_bins + 2
    edges = np.empty((S, K), dtype=srt.dtype)
    _kernels.ebab_edges(srt, bottoms, n_bins, edges)
    shift = max(1, (n_classes - 1).bit_length())  # the label is the last, binary digit
    span = float(K) ** d * 2.0**shift  # joint codes lie in 0 .. K**d << shift - 1
    if span >= _CODE_SPAN_INT64:  # very wide layers or many bins: the general path
        bins = digitize(flat, edges).reshape(a.shape)
        return plugin_information(row_codes(bins), labels, n_classes)
    codes = np.empty((S, N), dtype=np.int32 if span < 2.0**31 else np.int64)
    _kernels.joint_codes(flat, edges, np.ascontiguousarray(labels, dtype=np.int64), d, shift, codes)
    codes.sort(axis=1)
    sum_joint = np.empty(S, dtype=np.float64)
    sum_t = np.empty(S, dtype=np.float64)
    _kernels.sorted_c_log_c(codes, shift, _c_log_c_table(N), sum_joint, sum_t)
    return information_from_sums(sum_joint, sum_t, labels, n_classes)


_CODE_SPAN_INT64 = 2.0**62

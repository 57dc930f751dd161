"""Exact mutual information of a deterministic layer, by counting its distinct rows.

A deterministic network maps each input ``x_i`` to one activity row ``t_i``. With the inputs
drawn uniformly from the ``N`` rows given (the empirical distribution of the data set), ``T`` is
a function of ``X``, so ``H(T|X) = 0`` and::

    I(X;T) = H(T) = -sum_t p(t) log2 p(t),    p(t) = (number of inputs whose row is t) / N
    I(T;Y) = H(T) + H(Y) - H(T,Y)

both **exact** for that distribution, with no estimator, no bins and no tolerance: two inputs
share a state of the layer if and only if their rows are equal value for value (bit for bit, with
``-0.0 == 0.0``). This is the quantity that binning and kernel estimators approximate when they
are applied to a deterministic layer, and it is the reason for the objection that I(X;T) is
uninformative there: for distinct inputs and an injective layer it is ``log2 N`` whatever the
weights (12 bits for the 4096 inputs of the Tishby task), and it drops only when rows coincide
exactly (dead ReLU units, saturation to the same float, quantization).
"""

from __future__ import annotations

import numpy as np

from ._core import InformationEstimate, dense_rank, finish, plugin_information, prepare, row_codes, value_ranks

__all__ = ["exact", "distinct_row_ids"]


#: odd 64-bit multipliers of the row hash (fixed: the ids must not depend on any state)
_HASH_KEYS = (np.random.default_rng(0x1B7001).integers(1, 2**63, size=64, dtype=np.int64).astype(np.uint64) * 2 + 1)


def _words(activity: np.ndarray) -> np.ndarray:
    """The rows of float activity (S, N, d) as 32-bit words (S, N, w), equal iff the values are
    equal (``-0.0`` becomes ``0.0`` first)."""
    a = np.ascontiguousarray(activity + activity.dtype.type(0.0))
    if a.dtype.itemsize % 4:
        a = a.astype(np.float32)  # float16: exact
    return a.view(np.uint32).reshape(a.shape[0], a.shape[1], -1)


def _hashed_ids(words: np.ndarray) -> np.ndarray | None:
    """Row ids from a 32-bit hash of every row, checked: None if two distinct rows collide.

    Rows are sorted by (hash, position) as one packed int64 (numpy's fast integer sort); equal
    hashes are then adjacent, and every adjacent pair with equal hashes is compared word for
    word, so a collision is detected, never believed."""
    S, N, w = words.shape
    if w == 1:
        h = words[:, :, 0].astype(np.int64)  # the value itself: no collisions
    else:
        keys = np.resize(_HASH_KEYS, w)
        acc = np.zeros((S, N), dtype=np.uint64)
        for j in range(w):
            acc += words[:, :, j].astype(np.uint64) * keys[j]  # wraps modulo 2**64
        h = (acc >> np.uint64(32)).astype(np.int64)  # the well-mixed high half
    key = (h << 32) | np.arange(N, dtype=np.int64)
    key.sort(axis=1)
    order = key & np.int64(0xFFFFFFFF)
    key >>= 32
    new = np.empty((S, N), dtype=bool)
    new[:, 0] = True
    np.not_equal(key[:, 1:], key[:, :-1], out=new[:, 1:])
    if w > 1:
        rows = np.take_along_axis(words, order[:, :, None], axis=1)
        same = (rows[:, 1:] == rows[:, :-1]).all(-1)
        if bool((~new[:, 1:] & ~same).any()):  # equal rows always have equal hashes
            return None  # two distinct rows share a hash
    ids_sorted = np.cumsum(new, axis=1) - 1
    out = np.empty_like(ids_sorted)
    np.put_along_axis(out, order, ids_sorted, axis=1)
    return out


def distinct_row_ids(activity: np.ndarray) -> np.ndarray:
    """Number the distinct rows of each member: ids (S, N) in 0..M_s-1, equal iff the rows are equal.

    ``activity`` is a float numpy array (S, N, d). Rows are compared value for value in their own
    dtype (bit for bit, except that ``-0.0`` and ``0.0`` are the same value); NaN must have been
    rejected by the caller. Fast path: a checked 32-bit hash of each row (one integer sort);
    if two distinct rows collide (probability about M^2 / 2^33 for M distinct rows), the ids
    come from per-unit ranks instead (d + 1 sorts). The numbering differs between the two, the
    partition does not.
    """
    S, N, d = activity.shape
    if N < 2**31:
        ids = _hashed_ids(_words(activity))
        if ids is not None:
            return ids
    if d == 1:
        return value_ranks(activity[:, :, 0])
    columns = np.ascontiguousarray(activity.transpose(0, 2, 1)).reshape(S * d, N)
    per_column = value_ranks(columns).reshape(S, d, N).transpose(0, 2, 1)
    return dense_rank(row_codes(per_column))


def exact(activity, labels) -> InformationEstimate:
    """Exact I(X;T) and I(T;Y), in bits, of a deterministic layer evaluated once on every input.

    Counts the distinct rows of the activity exactly (rows equal value for value in their own
    floating-point type, ``-0.0 == 0.0``; no binning, no tolerance) and returns the plug-in
    entropies of that partition of the inputs.

    Parameters
    ----------
    activity : array or tensor, shape (n_samples, n_units) or (n_networks, n_samples, n_units)
        One layer's activity on every input, as the network computed it (float32 for the
        networks of this project; float64 is compared in float64, float16/bfloat16 become
        float32 exactly, integers become floats that represent them exactly). A torch tensor on
        any device is accepted (it is copied to the CPU).
    labels : array of int, shape (n_samples,)

    Returns
    -------
    InformationEstimate
        ``(i_xt, i_ty)`` in bits. ``i_xt = H(T)`` in [0, log2 N]; ``i_ty`` in [0, min(H(T), H(Y))].

    Raises
    ------
    ValueError
        For NaN or infinite activity (a diverged network; NaN has no equality, so its rows
        cannot be counted), wrong shapes, or labels that do not fit (see ``prepare``).

    Notes
    -----
    *What is exact.* For the uniform distribution over the N rows given, I(X;T) = H(T) exactly,
    because ``T`` is a deterministic function of ``X``; no bias in either direction beyond the
    rounding of a sum of N terms (~1e-15 bits). When every input is distinct this is the mutual
    information between the input and the layer of the float network as it is. When inputs
    repeat, the numbers are exact for the empirical distribution that weights each repeated
    input by its multiplicity (so H(X) < log2 N); identical inputs always give identical rows and
    are never told apart. I(T;Y) is exact for the empirical joint distribution of (X, Y) over
    the rows (a repeated input with two labels counts once with each).

    *What is not.* The numbers say nothing about a population beyond the N inputs (they are the
    plug-in entropies of a finite sample, biased low as estimates of any underlying continuous
    distribution), and they depend on floating-point details: the same network in float64 may
    have fewer coinciding rows.

    For a quantized layer (activity taking values on a grid) this equals the plug-in estimate
    of the integer codes (``information_from_bins``), since equal codes are equal floats.

    Cost: a hash of every row and one integer sort to find the distinct rows (each hash
    collision is detected and then resolved exactly by per-unit sorts), one more sort for the
    plug-in entropies; compared with EBAB in ``benchmarks/bench_mixture.py``.
    """
    p = prepare(activity, labels)
    a = p.activity.cpu().numpy()
    ids = distinct_row_ids(a)
    i_xt, i_ty = plugin_information(ids, p.labels.cpu().numpy(), p.n_classes)
    return finish(p, i_xt, i_ty)

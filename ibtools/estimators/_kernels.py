"""Compiled (numba) inner loops of the binning estimators and of the input checks.

Each kernel does, in one pass over memory, exactly the arithmetic of the numpy code it replaces,
so results are bit-identical (``tests/test_estimators_recording.py`` compares them with a frozen
copy of the previous implementation):

* :func:`ebab_edges` - the EBAB bin edges of every network from its sorted values (the same
  distinct values, the same integer ranks ``(k * len(u)) // n_bins`` as
  :func:`ibtools.estimators.binning.ebab_edges`);
* :func:`joint_codes` - each value's bin is the number of edges <= it, minus one (the same float
  comparisons as ``numpy.digitize``), the bins of a row are combined into one mixed-radix integer
  (lexicographic order of the rows), and the label is appended as the last digit;
* :func:`sorted_c_log_c` - over row-sorted joint codes, the sums of ``c ln c`` over the groups of
  equal (row, label) and equal row, added in ascending order of the codes starting from 0.0, the
  very sequence of float64 additions ``numpy.bincount`` performs in
  :func:`ibtools.estimators._core._sum_c_log_c`;
* :func:`all_finite` - whether every float is finite, from the exponent bits (integer max,
  vectorized), instead of ``torch.isfinite(x).all()``'s boolean temporary;
* :func:`row_min_max` - each network's minimum and maximum (the Recorder's layer maxima) in one
  pass, when every value is finite.

They are compiled on first use (``cache=True`` keeps the machine code between sessions).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["ebab_edges", "joint_codes", "sorted_c_log_c", "all_finite", "row_min_max"]

_ROWS_PER_BLOCK = 256  # rows digitized at a time: values and counters stay in L1


@njit(cache=True, nogil=True)
def ebab_edges(srt, bottoms, n_bins, out):  # pragma: no cover - compiled
    """EBAB edges (S, n_bins + 2) into ``out`` from row-sorted values ``srt`` (S, n) and each
    row's bottom edge ``bottoms`` (S,) (<= the row's minimum, checked by the caller)."""
    S, n = srt.shape
    buf = np.empty(n, dtype=srt.dtype)
    for s in range(S):
        bottom = bottoms[s]
        m = 0
        for i in range(n):  # distinct values, first of each run (like srt[not_equal(...)])
            v = srt[s, i]
            if i == 0 or v != srt[s, i - 1]:
                buf[m] = v
                m += 1
        start = 1 if buf[0] == bottom else 0
        size = m - start
        if size == 0:
            for k in range(n_bins + 2):
                out[s, k] = bottom
            continue
        out[s, 0] = bottom
        for k in range(n_bins):
            out[s, 1 + k] = buf[start + (k * size) // n_bins]
        out[s, n_bins + 1] = buf[m - 1]


@njit(cache=True, nogil=True)
def joint_codes(flat, edges, labels, d, shift, out):  # pragma: no cover - compiled
    """Joint codes (S, N) into ``out``: ``(row code << shift) + label`` where the row code is
    the mixed-radix number (radix = number of edges K) of the row's bins, bin = (number of edges
    <= value) - 1 in 0..K-1, and every label is below ``2**shift``. ``flat`` is (S, N * d),
    row-major rows of d values. Codes order the rows lexicographically, then by label. The
    caller makes sure that ``K**d << shift`` fits ``out``'s integer type."""
    S, total = flat.shape
    K = edges.shape[1]
    N = total // d
    rows = _ROWS_PER_BLOCK
    cnt = np.empty(rows * d, dtype=np.int32)
    for s in range(S):
        row = flat[s]
        edge = edges[s]
        dest = out[s]
        for r0 in range(0, N, rows):
            r1 = min(N, r0 + rows)
            m = (r1 - r0) * d
            block = row[r0 * d : r0 * d + m]
            _count_at_least(block, edge, cnt)
            for r in range(r1 - r0):
                code = np.int64(0)
                for j in range(d):
                    code = code * K + cnt[r * d + j]
                dest[r0 + r] = (code << shift) + labels[r0 + r]


@njit(cache=True, nogil=True, inline="always")
def _count_at_least(values, edges, cnt):  # pragma: no cover - compiled
    """cnt[i] = (number of edges <= values[i]) - 1, for i < len(values).

    Eight values at a time with eight counters that stay in registers while the edges stream
    past (LLVM packs them into one vector register: one compare and one subtract per edge)."""
    m = values.shape[0]
    K = edges.shape[0]
    i0 = 0
    while i0 + 8 <= m:
        v0, v1, v2, v3 = values[i0], values[i0 + 1], values[i0 + 2], values[i0 + 3]
        v4, v5, v6, v7 = values[i0 + 4], values[i0 + 5], values[i0 + 6], values[i0 + 7]
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = np.int32(-1)
        for k in range(K):
            e = edges[k]
            c0 -= -np.int32(v0 >= e)
            c1 -= -np.int32(v1 >= e)
            c2 -= -np.int32(v2 >= e)
            c3 -= -np.int32(v3 >= e)
            c4 -= -np.int32(v4 >= e)
            c5 -= -np.int32(v5 >= e)
            c6 -= -np.int32(v6 >= e)
            c7 -= -np.int32(v7 >= e)
        cnt[i0], cnt[i0 + 1], cnt[i0 + 2], cnt[i0 + 3] = c0, c1, c2, c3
        cnt[i0 + 4], cnt[i0 + 5], cnt[i0 + 6], cnt[i0 + 7] = c4, c5, c6, c7
        i0 += 8
    for i in range(i0, m):
        c = np.int32(-1)
        for k in range(K):
            c -= -np.int32(values[i] >= edges[k])
        cnt[i] = c


@njit(cache=True, nogil=True)
def sorted_c_log_c(srt, shift, table, out_joint, out_row):  # pragma: no cover - compiled
    """Per row of sorted joint codes (S, N): sum of ``table[count]`` over the groups of equal
    codes (``out_joint``) and of equal ``code >> shift`` (``out_row``), in ascending order."""
    S, N = srt.shape
    for s in range(S):
        acc_j = 0.0
        acc_r = 0.0
        start_j = 0
        start_r = 0
        for i in range(1, N):
            a = srt[s, i]
            b = srt[s, i - 1]
            if a != b:
                acc_j += table[i - start_j]
                start_j = i
                if (a >> shift) != (b >> shift):
                    acc_r += table[i - start_r]
                    start_r = i
        acc_j += table[N - start_j]
        acc_r += table[N - start_r]
        out_joint[s] = acc_j
        out_row[s] = acc_r


@njit(cache=True, nogil=True)
def _max_exponent32(bits):  # pragma: no cover - compiled
    top = np.uint32(0)
    for i in range(bits.size):
        top = max(top, bits[i] & np.uint32(0x7F800000))
    return top


@njit(cache=True, nogil=True)
def _max_exponent64(bits):  # pragma: no cover - compiled
    top = np.uint64(0)
    for i in range(bits.size):
        top = max(top, bits[i] & np.uint64(0x7FF0000000000000))
    return top


def all_finite(a: np.ndarray) -> bool:
    """True when every element of the float32 or float64 array ``a`` is finite (an all-ones
    exponent means inf or NaN). Contiguous arrays only; others go through numpy."""
    if a.dtype == np.float32 and a.flags.c_contiguous:
        return int(_max_exponent32(a.reshape(-1).view(np.uint32))) != 0x7F800000
    if a.dtype == np.float64 and a.flags.c_contiguous:
        return int(_max_exponent64(a.reshape(-1).view(np.uint64))) != 0x7FF0000000000000
    return bool(np.isfinite(a).all())


@njit(cache=True, nogil=True, fastmath={"nnan", "ninf", "nsz"})
def _min_max_finite(a):  # pragma: no cover - compiled
    lo = a[0]
    hi = a[0]
    for i in range(a.shape[0]):
        lo = min(lo, a[i])
        hi = max(hi, a[i])
    return lo, hi


@njit(cache=True, nogil=True)
def row_min_max(flat, low, high):  # pragma: no cover - compiled
    """Minimum and maximum of every row of float32 ``flat`` (S, n) into ``low`` and ``high``
    (S,); False (and nothing written for that row onwards) as soon as a row holds a non-finite
    value, so that the caller can fall back to a NaN-propagating reduction."""
    for s in range(flat.shape[0]):
        row = flat[s]
        if _max_exponent32(row.view(np.uint32)) == np.uint32(0x7F800000):
            return False
        lo, hi = _min_max_finite(row)
        low[s] = lo
        high[s] = hi
    return True

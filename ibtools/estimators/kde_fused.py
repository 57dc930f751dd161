"""A compiled CPU kernel for the kernel sums of :func:`~ibtools.estimators.kde` and
:func:`~ibtools.estimators.akde` (``engine="fused"``).

The torch path forms each block of kernel exponents with a float64 matrix product, copies it to
float32, clamps, exponentiates and multiplies it by the class weights: five passes over a 4-8 MiB
block, so it is bound by memory, not arithmetic. This kernel makes one pass over the activity:
four rows at a time against a tile of 1024 columns, eight columns per AVX2 vector (the ``F8``
type of :mod:`ibtools.fused`), it forms the squared distances from the float32 differences and
the exponents, then the float32 exponentials (``ibtools.fused._exp_below_88``), then adds the
kernel values to the rows' and the columns' weighted sums for every class; each step is a pass
over the tile's exponents while they are in the L1 cache. Only the upper triangle of the
symmetric kernel matrix is visited. The overall sums are the class sums added up (the classes
partition the inputs).

**Accuracy.** The distinct rows are the layer's float32 activity scaled by a power of two (exact),
so each difference ``x_ik - x_jk`` is the exact difference rounded once: its relative error is at
most ``u = 2**-24`` however close the rows are (no cancellation, unlike the expanded square of the
torch path, which needs float64 products for that reason). Squares summed with fused
multiply-adds, the float32 scale ``g`` and the product give each exponent a relative error of at
most about ``(d + 4) u``, so an absolute error of at most ``80 (d + 4) u`` nats on the exponents
that are not clamped at -80 (the clamp cannot add to it): 6.7e-5 nats for 10 units, 5.0e-4 for
100. The exponential adds a few ulp. Every kernel sum is built from float32 partial sums of at
most 64 terms (``_RUN``; plus an 8-lane reduction) added in float64, so summation adds at
most about ``72 u`` relative, whatever the number of rows (a float32 running sum over thousands
of rows can drop a heavy row's light neighbours entirely; ``tests/test_kde_fused.py`` has such a
layer). An I(X;T) estimate is therefore within ``(80 (d + 4) + 75) u / ln 2`` bits of exact
arithmetic (1.0e-4 bits for 10 units); I(T;Y), a difference of two such estimates, within twice
that. Measured: ``tests/test_kde_fused.py`` (against float64) and
``benchmarks/bench_estimators.py --akde-engines`` (against the torch path).

The numbers are not the torch path's bits, so results computed with ``engine="fused"`` carry the
engine in their estimator label (``akde(alpha=0.01,engine=fused)``) and never mix with stored
torch-path results. The label does not name the kernel's version: its bits may change between
versions of ``ibtools`` (within the bound above; the overall row's did when it became the sum of
the class rows), so resume a cache computed with this engine with the version that began it
(each result's sidecar records the git commit). For a given input and version the numbers are the
same on every run and do not depend on the other networks of a stacked call (each network is its
own call of the kernel; the order of every sum is fixed, no ``fastmath``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from ..fused import _aligned_zeros, _exp_below_88, _fma, _ld, _sel, _set8, _splat, _st

__all__ = ["fused_kernel_sums", "fused_scale_ok", "float32_rows"]

_f = np.float32
_ZERO = _f(0.0)
_FLOOR = _f(-80.0)  # kernel exponents below it are raised to it (as on the torch path)
#: Terms in a float32 partial sum before it is added to the kernel sums in float64.
_RUN = 64
#: Columns per tile: four rows of exponents (16 KiB) stay in the L1 cache. A multiple of
#: ``8 * _RUN``, so a row's float32 partial sums are the same runs whatever the tile.
_TILE = 1024
assert _TILE % (8 * _RUN) == 0
#: largest kernel scale g the kernel takes: beyond it a pair of distinct float32 rows at the
#: smallest squared distance float32 keeps could give a wrong unclamped exponent; such layers go
#: to the torch path
_MAX_SCALE = 1e30


@njit(cache=True, error_model="numpy")
def _kernel_sums(cols, rows, weights, g, m, mass, part, acc, krow, rs):  # pragma: no cover - compiled
    """Add sum_j w_c(j) exp(max(-g |x_i - x_j|^2, -80)) to ``mass[c, i]`` for every class row c
    and distinct row i (the diagonal term included).

    ``cols``: (d * mp) float32, coordinate k of row j at ``k * mp + j`` (mp = m rounded up to 8,
    padding columns copy row 0); ``rows``: (m, d) float32, the same coordinates row by row;
    ``weights``: (c1 * mp) float32 per-class counts, zero on the padding; ``mass``: (c1 * mp)
    float64, zero on entry; ``part`` (c1 * mp), ``acc`` (32,) and ``krow`` (4 * _TILE,) float32
    and ``rs`` (4 * c1,) float64 scratch, ``part`` zero on entry.

    Four rows go together against a tile of ``_TILE`` columns (upper triangle only), in three
    passes over ``krow`` while it is in the L1 cache: the clamped exponents (the column loads
    shared by the four rows, four independent chains of fused multiply-adds), the exponentials,
    then the weighted sums of every class. Small loop bodies of independent iterations keep the
    core's pipelines full; one pass doing all three waited on each exponential's latency.

    Every float32 partial sum has at most ``_RUN`` terms before it is added to ``mass`` in
    float64: a row's sum over runs of ``_RUN`` column blocks per lane (runs start at the row's
    first column block and the tiles are whole runs, so the runs do not depend on ``_TILE``),
    a column's sum over runs of ``_RUN`` rows (in ``part``)."""
    d = rows.shape[1]
    mp = cols.shape[0] // d
    c1 = weights.shape[0] // mp
    ng = _splat(_f(-g))
    lane = _set8(_f(0.0), _f(1.0), _f(2.0), _f(3.0), _f(4.0), _f(5.0), _f(6.0), _f(7.0))
    flush_from = 0
    for i in range(0, m, 4):
        i1 = min(i + 1, m - 1)
        i2 = min(i + 2, m - 1)
        i3 = min(i + 3, m - 1)
        j0 = (i // 8) * 8
        for q in range(4 * c1):
            rs[q] = 0.0
        for ts in range(j0, mp, _TILE):
            te = min(mp, ts + _TILE)
            for jb in range(ts, te, 8):
                d0 = _splat(_ZERO)
                d1 = _splat(_ZERO)
                d2 = _splat(_ZERO)
                d3 = _splat(_ZERO)
                for k in range(d):
                    col = _ld(cols, k * mp + jb)
                    t0 = col - rows[i, k]
                    d0 = _fma(t0, t0, d0)
                    t1 = col - rows[i1, k]
                    d1 = _fma(t1, t1, d1)
                    t2 = col - rows[i2, k]
                    d2 = _fma(t2, t2, d2)
                    t3 = col - rows[i3, k]
                    d3 = _fma(t3, t3, d3)
                e0 = d0 * ng
                e1 = d1 * ng
                e2 = d2 * ng
                e3 = d3 * ng
                o = jb - ts
                _st(krow, o, _sel(e0 < _FLOOR, _FLOOR, e0))
                _st(krow, _TILE + o, _sel(e1 < _FLOOR, _FLOOR, e1))
                _st(krow, 2 * _TILE + o, _sel(e2 < _FLOOR, _FLOOR, e2))
                _st(krow, 3 * _TILE + o, _sel(e3 < _FLOOR, _FLOOR, e3))
            n = te - ts
            for r in range(4):
                for o in range(0, n, 8):
                    _st(krow, r * _TILE + o, _exp_below_88(_ld(krow, r * _TILE + o)))
            if ts == j0:
                index = lane + _f(j0)
                _st(krow, 0, _sel(index > _f(i), _ld(krow, 0), _ZERO))
                _st(krow, _TILE, _sel(index > _f(i1), _ld(krow, _TILE), _ZERO))
                _st(krow, 2 * _TILE, _sel(index > _f(i2), _ld(krow, 2 * _TILE), _ZERO))
                _st(krow, 3 * _TILE, _sel(index > _f(i3), _ld(krow, 3 * _TILE), _ZERO))
            for c in range(c1):
                w0 = _splat(weights[c * mp + i])
                w1 = _splat(weights[c * mp + i1])
                w2 = _splat(weights[c * mp + i2])
                w3 = _splat(weights[c * mp + i3])
                base = c * mp
                start = ts
                while start < te:
                    stop = min(te, start + 8 * _RUN)
                    r0 = _splat(_ZERO)
                    r1 = _splat(_ZERO)
                    r2 = _splat(_ZERO)
                    r3 = _splat(_ZERO)
                    for jb in range(start, stop, 8):
                        o = jb - ts
                        k0 = _ld(krow, o)
                        k1 = _ld(krow, _TILE + o)
                        k2 = _ld(krow, 2 * _TILE + o)
                        k3 = _ld(krow, 3 * _TILE + o)
                        w = _ld(weights, base + jb)
                        r0 = _fma(w, k0, r0)
                        r1 = _fma(w, k1, r1)
                        r2 = _fma(w, k2, r2)
                        r3 = _fma(w, k3, r3)
                        _st(part, base + jb, _fma(w3, k3, _fma(w2, k2, _fma(w1, k1, _fma(w0, k0, _ld(part, base + jb))))))
                    _st(acc, 0, r0)
                    _st(acc, 8, r1)
                    _st(acc, 16, r2)
                    _st(acc, 24, r3)
                    a0 = _ZERO
                    a1 = _ZERO
                    a2 = _ZERO
                    a3 = _ZERO
                    for li in range(8):
                        a0 += acc[li]
                        a1 += acc[8 + li]
                        a2 += acc[16 + li]
                        a3 += acc[24 + li]
                    rs[4 * c] += a0
                    rs[4 * c + 1] += a1
                    rs[4 * c + 2] += a2
                    rs[4 * c + 3] += a3
                    start = stop
        for c in range(c1):
            base = c * mp
            mass[base + i] += rs[4 * c] + weights[base + i]
            if i1 != i:
                mass[base + i1] += rs[4 * c + 1] + weights[base + i1]
            if i2 != i1:
                mass[base + i2] += rs[4 * c + 2] + weights[base + i2]
            if i3 != i2:
                mass[base + i3] += rs[4 * c + 3] + weights[base + i3]
        if (i // 4) % (_RUN // 4) == _RUN // 4 - 1 or i + 4 >= m:
            for c in range(c1):
                base = c * mp
                for j in range(flush_from, mp):
                    mass[base + j] += part[base + j]
                    part[base + j] = _ZERO
            flush_from = min(i + 4, m - 1) // 8 * 8


def float32_rows(uniq: torch.Tensor) -> tuple[np.ndarray, int] | None:
    """The distinct rows (float32, on the CPU) scaled exactly by ``2**-e`` so that their largest
    magnitude lies in [0.5, 1), with ``e``; None if every row is zero or the scale is beyond
    float32's normal range (``abs(e) > 120``; such layers go to the torch path)."""
    a = uniq.numpy()
    peak = float(np.abs(a).max())
    if peak == 0.0:
        return None
    e = math.frexp(peak)[1]
    if abs(e) > 120:
        return None
    return (a * np.float32(math.ldexp(1.0, -e))).astype(np.float32, copy=False), e


def fused_scale_ok(g: float) -> bool:
    """Whether the kernel takes the scale ``g`` (finite, at most 1e30)."""
    return math.isfinite(g) and g <= _MAX_SCALE


def fused_kernel_sums(x: np.ndarray, weights: np.ndarray, g: float) -> np.ndarray:
    """Kernel sums ``mass[c, i] = sum_j weights[c, j] exp(max(-g |x_i - x_j|^2, -80))``.

    Parameters
    ----------
    x : ndarray, shape (m, d), float32
        Distinct rows, of magnitude O(1) (see :func:`float32_rows`).
    weights : ndarray, shape (c1, m)
        How often each row occurs, overall and per class (float32-exact counts).
    g : float
        Scale of the squared distances, > 0 and finite (see :func:`fused_scale_ok`).

    Returns
    -------
    ndarray, shape (c1, m), float64
        Each sum from float32 partial sums of at most 64 terms, added in float64. When the first
        row of ``weights`` is the sum of the others (as the estimators give it: every input, then
        each class), its kernel sums are the other rows' sums added in float64, not computed
        apart: the same error bound, one weight row fewer in the pass of weighted sums (6-9 % of the
        time for two classes).
    """
    m, d = x.shape
    mp = -(-m // 8) * 8
    cols = _aligned_zeros(d * mp).reshape(d, mp)  # the vector arrays start on cache lines
    cols[:, :m] = x.T
    cols[:, m:] = x[:1].T
    # the estimators' first weight row counts every input, the sum of the class rows after it:
    # its kernel sums are then the class rows' sums added in float64, one weight row fewer
    weights = np.asarray(weights)
    derived = weights.shape[0] > 1 and np.array_equal(weights[0], weights[1:].sum(0, dtype=np.float64))
    kept = weights[1:] if derived else weights
    c1 = kept.shape[0]
    w = _aligned_zeros(c1 * mp).reshape(c1, mp)
    w[:, :m] = kept
    mass = np.zeros(c1 * mp, np.float64)
    _kernel_sums(cols.ravel(), np.ascontiguousarray(x, dtype=np.float32), w.ravel(), float(g), m, mass,
                 _aligned_zeros(c1 * mp), _aligned_zeros(32), _aligned_zeros(4 * _TILE),
                 np.zeros(4 * c1, np.float64))
    sums = mass.reshape(c1, mp)[:, :m]
    return np.concatenate([sums.sum(0, keepdims=True), sums]) if derived else sums

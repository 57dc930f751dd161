"""A compiled CPU kernel for the kernel sums of :func:`~ibtools.estimators.kde` and
:func:`~ibtools.estimators.akde` (``engine="fused"``).

The torch path forms each block of kernel exponents with a float64 matrix product, copies it to
float32, clamps, exponentiates and multiplies it by the class weights: five passes over a 4-8 MiB
block, so it is bound by memory, not arithmetic. This kernel makes one pass: for two rows at a
time and eight columns per AVX2 vector (the ``F8`` type of :mod:`ibtools.fused`) it forms the
squared distances from the float32 differences, the exponent, the float32 exponential
(``ibtools.fused._exp_below_88``) and stores the sixteen kernel values, then adds them to the
row's and the columns' weighted sums for every class while they are in the L1 cache. Only the
upper triangle of the symmetric kernel matrix is visited.

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
torch-path results. For a given input they are the same on every run and do not depend on the
other networks of a stacked call (each network is its own call of the kernel; the order of every
sum is fixed, no ``fastmath``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from ..fused import _exp_below_88, _fma, _ld, _sel, _set8, _splat, _st

__all__ = ["fused_kernel_sums", "fused_scale_ok", "float32_rows"]

_f = np.float32
_ZERO = _f(0.0)
_FLOOR = _f(-80.0)  # kernel exponents below it are raised to it (as on the torch path)
#: Terms in a float32 partial sum before it is added to the kernel sums in float64.
_RUN = 64
#: largest kernel scale g the kernel takes: beyond it a pair of distinct float32 rows at the
#: smallest squared distance float32 keeps could give a wrong unclamped exponent; such layers go
#: to the torch path
_MAX_SCALE = 1e30


@njit(cache=True, error_model="numpy")
def _kernel_sums(cols, rows, weights, g, m, mass, part, acc, krow):  # pragma: no cover - compiled
    """Add sum_j w_c(j) exp(max(-g |x_i - x_j|^2, -80)) to ``mass[c, i]`` for every class row c
    and distinct row i (the diagonal term included).

    ``cols``: (d * mp) float32, coordinate k of row j at ``k * mp + j`` (mp = m rounded up to 8,
    padding columns copy row 0); ``rows``: (m, d) float32, the same coordinates row by row;
    ``weights``: (c1 * mp) float32 per-class counts, zero on the padding; ``mass``: (c1 * mp)
    float64, zero on entry; ``part`` (c1 * mp), ``acc`` (16,) and ``krow`` (2 * mp,) float32
    scratch, ``part`` zero on entry.

    Every float32 partial sum has at most ``_RUN`` terms before it is added to ``mass`` in
    float64: a row's sum over runs of ``_RUN`` column blocks per lane, a column's sum over runs of
    ``_RUN`` rows (in ``part``)."""
    d = rows.shape[1]
    mp = cols.shape[0] // d
    c1 = weights.shape[0] // mp
    ng = _splat(_f(-g))
    lane = _set8(_f(0.0), _f(1.0), _f(2.0), _f(3.0), _f(4.0), _f(5.0), _f(6.0), _f(7.0))
    flush_from = 0  # first column that the rows since the last flush of ``part`` reached
    for i in range(0, m, 2):
        # an odd last row pairs with itself: the columns after it are padding (weight zero, their
        # sums discarded), so nothing is counted twice
        i2 = min(i + 1, m - 1)
        j0 = (i // 8) * 8
        for jb in range(j0, mp, 8):
            da = _splat(_ZERO)
            db = _splat(_ZERO)
            for k in range(d):
                col = _ld(cols, k * mp + jb)
                t = col - rows[i, k]
                da = _fma(t, t, da)
                s = col - rows[i2, k]
                db = _fma(s, s, db)
            ea = da * ng
            eb = db * ng
            ka = _exp_below_88(_sel(ea < _FLOOR, _FLOOR, ea))
            kb = _exp_below_88(_sel(eb < _FLOOR, _FLOOR, eb))
            if jb == j0:  # the upper triangle only: columns after the row
                index = lane + _f(jb)
                ka = _sel(index > _f(i), ka, _ZERO)
                kb = _sel(index > _f(i2), kb, _ZERO)
            _st(krow, jb, ka)
            _st(krow, mp + jb, kb)
        for c in range(c1):
            wa = _splat(weights[c * mp + i])
            wb = _splat(weights[c * mp + i2])
            base = c * mp
            row_a = 0.0  # float64
            row_b = 0.0
            start = j0
            while start < mp:
                stop = min(mp, start + 8 * _RUN)
                ra = _splat(_ZERO)
                rb = _splat(_ZERO)
                for jb in range(start, stop, 8):
                    ka = _ld(krow, jb)
                    kb = _ld(krow, mp + jb)
                    w = _ld(weights, base + jb)
                    ra = _fma(w, ka, ra)
                    rb = _fma(w, kb, rb)
                    _st(part, base + jb, _fma(wb, kb, _fma(wa, ka, _ld(part, base + jb))))
                _st(acc, 0, ra)
                _st(acc, 8, rb)
                sa = _ZERO
                sb = _ZERO
                for lane_i in range(8):
                    sa += acc[lane_i]
                    sb += acc[8 + lane_i]
                row_a += sa
                row_b += sb
                start = stop
            mass[base + i] += row_a + weights[base + i]
            if i2 != i:
                mass[base + i2] += row_b + weights[base + i2]
        if (i // 2) % (_RUN // 2) == _RUN // 2 - 1 or i + 2 >= m:  # _RUN rows since the last flush
            for c in range(c1):
                base = c * mp
                for j in range(flush_from, mp):
                    mass[base + j] += part[base + j]
                    part[base + j] = _ZERO
            flush_from = min(i + 2, m - 1) // 8 * 8


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
        Each sum from float32 partial sums of at most 64 terms, added in float64.
    """
    m, d = x.shape
    mp = -(-m // 8) * 8
    cols = np.empty((d, mp), np.float32)
    cols[:, :m] = x.T
    cols[:, m:] = x[:1].T
    c1 = weights.shape[0]
    w = np.zeros((c1, mp), np.float32)
    w[:, :m] = weights
    mass = np.zeros(c1 * mp, np.float64)
    _kernel_sums(cols.ravel(), np.ascontiguousarray(x, dtype=np.float32), w.ravel(), float(g), m, mass,
                 np.zeros(c1 * mp, np.float32), np.zeros(16, np.float32), np.zeros(2 * mp, np.float32))
    return mass.reshape(c1, mp)[:, :m]

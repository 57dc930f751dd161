"""A fused training kernel for the ensemble: one compiled call trains every network for a whole
epoch (``TrainConfig(backend="fused")``).

The torch engine (:class:`~ibtools.trainer.EnsembleTrainer`'s ``_manual_gradients`` and
``_adam_step``) issues some thirty tensor operations per minibatch; with layers of 2-12 units
each of them does little work, and most of the time goes to dispatch, temporaries and passes
over memory. Here a network's whole epoch -- every minibatch, forward pass, softmax
cross-entropy, backward pass, L2 on the hidden weights, and PyTorch's Adam update with
``EnsembleTrainer._adam_step``'s bias correction -- runs in one compiled
loop, in float32, with its parameters, Adam moments and gradient in a few kilobytes of scratch
memory that stay in the L1 cache. Samples go through in blocks of :data:`BLOCK` = 4 (forward,
backward, gradient accumulated in sample order), so no buffer grows with the batch size and
nothing is allocated per step; a block that runs past the end of a minibatch is padded with a
copy of its first sample whose gradient is scaled by zero.

**Why numba.** It installs from a binary wheel on a fresh machine (it is a dependency of the
package) and comes preinstalled in Colab, so the two-command install keeps working with no
compiler; a C++ extension built with torch's extension tools would need a compiler and torch's
headers on every reader's machine. Kernels are compiled once per machine and cached
(``cache=True``, in ``__pycache__``); ``benchmarks/bench_fused.py`` measures the cold compile.

**Lanes and invariance.** Networks are processed in fixed groups of :data:`LANES` = 8 (one AVX2
vector of float32). Every operation is element-wise across the lanes of a group, and lane ``l``
computes exactly what network ``l`` would compute alone: the order of every sum is fixed by the
code (``fastmath=False``: no reassociation, no fused multiply-add). A group that the ensemble
does not fill is padded with copies of its first network, whose results are discarded. A
network's numbers are therefore bit for bit the same whatever the ensemble size and wherever the
network sits in it (``tests/test_fused.py``).

**How it vectorizes.** Each per-lane operation is written out for the eight lanes as one tuple
assignment (all loads before all stores), conditionals are LLVM ``select`` instructions
(``_sel``), lane arrays are flat and indexed with unsigned integers (no negative-index
checks), the error model is numpy's (no division-by-zero checks), and LLVM's SLP vectorizer --
which numba leaves off by default -- is switched on while these kernels compile. It then packs
the eight lanes into vector instructions (all of them for the matrix products, exp and tanh; the
long polynomial of log only partly, which is why softplus is the slowest activation here).

**Transcendental functions.** Without Intel's SVML (not a dependency) ``math.exp`` and
``math.tanh`` compile to scalar library calls. The kernel evaluates ``exp``, ``log``, ``tanh``
with its own branch-free float32 polynomials (Cody-Waite range reduction and Cephes' minimax
coefficients; within a few ulp), which vectorize and give the same bits on every machine with
IEEE float32. They are not the bits of torch's Sleef/libm functions, and the matrix products sum
in a different order than MKL, so the fused backend agrees with the torch engine to float32
rounding that Adam then carries along (see the tolerances in ``tests/test_fused.py``), not bit
for bit. The stored study was computed with the torch engine, which stays the default and the
reference.

Functions
---------
:class:`FusedKernel`
    Layout and scratch memory of one ensemble; :meth:`FusedKernel.train_epoch` trains it in
    place on numpy views of the trainer's flat tensors, :meth:`FusedKernel.forward_all` gives
    every layer's activity on a set of inputs (for recording).
:data:`SUPPORTED_ACTIVATIONS`
    Activations the kernel implements.
"""

from __future__ import annotations

import contextlib
import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .validation import check_int

__all__ = ["LANES", "BLOCK", "SUPPORTED_ACTIVATIONS", "FusedKernel", "check_activation", "adam_scalars"]

#: Networks per group: one AVX2 vector of float32. Fixed, so a network's arithmetic never
#: depends on the ensemble's size.
LANES = 8

#: Activations the kernel implements, with their codes inside the kernel.
SUPPORTED_ACTIVATIONS = {
    "tanh": 0, "relu": 1, "abs": 2, "prelu": 3, "elu": 4, "softplus": 5,
    "centered_softplus": 6, "swish": 7, "sigmoid": 8, "softsign": 9, "linear": 10,
}
_PRELU = 3

_f = np.float32
_ONE, _ZERO, _HALF, _TWO = _f(1.0), _f(0.0), _f(0.5), _f(2.0)
_LOG2E = _f(1.44269504088896341)
_C1, _C2 = _f(0.693359375), _f(-2.12194440e-4)  # ln 2 = C1 - C2, C1 exact in few bits
_EXP_HI, _EXP_LO = _f(88.0), _f(-87.33654)
_LOG2 = _f(math.log(2.0))
_SQRT2 = _f(1.41421356237)
_SOFTPLUS_THRESHOLD = _f(20.0)
# Cephes expf, logf and tanhf minimax coefficients
_E0, _E1, _E2, _E3, _E4, _E5 = (_f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3),
                                _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1))
_L = tuple(_f(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                           1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                           3.3333331174e-1))
_L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8 = _L
_T0, _T1, _T2, _T3, _T4 = (_f(-5.70498872745e-3), _f(2.06390887954e-2), _f(-5.37397155531e-2),
                           _f(1.33314422036e-1), _f(-3.33332819422e-1))
_TANH_SMALL = _f(0.625)
_U0, _U1, _U2, _U3, _U4, _U5, _U6, _U7 = (np.uint64(i) for i in range(LANES))
_UL = np.uint64(LANES)
#: Samples that go through the network together (independent accumulators for the compiler).
BLOCK = 4
_UB = np.uint64(BLOCK * LANES)
(_O00, _O01, _O02, _O03, _O04, _O05, _O06, _O07, _O10, _O11, _O12, _O13, _O14, _O15, _O16, _O17,
 _O20, _O21, _O22, _O23, _O24, _O25, _O26, _O27, _O30, _O31, _O32, _O33, _O34, _O35, _O36, _O37) = (
    np.uint64(i) for i in range(BLOCK * LANES))  # _Osl: sample s, lane l within a block row
_EXPM1_SMALL = _f(-0.5)
_INV = tuple(_f(1.0 / math.factorial(k)) for k in range(2, 9))
_I2, _I3, _I4, _I5, _I6, _I7, _I8 = _INV


@intrinsic
def _f32_from_bits(typingctx, bits):
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _bits_from_f32(typingctx, x):
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _sel(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select`` (a Python conditional expression compiles to
    branches, which keep the compiler from vectorizing the lanes)."""
    if cond != types.boolean or a != types.float32 or b != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])

    return types.float32(types.boolean, types.float32, types.float32), codegen


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _exp(x):
    """float32 exp, branch-free; NaN propagates; clamped to [e^-87.3, e^88]."""
    x = _sel(x > _EXP_HI, _EXP_HI, x)
    x = _sel(x < _EXP_LO, _EXP_LO, x)
    fx = np.floor(x * _LOG2E + _HALF)
    r = x - fx * _C1
    r = r - fx * _C2
    z = r * r
    p = (((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5) * z + r + _ONE
    n = np.int32(fx)
    return p * _f32_from_bits(np.int32((n + np.int32(127)) << np.int32(23)))


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _log(x):
    """float32 natural log of a positive normal number, branch-free."""
    bits = _bits_from_f32(x)
    # numba widens int32 arithmetic to int64; cast back before converting to float, since only
    # int32 -> float32 conversion has an AVX2 vector instruction
    e = np.float32(np.int32(((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(127)))
    m = _f32_from_bits(np.int32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F800000)))
    big = m > _SQRT2
    m = _sel(big, m * _HALF, m)
    fe = _sel(big, e + _ONE, e)
    t = m - _ONE
    z = t * t
    y = ((((((((_L0 * t + _L1) * t + _L2) * t + _L3) * t + _L4) * t + _L5) * t + _L6) * t + _L7) * t + _L8) * t * z
    y = y + fe * _C2
    y = y - _HALF * z
    return t + y + fe * _C1


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _log1p(u):
    """log(1 + u) for u >= 0, accurate for small u (log(w) * u / (w - 1) with w = 1 + u)."""
    w = _ONE + u
    d = w - _ONE
    return _sel(d == _ZERO, u, _log(w) * (u / d))


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _tanh(x):
    ax = abs(x)
    z = x * x
    small = ((((_T0 * z + _T1) * z + _T2) * z + _T3) * z + _T4) * z * x + x
    e = _exp(_TWO * ax)
    big = _ONE - _TWO / (e + _ONE)
    big = _sel(x >= _ZERO, big, -big)
    return _sel(ax < _TANH_SMALL, small, big)


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _sigmoid(x):
    return _ONE / (_ONE + _exp(-x))


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _expm1(x):
    """exp(x) - 1 for x <= 0: Taylor series near 0, exp(x) - 1 below -0.5."""
    series = x * (_ONE + x * (_HALF + x * (_I3 + x * (_I4 + x * (_I5 + x * (_I6 + x * (_I7 + x * _I8)))))))
    return _sel(x > _EXPM1_SMALL, series, _exp(x) - _ONE)


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _softplus(x):
    return _sel(x > _SOFTPLUS_THRESHOLD, x, _log1p(_exp(x)))


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _relu(z):
    return _sel(z > _ZERO, z, _ZERO)


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _prelu(z, slope):
    return _sel(z > _ZERO, z, slope * z)


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _elu(z):
    return _sel(z > _ZERO, z, _expm1(z))


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _swish(z):
    return z * _sigmoid(z)


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _softsign(z):
    return z / (_ONE + abs(z))


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _sign(z):
    return _sel(z > _ZERO, _ONE, _sel(z < _ZERO, -_ONE, _ZERO))


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _dswish(z, a):
    sig = _sigmoid(z)
    return (_ONE - sig) * a + sig


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _delu(a):
    return _sel(a > _ZERO, _ONE, a + _ONE)


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _dsoftsign(z):
    d = _ONE + abs(z)
    return _ONE / (d * d)


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _neg_part(z):
    return _sel(z < _ZERO, z, _ZERO)


# In the kernels below every per-lane operation is written out for the LANES = 8 lanes as one
# tuple assignment: all its loads happen before its stores, so the compiler can pack the eight
# independent scalar chains into one vector instruction (it cannot prove that numba arrays do not
# overlap, which blocks vectorizing a loop over the lanes). Lane-layout arrays are flat, row r
# lane l at r * LANES + l, indexed with unsigned integers (_U0 ... _U7 and row bases made with
# _row), which spares every access numba's negative-index check.


@njit(cache=True, fastmath=False, error_model="numpy", forceinline=True)
def _row(r):
    """Flat index of row ``r``'s first lane, unsigned."""
    return np.uint64(r) * _UL


@njit(cache=True, fastmath=False, error_model="numpy")
def _activate(code, Z, A, r0, width, P, sr):
    """A[u] = f(Z[u]) for rows u = r0 ... r0 + width - 1, every lane (PReLU: slope row ``sr``
    of ``P``)."""
    sb = _row(sr)
    for u in range(r0, r0 + width):
        ub = _row(u)
        if code == 0:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _tanh(Z[ub + _U0]), _tanh(Z[ub + _U1]), _tanh(Z[ub + _U2]), _tanh(Z[ub + _U3]),
                _tanh(Z[ub + _U4]), _tanh(Z[ub + _U5]), _tanh(Z[ub + _U6]), _tanh(Z[ub + _U7]),
            )
        elif code == 1:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _relu(Z[ub + _U0]), _relu(Z[ub + _U1]), _relu(Z[ub + _U2]), _relu(Z[ub + _U3]),
                _relu(Z[ub + _U4]), _relu(Z[ub + _U5]), _relu(Z[ub + _U6]), _relu(Z[ub + _U7]),
            )
        elif code == 2:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                abs(Z[ub + _U0]), abs(Z[ub + _U1]), abs(Z[ub + _U2]), abs(Z[ub + _U3]),
                abs(Z[ub + _U4]), abs(Z[ub + _U5]), abs(Z[ub + _U6]), abs(Z[ub + _U7]),
            )
        elif code == 3:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _prelu(Z[ub + _U0], P[sb + _U0]), _prelu(Z[ub + _U1], P[sb + _U1]),
                _prelu(Z[ub + _U2], P[sb + _U2]), _prelu(Z[ub + _U3], P[sb + _U3]),
                _prelu(Z[ub + _U4], P[sb + _U4]), _prelu(Z[ub + _U5], P[sb + _U5]),
                _prelu(Z[ub + _U6], P[sb + _U6]), _prelu(Z[ub + _U7], P[sb + _U7]),
            )
        elif code == 4:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _elu(Z[ub + _U0]), _elu(Z[ub + _U1]), _elu(Z[ub + _U2]), _elu(Z[ub + _U3]),
                _elu(Z[ub + _U4]), _elu(Z[ub + _U5]), _elu(Z[ub + _U6]), _elu(Z[ub + _U7]),
            )
        elif code == 5:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _softplus(Z[ub + _U0]), _softplus(Z[ub + _U1]), _softplus(Z[ub + _U2]), _softplus(Z[ub + _U3]),
                _softplus(Z[ub + _U4]), _softplus(Z[ub + _U5]), _softplus(Z[ub + _U6]), _softplus(Z[ub + _U7]),
            )
        elif code == 6:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _softplus(Z[ub + _U0]) - _LOG2, _softplus(Z[ub + _U1]) - _LOG2, _softplus(Z[ub + _U2]) - _LOG2, _softplus(Z[ub + _U3]) - _LOG2,
                _softplus(Z[ub + _U4]) - _LOG2, _softplus(Z[ub + _U5]) - _LOG2, _softplus(Z[ub + _U6]) - _LOG2, _softplus(Z[ub + _U7]) - _LOG2,
            )
        elif code == 7:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _swish(Z[ub + _U0]), _swish(Z[ub + _U1]), _swish(Z[ub + _U2]), _swish(Z[ub + _U3]),
                _swish(Z[ub + _U4]), _swish(Z[ub + _U5]), _swish(Z[ub + _U6]), _swish(Z[ub + _U7]),
            )
        elif code == 8:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _sigmoid(Z[ub + _U0]), _sigmoid(Z[ub + _U1]), _sigmoid(Z[ub + _U2]), _sigmoid(Z[ub + _U3]),
                _sigmoid(Z[ub + _U4]), _sigmoid(Z[ub + _U5]), _sigmoid(Z[ub + _U6]), _sigmoid(Z[ub + _U7]),
            )
        elif code == 9:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                _softsign(Z[ub + _U0]), _softsign(Z[ub + _U1]), _softsign(Z[ub + _U2]), _softsign(Z[ub + _U3]),
                _softsign(Z[ub + _U4]), _softsign(Z[ub + _U5]), _softsign(Z[ub + _U6]), _softsign(Z[ub + _U7]),
            )
        else:
            (A[ub + _U0], A[ub + _U1], A[ub + _U2], A[ub + _U3],
             A[ub + _U4], A[ub + _U5], A[ub + _U6], A[ub + _U7]) = (
                Z[ub + _U0], Z[ub + _U1], Z[ub + _U2], Z[ub + _U3],
                Z[ub + _U4], Z[ub + _U5], Z[ub + _U6], Z[ub + _U7],
            )


@njit(cache=True, fastmath=False, error_model="numpy")
def _derivative(code, g, Z, A, r0, width, P, sr):
    """g[u] *= f'(z) for u < width, every lane, from Z and A at rows r0 + u."""
    sb = _row(sr)
    for u in range(width):
        gb, rb = _row(u), _row(r0 + u)
        if code == 0:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                g[gb + _U0] * (_ONE - A[rb + _U0] * A[rb + _U0]), g[gb + _U1] * (_ONE - A[rb + _U1] * A[rb + _U1]),
                g[gb + _U2] * (_ONE - A[rb + _U2] * A[rb + _U2]), g[gb + _U3] * (_ONE - A[rb + _U3] * A[rb + _U3]),
                g[gb + _U4] * (_ONE - A[rb + _U4] * A[rb + _U4]), g[gb + _U5] * (_ONE - A[rb + _U5] * A[rb + _U5]),
                g[gb + _U6] * (_ONE - A[rb + _U6] * A[rb + _U6]), g[gb + _U7] * (_ONE - A[rb + _U7] * A[rb + _U7]),
            )
        elif code == 1:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                _sel(A[rb + _U0] > _ZERO, g[gb + _U0], _ZERO), _sel(A[rb + _U1] > _ZERO, g[gb + _U1], _ZERO),
                _sel(A[rb + _U2] > _ZERO, g[gb + _U2], _ZERO), _sel(A[rb + _U3] > _ZERO, g[gb + _U3], _ZERO),
                _sel(A[rb + _U4] > _ZERO, g[gb + _U4], _ZERO), _sel(A[rb + _U5] > _ZERO, g[gb + _U5], _ZERO),
                _sel(A[rb + _U6] > _ZERO, g[gb + _U6], _ZERO), _sel(A[rb + _U7] > _ZERO, g[gb + _U7], _ZERO),
            )
        elif code == 2:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                g[gb + _U0] * _sign(Z[rb + _U0]), g[gb + _U1] * _sign(Z[rb + _U1]),
                g[gb + _U2] * _sign(Z[rb + _U2]), g[gb + _U3] * _sign(Z[rb + _U3]),
                g[gb + _U4] * _sign(Z[rb + _U4]), g[gb + _U5] * _sign(Z[rb + _U5]),
                g[gb + _U6] * _sign(Z[rb + _U6]), g[gb + _U7] * _sign(Z[rb + _U7]),
            )
        elif code == 3:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                _sel(Z[rb + _U0] > _ZERO, g[gb + _U0], g[gb + _U0] * P[sb + _U0]), _sel(Z[rb + _U1] > _ZERO, g[gb + _U1], g[gb + _U1] * P[sb + _U1]),
                _sel(Z[rb + _U2] > _ZERO, g[gb + _U2], g[gb + _U2] * P[sb + _U2]), _sel(Z[rb + _U3] > _ZERO, g[gb + _U3], g[gb + _U3] * P[sb + _U3]),
                _sel(Z[rb + _U4] > _ZERO, g[gb + _U4], g[gb + _U4] * P[sb + _U4]), _sel(Z[rb + _U5] > _ZERO, g[gb + _U5], g[gb + _U5] * P[sb + _U5]),
                _sel(Z[rb + _U6] > _ZERO, g[gb + _U6], g[gb + _U6] * P[sb + _U6]), _sel(Z[rb + _U7] > _ZERO, g[gb + _U7], g[gb + _U7] * P[sb + _U7]),
            )
        elif code == 4:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                g[gb + _U0] * _delu(A[rb + _U0]), g[gb + _U1] * _delu(A[rb + _U1]),
                g[gb + _U2] * _delu(A[rb + _U2]), g[gb + _U3] * _delu(A[rb + _U3]),
                g[gb + _U4] * _delu(A[rb + _U4]), g[gb + _U5] * _delu(A[rb + _U5]),
                g[gb + _U6] * _delu(A[rb + _U6]), g[gb + _U7] * _delu(A[rb + _U7]),
            )
        elif code == 5 or code == 6:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                g[gb + _U0] * _sigmoid(Z[rb + _U0]), g[gb + _U1] * _sigmoid(Z[rb + _U1]),
                g[gb + _U2] * _sigmoid(Z[rb + _U2]), g[gb + _U3] * _sigmoid(Z[rb + _U3]),
                g[gb + _U4] * _sigmoid(Z[rb + _U4]), g[gb + _U5] * _sigmoid(Z[rb + _U5]),
                g[gb + _U6] * _sigmoid(Z[rb + _U6]), g[gb + _U7] * _sigmoid(Z[rb + _U7]),
            )
        elif code == 7:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                g[gb + _U0] * _dswish(Z[rb + _U0], A[rb + _U0]), g[gb + _U1] * _dswish(Z[rb + _U1], A[rb + _U1]),
                g[gb + _U2] * _dswish(Z[rb + _U2], A[rb + _U2]), g[gb + _U3] * _dswish(Z[rb + _U3], A[rb + _U3]),
                g[gb + _U4] * _dswish(Z[rb + _U4], A[rb + _U4]), g[gb + _U5] * _dswish(Z[rb + _U5], A[rb + _U5]),
                g[gb + _U6] * _dswish(Z[rb + _U6], A[rb + _U6]), g[gb + _U7] * _dswish(Z[rb + _U7], A[rb + _U7]),
            )
        elif code == 8:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                g[gb + _U0] * ((_ONE - A[rb + _U0]) * A[rb + _U0]), g[gb + _U1] * ((_ONE - A[rb + _U1]) * A[rb + _U1]),
                g[gb + _U2] * ((_ONE - A[rb + _U2]) * A[rb + _U2]), g[gb + _U3] * ((_ONE - A[rb + _U3]) * A[rb + _U3]),
                g[gb + _U4] * ((_ONE - A[rb + _U4]) * A[rb + _U4]), g[gb + _U5] * ((_ONE - A[rb + _U5]) * A[rb + _U5]),
                g[gb + _U6] * ((_ONE - A[rb + _U6]) * A[rb + _U6]), g[gb + _U7] * ((_ONE - A[rb + _U7]) * A[rb + _U7]),
            )
        elif code == 9:
            (g[gb + _U0], g[gb + _U1], g[gb + _U2], g[gb + _U3],
             g[gb + _U4], g[gb + _U5], g[gb + _U6], g[gb + _U7]) = (
                g[gb + _U0] * _dsoftsign(Z[rb + _U0]), g[gb + _U1] * _dsoftsign(Z[rb + _U1]),
                g[gb + _U2] * _dsoftsign(Z[rb + _U2]), g[gb + _U3] * _dsoftsign(Z[rb + _U3]),
                g[gb + _U4] * _dsoftsign(Z[rb + _U4]), g[gb + _U5] * _dsoftsign(Z[rb + _U5]),
                g[gb + _U6] * _dsoftsign(Z[rb + _U6]), g[gb + _U7] * _dsoftsign(Z[rb + _U7]),
            )


@njit(cache=True, fastmath=False, error_model="numpy")
def _gather(src, dst, widths, w_off, b_off, s_off, lw, lb, ls, g, S, has_slope):
    """Copy the parameters of group ``g``'s networks from the layer-major ensemble layout ``src``
    into the lane layout (parameter p of lane l at ``dst[p * LANES + l]``); empty lanes copy the
    group's first network."""
    n_layers = widths.shape[0] - 1
    for l in range(LANES):
        k = g * LANES + l
        if k >= S:
            k = g * LANES
        for i in range(n_layers):
            fi, fo = widths[i], widths[i + 1]
            nw = fi * fo
            for q in range(nw):
                dst[(lw[i] + q) * LANES + l] = src[w_off[i] + k * nw + q]
            for q in range(fo):
                dst[(lb[i] + q) * LANES + l] = src[b_off[i] + k * fo + q]
            if has_slope and i < n_layers - 1:
                dst[ls[i] * LANES + l] = src[s_off[i] + k]


@njit(cache=True, fastmath=False, error_model="numpy")
def _scatter(src, dst, widths, w_off, b_off, s_off, lw, lb, ls, g, S, has_slope):
    """Inverse of :func:`_gather` for the group's real networks."""
    n_layers = widths.shape[0] - 1
    for l in range(LANES):
        k = g * LANES + l
        if k >= S:
            break
        for i in range(n_layers):
            fi, fo = widths[i], widths[i + 1]
            nw = fi * fo
            for q in range(nw):
                dst[w_off[i] + k * nw + q] = src[(lw[i] + q) * LANES + l]
            for q in range(fo):
                dst[b_off[i] + k * fo + q] = src[(lb[i] + q) * LANES + l]
            if has_slope and i < n_layers - 1:
                dst[s_off[i] + k] = src[ls[i] * LANES + l]


@njit(cache=True, fastmath=False, error_model="numpy")
def _forward_block(code, P, A, Z, widths, lw, lb, ls, ao):
    """Forward pass of a block of BLOCK samples for every lane. Activity row r of sample s sits at
    row ``r * BLOCK + s`` of A (inputs in rows ao[0]...); Z gets the pre-activations (same rows);
    the last layer's rows of A are the logits. Each output sums b + W[0] x[0] + W[1] x[1] + ... in
    this order."""
    n_layers = widths.shape[0] - 1
    for i in range(n_layers):
        fi, fo = widths[i], widths[i + 1]
        x0, z0 = ao[i], ao[i + 1]
        for j in range(fo):
            bb = _row(lb[i] + j)
            (b0, b1, b2, b3, b4, b5, b6, b7) = (
                P[bb + _U0], P[bb + _U1], P[bb + _U2], P[bb + _U3],
                P[bb + _U4], P[bb + _U5], P[bb + _U6], P[bb + _U7],
            )
            (c00, c01, c02, c03, c04, c05, c06, c07,
             c10, c11, c12, c13, c14, c15, c16, c17,
             c20, c21, c22, c23, c24, c25, c26, c27,
             c30, c31, c32, c33, c34, c35, c36, c37) = (
                b0, b1, b2, b3,
                b4, b5, b6, b7,
                b0, b1, b2, b3,
                b4, b5, b6, b7,
                b0, b1, b2, b3,
                b4, b5, b6, b7,
                b0, b1, b2, b3,
                b4, b5, b6, b7,
            )
            wb, xb = _row(lw[i] + j * fi), _row(x0 * BLOCK)
            for k in range(fi):
                (w0, w1, w2, w3, w4, w5, w6, w7) = (
                    P[wb + _U0], P[wb + _U1], P[wb + _U2], P[wb + _U3],
                    P[wb + _U4], P[wb + _U5], P[wb + _U6], P[wb + _U7],
                )
                (c00, c01, c02, c03, c04, c05, c06, c07,
                 c10, c11, c12, c13, c14, c15, c16, c17,
                 c20, c21, c22, c23, c24, c25, c26, c27,
                 c30, c31, c32, c33, c34, c35, c36, c37) = (
                    c00 + w0 * A[xb + _O00], c01 + w1 * A[xb + _O01], c02 + w2 * A[xb + _O02], c03 + w3 * A[xb + _O03],
                    c04 + w4 * A[xb + _O04], c05 + w5 * A[xb + _O05], c06 + w6 * A[xb + _O06], c07 + w7 * A[xb + _O07],
                    c10 + w0 * A[xb + _O10], c11 + w1 * A[xb + _O11], c12 + w2 * A[xb + _O12], c13 + w3 * A[xb + _O13],
                    c14 + w4 * A[xb + _O14], c15 + w5 * A[xb + _O15], c16 + w6 * A[xb + _O16], c17 + w7 * A[xb + _O17],
                    c20 + w0 * A[xb + _O20], c21 + w1 * A[xb + _O21], c22 + w2 * A[xb + _O22], c23 + w3 * A[xb + _O23],
                    c24 + w4 * A[xb + _O24], c25 + w5 * A[xb + _O25], c26 + w6 * A[xb + _O26], c27 + w7 * A[xb + _O27],
                    c30 + w0 * A[xb + _O30], c31 + w1 * A[xb + _O31], c32 + w2 * A[xb + _O32], c33 + w3 * A[xb + _O33],
                    c34 + w4 * A[xb + _O34], c35 + w5 * A[xb + _O35], c36 + w6 * A[xb + _O36], c37 + w7 * A[xb + _O37],
                )
                wb += _UL
                xb += _UB
            zb = _row((z0 + j) * BLOCK)
            (Z[zb + _O00], Z[zb + _O01], Z[zb + _O02], Z[zb + _O03],
             Z[zb + _O04], Z[zb + _O05], Z[zb + _O06], Z[zb + _O07],
             Z[zb + _O10], Z[zb + _O11], Z[zb + _O12], Z[zb + _O13],
             Z[zb + _O14], Z[zb + _O15], Z[zb + _O16], Z[zb + _O17],
             Z[zb + _O20], Z[zb + _O21], Z[zb + _O22], Z[zb + _O23],
             Z[zb + _O24], Z[zb + _O25], Z[zb + _O26], Z[zb + _O27],
             Z[zb + _O30], Z[zb + _O31], Z[zb + _O32], Z[zb + _O33],
             Z[zb + _O34], Z[zb + _O35], Z[zb + _O36], Z[zb + _O37]) = (
                c00, c01, c02, c03,
                c04, c05, c06, c07,
                c10, c11, c12, c13,
                c14, c15, c16, c17,
                c20, c21, c22, c23,
                c24, c25, c26, c27,
                c30, c31, c32, c33,
                c34, c35, c36, c37,
            )
        if i < n_layers - 1:
            _activate(code, Z, A, z0 * BLOCK, fo * BLOCK, P, ls[i])
        else:
            for j in range(z0 * BLOCK, (z0 + fo) * BLOCK):
                jb = _row(j)
                (A[jb + _U0], A[jb + _U1], A[jb + _U2], A[jb + _U3],
                 A[jb + _U4], A[jb + _U5], A[jb + _U6], A[jb + _U7]) = (
                    Z[jb + _U0], Z[jb + _U1], Z[jb + _U2], Z[jb + _U3],
                    Z[jb + _U4], Z[jb + _U5], Z[jb + _U6], Z[jb + _U7],
                )


@njit(cache=True, fastmath=False, error_model="numpy")
def _train_epoch(code, flat, exp_avg, exp_avg_sq, X, y, order, per_net_order, S, widths,
                 w_off, b_off, s_off, lw, lb, ls, ao, batch_size, l2, inv_n, step_size,
                 bias2_sqrt, one_minus_beta1, beta2, one_minus_beta2, eps,
                 P, M, V, G, A, Z, g1, g2, m_lane, rows, lane_net, labels, scales, losses):
    """One epoch for every network of the ensemble, in place on ``flat``, ``exp_avg``,
    ``exp_avg_sq``; ``losses[k]`` gets network ``k``'s mean minibatch cross-entropy.

    Samples go through in blocks of BLOCK; a block that runs past the end of a minibatch is
    filled with copies of its first sample whose gradient is scaled by zero. Gradients are summed
    over a minibatch's samples in their order; Adam is PyTorch's (``exp_avg`` by lerp,
    ``exp_avg_sq`` by multiply-add, ``p += step_size * m / (sqrt(v) / bias2_sqrt + eps)``)."""
    n_layers = widths.shape[0] - 1
    n_par = P.shape[0] // LANES
    n_train = order.shape[1]
    n_in, n_out = widths[0], widths[n_layers]
    has_slope = code == _PRELU
    n_groups = (S + LANES - 1) // LANES
    n_batches = (n_train + batch_size - 1) // batch_size
    lo = ao[n_layers]
    for grp in range(n_groups):
        _gather(flat, P, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)
        _gather(exp_avg, M, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)
        _gather(exp_avg_sq, V, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)
        for l in range(LANES):
            m_lane[l] = 0.0
            k = grp * LANES + l
            lane_net[l] = k if k < S else grp * LANES
        for bi in range(n_batches):
            start = bi * batch_size
            stop = min(start + batch_size, n_train)
            for q in range(n_par * LANES):
                G[q] = _ZERO
            for blk in range(start, stop, BLOCK):
                # inputs, labels and gradient scale of the block's samples for every lane
                for s in range(BLOCK):
                    pos = blk + s
                    scales[s] = inv_n[bi] if pos < stop else _ZERO
                    if pos >= stop:
                        pos = blk
                    for l in range(LANES):
                        rows[l] = order[lane_net[l] if per_net_order else 0, pos]
                        labels[s * LANES + l] = y[rows[l]]
                    for k in range(n_in):
                        kb = _row(k * BLOCK + s)
                        (A[kb + _U0], A[kb + _U1], A[kb + _U2], A[kb + _U3],
                         A[kb + _U4], A[kb + _U5], A[kb + _U6], A[kb + _U7]) = (
                            X[rows[0], k], X[rows[1], k], X[rows[2], k], X[rows[3], k],
                            X[rows[4], k], X[rows[5], k], X[rows[6], k], X[rows[7], k],
                        )
                _forward_block(code, P, A, Z, widths, lw, lb, ls, ao)
                # softmax cross-entropy; g1 = (p - onehot) * scale
                for s in range(BLOCK):
                    scale = scales[s]
                    yb = s * LANES
                    (y0, y1, y2, y3, y4, y5, y6, y7) = (
                        labels[yb + 0], labels[yb + 1], labels[yb + 2], labels[yb + 3],
                        labels[yb + 4], labels[yb + 5], labels[yb + 6], labels[yb + 7],
                    )
                    cb = _row(lo * BLOCK + s)
                    (c0, c1, c2, c3, c4, c5, c6, c7) = (
                        A[cb + _U0], A[cb + _U1], A[cb + _U2], A[cb + _U3],
                        A[cb + _U4], A[cb + _U5], A[cb + _U6], A[cb + _U7],
                    )
                    for c in range(1, n_out):
                        cb = _row((lo + c) * BLOCK + s)
                        (c0, c1, c2, c3, c4, c5, c6, c7) = (
                            _sel(A[cb + _U0] > c0, A[cb + _U0], c0), _sel(A[cb + _U1] > c1, A[cb + _U1], c1),
                            _sel(A[cb + _U2] > c2, A[cb + _U2], c2), _sel(A[cb + _U3] > c3, A[cb + _U3], c3),
                            _sel(A[cb + _U4] > c4, A[cb + _U4], c4), _sel(A[cb + _U5] > c5, A[cb + _U5], c5),
                            _sel(A[cb + _U6] > c6, A[cb + _U6], c6), _sel(A[cb + _U7] > c7, A[cb + _U7], c7),
                        )
                    e0, e1, e2, e3, e4, e5, e6, e7 = _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO
                    for c in range(n_out):
                        cb = _row((lo + c) * BLOCK + s)
                        (e0, e1, e2, e3, e4, e5, e6, e7) = (
                            e0 + _exp(A[cb + _U0] - c0), e1 + _exp(A[cb + _U1] - c1), e2 + _exp(A[cb + _U2] - c2), e3 + _exp(A[cb + _U3] - c3),
                            e4 + _exp(A[cb + _U4] - c4), e5 + _exp(A[cb + _U5] - c5), e6 + _exp(A[cb + _U6] - c6), e7 + _exp(A[cb + _U7] - c7),
                        )
                    (e0, e1, e2, e3, e4, e5, e6, e7) = (
                        c0 + _log(e0), c1 + _log(e1), c2 + _log(e2), c3 + _log(e3),
                        c4 + _log(e4), c5 + _log(e5), c6 + _log(e6), c7 + _log(e7),
                    )
                    for c in range(n_out):
                        cb, gb = _row((lo + c) * BLOCK + s), _row(c * BLOCK + s)
                        (h0, h1, h2, h3, h4, h5, h6, h7) = (
                            _sel(y0 == c, _ONE, _ZERO), _sel(y1 == c, _ONE, _ZERO), _sel(y2 == c, _ONE, _ZERO), _sel(y3 == c, _ONE, _ZERO),
                            _sel(y4 == c, _ONE, _ZERO), _sel(y5 == c, _ONE, _ZERO), _sel(y6 == c, _ONE, _ZERO), _sel(y7 == c, _ONE, _ZERO),
                        )
                        (c0, c1, c2, c3, c4, c5, c6, c7) = (
                            A[cb + _U0] - e0, A[cb + _U1] - e1, A[cb + _U2] - e2, A[cb + _U3] - e3,
                            A[cb + _U4] - e4, A[cb + _U5] - e5, A[cb + _U6] - e6, A[cb + _U7] - e7,
                        )
                        (m_lane[_U0], m_lane[_U1], m_lane[_U2], m_lane[_U3],
                         m_lane[_U4], m_lane[_U5], m_lane[_U6], m_lane[_U7]) = (
                            m_lane[_U0] - c0 * h0 * scale, m_lane[_U1] - c1 * h1 * scale, m_lane[_U2] - c2 * h2 * scale, m_lane[_U3] - c3 * h3 * scale,
                            m_lane[_U4] - c4 * h4 * scale, m_lane[_U5] - c5 * h5 * scale, m_lane[_U6] - c6 * h6 * scale, m_lane[_U7] - c7 * h7 * scale,
                        )
                        (g1[gb + _U0], g1[gb + _U1], g1[gb + _U2], g1[gb + _U3],
                         g1[gb + _U4], g1[gb + _U5], g1[gb + _U6], g1[gb + _U7]) = (
                            (_exp(c0) - h0) * scale, (_exp(c1) - h1) * scale, (_exp(c2) - h2) * scale, (_exp(c3) - h3) * scale,
                            (_exp(c4) - h4) * scale, (_exp(c5) - h5) * scale, (_exp(c6) - h6) * scale, (_exp(c7) - h7) * scale,
                        )
                # backward, layer by layer; g1 holds the gradient w.r.t. layer i's output
                for i in range(n_layers - 1, -1, -1):
                    fi, fo = widths[i], widths[i + 1]
                    x0 = ao[i]
                    for j in range(fo):
                        bb, jb = _row(lb[i] + j), _row(j * BLOCK)
                        (h00, h01, h02, h03, h04, h05, h06, h07,
                         h10, h11, h12, h13, h14, h15, h16, h17,
                         h20, h21, h22, h23, h24, h25, h26, h27,
                         h30, h31, h32, h33, h34, h35, h36, h37) = (
                            g1[jb + _O00], g1[jb + _O01], g1[jb + _O02], g1[jb + _O03],
                            g1[jb + _O04], g1[jb + _O05], g1[jb + _O06], g1[jb + _O07],
                            g1[jb + _O10], g1[jb + _O11], g1[jb + _O12], g1[jb + _O13],
                            g1[jb + _O14], g1[jb + _O15], g1[jb + _O16], g1[jb + _O17],
                            g1[jb + _O20], g1[jb + _O21], g1[jb + _O22], g1[jb + _O23],
                            g1[jb + _O24], g1[jb + _O25], g1[jb + _O26], g1[jb + _O27],
                            g1[jb + _O30], g1[jb + _O31], g1[jb + _O32], g1[jb + _O33],
                            g1[jb + _O34], g1[jb + _O35], g1[jb + _O36], g1[jb + _O37],
                        )
                        (G[bb + _U0], G[bb + _U1], G[bb + _U2], G[bb + _U3],
                         G[bb + _U4], G[bb + _U5], G[bb + _U6], G[bb + _U7]) = (
                            G[bb + _U0] + h00 + h10 + h20 + h30, G[bb + _U1] + h01 + h11 + h21 + h31,
                            G[bb + _U2] + h02 + h12 + h22 + h32, G[bb + _U3] + h03 + h13 + h23 + h33,
                            G[bb + _U4] + h04 + h14 + h24 + h34, G[bb + _U5] + h05 + h15 + h25 + h35,
                            G[bb + _U6] + h06 + h16 + h26 + h36, G[bb + _U7] + h07 + h17 + h27 + h37,
                        )
                        wb, xb = _row(lw[i] + j * fi), _row(x0 * BLOCK)
                        for k in range(fi):
                            (G[wb + _U0], G[wb + _U1], G[wb + _U2], G[wb + _U3],
                             G[wb + _U4], G[wb + _U5], G[wb + _U6], G[wb + _U7]) = (
                                G[wb + _U0] + h00 * A[xb + _O00] + h10 * A[xb + _O10] + h20 * A[xb + _O20] + h30 * A[xb + _O30], G[wb + _U1] + h01 * A[xb + _O01] + h11 * A[xb + _O11] + h21 * A[xb + _O21] + h31 * A[xb + _O31],
                                G[wb + _U2] + h02 * A[xb + _O02] + h12 * A[xb + _O12] + h22 * A[xb + _O22] + h32 * A[xb + _O32], G[wb + _U3] + h03 * A[xb + _O03] + h13 * A[xb + _O13] + h23 * A[xb + _O23] + h33 * A[xb + _O33],
                                G[wb + _U4] + h04 * A[xb + _O04] + h14 * A[xb + _O14] + h24 * A[xb + _O24] + h34 * A[xb + _O34], G[wb + _U5] + h05 * A[xb + _O05] + h15 * A[xb + _O15] + h25 * A[xb + _O25] + h35 * A[xb + _O35],
                                G[wb + _U6] + h06 * A[xb + _O06] + h16 * A[xb + _O16] + h26 * A[xb + _O26] + h36 * A[xb + _O36], G[wb + _U7] + h07 * A[xb + _O07] + h17 * A[xb + _O17] + h27 * A[xb + _O27] + h37 * A[xb + _O37],
                            )
                            wb += _UL
                            xb += _UB
                    if i > 0:
                        step = _row(fi)
                        for k in range(fi):
                            (c00, c01, c02, c03, c04, c05, c06, c07,
                             c10, c11, c12, c13, c14, c15, c16, c17,
                             c20, c21, c22, c23, c24, c25, c26, c27,
                             c30, c31, c32, c33, c34, c35, c36, c37) = (
                                _ZERO, _ZERO, _ZERO, _ZERO,
                                _ZERO, _ZERO, _ZERO, _ZERO,
                                _ZERO, _ZERO, _ZERO, _ZERO,
                                _ZERO, _ZERO, _ZERO, _ZERO,
                                _ZERO, _ZERO, _ZERO, _ZERO,
                                _ZERO, _ZERO, _ZERO, _ZERO,
                                _ZERO, _ZERO, _ZERO, _ZERO,
                                _ZERO, _ZERO, _ZERO, _ZERO,
                            )
                            wb, jb = _row(lw[i] + k), _row(0)
                            for j in range(fo):
                                (w0, w1, w2, w3, w4, w5, w6, w7) = (
                                    P[wb + _U0], P[wb + _U1], P[wb + _U2], P[wb + _U3],
                                    P[wb + _U4], P[wb + _U5], P[wb + _U6], P[wb + _U7],
                                )
                                (c00, c01, c02, c03, c04, c05, c06, c07,
                                 c10, c11, c12, c13, c14, c15, c16, c17,
                                 c20, c21, c22, c23, c24, c25, c26, c27,
                                 c30, c31, c32, c33, c34, c35, c36, c37) = (
                                    c00 + w0 * g1[jb + _O00], c01 + w1 * g1[jb + _O01], c02 + w2 * g1[jb + _O02], c03 + w3 * g1[jb + _O03],
                                    c04 + w4 * g1[jb + _O04], c05 + w5 * g1[jb + _O05], c06 + w6 * g1[jb + _O06], c07 + w7 * g1[jb + _O07],
                                    c10 + w0 * g1[jb + _O10], c11 + w1 * g1[jb + _O11], c12 + w2 * g1[jb + _O12], c13 + w3 * g1[jb + _O13],
                                    c14 + w4 * g1[jb + _O14], c15 + w5 * g1[jb + _O15], c16 + w6 * g1[jb + _O16], c17 + w7 * g1[jb + _O17],
                                    c20 + w0 * g1[jb + _O20], c21 + w1 * g1[jb + _O21], c22 + w2 * g1[jb + _O22], c23 + w3 * g1[jb + _O23],
                                    c24 + w4 * g1[jb + _O24], c25 + w5 * g1[jb + _O25], c26 + w6 * g1[jb + _O26], c27 + w7 * g1[jb + _O27],
                                    c30 + w0 * g1[jb + _O30], c31 + w1 * g1[jb + _O31], c32 + w2 * g1[jb + _O32], c33 + w3 * g1[jb + _O33],
                                    c34 + w4 * g1[jb + _O34], c35 + w5 * g1[jb + _O35], c36 + w6 * g1[jb + _O36], c37 + w7 * g1[jb + _O37],
                                )
                                wb += step
                                jb += _UB
                            kb = _row(k * BLOCK)
                            (g2[kb + _O00], g2[kb + _O01], g2[kb + _O02], g2[kb + _O03],
                             g2[kb + _O04], g2[kb + _O05], g2[kb + _O06], g2[kb + _O07],
                             g2[kb + _O10], g2[kb + _O11], g2[kb + _O12], g2[kb + _O13],
                             g2[kb + _O14], g2[kb + _O15], g2[kb + _O16], g2[kb + _O17],
                             g2[kb + _O20], g2[kb + _O21], g2[kb + _O22], g2[kb + _O23],
                             g2[kb + _O24], g2[kb + _O25], g2[kb + _O26], g2[kb + _O27],
                             g2[kb + _O30], g2[kb + _O31], g2[kb + _O32], g2[kb + _O33],
                             g2[kb + _O34], g2[kb + _O35], g2[kb + _O36], g2[kb + _O37]) = (
                                c00, c01, c02, c03,
                                c04, c05, c06, c07,
                                c10, c11, c12, c13,
                                c14, c15, c16, c17,
                                c20, c21, c22, c23,
                                c24, c25, c26, c27,
                                c30, c31, c32, c33,
                                c34, c35, c36, c37,
                            )
                        if has_slope:
                            sb = _row(ls[i - 1])
                            for k in range(fi):
                                xb, kb = _row((x0 + k) * BLOCK), _row(k * BLOCK)
                                (G[sb + _U0], G[sb + _U1], G[sb + _U2], G[sb + _U3],
                                 G[sb + _U4], G[sb + _U5], G[sb + _U6], G[sb + _U7]) = (
                                    G[sb + _U0] + _neg_part(Z[xb + _O00]) * g2[kb + _O00] + _neg_part(Z[xb + _O10]) * g2[kb + _O10] + _neg_part(Z[xb + _O20]) * g2[kb + _O20] + _neg_part(Z[xb + _O30]) * g2[kb + _O30], G[sb + _U1] + _neg_part(Z[xb + _O01]) * g2[kb + _O01] + _neg_part(Z[xb + _O11]) * g2[kb + _O11] + _neg_part(Z[xb + _O21]) * g2[kb + _O21] + _neg_part(Z[xb + _O31]) * g2[kb + _O31],
                                    G[sb + _U2] + _neg_part(Z[xb + _O02]) * g2[kb + _O02] + _neg_part(Z[xb + _O12]) * g2[kb + _O12] + _neg_part(Z[xb + _O22]) * g2[kb + _O22] + _neg_part(Z[xb + _O32]) * g2[kb + _O32], G[sb + _U3] + _neg_part(Z[xb + _O03]) * g2[kb + _O03] + _neg_part(Z[xb + _O13]) * g2[kb + _O13] + _neg_part(Z[xb + _O23]) * g2[kb + _O23] + _neg_part(Z[xb + _O33]) * g2[kb + _O33],
                                    G[sb + _U4] + _neg_part(Z[xb + _O04]) * g2[kb + _O04] + _neg_part(Z[xb + _O14]) * g2[kb + _O14] + _neg_part(Z[xb + _O24]) * g2[kb + _O24] + _neg_part(Z[xb + _O34]) * g2[kb + _O34], G[sb + _U5] + _neg_part(Z[xb + _O05]) * g2[kb + _O05] + _neg_part(Z[xb + _O15]) * g2[kb + _O15] + _neg_part(Z[xb + _O25]) * g2[kb + _O25] + _neg_part(Z[xb + _O35]) * g2[kb + _O35],
                                    G[sb + _U6] + _neg_part(Z[xb + _O06]) * g2[kb + _O06] + _neg_part(Z[xb + _O16]) * g2[kb + _O16] + _neg_part(Z[xb + _O26]) * g2[kb + _O26] + _neg_part(Z[xb + _O36]) * g2[kb + _O36], G[sb + _U7] + _neg_part(Z[xb + _O07]) * g2[kb + _O07] + _neg_part(Z[xb + _O17]) * g2[kb + _O17] + _neg_part(Z[xb + _O27]) * g2[kb + _O27] + _neg_part(Z[xb + _O37]) * g2[kb + _O37],
                                )
                        _derivative(code, g2, Z, A, x0 * BLOCK, fi * BLOCK, P, ls[i - 1])
                        for q in range(fi * BLOCK * LANES):
                            g1[q] = g2[q]
            # L2 on hidden weights, then Adam
            if l2 != 0.0:
                for i in range(n_layers - 1):
                    for q in range(lw[i], lw[i] + widths[i] * widths[i + 1]):
                        qb = _row(q)
                        (G[qb + _U0], G[qb + _U1], G[qb + _U2], G[qb + _U3],
                         G[qb + _U4], G[qb + _U5], G[qb + _U6], G[qb + _U7]) = (
                            G[qb + _U0] + l2 * P[qb + _U0], G[qb + _U1] + l2 * P[qb + _U1], G[qb + _U2] + l2 * P[qb + _U2], G[qb + _U3] + l2 * P[qb + _U3],
                            G[qb + _U4] + l2 * P[qb + _U4], G[qb + _U5] + l2 * P[qb + _U5], G[qb + _U6] + l2 * P[qb + _U6], G[qb + _U7] + l2 * P[qb + _U7],
                        )
            ss, b2s = step_size[bi], bias2_sqrt[bi]
            for q in range(n_par):
                qb = _row(q)
                (M[qb + _U0], M[qb + _U1], M[qb + _U2], M[qb + _U3],
                 M[qb + _U4], M[qb + _U5], M[qb + _U6], M[qb + _U7]) = (
                    M[qb + _U0] + one_minus_beta1 * (G[qb + _U0] - M[qb + _U0]), M[qb + _U1] + one_minus_beta1 * (G[qb + _U1] - M[qb + _U1]),
                    M[qb + _U2] + one_minus_beta1 * (G[qb + _U2] - M[qb + _U2]), M[qb + _U3] + one_minus_beta1 * (G[qb + _U3] - M[qb + _U3]),
                    M[qb + _U4] + one_minus_beta1 * (G[qb + _U4] - M[qb + _U4]), M[qb + _U5] + one_minus_beta1 * (G[qb + _U5] - M[qb + _U5]),
                    M[qb + _U6] + one_minus_beta1 * (G[qb + _U6] - M[qb + _U6]), M[qb + _U7] + one_minus_beta1 * (G[qb + _U7] - M[qb + _U7]),
                )
                (V[qb + _U0], V[qb + _U1], V[qb + _U2], V[qb + _U3],
                 V[qb + _U4], V[qb + _U5], V[qb + _U6], V[qb + _U7]) = (
                    V[qb + _U0] * beta2 + one_minus_beta2 * G[qb + _U0] * G[qb + _U0], V[qb + _U1] * beta2 + one_minus_beta2 * G[qb + _U1] * G[qb + _U1],
                    V[qb + _U2] * beta2 + one_minus_beta2 * G[qb + _U2] * G[qb + _U2], V[qb + _U3] * beta2 + one_minus_beta2 * G[qb + _U3] * G[qb + _U3],
                    V[qb + _U4] * beta2 + one_minus_beta2 * G[qb + _U4] * G[qb + _U4], V[qb + _U5] * beta2 + one_minus_beta2 * G[qb + _U5] * G[qb + _U5],
                    V[qb + _U6] * beta2 + one_minus_beta2 * G[qb + _U6] * G[qb + _U6], V[qb + _U7] * beta2 + one_minus_beta2 * G[qb + _U7] * G[qb + _U7],
                )
                (P[qb + _U0], P[qb + _U1], P[qb + _U2], P[qb + _U3],
                 P[qb + _U4], P[qb + _U5], P[qb + _U6], P[qb + _U7]) = (
                    P[qb + _U0] + ss * (M[qb + _U0] / (np.sqrt(V[qb + _U0]) / b2s + eps)), P[qb + _U1] + ss * (M[qb + _U1] / (np.sqrt(V[qb + _U1]) / b2s + eps)),
                    P[qb + _U2] + ss * (M[qb + _U2] / (np.sqrt(V[qb + _U2]) / b2s + eps)), P[qb + _U3] + ss * (M[qb + _U3] / (np.sqrt(V[qb + _U3]) / b2s + eps)),
                    P[qb + _U4] + ss * (M[qb + _U4] / (np.sqrt(V[qb + _U4]) / b2s + eps)), P[qb + _U5] + ss * (M[qb + _U5] / (np.sqrt(V[qb + _U5]) / b2s + eps)),
                    P[qb + _U6] + ss * (M[qb + _U6] / (np.sqrt(V[qb + _U6]) / b2s + eps)), P[qb + _U7] + ss * (M[qb + _U7] / (np.sqrt(V[qb + _U7]) / b2s + eps)),
                )
        for l in range(LANES):
            k = grp * LANES + l
            if k < S:
                losses[k] = m_lane[l] / n_batches
        _scatter(P, flat, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)
        _scatter(M, exp_avg, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)
        _scatter(V, exp_avg_sq, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)


@njit(cache=True, fastmath=False, error_model="numpy")
def _forward_all(code, flat, X, S, widths, w_off, b_off, s_off, lw, lb, ls, ao, ob, P, A, Z, out):
    """Every layer's activity (hidden activations, then logits) of every network on every row of
    ``X``: layer ``i`` of network ``k`` at ``out[ob[i] + (k * N + n) * width + unit]``."""
    n_layers = widths.shape[0] - 1
    N, n_in = X.shape[0], widths[0]
    has_slope = code == _PRELU
    for grp in range((S + LANES - 1) // LANES):
        _gather(flat, P, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)
        for blk in range(0, N, BLOCK):
            for s in range(BLOCK):
                n = min(blk + s, N - 1)
                for k in range(n_in):
                    x = X[n, k]
                    kb = _row(k * BLOCK + s)
                    (A[kb + _U0], A[kb + _U1], A[kb + _U2], A[kb + _U3],
                     A[kb + _U4], A[kb + _U5], A[kb + _U6], A[kb + _U7]) = (
                        x, x, x, x,
                        x, x, x, x,
                    )
            _forward_block(code, P, A, Z, widths, lw, lb, ls, ao)
            for s in range(min(BLOCK, N - blk)):
                n = blk + s
                for l in range(LANES):
                    net = grp * LANES + l
                    if net >= S:
                        break
                    for i in range(n_layers):
                        w = widths[i + 1]
                        base = ob[i] + (net * N + n) * w
                        for u in range(w):
                            out[base + u] = A[((ao[i + 1] + u) * BLOCK + s) * LANES + l]


@contextlib.contextmanager
def _slp_vectorize():
    """Compile with LLVM's SLP vectorizer, which packs the eight lanes written out in the kernels
    into vector instructions. Numba turns it off by default (``NUMBA_SLP_VECTORIZE``); the
    setting is read when a function is compiled, so it is switched on only around the calls that
    may compile these kernels (a kernel loaded from the cache is already compiled)."""
    old = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        numba.config.SLP_VECTORIZE = old


def check_activation(name: str) -> int:
    """The kernel's code for activation ``name``.

    Raises
    ------
    ValueError
        If the kernel does not implement ``name`` (e.g. an activation registered by a user); the
        message lists the supported ones.
    """
    try:
        return SUPPORTED_ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"the fused backend does not implement activation {name!r}; it supports "
            f"{', '.join(SUPPORTED_ACTIVATIONS)} (use backend='torch' for others)"
        ) from None


def adam_scalars(lr: float, first_step: int, n_steps: int, betas=(0.9, 0.999)) -> tuple[np.ndarray, np.ndarray]:
    """Per-step Adam scalars, computed in double precision exactly as
    ``EnsembleTrainer._adam_step`` computes them.

    Returns
    -------
    step_size, bias2_sqrt : numpy.ndarray of float32, shape (n_steps,)
        ``-lr / (1 - beta1**t)`` and ``sqrt(1 - beta2**t)`` for ``t = first_step, ...``.
    """
    beta1, beta2 = betas
    t = range(first_step, first_step + n_steps)
    step_size = np.array([-lr / (1 - beta1**s) for s in t], dtype=np.float32)
    bias2_sqrt = np.array([math.sqrt(1 - beta2**s) for s in t], dtype=np.float32)
    return step_size, bias2_sqrt


def _check_array(a, name, dtype, ndim):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype or a.ndim != ndim or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous {ndim}-d {np.dtype(dtype).name} array, "
                         f"got {a.ndim}-d {a.dtype}{'' if a.flags.c_contiguous else ' (not contiguous)'}")


class FusedKernel:
    """Layout and scratch memory for training one ensemble with the fused kernel.

    Parameters
    ----------
    widths : sequence of int
        Layer widths, input first, classes last (any sizes).
    activation : str
        Hidden activation, one of :data:`SUPPORTED_ACTIVATIONS`.
    layout : list of (offset, shape)
        Where each piece sits in the flat parameter vector, as
        :attr:`EnsembleMLP._layout <ibtools.networks.EnsembleMLP>` gives it: per layer the
        weights (S, fan_out, fan_in) then the biases (S, fan_out, 1), then one (S, 1, 1) slope
        per hidden layer for PReLU.
    n_members : int
        Networks ``S`` in the ensemble.

    Notes
    -----
    Scratch memory is allocated here, once: for one group of :data:`LANES` networks the
    parameters, Adam moments and gradient in lane layout (4 x 8 x parameters-per-network floats,
    about 10 KB for the paper's network) and one block's activity; a call allocates only its
    small per-epoch arrays (minibatch sizes, Adam's per-step scalars).
    """

    def __init__(self, widths, activation: str, layout, n_members: int):
        self.code = check_activation(activation)
        self.widths = np.asarray(tuple(widths), dtype=np.int64)
        if self.widths.ndim != 1 or self.widths.size < 2 or (self.widths < 1).any():
            raise ValueError(f"widths must be at least two positive integers, got {tuple(widths)}")
        self.S = int(n_members)
        n_layers = len(self.widths) - 1
        has_slope = self.code == _PRELU
        expected = 2 * n_layers + (n_layers - 1 if has_slope else 0)
        if len(layout) != expected:
            raise ValueError(f"layout has {len(layout)} pieces; widths {tuple(widths)} with "
                             f"{activation} need {expected}")
        offs = [int(o) for o, _ in layout]
        self.w_off = np.array(offs[0:2 * n_layers:2], dtype=np.int64)
        self.b_off = np.array(offs[1:2 * n_layers:2], dtype=np.int64)
        self.s_off = np.zeros(n_layers, dtype=np.int64)  # always n_layers long (unused without PReLU)
        self.s_off[:len(offs) - 2 * n_layers] = offs[2 * n_layers:]
        lw, lb, ls, p = [], [], [], 0
        for fi, fo in zip(self.widths[:-1], self.widths[1:]):
            lw.append(p)
            p += int(fi * fo)
            lb.append(p)
            p += int(fo)
        for _ in range(n_layers - 1 if has_slope else 0):
            ls.append(p)
            p += 1
        self.n_params = p
        self.lw, self.lb = np.array(lw, dtype=np.int64), np.array(lb, dtype=np.int64)
        self.ls = np.zeros(n_layers, dtype=np.int64)
        self.ls[:len(ls)] = ls
        self.ao = np.concatenate([[0], np.cumsum(self.widths)]).astype(np.int64)  # first row of each layer
        f32 = np.float32
        self.P, self.M, self.V, self.G = (np.zeros(p * LANES, dtype=f32) for _ in range(4))
        self.A = np.zeros(int(self.ao[-1]) * BLOCK * LANES, dtype=f32)  # a block's activity
        self.Z = np.zeros(int(self.ao[-1]) * BLOCK * LANES, dtype=f32)  # and pre-activations
        wmax = int(self.widths.max()) * BLOCK * LANES
        self.g1, self.g2 = np.zeros(wmax, dtype=f32), np.zeros(wmax, dtype=f32)
        self.m_lane = np.zeros(LANES, dtype=np.float64)
        self.rows = np.zeros(LANES, dtype=np.int64)
        self.lane_net = np.zeros(LANES, dtype=np.int64)
        self.labels = np.zeros(BLOCK * LANES, dtype=np.int64)
        self.scales = np.zeros(BLOCK, dtype=f32)
        self.losses = np.zeros(self.S, dtype=np.float64)

    @property
    def flat_size(self) -> int:
        """Length of the flat parameter vector of the whole ensemble."""
        return self.n_params * self.S

    def train_epoch(self, flat, exp_avg, exp_avg_sq, X, y, order, steps_before: int, *,
                    lr: float, l2: float, batch_size: int) -> np.ndarray:
        """Train every network for one epoch, in place.

        Parameters
        ----------
        flat, exp_avg, exp_avg_sq : numpy.ndarray of float32, shape (S * n_params,)
            Parameters and Adam moments in the ensemble layout (e.g. ``tensor.numpy()`` views
            of the trainer's tensors, which are updated in place).
        X : numpy.ndarray of float32, shape (n_train, n_inputs)
            Training inputs.
        y : numpy.ndarray of int64, shape (n_train,)
            Class labels, ``0 <= y < n_classes``.
        order : numpy.ndarray of int64, shape (1, n_train) or (S, n_train)
            The order in which samples are visited: one row shared by all networks, or one
            row per network (``shuffle_batches``); minibatch ``b`` is positions
            ``b * batch_size`` to ``(b + 1) * batch_size`` (the last one holds the remainder).
        steps_before : int
            Adam steps taken so far (the bias correction's ``t`` starts at ``steps_before + 1``).
        lr, l2 : float
            Adam learning rate; L2 strength on hidden-layer weights (gradient ``l2 * W``).
        batch_size : int

        Returns
        -------
        numpy.ndarray of float64, shape (S,)
            Each network's mean minibatch cross-entropy (nats); a buffer overwritten by the next
            call.
        """
        for a, name in ((flat, "flat"), (exp_avg, "exp_avg"), (exp_avg_sq, "exp_avg_sq")):
            _check_array(a, name, np.float32, 1)
            if a.shape[0] != self.flat_size:
                raise ValueError(f"{name} has {a.shape[0]} values; this ensemble has {self.flat_size}")
        _check_array(X, "X", np.float32, 2)
        _check_array(y, "y", np.int64, 1)
        _check_array(order, "order", np.int64, 2)
        n_train = X.shape[0]
        if X.shape[1] != self.widths[0]:
            raise ValueError(f"X has {X.shape[1]} features; the networks take {self.widths[0]}")
        if y.shape[0] != n_train or order.shape[1] != n_train or order.shape[0] not in (1, self.S):
            raise ValueError(f"X ({n_train} rows), y {y.shape} and order {order.shape} disagree; "
                             f"order must be (1, {n_train}) or ({self.S}, {n_train})")
        if n_train == 0:
            raise ValueError("no training samples")
        if y.min() < 0 or y.max() >= self.widths[-1]:
            raise ValueError(f"labels must lie in [0, {self.widths[-1]}), got {y.min()}..{y.max()}")
        if order.min() < 0 or order.max() >= n_train:
            raise ValueError(f"order must index rows of X (0..{n_train - 1})")
        batch_size = check_int(batch_size, "batch_size", 1)
        n_batches = -(-n_train // batch_size)
        sizes = np.full(n_batches, batch_size)
        sizes[-1] = n_train - batch_size * (n_batches - 1)
        inv_n = np.array([np.float32(1.0 / n) for n in sizes], dtype=np.float32)
        step_size, bias2_sqrt = adam_scalars(float(lr), int(steps_before) + 1, n_batches)
        f32 = np.float32
        with _slp_vectorize():
            _train_epoch(self.code, flat, exp_avg, exp_avg_sq, X, y, order, order.shape[0] > 1, self.S,
                         self.widths, self.w_off, self.b_off, self.s_off, self.lw, self.lb, self.ls, self.ao,
                         batch_size, f32(l2), inv_n, step_size, bias2_sqrt, f32(1 - 0.9), f32(0.999),
                         f32(1 - 0.999), f32(1e-8), self.P, self.M, self.V, self.G, self.A, self.Z,
                         self.g1, self.g2, self.m_lane, self.rows, self.lane_net, self.labels, self.scales,
                         self.losses)
        return self.losses

    def forward_all(self, flat, X) -> list[np.ndarray]:
        """Every layer's activity on the inputs ``X`` with the kernel's arithmetic (for recording).

        Parameters
        ----------
        flat : numpy.ndarray of float32, shape (S * n_params,)
        X : numpy.ndarray of float32, shape (N, n_inputs)

        Returns
        -------
        list of numpy.ndarray
            Activity of each hidden layer, then the logits, each (S, N, width), float32.
        """
        _check_array(flat, "flat", np.float32, 1)
        _check_array(X, "X", np.float32, 2)
        if flat.shape[0] != self.flat_size or X.shape[1] != self.widths[0]:
            raise ValueError(f"flat ({flat.shape[0]}) or X {X.shape} does not fit this ensemble "
                             f"({self.flat_size} parameters, {self.widths[0]} inputs)")
        N = X.shape[0]
        sizes = [self.S * N * int(w) for w in self.widths[1:]]
        ob = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        out = np.empty(int(ob[-1]), dtype=np.float32)
        P, A, Z = np.zeros_like(self.P), np.zeros_like(self.A), np.zeros_like(self.Z)
        with _slp_vectorize():
            _forward_all(self.code, flat, X, self.S, self.widths, self.w_off, self.b_off, self.s_off,
                         self.lw, self.lb, self.ls, self.ao, ob, P, A, Z, out)
        return [out[ob[i]:ob[i + 1]].reshape(self.S, N, int(w)) for i, w in enumerate(self.widths[1:])]

"""A fused training kernel for the ensemble: one compiled call trains every network for a whole
epoch (``TrainConfig(backend="fused")``).

The torch engine (:class:`~ibtools.trainer.EnsembleTrainer`'s ``_manual_gradients`` and
``_adam_step``) issues some thirty tensor operations per minibatch; with layers of 2-12 units
each of them does little work, and most of the time goes to dispatch, temporaries and passes
over memory. Here a network's whole epoch -- every minibatch, forward pass, softmax
cross-entropy, backward pass, L2 on the hidden weights, and PyTorch's Adam update with
:meth:`~ibtools.trainer.EnsembleTrainer._adam_step`'s bias correction -- runs in one compiled
loop, in float32, with its parameters, Adam moments and gradient in a few kilobytes of scratch
memory that stay in the L1 cache. Samples are processed one at a time (forward, backward,
gradient accumulated), so no buffer grows with the batch size and nothing is allocated per step.

**Why numba.** It installs from a binary wheel on a fresh machine (it is a dependency of the
package) and comes preinstalled in Colab, so the two-command install keeps working with no
compiler; a C++ extension built with torch's extension tools would need a compiler and torch's
headers on every reader's machine. Kernels are compiled once per machine and cached
(``cache=True``, in ``__pycache__``).

**Lanes and invariance.** Networks are processed in fixed groups of :data:`LANES` = 8 (one AVX2
vector of float32); every operation is element-wise across the lanes of a group, so the
compiler turns it into vector instructions, and lane ``l`` computes exactly what network ``l``
would compute alone: the order of every sum is fixed by the code (no reassociation,
``fastmath=False``, so no fused multiply-add either). A group that the ensemble does not fill
is padded with copies of its first network, whose results are discarded. A network's numbers
are therefore bit for bit the same whatever the ensemble size and wherever the network sits in
it (``tests/test_fused.py``).

**Transcendental functions.** Without Intel's SVML (not a dependency) ``math.exp`` and
``math.tanh`` compile to scalar library calls, which would dominate the kernel's time. The
kernel therefore evaluates ``exp``, ``log``, ``tanh`` with its own branch-free float32
polynomials (Cody-Waite range reduction and Cephes' minimax coefficients; about 1-2 ulp), which
vectorize, and which give the same bits on every machine. They are not the bits of torch's
Sleef/libm functions, and the matrix products sum in a different order than MKL, so the fused
backend agrees with the torch engine to float32 rounding that Adam then carries along (see the
tolerances in ``tests/test_fused.py``), not bit for bit. The stored study was computed with the
torch engine, which stays the default and the reference.

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

__all__ = ["LANES", "SUPPORTED_ACTIVATIONS", "FusedKernel", "check_activation", "adam_scalars"]

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
    e = np.int32((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(127)
    m = _f32_from_bits(np.int32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F800000)))
    big = m > _SQRT2
    m = _sel(big, m * _HALF, m)
    fe = _sel(big, np.float32(e + np.int32(1)), np.float32(e))
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
# overlap, which blocks vectorizing a loop over the lanes).


@njit(cache=True, fastmath=False, error_model="numpy")
def _activate(code, Z, A, r0, width, P, sr):
    """A[u] = f(Z[u]) for rows u = r0 ... r0 + width - 1, every lane (PReLU: slope row ``sr``
    of ``P``)."""
    for u in range(r0, r0 + width):
        if code == 0:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _tanh(Z[u, 0]), _tanh(Z[u, 1]),
                _tanh(Z[u, 2]), _tanh(Z[u, 3]),
                _tanh(Z[u, 4]), _tanh(Z[u, 5]),
                _tanh(Z[u, 6]), _tanh(Z[u, 7]),
            )
        elif code == 1:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _relu(Z[u, 0]), _relu(Z[u, 1]),
                _relu(Z[u, 2]), _relu(Z[u, 3]),
                _relu(Z[u, 4]), _relu(Z[u, 5]),
                _relu(Z[u, 6]), _relu(Z[u, 7]),
            )
        elif code == 2:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                abs(Z[u, 0]), abs(Z[u, 1]),
                abs(Z[u, 2]), abs(Z[u, 3]),
                abs(Z[u, 4]), abs(Z[u, 5]),
                abs(Z[u, 6]), abs(Z[u, 7]),
            )
        elif code == 3:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _prelu(Z[u, 0], P[sr, 0]), _prelu(Z[u, 1], P[sr, 1]),
                _prelu(Z[u, 2], P[sr, 2]), _prelu(Z[u, 3], P[sr, 3]),
                _prelu(Z[u, 4], P[sr, 4]), _prelu(Z[u, 5], P[sr, 5]),
                _prelu(Z[u, 6], P[sr, 6]), _prelu(Z[u, 7], P[sr, 7]),
            )
        elif code == 4:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _elu(Z[u, 0]), _elu(Z[u, 1]),
                _elu(Z[u, 2]), _elu(Z[u, 3]),
                _elu(Z[u, 4]), _elu(Z[u, 5]),
                _elu(Z[u, 6]), _elu(Z[u, 7]),
            )
        elif code == 5:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _softplus(Z[u, 0]), _softplus(Z[u, 1]),
                _softplus(Z[u, 2]), _softplus(Z[u, 3]),
                _softplus(Z[u, 4]), _softplus(Z[u, 5]),
                _softplus(Z[u, 6]), _softplus(Z[u, 7]),
            )
        elif code == 6:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _softplus(Z[u, 0]) - _LOG2, _softplus(Z[u, 1]) - _LOG2,
                _softplus(Z[u, 2]) - _LOG2, _softplus(Z[u, 3]) - _LOG2,
                _softplus(Z[u, 4]) - _LOG2, _softplus(Z[u, 5]) - _LOG2,
                _softplus(Z[u, 6]) - _LOG2, _softplus(Z[u, 7]) - _LOG2,
            )
        elif code == 7:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _swish(Z[u, 0]), _swish(Z[u, 1]),
                _swish(Z[u, 2]), _swish(Z[u, 3]),
                _swish(Z[u, 4]), _swish(Z[u, 5]),
                _swish(Z[u, 6]), _swish(Z[u, 7]),
            )
        elif code == 8:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _sigmoid(Z[u, 0]), _sigmoid(Z[u, 1]),
                _sigmoid(Z[u, 2]), _sigmoid(Z[u, 3]),
                _sigmoid(Z[u, 4]), _sigmoid(Z[u, 5]),
                _sigmoid(Z[u, 6]), _sigmoid(Z[u, 7]),
            )
        elif code == 9:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                _softsign(Z[u, 0]), _softsign(Z[u, 1]),
                _softsign(Z[u, 2]), _softsign(Z[u, 3]),
                _softsign(Z[u, 4]), _softsign(Z[u, 5]),
                _softsign(Z[u, 6]), _softsign(Z[u, 7]),
            )
        else:
            (A[u, 0], A[u, 1], A[u, 2], A[u, 3],
             A[u, 4], A[u, 5], A[u, 6], A[u, 7]) = (
                Z[u, 0], Z[u, 1],
                Z[u, 2], Z[u, 3],
                Z[u, 4], Z[u, 5],
                Z[u, 6], Z[u, 7],
            )


@njit(cache=True, fastmath=False, error_model="numpy")
def _derivative(code, g, Z, A, r0, width, P, sr):
    """g[u] *= f'(z) for u < width, every lane, from Z and A at rows r0 + u."""
    for u in range(width):
        r = r0 + u
        if code == 0:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                g[u, 0] * (_ONE - A[r, 0] * A[r, 0]), g[u, 1] * (_ONE - A[r, 1] * A[r, 1]),
                g[u, 2] * (_ONE - A[r, 2] * A[r, 2]), g[u, 3] * (_ONE - A[r, 3] * A[r, 3]),
                g[u, 4] * (_ONE - A[r, 4] * A[r, 4]), g[u, 5] * (_ONE - A[r, 5] * A[r, 5]),
                g[u, 6] * (_ONE - A[r, 6] * A[r, 6]), g[u, 7] * (_ONE - A[r, 7] * A[r, 7]),
            )
        elif code == 1:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                _sel(A[r, 0] > _ZERO, g[u, 0], _ZERO), _sel(A[r, 1] > _ZERO, g[u, 1], _ZERO),
                _sel(A[r, 2] > _ZERO, g[u, 2], _ZERO), _sel(A[r, 3] > _ZERO, g[u, 3], _ZERO),
                _sel(A[r, 4] > _ZERO, g[u, 4], _ZERO), _sel(A[r, 5] > _ZERO, g[u, 5], _ZERO),
                _sel(A[r, 6] > _ZERO, g[u, 6], _ZERO), _sel(A[r, 7] > _ZERO, g[u, 7], _ZERO),
            )
        elif code == 2:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                g[u, 0] * _sign(Z[r, 0]), g[u, 1] * _sign(Z[r, 1]),
                g[u, 2] * _sign(Z[r, 2]), g[u, 3] * _sign(Z[r, 3]),
                g[u, 4] * _sign(Z[r, 4]), g[u, 5] * _sign(Z[r, 5]),
                g[u, 6] * _sign(Z[r, 6]), g[u, 7] * _sign(Z[r, 7]),
            )
        elif code == 3:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                _sel(Z[r, 0] > _ZERO, g[u, 0], g[u, 0] * P[sr, 0]), _sel(Z[r, 1] > _ZERO, g[u, 1], g[u, 1] * P[sr, 1]),
                _sel(Z[r, 2] > _ZERO, g[u, 2], g[u, 2] * P[sr, 2]), _sel(Z[r, 3] > _ZERO, g[u, 3], g[u, 3] * P[sr, 3]),
                _sel(Z[r, 4] > _ZERO, g[u, 4], g[u, 4] * P[sr, 4]), _sel(Z[r, 5] > _ZERO, g[u, 5], g[u, 5] * P[sr, 5]),
                _sel(Z[r, 6] > _ZERO, g[u, 6], g[u, 6] * P[sr, 6]), _sel(Z[r, 7] > _ZERO, g[u, 7], g[u, 7] * P[sr, 7]),
            )
        elif code == 4:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                g[u, 0] * _delu(A[r, 0]), g[u, 1] * _delu(A[r, 1]),
                g[u, 2] * _delu(A[r, 2]), g[u, 3] * _delu(A[r, 3]),
                g[u, 4] * _delu(A[r, 4]), g[u, 5] * _delu(A[r, 5]),
                g[u, 6] * _delu(A[r, 6]), g[u, 7] * _delu(A[r, 7]),
            )
        elif code == 5 or code == 6:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                g[u, 0] * _sigmoid(Z[r, 0]), g[u, 1] * _sigmoid(Z[r, 1]),
                g[u, 2] * _sigmoid(Z[r, 2]), g[u, 3] * _sigmoid(Z[r, 3]),
                g[u, 4] * _sigmoid(Z[r, 4]), g[u, 5] * _sigmoid(Z[r, 5]),
                g[u, 6] * _sigmoid(Z[r, 6]), g[u, 7] * _sigmoid(Z[r, 7]),
            )
        elif code == 7:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                g[u, 0] * _dswish(Z[r, 0], A[r, 0]), g[u, 1] * _dswish(Z[r, 1], A[r, 1]),
                g[u, 2] * _dswish(Z[r, 2], A[r, 2]), g[u, 3] * _dswish(Z[r, 3], A[r, 3]),
                g[u, 4] * _dswish(Z[r, 4], A[r, 4]), g[u, 5] * _dswish(Z[r, 5], A[r, 5]),
                g[u, 6] * _dswish(Z[r, 6], A[r, 6]), g[u, 7] * _dswish(Z[r, 7], A[r, 7]),
            )
        elif code == 8:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                g[u, 0] * ((_ONE - A[r, 0]) * A[r, 0]), g[u, 1] * ((_ONE - A[r, 1]) * A[r, 1]),
                g[u, 2] * ((_ONE - A[r, 2]) * A[r, 2]), g[u, 3] * ((_ONE - A[r, 3]) * A[r, 3]),
                g[u, 4] * ((_ONE - A[r, 4]) * A[r, 4]), g[u, 5] * ((_ONE - A[r, 5]) * A[r, 5]),
                g[u, 6] * ((_ONE - A[r, 6]) * A[r, 6]), g[u, 7] * ((_ONE - A[r, 7]) * A[r, 7]),
            )
        elif code == 9:
            (g[u, 0], g[u, 1], g[u, 2], g[u, 3],
             g[u, 4], g[u, 5], g[u, 6], g[u, 7]) = (
                g[u, 0] * _dsoftsign(Z[r, 0]), g[u, 1] * _dsoftsign(Z[r, 1]),
                g[u, 2] * _dsoftsign(Z[r, 2]), g[u, 3] * _dsoftsign(Z[r, 3]),
                g[u, 4] * _dsoftsign(Z[r, 4]), g[u, 5] * _dsoftsign(Z[r, 5]),
                g[u, 6] * _dsoftsign(Z[r, 6]), g[u, 7] * _dsoftsign(Z[r, 7]),
            )


@njit(cache=True, fastmath=False, error_model="numpy")
def _gather(src, dst, widths, w_off, b_off, s_off, lw, lb, ls, g, S, has_slope):
    """Copy the parameters of group ``g``'s networks from the layer-major ensemble layout ``src``
    into the lane layout ``dst[p, lane]``; empty lanes copy the group's first network."""
    n_layers = widths.shape[0] - 1
    for l in range(LANES):
        k = g * LANES + l
        if k >= S:
            k = g * LANES
        for i in range(n_layers):
            fi, fo = widths[i], widths[i + 1]
            nw = fi * fo
            for q in range(nw):
                dst[lw[i] + q, l] = src[w_off[i] + k * nw + q]
            for q in range(fo):
                dst[lb[i] + q, l] = src[b_off[i] + k * fo + q]
            if has_slope and i < n_layers - 1:
                dst[ls[i], l] = src[s_off[i] + k]


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
                dst[w_off[i] + k * nw + q] = src[lw[i] + q, l]
            for q in range(fo):
                dst[b_off[i] + k * fo + q] = src[lb[i] + q, l]
            if has_slope and i < n_layers - 1:
                dst[s_off[i] + k] = src[ls[i], l]


@njit(cache=True, fastmath=False, error_model="numpy")
def _forward_sample(code, P, A, Z, widths, lw, lb, ls, ao):
    """Forward pass of one sample (its inputs in rows ao[0]... of A) for every lane; Z gets the
    pre-activations (same rows as A); the last layer's rows of A are the logits. Each output
    sums b + W[0] x[0] + W[1] x[1] + ... in this order."""
    n_layers = widths.shape[0] - 1
    for i in range(n_layers):
        fi, fo = widths[i], widths[i + 1]
        x0, z0 = ao[i], ao[i + 1]
        for j in range(fo):
            br = lb[i] + j
            (c0, c1, c2, c3,
             c4, c5, c6, c7) = (
                P[br, 0], P[br, 1],
                P[br, 2], P[br, 3],
                P[br, 4], P[br, 5],
                P[br, 6], P[br, 7],
            )
            w0 = lw[i] + j * fi
            for k in range(fi):
                w, x = w0 + k, x0 + k
                (c0, c1, c2, c3,
                 c4, c5, c6, c7) = (
                    c0 + P[w, 0] * A[x, 0], c1 + P[w, 1] * A[x, 1],
                    c2 + P[w, 2] * A[x, 2], c3 + P[w, 3] * A[x, 3],
                    c4 + P[w, 4] * A[x, 4], c5 + P[w, 5] * A[x, 5],
                    c6 + P[w, 6] * A[x, 6], c7 + P[w, 7] * A[x, 7],
                )
            zr = z0 + j
            (Z[zr, 0], Z[zr, 1], Z[zr, 2], Z[zr, 3],
             Z[zr, 4], Z[zr, 5], Z[zr, 6], Z[zr, 7]) = (
                c0, c1,
                c2, c3,
                c4, c5,
                c6, c7,
            )
        if i < n_layers - 1:
            _activate(code, Z, A, z0, fo, P, ls[i])
        else:
            for j in range(z0, z0 + fo):
                (A[j, 0], A[j, 1], A[j, 2], A[j, 3],
                 A[j, 4], A[j, 5], A[j, 6], A[j, 7]) = (
                    Z[j, 0], Z[j, 1],
                    Z[j, 2], Z[j, 3],
                    Z[j, 4], Z[j, 5],
                    Z[j, 6], Z[j, 7],
                )


@njit(cache=True, fastmath=False, error_model="numpy")
def _train_epoch(code, flat, exp_avg, exp_avg_sq, X, y, order, per_net_order, S, widths,
                 w_off, b_off, s_off, lw, lb, ls, ao, batch_size, l2, inv_n, step_size,
                 bias2_sqrt, one_minus_beta1, beta2, one_minus_beta2, eps,
                 P, M, V, G, A, Z, g1, g2, m_lane, rows, lane_net, losses):
    """One epoch for every network of the ensemble, in place on ``flat``, ``exp_avg``,
    ``exp_avg_sq``; ``losses[k]`` gets network ``k``'s mean minibatch cross-entropy.

    Gradients are summed over a minibatch's samples in their order; Adam is PyTorch's
    (``exp_avg`` by lerp, ``exp_avg_sq`` by multiply-add, ``p += step_size * m / (sqrt(v) /
    bias2_sqrt + eps)``)."""
    n_layers = widths.shape[0] - 1
    n_par = P.shape[0]
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
            scale = inv_n[bi]
            for q in range(n_par):
                (G[q, 0], G[q, 1], G[q, 2], G[q, 3],
                 G[q, 4], G[q, 5], G[q, 6], G[q, 7]) = (
                    _ZERO, _ZERO,
                    _ZERO, _ZERO,
                    _ZERO, _ZERO,
                    _ZERO, _ZERO,
                )
            for s in range(start, stop):
                # inputs and labels of this sample for every lane
                for l in range(LANES):
                    rows[l] = order[lane_net[l] if per_net_order else 0, s]
                for k in range(n_in):
                    (A[k, 0], A[k, 1], A[k, 2], A[k, 3],
                     A[k, 4], A[k, 5], A[k, 6], A[k, 7]) = (
                        X[rows[0], k], X[rows[1], k],
                        X[rows[2], k], X[rows[3], k],
                        X[rows[4], k], X[rows[5], k],
                        X[rows[6], k], X[rows[7], k],
                    )
                _forward_sample(code, P, A, Z, widths, lw, lb, ls, ao)
                # softmax cross-entropy; g1 = (p - onehot) / n
                (y0, y1, y2, y3,
                 y4, y5, y6, y7) = (
                    y[rows[0]], y[rows[1]],
                    y[rows[2]], y[rows[3]],
                    y[rows[4]], y[rows[5]],
                    y[rows[6]], y[rows[7]],
                )
                (c0, c1, c2, c3,
                 c4, c5, c6, c7) = (
                    A[lo, 0], A[lo, 1],
                    A[lo, 2], A[lo, 3],
                    A[lo, 4], A[lo, 5],
                    A[lo, 6], A[lo, 7],
                )
                for c in range(1, n_out):
                    (c0, c1, c2, c3,
                     c4, c5, c6, c7) = (
                        _sel(A[lo + c, 0] > c0, A[lo + c, 0], c0), _sel(A[lo + c, 1] > c1, A[lo + c, 1], c1),
                        _sel(A[lo + c, 2] > c2, A[lo + c, 2], c2), _sel(A[lo + c, 3] > c3, A[lo + c, 3], c3),
                        _sel(A[lo + c, 4] > c4, A[lo + c, 4], c4), _sel(A[lo + c, 5] > c5, A[lo + c, 5], c5),
                        _sel(A[lo + c, 6] > c6, A[lo + c, 6], c6), _sel(A[lo + c, 7] > c7, A[lo + c, 7], c7),
                    )
                e0, e1, e2, e3, e4, e5, e6, e7 = _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO
                for c in range(n_out):
                    (e0, e1, e2, e3,
                     e4, e5, e6, e7) = (
                        e0 + _exp(A[lo + c, 0] - c0), e1 + _exp(A[lo + c, 1] - c1),
                        e2 + _exp(A[lo + c, 2] - c2), e3 + _exp(A[lo + c, 3] - c3),
                        e4 + _exp(A[lo + c, 4] - c4), e5 + _exp(A[lo + c, 5] - c5),
                        e6 + _exp(A[lo + c, 6] - c6), e7 + _exp(A[lo + c, 7] - c7),
                    )
                (e0, e1, e2, e3,
                 e4, e5, e6, e7) = (
                    c0 + _log(e0), c1 + _log(e1),
                    c2 + _log(e2), c3 + _log(e3),
                    c4 + _log(e4), c5 + _log(e5),
                    c6 + _log(e6), c7 + _log(e7),
                )
                for c in range(n_out):
                    r = lo + c
                    (h0, h1, h2, h3,
                     h4, h5, h6, h7) = (
                        _sel(y0 == c, _ONE, _ZERO), _sel(y1 == c, _ONE, _ZERO),
                        _sel(y2 == c, _ONE, _ZERO), _sel(y3 == c, _ONE, _ZERO),
                        _sel(y4 == c, _ONE, _ZERO), _sel(y5 == c, _ONE, _ZERO),
                        _sel(y6 == c, _ONE, _ZERO), _sel(y7 == c, _ONE, _ZERO),
                    )
                    (c0, c1, c2, c3,
                     c4, c5, c6, c7) = (
                        A[r, 0] - e0, A[r, 1] - e1,
                        A[r, 2] - e2, A[r, 3] - e3,
                        A[r, 4] - e4, A[r, 5] - e5,
                        A[r, 6] - e6, A[r, 7] - e7,
                    )
                    (m_lane[0], m_lane[1], m_lane[2], m_lane[3],
                     m_lane[4], m_lane[5], m_lane[6], m_lane[7]) = (
                        m_lane[0] - c0 * h0 * scale, m_lane[1] - c1 * h1 * scale,
                        m_lane[2] - c2 * h2 * scale, m_lane[3] - c3 * h3 * scale,
                        m_lane[4] - c4 * h4 * scale, m_lane[5] - c5 * h5 * scale,
                        m_lane[6] - c6 * h6 * scale, m_lane[7] - c7 * h7 * scale,
                    )
                    (g1[c, 0], g1[c, 1], g1[c, 2], g1[c, 3],
                     g1[c, 4], g1[c, 5], g1[c, 6], g1[c, 7]) = (
                        (_exp(c0) - h0) * scale, (_exp(c1) - h1) * scale,
                        (_exp(c2) - h2) * scale, (_exp(c3) - h3) * scale,
                        (_exp(c4) - h4) * scale, (_exp(c5) - h5) * scale,
                        (_exp(c6) - h6) * scale, (_exp(c7) - h7) * scale,
                    )
                # backward, layer by layer; g1 holds the gradient w.r.t. layer i's output
                for i in range(n_layers - 1, -1, -1):
                    fi, fo = widths[i], widths[i + 1]
                    x0 = ao[i]
                    for j in range(fo):
                        br = lb[i] + j
                        (h0, h1, h2, h3,
                         h4, h5, h6, h7) = (
                            g1[j, 0], g1[j, 1],
                            g1[j, 2], g1[j, 3],
                            g1[j, 4], g1[j, 5],
                            g1[j, 6], g1[j, 7],
                        )
                        (G[br, 0], G[br, 1], G[br, 2], G[br, 3],
                         G[br, 4], G[br, 5], G[br, 6], G[br, 7]) = (
                            G[br, 0] + h0, G[br, 1] + h1,
                            G[br, 2] + h2, G[br, 3] + h3,
                            G[br, 4] + h4, G[br, 5] + h5,
                            G[br, 6] + h6, G[br, 7] + h7,
                        )
                        w0 = lw[i] + j * fi
                        for k in range(fi):
                            w, x = w0 + k, x0 + k
                            (G[w, 0], G[w, 1], G[w, 2], G[w, 3],
                             G[w, 4], G[w, 5], G[w, 6], G[w, 7]) = (
                                G[w, 0] + h0 * A[x, 0], G[w, 1] + h1 * A[x, 1],
                                G[w, 2] + h2 * A[x, 2], G[w, 3] + h3 * A[x, 3],
                                G[w, 4] + h4 * A[x, 4], G[w, 5] + h5 * A[x, 5],
                                G[w, 6] + h6 * A[x, 6], G[w, 7] + h7 * A[x, 7],
                            )
                    if i > 0:
                        w0 = lw[i]
                        for k in range(fi):
                            (c0, c1, c2, c3,
                             c4, c5, c6, c7) = (
                                _ZERO, _ZERO,
                                _ZERO, _ZERO,
                                _ZERO, _ZERO,
                                _ZERO, _ZERO,
                            )
                            for j in range(fo):
                                w = w0 + j * fi + k
                                (c0, c1, c2, c3,
                                 c4, c5, c6, c7) = (
                                    c0 + P[w, 0] * g1[j, 0], c1 + P[w, 1] * g1[j, 1],
                                    c2 + P[w, 2] * g1[j, 2], c3 + P[w, 3] * g1[j, 3],
                                    c4 + P[w, 4] * g1[j, 4], c5 + P[w, 5] * g1[j, 5],
                                    c6 + P[w, 6] * g1[j, 6], c7 + P[w, 7] * g1[j, 7],
                                )
                            (g2[k, 0], g2[k, 1], g2[k, 2], g2[k, 3],
                             g2[k, 4], g2[k, 5], g2[k, 6], g2[k, 7]) = (
                                c0, c1,
                                c2, c3,
                                c4, c5,
                                c6, c7,
                            )
                        if has_slope:
                            sr = ls[i - 1]
                            for k in range(fi):
                                x = x0 + k
                                (G[sr, 0], G[sr, 1], G[sr, 2], G[sr, 3],
                                 G[sr, 4], G[sr, 5], G[sr, 6], G[sr, 7]) = (
                                    G[sr, 0] + _neg_part(Z[x, 0]) * g2[k, 0], G[sr, 1] + _neg_part(Z[x, 1]) * g2[k, 1],
                                    G[sr, 2] + _neg_part(Z[x, 2]) * g2[k, 2], G[sr, 3] + _neg_part(Z[x, 3]) * g2[k, 3],
                                    G[sr, 4] + _neg_part(Z[x, 4]) * g2[k, 4], G[sr, 5] + _neg_part(Z[x, 5]) * g2[k, 5],
                                    G[sr, 6] + _neg_part(Z[x, 6]) * g2[k, 6], G[sr, 7] + _neg_part(Z[x, 7]) * g2[k, 7],
                                )
                        _derivative(code, g2, Z, A, x0, fi, P, ls[i - 1])
                        for k in range(fi):
                            (g1[k, 0], g1[k, 1], g1[k, 2], g1[k, 3],
                             g1[k, 4], g1[k, 5], g1[k, 6], g1[k, 7]) = (
                                g2[k, 0], g2[k, 1],
                                g2[k, 2], g2[k, 3],
                                g2[k, 4], g2[k, 5],
                                g2[k, 6], g2[k, 7],
                            )
            # L2 on hidden weights, then Adam
            if l2 != 0.0:
                for i in range(n_layers - 1):
                    for q in range(lw[i], lw[i] + widths[i] * widths[i + 1]):
                        (G[q, 0], G[q, 1], G[q, 2], G[q, 3],
                         G[q, 4], G[q, 5], G[q, 6], G[q, 7]) = (
                            G[q, 0] + l2 * P[q, 0], G[q, 1] + l2 * P[q, 1],
                            G[q, 2] + l2 * P[q, 2], G[q, 3] + l2 * P[q, 3],
                            G[q, 4] + l2 * P[q, 4], G[q, 5] + l2 * P[q, 5],
                            G[q, 6] + l2 * P[q, 6], G[q, 7] + l2 * P[q, 7],
                        )
            ss, b2s = step_size[bi], bias2_sqrt[bi]
            for q in range(n_par):
                (M[q, 0], M[q, 1], M[q, 2], M[q, 3],
                 M[q, 4], M[q, 5], M[q, 6], M[q, 7]) = (
                    M[q, 0] + one_minus_beta1 * (G[q, 0] - M[q, 0]), M[q, 1] + one_minus_beta1 * (G[q, 1] - M[q, 1]),
                    M[q, 2] + one_minus_beta1 * (G[q, 2] - M[q, 2]), M[q, 3] + one_minus_beta1 * (G[q, 3] - M[q, 3]),
                    M[q, 4] + one_minus_beta1 * (G[q, 4] - M[q, 4]), M[q, 5] + one_minus_beta1 * (G[q, 5] - M[q, 5]),
                    M[q, 6] + one_minus_beta1 * (G[q, 6] - M[q, 6]), M[q, 7] + one_minus_beta1 * (G[q, 7] - M[q, 7]),
                )
                (V[q, 0], V[q, 1], V[q, 2], V[q, 3],
                 V[q, 4], V[q, 5], V[q, 6], V[q, 7]) = (
                    V[q, 0] * beta2 + one_minus_beta2 * G[q, 0] * G[q, 0], V[q, 1] * beta2 + one_minus_beta2 * G[q, 1] * G[q, 1],
                    V[q, 2] * beta2 + one_minus_beta2 * G[q, 2] * G[q, 2], V[q, 3] * beta2 + one_minus_beta2 * G[q, 3] * G[q, 3],
                    V[q, 4] * beta2 + one_minus_beta2 * G[q, 4] * G[q, 4], V[q, 5] * beta2 + one_minus_beta2 * G[q, 5] * G[q, 5],
                    V[q, 6] * beta2 + one_minus_beta2 * G[q, 6] * G[q, 6], V[q, 7] * beta2 + one_minus_beta2 * G[q, 7] * G[q, 7],
                )
                (P[q, 0], P[q, 1], P[q, 2], P[q, 3],
                 P[q, 4], P[q, 5], P[q, 6], P[q, 7]) = (
                    P[q, 0] + ss * (M[q, 0] / (np.sqrt(V[q, 0]) / b2s + eps)), P[q, 1] + ss * (M[q, 1] / (np.sqrt(V[q, 1]) / b2s + eps)),
                    P[q, 2] + ss * (M[q, 2] / (np.sqrt(V[q, 2]) / b2s + eps)), P[q, 3] + ss * (M[q, 3] / (np.sqrt(V[q, 3]) / b2s + eps)),
                    P[q, 4] + ss * (M[q, 4] / (np.sqrt(V[q, 4]) / b2s + eps)), P[q, 5] + ss * (M[q, 5] / (np.sqrt(V[q, 5]) / b2s + eps)),
                    P[q, 6] + ss * (M[q, 6] / (np.sqrt(V[q, 6]) / b2s + eps)), P[q, 7] + ss * (M[q, 7] / (np.sqrt(V[q, 7]) / b2s + eps)),
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
        for n in range(N):
            for k in range(n_in):
                x = X[n, k]
                (A[k, 0], A[k, 1], A[k, 2], A[k, 3],
                 A[k, 4], A[k, 5], A[k, 6], A[k, 7]) = (
                    x, x,
                    x, x,
                    x, x,
                    x, x,
                )
            _forward_sample(code, P, A, Z, widths, lw, lb, ls, ao)
            for l in range(LANES):
                net = grp * LANES + l
                if net >= S:
                    break
                for i in range(n_layers):
                    w = widths[i + 1]
                    base = ob[i] + (net * N + n) * w
                    for u in range(w):
                        out[base + u] = A[ao[i + 1] + u, l]


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
    :meth:`~ibtools.trainer.EnsembleTrainer._adam_step` computes them.

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
    Scratch memory is allocated here, once: per group of :data:`LANES` networks the parameters,
    Adam moments and gradient in lane layout (``3 + 1`` times 8 x parameters per network floats)
    and one sample's activity; a call allocates only its small per-epoch scalars.
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
        self.P, self.M, self.V, self.G = (np.zeros((p, LANES), dtype=f32) for _ in range(4))
        self.A = np.zeros((int(self.ao[-1]), LANES), dtype=f32)
        self.Z = np.zeros((int(self.ao[-1]), LANES), dtype=f32)
        wmax = int(self.widths.max())
        self.g1, self.g2 = np.zeros((wmax, LANES), dtype=f32), np.zeros((wmax, LANES), dtype=f32)
        self.m_lane = np.zeros(LANES, dtype=np.float64)
        self.rows = np.zeros(LANES, dtype=np.int64)
        self.lane_net = np.zeros(LANES, dtype=np.int64)
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
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        batch_size = int(batch_size)
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
                         self.g1, self.g2, self.m_lane, self.rows, self.lane_net, self.losses)
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

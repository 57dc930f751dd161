"""A fused training kernel for the ensemble: one compiled call trains every network for a whole
epoch (``TrainConfig(backend="fused")``).

The torch engine (:class:`~ibtools.trainer.EnsembleTrainer`'s ``_manual_gradients`` and
``_adam_step``) issues some thirty tensor operations per minibatch; with layers of 2-12 units
each of them does little work, and most of the time goes to dispatch, temporaries and passes
over memory. Here a network's whole epoch -- every minibatch, forward pass, softmax
cross-entropy, backward pass, L2 on the hidden weights, and PyTorch's Adam update with
``EnsembleTrainer._adam_step``'s bias correction -- runs in one compiled
loop, in float32, with its parameters, Adam moments and gradient in a few kilobytes of scratch
memory that stay in the L1 cache. Samples go through in blocks of :data:`BLOCK` = 8 (forward,
backward; a block's gradient terms are summed in a fixed order, then added to the minibatch's
running sum in block order), so no buffer grows with the batch size and nothing is
allocated per step; a block that runs past the end of a minibatch is padded with a copy of its
first sample whose gradient is scaled by zero.

**Why numba.** It installs from a binary wheel on a fresh machine (it is a dependency of the
package) and comes preinstalled in Colab, so the two-command install keeps working with no
compiler; a C++ extension built with torch's extension tools would need a compiler and torch's
headers on every reader's machine. Kernels are compiled once per machine and cached
(``cache=True``, in ``__pycache__``); ``benchmarks/bench_fused.py`` measures the cold compile.

**Lanes and invariance.** Networks are processed in fixed groups of :data:`LANES` = 8 (one AVX2
vector of float32). Every operation is element-wise across the lanes of a group, and lane ``l``
computes exactly what network ``l`` would compute alone: the order of every sum is fixed by the
code (no ``fastmath``, so no reassociation; the matrix products use explicit IEEE fused
multiply-adds, ``llvm.fma``, rounded once, the same bits on every machine). A group that the ensemble
does not fill is padded with copies of its first network, whose results are discarded. A
network's numbers are therefore bit for bit the same whatever the ensemble size and wherever the
network sits in it (``tests/test_fused.py``).

**How it vectorizes.** The kernels are written with ``F8``, a numba type for LLVM's
``<8 x float>`` (defined here with ``numba.extending``: arithmetic, comparisons giving lane
masks, ``select``, ``sqrt``/``floor``/``fabs``, loads and stores of eight consecutive floats), so
each per-lane operation is one AVX2 instruction by construction. (The previous version wrote the
eight lanes out as scalar tuples for LLVM's SLP vectorizer; on this machine's CPU model it packed
most of them four wide and left the transcendental functions scalar.) The helpers are inlined
into the epoch loop, so no call passes arrays (no reference counting per call). The forward pass
of training stores softplus's and Swish's derivative in place of the pre-activation, computed
with the exponential it already has.

**Transcendental functions.** Without Intel's SVML (not a dependency) ``math.exp`` and
``math.tanh`` compile to scalar library calls. The kernel has its own branch-free float32
versions, the same bits on every machine with IEEE float32: ``exp`` (Cephes' range reduction, a
polynomial fitted for this kernel; 1.0 ulp) and ``log`` (Cephes'; only for the loss), ``tanh``
as one rational function x P(x^2) / Q(x^2) fitted for this kernel (within 5.2 ulp on a
4-million-point grid, no exponential), ``expm1`` (ELU) from it as 2 t / (1 - t) with
t = tanh(x/2) (3.7 ulp), and softplus with its derivative from one exponential, a fitted
polynomial for log1p and one division (2.2 ulp over every float32 from 2^-14 to 80 in
magnitude, sigmoid 2.4 ulp, no logarithm). Every polynomial is evaluated by Horner's rule with
fused multiply-adds.

**Activations.** Tanh, ReLU, abs and ELU are applied to the forward pass's sums as they leave
the registers; their derivative needs only f(z) (abs: z), so nothing else is stored. The other
activations go through a separate pass over the layer's rows, which also stores f'(z) for
softplus, centered softplus and Swish; it takes four rows at a time, so that the compiler
interleaves four independent chains (a transcendental function's chain of dependent operations
is long, and one row at a time its latency, not the machine's throughput, set the pace). Inside
the products' loops, their longer code made every activation slower. In the backward pass, f'(z)
is multiplied into the input gradient's sums as they leave the registers for every paper
activation but PReLU, whose slope's gradient needs the gradient before it (a separate pass, as
for sigmoid, softsign and linear).
The forward products take two units at a time, so that each input vector loaded serves two
multiply-adds. These arrangements leave every result bit for bit as it was.
The functions are not the bits of torch's Sleef/libm functions, and the matrix products sum in
a different order than MKL, so the fused backend agrees with the torch engine to float32
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

import math
import operator

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

from .validation import check_int

__all__ = ["LANES", "BLOCK", "SUPPORTED_ACTIVATIONS", "FusedKernel", "check_activation", "adam_scalars"]

#: Networks per group: one AVX2 vector of float32. Fixed, so a network's arithmetic never
#: depends on the ensemble's size.
LANES = 8

#: Samples that go through the network together (independent accumulators for the compiler).
BLOCK = 8
assert BLOCK % 4 == 0, "_activate and _derivative take a layer's BLOCK * width rows four at a time"

#: Activations the kernel implements, with their codes inside the kernel.
SUPPORTED_ACTIVATIONS = {
    "tanh": 0, "relu": 1, "abs": 2, "prelu": 3, "elu": 4, "softplus": 5,
    "centered_softplus": 6, "swish": 7, "sigmoid": 8, "softsign": 9, "linear": 10,
}
_PRELU = 3

_f = np.float32
_ONE, _ZERO, _HALF = _f(1.0), _f(0.0), _f(0.5)
_LOG2E = _f(1.44269504088896341)
_C1, _C2 = _f(0.693359375), _f(-2.12194440e-4)  # ln 2 = C1 - C2, C1 exact in few bits
_EXP_HI, _EXP_LO = _f(88.0), _f(-87.33654)
_LOG2 = _f(math.log(2.0))
_SQRT2 = _f(1.41421356237)
# exp(r) = 1 + r + r^2 Q(r) on |r| <= ln(2)/2, Q of degree 4 (one degree fewer than Cephes'
# expf): our own fit (iteratively reweighted least squares on the relative error of exp,
# 4e5 points), 3.1e-9 relative before float32 rounding
_E2, _E3, _E4, _E5, _E6 = (_f(0.4999999343311134), _f(0.16666520422286557), _f(0.041668390736635835),
                           _f(0.008368742310364415), _f(0.00138145288118691))
# Cephes logf minimax coefficients
_L = tuple(_f(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                           1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                           3.3333331174e-1))
_L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8 = _L
_SW = BLOCK * LANES  # floats per block row (BLOCK samples x LANES lanes)
_O1, _O2, _O3, _O4, _O5, _O6, _O7 = (s * LANES for s in range(1, BLOCK))  # sample s of a block row


# --- an 8-lane float32 vector type for numba ------------------------------------------------
# ``F8`` is LLVM's <8 x float> as a numba value: the kernels below are written with it, so every
# per-lane operation is one vector instruction by construction (no reliance on an
# auto-vectorizer, which on this machine's CPU model packed most lanes 4-wide or not at all).
# Lane l of every vector is network l of the group; no operation ever mixes lanes.

class _F8Type(types.Type):
    def __init__(self):
        super().__init__(name="float32x8")


class _M8Type(types.Type):
    def __init__(self):
        super().__init__(name="boolx8")


F8 = _F8Type()
M8 = _M8Type()
_VF = ir.VectorType(ir.FloatType(), LANES)
_VD = ir.VectorType(ir.DoubleType(), LANES)
_VI = ir.VectorType(ir.IntType(32), LANES)
_I32 = ir.IntType(32)


@register_model(_F8Type)
class _F8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VF)


@register_model(_M8Type)
class _M8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.IntType(1), LANES))


def _is_f32(t):
    return t == types.float32


def _is_vec_operand(a, b):
    return (isinstance(a, _F8Type) or isinstance(b, _F8Type)) and all(
        isinstance(t, _F8Type) or _is_f32(t) for t in (a, b))


def _splat_ir(builder, x):
    v = builder.insert_element(ir.Constant(_VF, None), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(_VF, None), ir.Constant(_VI, [0] * LANES))


def _as_vec(builder, value, typ):
    return value if isinstance(typ, _F8Type) else _splat_ir(builder, value)


def _llvm_fn(builder, name, n_args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VF, [_VF] * n_args), name)


def _vec_binop(op):
    @intrinsic
    def impl(typingctx, a, b):
        if not _is_vec_operand(a, b):
            return None

        def codegen(context, builder, sig, args):
            x, y = (_as_vec(builder, v, t) for v, t in zip(args, sig.args))
            return getattr(builder, op)(x, y)

        return F8(a, b), codegen

    return impl


def _vec_cmp(op):
    @intrinsic
    def impl(typingctx, a, b):
        if not _is_vec_operand(a, b):
            return None

        def codegen(context, builder, sig, args):
            x, y = (_as_vec(builder, v, t) for v, t in zip(args, sig.args))
            return builder.fcmp_ordered(op, x, y)

        return M8(a, b), codegen

    return impl


_vadd, _vsub, _vmul, _vdiv = (_vec_binop(o) for o in ("fadd", "fsub", "fmul", "fdiv"))
_vgt, _vlt, _vge, _veq = (_vec_cmp(o) for o in (">", "<", ">=", "=="))


def _register_operator(pyop, impl):
    @overload(pyop)
    def _ov(a, b):
        if _is_vec_operand(a, b):
            return lambda a, b: impl(a, b)


for _pyop, _impl in ((operator.add, _vadd), (operator.sub, _vsub), (operator.mul, _vmul),
                     (operator.truediv, _vdiv), (operator.gt, _vgt), (operator.lt, _vlt),
                     (operator.ge, _vge), (operator.eq, _veq)):
    _register_operator(_pyop, _impl)


@intrinsic
def _vneg(typingctx, a):
    if not isinstance(a, _F8Type):
        return None

    def codegen(context, builder, sig, args):  # -0.0 - x, as numba negates a float
        return builder.fsub(ir.Constant(_VF, [-0.0] * LANES), args[0])

    return F8(a), codegen


@overload(operator.neg)
def _ov_neg(a):
    if isinstance(a, _F8Type):
        return lambda a: _vneg(a)


def _vec_unary_intrinsic(llvm_name):
    @intrinsic
    def impl(typingctx, a):
        if not isinstance(a, _F8Type):
            return None

        def codegen(context, builder, sig, args):
            return builder.call(_llvm_fn(builder, llvm_name, 1), [args[0]])

        return F8(a), codegen

    return impl


_vabs = _vec_unary_intrinsic("llvm.fabs.v8f32")
_vsqrt = _vec_unary_intrinsic("llvm.sqrt.v8f32")
_vfloor = _vec_unary_intrinsic("llvm.floor.v8f32")


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c, lane by lane, rounded once (LLVM's ``llvm.fma``: IEEE fused multiply-add, the
    same bits on every machine; one instruction where the CPU has FMA)."""
    if not all(isinstance(t, _F8Type) or _is_f32(t) for t in (a, b, c)) or not any(
            isinstance(t, _F8Type) for t in (a, b, c)):
        return None

    def codegen(context, builder, sig, args):
        vals = [_as_vec(builder, v, t) for v, t in zip(args, sig.args)]
        return builder.call(_llvm_fn(builder, "llvm.fma.v8f32", 3), vals)

    return F8(a, b, c), codegen


@overload(abs)
def _ov_abs(a):
    if isinstance(a, _F8Type):
        return lambda a: _vabs(a)


@intrinsic
def _sel(typingctx, cond, a, b):
    """``a`` where ``cond`` else ``b``, lane by lane (one LLVM ``select``)."""
    if not isinstance(cond, _M8Type) or not all(isinstance(t, _F8Type) or _is_f32(t) for t in (a, b)):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(args[0], _as_vec(builder, args[1], sig.args[1]),
                              _as_vec(builder, args[2], sig.args[2]))

    return F8(cond, a, b), codegen


@intrinsic
def _splat(typingctx, x):
    """Every lane = the float32 ``x``."""
    if not _is_f32(x):
        return None

    def codegen(context, builder, sig, args):
        return _splat_ir(builder, args[0])

    return F8(x), codegen


@intrinsic
def _set8(typingctx, a0, a1, a2, a3, a4, a5, a6, a7):
    """The vector of eight float32 values, lane 0 first."""
    if not all(_is_f32(t) for t in (a0, a1, a2, a3, a4, a5, a6, a7)):
        return None

    def codegen(context, builder, sig, args):
        v = ir.Constant(_VF, None)
        for l, x in enumerate(args):
            v = builder.insert_element(v, x, ir.Constant(_I32, l))
        return v

    return F8(a0, a1, a2, a3, a4, a5, a6, a7), codegen


def _data_ptr(context, builder, arytype, ary, idx, vtype):
    data = context.make_array(arytype)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [idx]), ir.PointerType(vtype))


def _is_f32_array(a):
    return isinstance(a, types.Array) and a.dtype == types.float32


@intrinsic
def _ld(typingctx, arr, idx):
    """The eight float32 at ``arr[idx : idx + 8]`` (flat array, no bounds check)."""
    if not _is_f32_array(arr) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_data_ptr(context, builder, sig.args[0], args[0], args[1], _VF), align=4)

    return F8(arr, idx), codegen


@intrinsic
def _st(typingctx, arr, idx, v):
    """``arr[idx : idx + 8] = v`` (flat array, no bounds check)."""
    if not _is_f32_array(arr) or not isinstance(idx, types.Integer) or not isinstance(v, _F8Type):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _data_ptr(context, builder, sig.args[0], args[0], args[1], _VF), align=4)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


@intrinsic
def _sub_into_f64(typingctx, arr, v):
    """``arr[0:8] -= v`` with ``arr`` float64: each lane's float32 widened, then subtracted."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float64) or not isinstance(v, _F8Type):
        return None

    def codegen(context, builder, sig, args):
        ptr = _data_ptr(context, builder, sig.args[0], args[0], ir.Constant(ir.IntType(64), 0), _VD)
        old = builder.load(ptr, align=8)
        builder.store(builder.fsub(old, builder.fpext(args[1], _VD)), ptr, align=8)
        return context.get_dummy_value()

    return types.none(arr, v), codegen


@intrinsic
def _pow2(typingctx, n):
    """2**n for the integer-valued float32 lanes of ``n`` (-126 <= n <= 127), built from bits."""
    if not isinstance(n, _F8Type):
        return None

    def codegen(context, builder, sig, args):
        k = builder.fptosi(args[0], _VI)
        k = builder.shl(builder.add(k, ir.Constant(_VI, [127] * LANES)), ir.Constant(_VI, [23] * LANES))
        return builder.bitcast(k, _VF)

    return F8(n), codegen


@intrinsic
def _frexp_parts(typingctx, x):
    """(unbiased exponent as float32, mantissa scaled to [1, 2)) of positive normal lanes."""
    if not isinstance(x, _F8Type):
        return None

    def codegen(context, builder, sig, args):
        bits = builder.bitcast(args[0], _VI)
        e = builder.and_(builder.lshr(bits, ir.Constant(_VI, [23] * LANES)), ir.Constant(_VI, [0xFF] * LANES))
        e = builder.sitofp(builder.sub(e, ir.Constant(_VI, [127] * LANES)), _VF)
        m = builder.or_(builder.and_(bits, ir.Constant(_VI, [0x007FFFFF] * LANES)),
                        ir.Constant(_VI, [0x3F800000] * LANES))
        return context.make_tuple(builder, sig.return_type, [e, builder.bitcast(m, _VF)])

    return types.UniTuple(F8, 2)(x), codegen


def _aligned_zeros(n: int, dtype=np.float32) -> np.ndarray:
    """``np.zeros(n, dtype)`` whose data starts on a 64-byte boundary (a cache line).

    numpy only promises 16 bytes; at an address 16 or 48 past a line, every other 32-byte vector
    load or store of the kernel spans two cache lines, which made the same kernel 10-20 % slower
    in one process than in another (measured; ``benchmarks/README.md``). For ``n >= 1`` (an
    empty array keeps its buffer's unaligned address, which no load ever reads)."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n * itemsize + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + n * itemsize].view(dtype)


# --- float32 transcendental functions, lane-wise ---------------------------------------------

@njit(cache=True, error_model="numpy", forceinline=True)
def _exp(x):
    """float32 exp, branch-free; NaN propagates; clamped to [e^-87.3, e^88]."""
    return _exp_below_88(_sel(x > _EXP_HI, _EXP_HI, x))


@njit(cache=True, error_model="numpy", forceinline=True)
def _exp_below_88(x):
    """float32 exp of lanes at most 88 (softplus's -|z| needs no upper clamp), branch-free; NaN
    propagates; at least e^-87.3."""
    x = _sel(x < _EXP_LO, _EXP_LO, x)
    fx = _vfloor(_fma(x, _LOG2E, _HALF))
    r = _fma(fx, -_C1, x)
    r = _fma(fx, -_C2, r)
    z = r * r
    p = _fma(_fma(_fma(_fma(_fma(r, _E6, _E5), r, _E4), r, _E3), r, _E2), z, r) + _ONE
    return p * _pow2(fx)


@njit(cache=True, error_model="numpy", forceinline=True)
def _log(x):
    """float32 natural log of positive normal lanes, branch-free."""
    e, m = _frexp_parts(x)
    big = m > _SQRT2
    m = _sel(big, m * _HALF, m)
    fe = _sel(big, e + _ONE, e)
    t = m - _ONE
    z = t * t
    y = _fma(t, _L0, _L1)
    y = _fma(_fma(_fma(_fma(_fma(_fma(_fma(y, t, _L2), t, _L3), t, _L4), t, _L5), t, _L6), t, _L7), t, _L8)
    y = y * t * z
    y = y + fe * _C2
    y = y - _HALF * z
    return t + y + fe * _C1


# tanh(x) = x P(x^2) / Q(x^2) on |x| <= 9.1 (beyond, tanh rounds to +-1 in float32): our own
# fit (iteratively reweighted least squares on the relative error, degrees 8 / 8 in x^2), float32
# evaluation (Horner with fused multiply-adds) within 5.2 ulp of tanh on a 4-million-point grid of
# [-12, 12]
_TANH_CLAMP = _f(9.1)
_TP0, _TP1, _TP2, _TP3, _TP4 = (_f(1.0), _f(0.13390664756298065), _f(0.003506877925246954),
                                _f(2.0788336769328453e-05), _f(1.3590151226594571e-08))
_TQ0, _TQ1, _TQ2, _TQ3, _TQ4 = (_f(1.0), _f(0.4672398865222931), _f(0.025920342653989792),
                                _f(0.000330381968524307), _f(7.875706842241925e-07))


@njit(cache=True, error_model="numpy", forceinline=True)
def _tanh(x):
    """float32 tanh as one rational function (no exponential), branch-free; NaN propagates."""
    x = _sel(x > _TANH_CLAMP, _TANH_CLAMP, _sel(x < -_TANH_CLAMP, -_TANH_CLAMP, x))
    t = x * x
    p = _fma(_fma(_fma(_fma(t, _TP4, _TP3), t, _TP2), t, _TP1), t, _TP0)
    q = _fma(_fma(_fma(_fma(t, _TQ4, _TQ3), t, _TQ2), t, _TQ1), t, _TQ0)
    r = x * p / q
    return _sel(r > _ONE, _ONE, _sel(r < -_ONE, -_ONE, r))


@njit(cache=True, error_model="numpy", forceinline=True)
def _sigmoid(x):
    return _ONE / (_exp(-x) + _ONE)


# log1p(u) = u + u^2 R(u) on 0 <= u <= 1, R of degree 7: our own fit (iteratively reweighted
# least squares on the relative error of log1p, 2e5 points), each coefficient rounded to float32
# in turn and the rest refitted, with R(1) = ln 2 - 1 imposed, so that softplus(0) is float32's
# ln 2 and centered softplus(0) is 0 exactly; evaluated in float32 within 2.2 ulp of softplus for
# every float32 z with 2^-14 <= |z| < 80
_LP = tuple(_f(c) for c in (
    -0.4999963343143463, 0.3332090377807617, -0.24853166937828064, 0.19135801494121552,
    -0.13711534440517426, 0.07865845412015915, -0.02970225177705288, 0.005267273634672165))
_LP0, _LP1, _LP2, _LP3, _LP4, _LP5, _LP6, _LP7 = _LP


@njit(cache=True, error_model="numpy", forceinline=True)
def _softplus(z):
    """(log(1 + e^z), its derivative sigmoid(z)) from one exponential, one division and no
    logarithm.

    With u = e^-|z| in (0, 1]: softplus(z) = max(z, 0) + log1p(u), log1p(u) = u + u^2 R(u) with
    the polynomial R above (no division); sigmoid(z) = (1 if z >= 0 else u) / (1 + u). For
    z > 20 the sum rounds to z, as torch's threshold gives."""
    u = _exp_below_88(-abs(z))
    r = _fma(_fma(_fma(_fma(_fma(_fma(_fma(u, _LP7, _LP6), u, _LP5), u, _LP4), u, _LP3), u, _LP2), u, _LP1), u, _LP0)
    return _sel(z > _ZERO, z, _ZERO) + _fma(u * u, r, u), _sel(z >= _ZERO, _ONE, u) / (u + _ONE)


@njit(cache=True, error_model="numpy", forceinline=True)
def _expm1(x):
    """exp(x) - 1 = 2 tanh(x/2) / (1 - tanh(x/2)), accurate near 0 without a series; with
    tanh(y) = y P(y^2) / Q(y^2) this is 2 y P / (Q - y P), one division; at least -1."""
    y = x * _HALF
    y = _sel(y > _TANH_CLAMP, _TANH_CLAMP, _sel(y < -_TANH_CLAMP, -_TANH_CLAMP, y))
    t = y * y
    yp = y * _fma(_fma(_fma(_fma(t, _TP4, _TP3), t, _TP2), t, _TP1), t, _TP0)
    q = _fma(_fma(_fma(_fma(t, _TQ4, _TQ3), t, _TQ2), t, _TQ1), t, _TQ0)
    r = (yp + yp) / (q - yp)
    return _sel(r < -_ONE, -_ONE, r)



# --- activations and their derivatives, one row of lanes at a time ---------------------------

@njit(cache=True, error_model="numpy", forceinline=True)
def _act(code, z, slope):
    """f(z) for activation ``code`` (PReLU: ``slope``)."""
    if code == 0:
        return _tanh(z)
    elif code == 1:
        return _sel(z > _ZERO, z, _ZERO)
    elif code == 2:
        return abs(z)
    elif code == 3:
        return _sel(z > _ZERO, z, slope * z)
    elif code == 4:
        return _sel(z > _ZERO, z, _expm1(z))
    elif code == 5:
        return _softplus(z)[0]
    elif code == 6:
        return _softplus(z)[0] - _LOG2
    elif code == 7:
        return z * _sigmoid(z)
    elif code == 8:
        return _sigmoid(z)
    elif code == 9:
        return z / (abs(z) + _ONE)
    return z


@njit(cache=True, error_model="numpy", forceinline=True)
def _dact(code, g, z, a, slope):
    """g * f'(z), from the pre-activation ``z`` and the activation ``a = f(z)`` (softplus,
    centered softplus, Swish: ``z`` holds f'(z) already, see :func:`_activate`)."""
    if code == 0:
        return g * (_ONE - a * a)
    elif code == 1:
        return _sel(a > _ZERO, g, _ZERO)
    elif code == 2:
        return g * _sel(z > _ZERO, _ONE, _sel(z < _ZERO, -_ONE, _ZERO))
    elif code == 3:
        return _sel(z > _ZERO, g, g * slope)
    elif code == 4:
        return g * _sel(a > _ZERO, _ONE, a + _ONE)
    elif code == 5 or code == 6 or code == 7:
        return g * z
    elif code == 8:
        return g * ((_ONE - a) * a)
    elif code == 9:
        d = abs(z) + _ONE
        return g * (_ONE / (d * d))
    return g


@njit(cache=True, error_model="numpy", forceinline=True)
def _in_registers(code):
    """Whether activation ``code`` is applied to the forward pass's sums as they are stored: tanh,
    ReLU, abs and ELU, whose derivative needs no more than f(z) (abs: z). The others go through a
    separate pass over a block's rows (:func:`_activate`); inside the products' loops their
    longer code made every activation slower (``benchmarks/README.md``)."""
    return code == 0 or code == 1 or code == 2 or code == 4


@njit(cache=True, error_model="numpy", forceinline=True)
def _derivative_in_registers(code):
    """Whether f'(z) is multiplied into the input gradient's sums before they are stored (no
    :func:`_derivative` pass): the activations of :func:`_in_registers`, and softplus, centered
    softplus and Swish, whose f'(z) the forward pass left in Z. Not PReLU: its slope's gradient
    needs the input gradient before the derivative."""
    return _in_registers(code) or code == 5 or code == 6 or code == 7


@njit(cache=True, error_model="numpy", forceinline=True)
def _store_sums4(code, last, A, Z, base, c0, c1, c2, c3):
    """Store one unit's sums for four samples (rows ``base``, ``base + LANES``, ...): the logits to
    A (``last``); for the activations of :func:`_in_registers` f(z) to A, and z to Z for abs,
    whose derivative needs its sign; for the other activations z to Z, for :func:`_activate`.

    Every branch stores its own results: written with the results merged after the branches,
    the kernel ran 22-42 % slower for every activation, as if every branch's function were
    evaluated for all of them (``benchmarks/README.md``, fifth step)."""
    if last:
        _st(A, base, c0)
        _st(A, base + LANES, c1)
        _st(A, base + 2 * LANES, c2)
        _st(A, base + 3 * LANES, c3)
    elif code == 1:
        o = _splat(_ZERO)
        _st(A, base, _sel(c0 > o, c0, o))
        _st(A, base + LANES, _sel(c1 > o, c1, o))
        _st(A, base + 2 * LANES, _sel(c2 > o, c2, o))
        _st(A, base + 3 * LANES, _sel(c3 > o, c3, o))
    elif code == 0:
        _st(A, base, _tanh(c0))
        _st(A, base + LANES, _tanh(c1))
        _st(A, base + 2 * LANES, _tanh(c2))
        _st(A, base + 3 * LANES, _tanh(c3))
    elif code == 2:
        _st(Z, base, c0)
        _st(Z, base + LANES, c1)
        _st(Z, base + 2 * LANES, c2)
        _st(Z, base + 3 * LANES, c3)
        _st(A, base, abs(c0))
        _st(A, base + LANES, abs(c1))
        _st(A, base + 2 * LANES, abs(c2))
        _st(A, base + 3 * LANES, abs(c3))
    elif code == 4:
        o = _splat(_ZERO)
        _st(A, base, _act(4, c0, o))
        _st(A, base + LANES, _act(4, c1, o))
        _st(A, base + 2 * LANES, _act(4, c2, o))
        _st(A, base + 3 * LANES, _act(4, c3, o))
    else:
        _st(Z, base, c0)
        _st(Z, base + LANES, c1)
        _st(Z, base + 2 * LANES, c2)
        _st(Z, base + 3 * LANES, c3)


@njit(cache=True, error_model="numpy", forceinline=True)
def _times_derivative8(code, Z, A, base, c0, c1, c2, c3, c4, c5, c6, c7):
    """c_s * f'(z_s) for one unit's eight samples (rows ``base + s * LANES``), for the activations
    of :func:`_derivative_in_registers`, with :func:`_dact`'s arithmetic (from A; for abs from Z;
    softplus, centered softplus and Swish: Z holds f'(z))."""
    if code == 1:
        o = _splat(_ZERO)
        return (_sel(_ld(A, base) > o, c0, o), _sel(_ld(A, base + _O1) > o, c1, o),
                _sel(_ld(A, base + _O2) > o, c2, o), _sel(_ld(A, base + _O3) > o, c3, o),
                _sel(_ld(A, base + _O4) > o, c4, o), _sel(_ld(A, base + _O5) > o, c5, o),
                _sel(_ld(A, base + _O6) > o, c6, o), _sel(_ld(A, base + _O7) > o, c7, o))
    if code == 5 or code == 6 or code == 7:
        return (c0 * _ld(Z, base), c1 * _ld(Z, base + _O1), c2 * _ld(Z, base + _O2), c3 * _ld(Z, base + _O3),
                c4 * _ld(Z, base + _O4), c5 * _ld(Z, base + _O5), c6 * _ld(Z, base + _O6), c7 * _ld(Z, base + _O7))
    o = _splat(_ZERO)
    return (_dact(code, c0, _ld(Z, base), _ld(A, base), o),
            _dact(code, c1, _ld(Z, base + _O1), _ld(A, base + _O1), o),
            _dact(code, c2, _ld(Z, base + _O2), _ld(A, base + _O2), o),
            _dact(code, c3, _ld(Z, base + _O3), _ld(A, base + _O3), o),
            _dact(code, c4, _ld(Z, base + _O4), _ld(A, base + _O4), o),
            _dact(code, c5, _ld(Z, base + _O5), _ld(A, base + _O5), o),
            _dact(code, c6, _ld(Z, base + _O6), _ld(A, base + _O6), o),
            _dact(code, c7, _ld(Z, base + _O7), _ld(A, base + _O7), o))


@njit(cache=True, error_model="numpy", forceinline=True)
def _activate(code, Z, A, r0, width, P, sr, keep_z):
    """A[u] = f(Z[u]) for rows u = r0 ... r0 + width - 1 (``width`` a multiple of 4), every lane
    (PReLU: slope row ``sr`` of ``P``). Unless ``keep_z`` (training's forward pass), softplus,
    centered softplus and Swish replace Z[u] by f'(Z[u]), which needs an exponential that the
    forward pass has at hand; the other activations take their derivative cheaply from Z or A in
    the backward pass. Four rows go together, so that the compiler can interleave their
    independent chains of dependent operations (a transcendental function's latency, not its
    throughput, would otherwise set the pace)."""
    slope = _ld(P, sr * LANES)
    for u in range(r0, r0 + width, 4):
        b0 = u * LANES
        b1, b2, b3 = b0 + LANES, b0 + 2 * LANES, b0 + 3 * LANES
        z0, z1, z2, z3 = _ld(Z, b0), _ld(Z, b1), _ld(Z, b2), _ld(Z, b3)
        if code == 5 or code == 6:  # one exponential for the value and the derivative
            a0, d0 = _softplus(z0)
            a1, d1 = _softplus(z1)
            a2, d2 = _softplus(z2)
            a3, d3 = _softplus(z3)
            if code == 6:
                a0, a1, a2, a3 = a0 - _LOG2, a1 - _LOG2, a2 - _LOG2, a3 - _LOG2
        elif code == 7:  # Swish: one sigmoid for the value and the derivative
            s0, s1, s2, s3 = _sigmoid(z0), _sigmoid(z1), _sigmoid(z2), _sigmoid(z3)
            a0, a1, a2, a3 = z0 * s0, z1 * s1, z2 * s2, z3 * s3
            d0, d1 = (_ONE - s0) * a0 + s0, (_ONE - s1) * a1 + s1
            d2, d3 = (_ONE - s2) * a2 + s2, (_ONE - s3) * a3 + s3
        else:
            a0, a1 = _act(code, z0, slope), _act(code, z1, slope)
            a2, a3 = _act(code, z2, slope), _act(code, z3, slope)
            d0, d1, d2, d3 = z0, z1, z2, z3
        _st(A, b0, a0)
        _st(A, b1, a1)
        _st(A, b2, a2)
        _st(A, b3, a3)
        if not keep_z and (code == 5 or code == 6 or code == 7):
            _st(Z, b0, d0)
            _st(Z, b1, d1)
            _st(Z, b2, d2)
            _st(Z, b3, d3)


@njit(cache=True, error_model="numpy", forceinline=True)
def _derivative(code, g, Z, A, r0, width, P, sr):
    """g[u] *= f'(z) for u < width (a multiple of 4), every lane, from Z and A at rows r0 + u;
    four rows at a time, as in :func:`_activate`."""
    slope = _ld(P, sr * LANES)
    for u in range(0, width, 4):
        q0, r0u = u * LANES, (r0 + u) * LANES
        q1, q2, q3 = q0 + LANES, q0 + 2 * LANES, q0 + 3 * LANES
        r1, r2, r3 = r0u + LANES, r0u + 2 * LANES, r0u + 3 * LANES
        h0 = _dact(code, _ld(g, q0), _ld(Z, r0u), _ld(A, r0u), slope)
        h1 = _dact(code, _ld(g, q1), _ld(Z, r1), _ld(A, r1), slope)
        h2 = _dact(code, _ld(g, q2), _ld(Z, r2), _ld(A, r2), slope)
        h3 = _dact(code, _ld(g, q3), _ld(Z, r3), _ld(A, r3), slope)
        _st(g, q0, h0)
        _st(g, q1, h1)
        _st(g, q2, h2)
        _st(g, q3, h3)


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy", forceinline=True)
def _store_block(arr, base, c0, c1, c2, c3, c4, c5, c6, c7):
    """Store one block row: sample s's vector at ``base + s * LANES``."""
    _st(arr, base, c0)
    _st(arr, base + _O1, c1)
    _st(arr, base + _O2, c2)
    _st(arr, base + _O3, c3)
    _st(arr, base + _O4, c4)
    _st(arr, base + _O5, c5)
    _st(arr, base + _O6, c6)
    _st(arr, base + _O7, c7)


# Layouts: lane arrays are flat; parameter row p, lane l at p * LANES + l. Activity arrays (A, Z)
# and the backward buffers hold a block of BLOCK samples: unit row r, sample s at
# (r * BLOCK + s) * LANES, one vector per (row, sample).

@njit(cache=True, error_model="numpy", forceinline=True)
def _forward_block(code, P, A, Z, widths, lw, lb, ls, ao, keep_z):
    """Forward pass of a block of BLOCK samples for every lane. Activity row r of sample s sits at
    row ``r * BLOCK + s`` of A (inputs in rows ao[0]...); Z gets, in the same rows, what the
    backward pass needs (:func:`_store_sums4`, :func:`_activate`); the last layer's rows of A
    are the logits. Each output sums b + W[0] x[0] + W[1] x[1] + ... in this order; units go two
    at a time, so that each input vector loaded serves two multiply-adds."""
    n_layers = widths.shape[0] - 1
    for i in range(n_layers):
        fi, fo = widths[i], widths[i + 1]
        x0, z0 = ao[i], ao[i + 1]
        last = i == n_layers - 1
        j = 0
        while j + 1 < fo:  # two units, four samples at a time
            for s0 in range(0, BLOCK, 4):
                b, e = _ld(P, (lb[i] + j) * LANES), _ld(P, (lb[i] + j + 1) * LANES)
                c0, c1, c2, c3 = b, b, b, b
                d0, d1, d2, d3 = e, e, e, e
                wb = (lw[i] + j * fi) * LANES
                vb = wb + fi * LANES
                xb = x0 * _SW + s0 * LANES
                for k in range(fi):
                    w, v = _ld(P, wb), _ld(P, vb)
                    x_0, x_1, x_2, x_3 = _ld(A, xb), _ld(A, xb + _O1), _ld(A, xb + _O2), _ld(A, xb + _O3)
                    c0 = _fma(w, x_0, c0)
                    d0 = _fma(v, x_0, d0)
                    c1 = _fma(w, x_1, c1)
                    d1 = _fma(v, x_1, d1)
                    c2 = _fma(w, x_2, c2)
                    d2 = _fma(v, x_2, d2)
                    c3 = _fma(w, x_3, c3)
                    d3 = _fma(v, x_3, d3)
                    wb += LANES
                    vb += LANES
                    xb += _SW
                zb = (z0 + j) * _SW + s0 * LANES
                _store_sums4(code, last, A, Z, zb, c0, c1, c2, c3)
                _store_sums4(code, last, A, Z, zb + _SW, d0, d1, d2, d3)
            j += 2
        if j < fo:  # an odd width's last unit, eight samples at a time
            b = _ld(P, (lb[i] + j) * LANES)
            c0, c1, c2, c3, c4, c5, c6, c7 = b, b, b, b, b, b, b, b
            wb, xb = (lw[i] + j * fi) * LANES, x0 * _SW
            for k in range(fi):
                w = _ld(P, wb)
                c0 = _fma(w, _ld(A, xb), c0)
                c1 = _fma(w, _ld(A, xb + _O1), c1)
                c2 = _fma(w, _ld(A, xb + _O2), c2)
                c3 = _fma(w, _ld(A, xb + _O3), c3)
                c4 = _fma(w, _ld(A, xb + _O4), c4)
                c5 = _fma(w, _ld(A, xb + _O5), c5)
                c6 = _fma(w, _ld(A, xb + _O6), c6)
                c7 = _fma(w, _ld(A, xb + _O7), c7)
                wb += LANES
                xb += _SW
            zb = (z0 + j) * _SW
            _store_sums4(code, last, A, Z, zb, c0, c1, c2, c3)
            _store_sums4(code, last, A, Z, zb + _O4, c4, c5, c6, c7)
        if not last and not _in_registers(code):
            _activate(code, Z, A, z0 * BLOCK, fo * BLOCK, P, ls[i], keep_z)


@njit(cache=True, error_model="numpy")
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
            G[:] = _ZERO
            for blk in range(start, stop, BLOCK):
                # inputs, labels and gradient scale of the block's samples for every lane
                for s in range(BLOCK):
                    pos = blk + s
                    scales[s] = inv_n[bi] if pos < stop else _ZERO
                    if pos >= stop:
                        pos = blk
                    if not per_net_order:  # every lane sees the same sample
                        r = order[0, pos]
                        yl = np.float32(y[r])
                        for l in range(LANES):
                            labels[s * LANES + l] = yl
                        for k in range(n_in):
                            _st(A, (k * BLOCK + s) * LANES, _splat(X[r, k]))
                        continue
                    for l in range(LANES):
                        rows[l] = order[lane_net[l], pos]
                        labels[s * LANES + l] = np.float32(y[rows[l]])
                    r0, r1, r2, r3, r4, r5, r6, r7 = rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], rows[6], rows[7]
                    for k in range(n_in):
                        _st(A, (k * BLOCK + s) * LANES, _set8(X[r0, k], X[r1, k], X[r2, k], X[r3, k],
                                                             X[r4, k], X[r5, k], X[r6, k], X[r7, k]))
                _forward_block(code, P, A, Z, widths, lw, lb, ls, ao, False)
                # softmax cross-entropy; g1 = (p - onehot) * scale
                for s in range(BLOCK):
                    scale = scales[s]
                    yv = _ld(labels, s * LANES)
                    cmax = _ld(A, (lo * BLOCK + s) * LANES)
                    for c in range(1, n_out):
                        a = _ld(A, ((lo + c) * BLOCK + s) * LANES)
                        cmax = _sel(a > cmax, a, cmax)
                    e = _splat(_ZERO)
                    for c in range(n_out):
                        q = _exp(_ld(A, ((lo + c) * BLOCK + s) * LANES) - cmax)
                        _st(g1, (c * BLOCK + s) * LANES, q)
                        e = e + q
                    inv = _ONE / e
                    e = cmax + _log(e)
                    for c in range(n_out):
                        h = _sel(yv == np.float32(c), _ONE, _ZERO)
                        d = _ld(A, ((lo + c) * BLOCK + s) * LANES) - e
                        _sub_into_f64(m_lane, d * h * scale)
                        gi = (c * BLOCK + s) * LANES
                        _st(g1, gi, (_ld(g1, gi) * inv - h) * scale)
                # backward, layer by layer; g1 holds the gradient w.r.t. layer i's output
                for i in range(n_layers - 1, -1, -1):
                    fi, fo = widths[i], widths[i + 1]
                    x0 = ao[i]
                    for j in range(fo):
                        bb, jb = (lb[i] + j) * LANES, j * _SW
                        h0, h1, h2, h3 = _ld(g1, jb), _ld(g1, jb + _O1), _ld(g1, jb + _O2), _ld(g1, jb + _O3)
                        h4, h5, h6, h7 = _ld(g1, jb + _O4), _ld(g1, jb + _O5), _ld(g1, jb + _O6), _ld(g1, jb + _O7)
                        # the block's 8 samples summed in a fixed order (bias: a pairwise tree;
                        # weights: even and odd samples as two fused multiply-add chains), then
                        # added to the minibatch's running sum
                        _st(G, bb, _ld(G, bb) + (((h0 + h1) + (h2 + h3)) + ((h4 + h5) + (h6 + h7))))
                        wb, xb = (lw[i] + j * fi) * LANES, x0 * _SW
                        for k in range(fi):
                            even = _fma(h6, _ld(A, xb + _O6), _fma(h4, _ld(A, xb + _O4), _fma(
                                h2, _ld(A, xb + _O2), h0 * _ld(A, xb))))
                            odd = _fma(h7, _ld(A, xb + _O7), _fma(h5, _ld(A, xb + _O5), _fma(
                                h3, _ld(A, xb + _O3), h1 * _ld(A, xb + _O1))))
                            _st(G, wb, _ld(G, wb) + (even + odd))
                            wb += LANES
                            xb += _SW
                    if i > 0:
                        step = fi * LANES
                        for k in range(fi):
                            c0 = _splat(_ZERO)
                            c1, c2, c3, c4, c5, c6, c7 = c0, c0, c0, c0, c0, c0, c0
                            wb, jb = (lw[i] + k) * LANES, 0
                            for j in range(fo):
                                w = _ld(P, wb)
                                c0 = _fma(w, _ld(g1, jb), c0)
                                c1 = _fma(w, _ld(g1, jb + _O1), c1)
                                c2 = _fma(w, _ld(g1, jb + _O2), c2)
                                c3 = _fma(w, _ld(g1, jb + _O3), c3)
                                c4 = _fma(w, _ld(g1, jb + _O4), c4)
                                c5 = _fma(w, _ld(g1, jb + _O5), c5)
                                c6 = _fma(w, _ld(g1, jb + _O6), c6)
                                c7 = _fma(w, _ld(g1, jb + _O7), c7)
                                wb += step
                                jb += _SW
                            if _derivative_in_registers(code):  # the derivative before the store
                                c0, c1, c2, c3, c4, c5, c6, c7 = _times_derivative8(
                                    code, Z, A, (x0 + k) * _SW, c0, c1, c2, c3, c4, c5, c6, c7)
                            _store_block(g2, k * _SW, c0, c1, c2, c3, c4, c5, c6, c7)
                        if has_slope:
                            sb = ls[i - 1] * LANES
                            for k in range(fi):
                                xb, kb = (x0 + k) * _SW, k * _SW
                                acc = _ld(G, sb)
                                for s in range(BLOCK):
                                    zs = _ld(Z, xb + s * LANES)
                                    acc = acc + _sel(zs < _ZERO, zs, _ZERO) * _ld(g2, kb + s * LANES)
                                _st(G, sb, acc)
                        if not _derivative_in_registers(code):
                            _derivative(code, g2, Z, A, x0 * BLOCK, fi * BLOCK, P, ls[i - 1])
                        g1, g2 = g2, g1
            # L2 on hidden weights, then Adam
            if l2 != 0.0:
                for i in range(n_layers - 1):
                    for q in range(lw[i], lw[i] + widths[i] * widths[i + 1]):
                        qb = q * LANES
                        _st(G, qb, _ld(G, qb) + l2 * _ld(P, qb))
            ss, b2s = step_size[bi], bias2_sqrt[bi]
            for q in range(n_par):
                qb = q * LANES
                g, m = _ld(G, qb), _ld(M, qb)
                m = m + one_minus_beta1 * (g - m)
                v = _ld(V, qb) * beta2 + one_minus_beta2 * g * g
                _st(M, qb, m)
                _st(V, qb, v)
                _st(P, qb, _ld(P, qb) + ss * (m / (_vsqrt(v) / b2s + eps)))
        for l in range(LANES):
            k = grp * LANES + l
            if k < S:
                losses[k] = m_lane[l] / n_batches
        _scatter(P, flat, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)
        _scatter(M, exp_avg, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)
        _scatter(V, exp_avg_sq, widths, w_off, b_off, s_off, lw, lb, ls, grp, S, has_slope)


@njit(cache=True, error_model="numpy")
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
                    _st(A, (k * BLOCK + s) * LANES, _splat(X[n, k]))
            _forward_block(code, P, A, Z, widths, lw, lb, ls, ao, True)
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
        # the arrays the kernel reads and writes as 8-lane vectors start on cache lines
        self.P, self.M, self.V, self.G = (_aligned_zeros(p * LANES) for _ in range(4))
        self.A = _aligned_zeros(int(self.ao[-1]) * BLOCK * LANES)  # a block's activity
        self.Z = _aligned_zeros(int(self.ao[-1]) * BLOCK * LANES)  # and z or f'(z) (_store_sums4)
        wmax = int(self.widths.max()) * BLOCK * LANES
        self.g1, self.g2 = _aligned_zeros(wmax), _aligned_zeros(wmax)
        self.m_lane = _aligned_zeros(LANES, np.float64)
        self.rows = np.zeros(LANES, dtype=np.int64)
        self.lane_net = np.zeros(LANES, dtype=np.int64)
        self.labels = _aligned_zeros(BLOCK * LANES)  # as float32, compared with float32 classes
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
        P, A, Z = (_aligned_zeros(a.size) for a in (self.P, self.A, self.Z))
        _forward_all(self.code, flat, X, self.S, self.widths, self.w_off, self.b_off, self.s_off,
                     self.lw, self.lb, self.ls, self.ao, ob, P, A, Z, out)
        return [out[ob[i]:ob[i + 1]].reshape(self.S, N, int(w)) for i, w in enumerate(self.widths[1:])]

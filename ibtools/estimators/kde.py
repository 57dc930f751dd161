"""Kernel estimators: the layer is treated as ``T = h(X) + noise``, noise ~ N(0, sigma^2 I), and
the entropy of the resulting Gaussian mixture is bounded with pairwise distances between its
components (Kolchinsky & Tracey, 2017).

For ``N`` equiprobable inputs with activity vectors ``h_i`` (in nats; results are in bits)::

    I_upper(X;T) = -1/N sum_i log( 1/N sum_j exp(-|h_i - h_j|^2 / (2 sigma^2)) )   (KL bound)
    I_lower(X;T) = same with 8 sigma^2 in place of 2 sigma^2                     (Bhattacharyya)

Both lie in ``[0, log N]``: the upper bound tends to ``log2 N`` bits as ``sigma^2 -> 0`` (every
input its own cluster) and to 0 as ``sigma^2`` grows. I(T;Y) is the same bound on H(T) minus
the class-weighted bounds on H(T|Y=y) computed within each class; a difference of bounds is an
estimate, not a bound. What these numbers measure is how the activity clusters at the length
scale sigma, which is chosen by the analyst.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ._core import (
    LN2,
    InformationEstimate,
    check_positive_float,
    dense_rank,
    finish,
    prepare,
    row_codes,
    value_ranks,
)
from ..validation import check_int

__all__ = ["kde", "akde", "AKDE_ALPHA", "BOUNDS", "ENGINES", "akde_noise_var"]

BOUNDS = ("upper", "lower")
#: ``engine`` of :func:`kde` and :func:`akde`: the reference (blocks of torch matrix products) or
#: the compiled CPU kernel of :mod:`ibtools.estimators.kde_fused` (imported on first use)
ENGINES = ("torch", "fused")

#: Default constant of adaptive KDE: noise variance = AKDE_ALPHA * (largest |activity| of the
#: layer). The paper gives no value. 0.01 makes the noise variance equal to the one in the
#: paper's own (fixed-noise) KDE code, 0.01, for layers whose activity peaks at 1 (tanh, the
#: softmax output), and scales it up with the activity for unbounded layers. The book shows how
#: the results move with this constant.
AKDE_ALPHA = 0.01

_DEFAULT_CHUNK = 256  # rows of the pairwise matrix per block: 4 MiB for 4096 distinct rows
_MIN_EXPONENT = -80.0
#: worst-case absolute error (nats) allowed in any kernel exponent; it bounds the error of the
#: estimates by _EXPONENT_TOL / ln 2 bits (float32 products are used only when they meet it)
_EXPONENT_TOL = 1e-4
_DIRECT_ELEMENTS = 1 << 21  # pairwise differences formed at a time on the direct path


def _unique_rows(activity: torch.Tensor) -> torch.Tensor:
    """Per member: ids (S, N) numbering the distinct rows 0..M_s-1, on the activity's device."""
    S, N, d = activity.shape
    a = activity.cpu().numpy()
    per_column = value_ranks(np.ascontiguousarray(a.transpose(0, 2, 1)).reshape(S * d, N))
    per_column = per_column.reshape(S, d, N).transpose(0, 2, 1)
    ids = dense_rank(row_codes(per_column))
    return torch.from_numpy(ids).to(activity.device)


def _times_pow2(t: torch.Tensor, k: int) -> torch.Tensor:
    """``t * 2**k`` exactly (barring underflow), in two steps so that no factor overflows."""
    half = k // 2
    return t * math.ldexp(1.0, half) * math.ldexp(1.0, k - half)


def _normalized_rows(uniq: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """Centred distinct rows as ``w * 2**e`` with ``max |w|`` in [0.5, 1); None if they coincide.

    Scaling by powers of two is exact, so the expanded square below gives the same float32
    numbers as without it whenever those did not over- or underflow; with it, no magnitude of
    activity or noise variance overflows."""
    peak = float(uniq.abs().max())
    if peak == 0.0:
        return None
    e0 = math.frexp(peak)[1]
    v = _times_pow2(uniq, -e0)
    v = v - v.mean(0)  # centring limits cancellation in the expanded square
    spread = float(v.abs().max())
    if spread == 0.0:
        return None
    e1 = math.frexp(spread)[1]
    return _times_pow2(v, -e1), e0 + e1


def _kernel_scale(k_var: float, e: int) -> tuple[float, float]:
    """``g = 2**(2e) / k_var`` (kernel exponents are ``-g |w_i - w_j|^2``) and ``log g``."""
    log_g = 2 * e * LN2 - math.log(k_var)
    inv = 1.0 / k_var if k_var > 1e-300 else math.inf
    try:
        g = math.ldexp(inv, 2 * e) if math.isfinite(inv) else math.exp(min(log_g, 709.0))
    except OverflowError:
        g = math.inf
    return g, log_g


def _choose_method(d: int, log_q: float) -> str:
    """The cheapest way to get every kernel exponent with absolute error <= _EXPONENT_TOL.

    ``q`` is the largest scaled squared norm ``g |w_i|^2``. The expanded square
    ``g(|w_i|^2 - 2 w_i.w_j + |w_j|^2)`` in a float type with unit roundoff ``u`` errs by at most
    about ``4 (d + 2) u q`` (a dot product of length d + 2 with terms up to ``q``); when that
    exceeds the tolerance even in float64, the differences are formed directly."""
    for method, roundoff in (("float32", 2.0**-24), ("float64", 2.0**-53)):
        if log_q + math.log(4 * (d + 2) * roundoff) <= math.log(_EXPONENT_TOL):
            return method
    return "direct"


def _exponent_blocks(w: torch.Tensor, g: float, method: str, rows: int):
    """Yield ``(start, stop, exponents)``: kernel exponents ``-g |w_i - w_j|^2`` of rows
    ``start:stop`` against rows ``start:`` (float32 or float64; the caller zeroes the diagonal)."""
    M, d = w.shape
    if method == "direct":
        g = min(g, 1e300)  # beyond it every distinct pair's term underflows anyway
        start = 0
        while start < M:
            n = M - start
            stop = min(M, start + max(1, min(rows, _DIRECT_ELEMENTS // (n * d))))
            diff = w[start:stop, None, :] - w[None, start:, :]
            yield start, stop, diff.square_().sum(-1).mul_(-g)
            start = stop
        return
    dtype = torch.float32 if method == "float32" else torch.float64
    scale = -g  # scale * |w_i - w_j|^2 as one matrix product: [-2 s w_i, s |w_i|^2, s] . [w_j, 1, |w_j|^2]
    sq = (w * w).sum(1, keepdim=True)
    one = torch.ones_like(sq)
    left = torch.cat([-2.0 * scale * w, scale * sq, scale * one], 1).to(dtype)
    right = torch.cat([w, one, sq], 1).to(dtype)
    buffer = torch.empty(min(rows, M) * M, dtype=dtype, device=w.device)
    for start in range(0, M, rows):
        stop = min(M, start + rows)
        r, n = stop - start, M - start
        block = buffer[: r * n].view(r, n)
        torch.mm(left[start:stop], right[start:].T, out=block)
        yield start, stop, block


def _fused_applies(act: torch.Tensor) -> bool:
    """Whether ``engine="fused"`` can take this activity: float32 on the CPU."""
    return act.device.type == "cpu" and act.dtype == torch.float32


def _member_information(act: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor, n_classes: int,
                        noise_var: float, bound: str, chunk_size: int | None,
                        engine: str = "torch") -> tuple[float, float]:
    """I(X;T) and I(T;Y) estimates in nats for one network (act: (N, d), ids: (N,))."""
    device = act.device
    N, d = act.shape
    M = int(ids.max()) + 1
    # one representative per distinct row, and how often each occurs overall and per class
    uniq = torch.zeros(M, d, dtype=torch.float64, device=device).index_copy_(0, ids, act.to(torch.float64))
    weights = torch.zeros(n_classes + 1, M, dtype=torch.float64, device=device)
    ones = torch.ones(N, dtype=torch.float64, device=device)
    weights[0].index_add_(0, ids, ones)
    weights[1:].index_put_((labels, ids), ones, accumulate=True)
    totals = weights.sum(1)
    p_y = totals[1:] / N

    normalized = _normalized_rows(uniq) if M > 1 else None
    if normalized is None:  # one cluster: every kernel sum is the total weight, I = 0
        return 0.0, 0.0
    w, e = normalized
    # the bounds depend on activity and variance only through |h_i - h_j|^2 / variance: work
    # in units where the rows are O(1) and carry the scale in g (no over- or underflow)
    k_var = (2.0 if bound == "upper" else 8.0) * noise_var
    fused = None
    if engine == "fused" and _fused_applies(act):
        from .kde_fused import float32_rows, fused_kernel_sums, fused_scale_ok

        scaled = float32_rows(torch.zeros(M, d, dtype=torch.float32).index_copy_(0, ids, act))
        g32 = _kernel_scale(k_var, scaled[1])[0] if scaled is not None else math.inf
        if fused_scale_ok(g32):
            fused = torch.from_numpy(fused_kernel_sums(scaled[0], weights.numpy(), g32))
    if engine == "fused" and fused is None:
        why = ("float32 activity on the CPU" if not _fused_applies(act) else
               "a noise variance within float32's reach of the activity's scale")
        warnings.warn(f"engine='fused' needs {why}; this {act.dtype} activity on {act.device} (noise variance "
                      f"{noise_var:.3g}) went to the torch path, whose numbers it returns", stacklevel=4)
    mass = _torch_kernel_sums(w, e, weights, k_var, chunk_size) if fused is None else fused
    return _information(mass, weights, totals, p_y)


def _torch_kernel_sums(w: torch.Tensor, e: int, weights: torch.Tensor, k_var: float,
                       chunk_size: int | None) -> torch.Tensor:
    """Kernel sums (float32, shape (n_classes + 1, M)) of the normalized rows ``w * 2**e`` with
    kernel variance ``k_var``, from blocks of matrix products (see :func:`kde`'s notes)."""
    device = w.device
    M, d = w.shape
    g, log_g = _kernel_scale(k_var, e)
    log_q = log_g + math.log(float((w * w).sum(1).max()))
    method = _choose_method(d, log_q)

    w32 = weights.to(torch.float32)
    mass = torch.zeros(weights.shape[0], M, dtype=torch.float32, device=device)
    # the kernel matrix is symmetric: compute each block of the upper triangle once and use it
    # for both its rows and its columns
    rows = chunk_size or _DEFAULT_CHUNK
    buffer32 = None if method == "float32" else torch.empty(min(rows, M) * M, dtype=torch.float32, device=device)
    for start, stop, block in _exponent_blocks(w, g, method, rows):
        r, n = block.shape
        if buffer32 is not None:  # float64 exponents: exp in float32 (relative error ~6e-8 per term)
            block = buffer32[: r * n].view(r, n).copy_(block)
        block[:, :r].diagonal().zero_()  # a row's distance to itself is exactly 0
        # exp(-80) ~ 2e-35: below it terms are negligible next to the diagonal's 1, and
        # clamping avoids slow subnormal arithmetic
        kernel = block.clamp_(_MIN_EXPONENT, 0.0).exp_()
        mass[:, start:stop] += w32[:, start:] @ kernel.T
        if stop < M:
            mass[:, stop:] += w32[:, start:stop] @ kernel[:, r:]
    return mass


def _information(mass: torch.Tensor, weights: torch.Tensor, totals: torch.Tensor,
                 p_y: torch.Tensor) -> tuple[float, float]:
    """I(X;T) and I(T;Y) in nats from the kernel sums ``mass`` (float32 from the torch path, float64
    from the fused kernel; shape (n_classes + 1, M))."""
    log_mass = torch.log(mass.to(torch.float64))
    # rows outside a class have zero weight there (and possibly log_mass = -inf): skip them
    weighted = torch.where(weights > 0, weights * log_mass, torch.zeros_like(log_mass)).sum(1)
    info = torch.log(totals) - weighted / totals  # entry 0: all inputs; 1..C: within each class
    # every kernel sum lies between a row's own weight and the total: 0 <= info <= log(total)
    # hold exactly, clipping removes float32 rounding
    info = torch.minimum(info.clamp_min(0.0), torch.log(totals))
    i_xt = info[0]
    i_ty = info[0] - (p_y * info[1:]).sum()
    return float(i_xt), float(i_ty)


def _kde_prepared(p, noise_vars, bound: str, chunk_size: int | None, engine: str = "torch") -> InformationEstimate:
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
    ids = _unique_rows(p.activity)
    S = p.activity.shape[0]
    i_xt = torch.empty(S, dtype=torch.float64)
    i_ty = torch.empty(S, dtype=torch.float64)
    for k in range(S):
        x, y = _member_information(p.activity[k], ids[k], p.labels, p.n_classes, float(noise_vars[k]), bound,
                                   chunk_size, engine)
        i_xt[k], i_ty[k] = x / LN2, y / LN2
    return finish(p, i_xt, i_ty)


def _check_chunk(chunk_size):
    return None if chunk_size is None else check_int(chunk_size, "chunk_size", 1)


def _check_engine(engine):
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine


def kde(activity, labels, noise_var: float, bound: str = "upper", chunk_size: int | None = None,
        engine: str = "torch") -> InformationEstimate:
    """Kolchinsky-Tracey pairwise-distance bounds with a fixed noise variance (Saxe et al. 2018).

    Parameters
    ----------
    activity : array or tensor, shape (n_samples, n_units) or (n_networks, n_samples, n_units)
        One layer's activity on every distinct input; a torch tensor is processed on its own
        device (GPU included).
    labels : array of int, shape (n_samples,)
    noise_var : float
        Variance sigma^2 of the Gaussian noise added to every unit, in squared activity units.
        Saxe et al. used 1e-3 for this task (1e-1 for MNIST).
    bound : {"upper", "lower"}
        ``"upper"``: KL bound on the mixture entropy (over-estimates I(X;T) of the noisy layer);
        ``"lower"``: Bhattacharyya bound (under-estimates it).
    chunk_size : int, optional
        Rows of the pairwise-distance matrix computed at a time (default 256). Memory is
        O(chunk_size * n_distinct_rows): 4 MiB for 4096 distinct rows. Torch path only.
    engine : {"torch", "fused"}
        ``"torch"`` (default, the reference, which computed every stored result): blocks of
        matrix products, on the activity's device. ``"fused"``: one compiled CPU pass
        (:mod:`ibtools.estimators.kde_fused`), 2.3-2.7x as fast over twelve layers of the
        paper's network (tanh and ReLU, 2-10 units; 1.8-3.1x per layer, least for the widest),
        within ``(80 (d + 4) + 75) 2**-24 / ln 2`` bits of exact arithmetic for I(X;T) and
        twice that for I(T;Y) (d: units; 1.0e-4 bits for 10 units), as the torch path is within
        about 1.5e-4 bits, but not the torch path's bits. It takes float32 activity on the
        CPU; other activity (float64, on a GPU) and scales float32 cannot carry (a noise
        variance below ~1e-30 of the squared activity) go to the torch path, with a warning
        (once per place in the code).

    Returns
    -------
    InformationEstimate
        ``(i_xt, i_ty)`` in bits; ``i_xt`` in [0, log2 N].

    Notes
    -----
    Identical rows (dead or saturated units make many) are merged and weighted by their counts,
    so the cost is quadratic in the number of *distinct* rows. The bounds depend on activity
    and variance only through squared distances over the variance, so the centred rows are
    rescaled by a power of two to magnitude ~1 and the scale is carried separately: any finite
    activity and any positive variance give finite results in [0, log2 N], never NaN, and the
    lower bound never exceeds the upper. Scaled squared distances come from one matrix product
    per block, in float32 when a worst-case bound on the rounding error of every kernel exponent
    (``4 (d + 2) u q``, ``u`` the unit roundoff, ``q`` the largest scaled squared norm) is below
    1e-4 nats, else in float64, else (huge activity next to tiny variance) from the differences
    themselves; so every estimate is within ~1.5e-4 bits of exact arithmetic, usually far closer.
    Only the upper triangle of the symmetric kernel matrix is computed, and the kernel sums for
    all inputs and for every class come from two more small matrix products per block. Kernel
    values below exp(-80) are raised to it, an absolute error below N * 2e-35 on sums that are
    at least 1.
    """
    noise_var = check_positive_float(noise_var, "noise_var")
    chunk_size = _check_chunk(chunk_size)
    engine = _check_engine(engine)
    p = prepare(activity, labels)
    return _kde_prepared(p, [noise_var] * p.activity.shape[0], bound, chunk_size, engine)


def akde_noise_var(activity: torch.Tensor, alpha: float) -> torch.Tensor:
    """Adaptive noise variance per network: ``alpha * max |activity|`` over the layer, shape (S,).

    A layer that is all zeros gets ``alpha`` (any positive value gives I = 0 there).
    """
    peak = activity.abs().reshape(activity.shape[0], -1).amax(1).to(torch.float64)
    return alpha * torch.where(peak > 0, peak, torch.ones_like(peak))


def akde(activity, labels, alpha: float = AKDE_ALPHA, bound: str = "upper", chunk_size: int | None = None,
         engine: str = "torch") -> InformationEstimate:
    """Adaptive KDE (Chelombiev et al. 2019): the noise variance follows the layer's activity.

    Same bounds as :func:`kde`, with ``noise_var = alpha * max |activity|`` computed per layer,
    per network and per call (so per epoch). The paper states only that the variance is
    proportional to the layer's maximum activity; the constant ``alpha`` is ours (see
    :data:`AKDE_ALPHA`).

    Parameters
    ----------
    activity, labels, bound, chunk_size, engine
        As for :func:`kde`.
    alpha : float
        Proportionality constant, > 0, in activity units (variance per unit of maximum activity).

    Returns
    -------
    InformationEstimate
        In bits. Upper bound by default (biased high relative to the noisy layer's true I).
        Not invariant to rescaling the activity: multiplying it by c scales sigma^2 by c but
        squared distances by c^2.
    """
    alpha = check_positive_float(alpha, "alpha")
    chunk_size = _check_chunk(chunk_size)
    engine = _check_engine(engine)
    p = prepare(activity, labels)
    noise_vars = akde_noise_var(p.activity, alpha).cpu().numpy()
    return _kde_prepared(p, noise_vars, bound, chunk_size, engine)

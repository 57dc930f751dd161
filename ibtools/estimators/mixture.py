"""Mutual information of a noise-injected layer, by Monte Carlo over its Gaussian mixture
(after Goldfeld et al., ICML 2019).

A noisy layer is ``T = S + Z``: ``S`` the clean (noiseless) output of the layer for the input,
``Z ~ N(0, sigma^2 I_d)`` drawn afresh at every evaluation. When the layer's own noise is the
only noise given the input (the first noisy layer, or a deeper one conditioned on the earlier
layers' noise), ``T | X = x_i ~ N(S_i, sigma^2 I)`` and, for inputs uniform over the N rows::

    I(X;T) = h(T) - h(T|X),   h(T|X) = d/2 log2(2 pi e sigma^2),   T ~ (1/N) sum_i N(S_i, sigma^2 I)

``h(T)`` is the differential entropy of an equal-weight Gaussian mixture, which has no closed
form: Kolchinsky & Tracey's pairwise bounds (:func:`ibtools.estimators.kde` with
``noise_var = sigma^2``) bracket it, and this module estimates it without bias by Monte Carlo,
with a standard error. I(T;Y) = h(T) - sum_y p(y) h(T|Y=y) uses the class-conditional mixtures.

Estimator (per network). Means are taken in units of sigma, ``u_i = S_i / sigma``, and repeated
(mean, label) pairs are merged with weights ``w_c``. Samples are *stratified*: ``m`` draws
``t = u_c + z``, ``z ~ N(0, I)``, from every component ``c``. For each draw::

    A_j(t) = t . u_j - |u_j|^2 / 2                   (log-density up to a term common to all j)
    L(t)   = logsumexp_j (log w_j + A_j(t))           (log p(t) + |t|^2/2 + const)
    I(X;T) = E[ A_c(t) - L(t) ]                       (component c that t was drawn from)
    I(T;Y) = E[ logsumexp_{j in y_c} (log w_j/p(y_c) + A_j(t)) - L(t) ]

The first identity is ``I = E[log p(t|x) - log p(t)]``. Estimating h(T) as the mean of
``-log p(t)`` and subtracting the closed-form h(T|X) would carry the term ``|z|^2/2`` (d/2
nats^2 of variance per draw, for nothing); in the paired form it cancels exactly, and h(T) is
reported as ``h(Z) + E[A_c(t) - L(t)]`` using ``E|z|^2/2 = d/2``. With K draws of the earlier
layers' noise per input (deeper layers, see :func:`mixture_information`), ``p(t|x)`` is the
mixture of that input's K components. ``A`` is one matrix product per block of draws, in
float32 where a worst-case bound on its rounding error is below 1e-4 nats, else in float64 (see
:func:`mixture_information` for the error bound). The estimate is ``sum_c w_c mean_k f(c, k)``
and its standard error ``sqrt(sum_c w_c^2 s_c^2 / m)``, ``s_c^2`` the sample variance of the
``m`` draws of component ``c`` (so ``m >= 2``).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import torch

from ._core import LN2, InformationEstimate, check_positive_float, dense_rank, finish, prepare, row_codes
from .exact import distinct_row_ids
from ..validation import as_generator, check_int

__all__ = ["mixture", "mixture_information", "mixture_bounds", "MixtureEstimate", "gaussian_entropy_bits",
           "CLEAN_MEANS_ESTIMATORS"]

#: default target standard error of each estimate, bits
TARGET_SE = 0.05
#: worst-case absolute error (nats) allowed in any log-density exponent A_j(t); float32 products
#: are used only when a bound on their rounding error meets it, else float64, else differences
_EXPONENT_TOL = 1e-4
_MIN_EXPONENT = -80.0  # exp(-80) ~ 1.8e-35: smaller terms are raised to it
_SUM_CHUNK = 256  # terms per float32 partial sum of the mixture densities
_BLOCK_ELEMENTS = 1 << 20  # draws x components per block (4 MiB in float32)
_PILOT_DRAWS = 512  # total draws of the first round when the number of draws adapts
_MAX_DRAWS = 1 << 21  # total draws at most when adapting to target_se (then a warning)


class MixtureEstimate(NamedTuple):
    """Monte Carlo information of a noisy layer, in bits, with standard errors.

    ``i_xt``, ``i_ty``: I(X;T) and I(T;Y); ``se_xt``, ``se_ty``: their Monte Carlo standard
    errors; ``h_t``: the differential entropy h(T) (bits, depends on the activity's units) and
    ``se_h`` its standard error; ``n_draws``: noise draws per mixture component.
    """

    i_xt: float
    i_ty: float
    se_xt: float
    se_ty: float
    h_t: float
    se_h: float
    n_draws: int


def gaussian_entropy_bits(d: int, noise_std: float) -> float:
    """h(N(0, sigma^2 I_d)) = d/2 log2(2 pi e sigma^2), in bits: h(T|X) of a noisy layer."""
    return 0.5 * d * math.log2(2.0 * math.pi * math.e) + d * math.log2(noise_std)


def _check_sampling(n_samples, target_se):
    if n_samples is not None:
        n_samples = check_int(n_samples, "n_samples (noise draws per mixture component)", 2)
    if target_se is not None:
        target_se = check_positive_float(target_se, "target_se")
    if n_samples is None and target_se is None:
        raise ValueError("give n_samples (draws per component) or target_se (bits), not neither")
    return n_samples, target_se


class _Components(NamedTuple):
    u: np.ndarray  # (n, d) float64 means in units of sigma, centred
    log_w: np.ndarray  # (n,) log weight of each component (sums to 1)
    x_groups: np.ndarray  # (G, gx) column indices of each X-group, padded with n
    x_of: np.ndarray  # (n,) X-group of each component
    log_w_in_x: np.ndarray  # (n,) log of w_j / W(X-group of j)
    y_groups: np.ndarray  # (C, gy) column indices of each class, padded with n
    y_of: np.ndarray  # (n,) class of each component
    log_w_in_y: np.ndarray  # (n,) log of w_j / p(class of j)
    singleton_x: bool  # every X-group is one mean (K = 1): p(t|x) is the component's Gaussian
    h_x: float  # entropy (nats) of the X-groups' weights: upper limit of I(X;T)
    h_y: float  # entropy (nats) of the classes: upper limit of I(T;Y)


def _group_table(group_of: np.ndarray, n: int) -> np.ndarray:
    """(G, size of largest group) column indices per group, padded with the sentinel n."""
    order = np.argsort(group_of, kind="stable")
    counts = np.bincount(group_of)
    G, width = counts.size, int(counts.max())
    table = np.full((G, width), n, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = np.arange(n) - np.repeat(starts, counts)
    table[group_of[order], pos] = order
    return table


def _entropy_nats(weights: np.ndarray) -> float:
    w = weights[weights > 0]
    return float(-(w * np.log(w)).sum())


def _components(means: np.ndarray, labels: np.ndarray, n_classes: int, noise_std: float) -> _Components:
    """Components of the mixture from means (K, N, d) (K draws of the earlier layers' noise)."""
    K, N, d = means.shape
    flat = means.reshape(K * N, d)
    mean_id = distinct_row_ids(flat[None])[0]
    y = np.tile(labels, K)
    x = mean_id if K == 1 else np.tile(np.arange(N), K)  # K = 1: inputs with equal means share p(t|x)
    x = dense_rank(x[None])[0]
    key = dense_rank(row_codes(np.stack([mean_id, x, y], 1)[None]))[0]
    _, first, counts = np.unique(key, return_index=True, return_counts=True)  # key is 0..n-1
    # components in the order of their first input (not of the row numbering), so that with
    # a fixed seed each input keeps its noise draws from one call (epoch) to the next
    order = np.argsort(first, kind="stable")
    first, counts = first[order], counts[order]
    n = first.size
    counts = counts.astype(np.float64)
    w = counts / counts.sum()
    with np.errstate(over="ignore", invalid="ignore"):
        u = flat[first].astype(np.float64) / noise_std
    if not np.isfinite(u).all():
        raise ValueError(
            f"means / noise_std overflows float64 (largest |mean| {float(np.abs(flat).max()):.3g}, "
            f"noise_std {noise_std:.3g}); the noise is too small for these means"
        )
    u -= (w[:, None] * u).sum(0)  # centring: the estimates are translation invariant
    x_of, y_of = x[first], y[first]
    w_x = np.bincount(x_of, weights=w)
    w_y = np.bincount(y_of, weights=w, minlength=n_classes)
    with np.errstate(divide="ignore"):
        log_w_y = np.log(w_y)
    return _Components(
        u=u, log_w=np.log(w),
        x_groups=_group_table(x_of, n), x_of=x_of, log_w_in_x=np.log(w) - np.log(w_x)[x_of],
        y_groups=_group_table(y_of, n), y_of=y_of, log_w_in_y=np.log(w) - log_w_y[y_of],
        singleton_x=K == 1, h_x=_entropy_nats(w_x), h_y=_entropy_nats(w_y),
    )


def _method(d: int, t_norm: float, u_norm: float) -> str:
    """float32, float64 or direct differences: the cheapest way to get every ``A_j(t)`` (and the
    log-sum-exps built from it) within ``_EXPONENT_TOL`` nats.

    ``A_j(t) = [t, 1] . [u_j, -|u_j|^2/2]`` is a dot product of length d + 1 whose terms sum in
    magnitude to at most ``q = |t| |u_j| + |u_j|^2 / 2``; in a float type with unit roundoff
    ``eps`` it errs by at most about ``(d + 3) eps q`` (inputs rounded once, then d + 1 products
    and sums), and so does each log-sum-exp (1-Lipschitz in the exponents, plus its own rounding
    of a value below ``q``). A difference of two of them errs by at most twice that."""
    q = t_norm * u_norm + 0.5 * u_norm**2 + 1.0
    for method, eps in (("float32", 2.0**-24), ("float64", 2.0**-53)):
        if 2.0 * (d + 4) * eps * q <= _EXPONENT_TOL:
            return method
    return "direct"


def _draw_terms(comp: _Components, z: np.ndarray, rows_of: np.ndarray, device) -> np.ndarray:
    """Per-draw terms (3, R): I(X;T), I(T;Y) and h(T) - h(Z) terms in nats, for draws
    ``t = u[rows_of] + z`` (z: (R, d) standard normal).

    Per block of draws: the exponents ``A`` (float32 or float64 matrix product, or differences),
    their row maximum, ``exp(A - max)`` in float32 (relative error ~1e-7 per term), and the
    weighted sums over all components and each class: float32 sums of at most ``_SUM_CHUNK``
    positive terms (relative error <= 256 * 2**-24 = 1.5e-5 each), added in float64; (K > 1)
    each input's K draws in float64."""
    u = comp.u
    n, d = u.shape
    t = u[rows_of] + z
    method = _method(d, float(np.sqrt((t * t).sum(1).max())), float(np.sqrt((u * u).sum(1).max())))
    dtype = torch.float32 if method == "float32" else torch.float64
    U = torch.from_numpy(u).to(device)
    right = torch.cat([U, -0.5 * (U * U).sum(1, keepdim=True)], 1).to(dtype)  # (n, d + 1)
    # weights of each component in the whole mixture and in its class's mixture: (n, 1 + C)
    w = np.exp(comp.log_w)
    n_classes = comp.y_groups.shape[0]
    sums = np.zeros((n, 1 + n_classes))
    sums[:, 0] = w
    sums[np.arange(n), 1 + comp.y_of] = np.exp(comp.log_w_in_y)
    sums = torch.from_numpy(sums).to(device=device, dtype=torch.float32)
    n_main = (n // _SUM_CHUNK) * _SUM_CHUNK
    sums_main = sums[:n_main].reshape(n_main // _SUM_CHUNK, _SUM_CHUNK, 1 + n_classes)
    y_of = torch.from_numpy(comp.y_of).to(device)
    grouped_x = comp.x_groups.shape[1] > 1 and not comp.singleton_x
    if grouped_x:
        x_table = torch.from_numpy(np.minimum(comp.x_groups, n - 1)).to(device)
        w_in_x = torch.from_numpy(np.append(np.exp(comp.log_w_in_x), 0.0)[comp.x_groups]).to(device)
        x_of = torch.from_numpy(comp.x_of).to(device)
    out = np.empty((3, t.shape[0]), dtype=np.float64)
    R = t.shape[0]
    rows = max(1, _BLOCK_ELEMENTS // max(n, 1))
    if method == "direct":
        rows = max(1, rows // max(d, 1))
    for start in range(0, R, rows):
        stop = min(R, start + rows)
        tb = torch.from_numpy(t[start:stop]).to(device)
        c = torch.from_numpy(rows_of[start:stop]).to(device)
        if method == "direct":  # A_j(t) - |t|^2/2 = -|t - u_j|^2/2, from the differences (float64)
            A = -0.5 * (tb[:, None, :] - U[None, :, :]).square().sum(-1)
        else:
            left = torch.cat([tb, torch.ones(stop - start, 1, dtype=tb.dtype, device=device)], 1).to(dtype)
            A = left @ right.T  # (r, n)
        top = A.amax(1, keepdim=True)
        A -= top  # every exponent now <= 0, the largest 0
        own = A.gather(1, c[:, None])[:, 0].double()
        E = A.clamp(min=_MIN_EXPONENT).to(torch.float32).exp_()  # no subnormals (slow)
        r = stop - start
        mass = (E[:, n_main:] @ sums[n_main:]).double()  # (r, 1 + C): the last < 256 terms
        if n_main:
            chunks = E[:, :n_main].reshape(r, n_main // _SUM_CHUNK, _SUM_CHUNK).transpose(0, 1)
            mass += torch.bmm(chunks, sums_main).double().sum(0)
        log_total = mass[:, 0].log()
        log_class = mass.gather(1, 1 + y_of[c][:, None])[:, 0].log()
        if grouped_x:  # p(t | x) is the mixture of that input's K draws
            g = x_of[c]
            log_x = (E.gather(1, x_table[g]).double() * w_in_x[g]).sum(1).log()
        else:  # p(t | x) is the component's own Gaussian
            log_x = own
        out[0, start:stop] = (log_x - log_total).cpu().numpy()
        out[1, start:stop] = (log_class - log_total).cpu().numpy()
        out[2, start:stop] = (own - log_total).cpu().numpy()
    return out


def _stratified(terms: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """terms (3, m, n): estimates sum_c w_c mean_k and standard errors sqrt(sum_c w_c^2 s_c^2 / m)."""
    m = terms.shape[1]
    mean = terms.mean(1) @ w
    var = terms.var(1, ddof=1)
    return mean, np.sqrt((var @ (w * w)) / m)


def _one_network(means: np.ndarray, labels: np.ndarray, n_classes: int, noise_std: float,
                 n_samples, target_se, rng: np.random.Generator, device) -> MixtureEstimate:
    K, N, d = means.shape
    comp = _components(means, labels, n_classes, noise_std)
    n = comp.u.shape[0]
    w = np.exp(comp.log_w)
    m = n_samples if n_samples is not None else max(2, -(-_PILOT_DRAWS // n))
    chunks = []
    done = 0
    while True:
        z = rng.standard_normal((m - done, n, d))  # stratified: m - done more draws per component
        rows_of = np.tile(np.arange(n), m - done)
        chunks.append(_draw_terms(comp, z.reshape(-1, d), rows_of, device).reshape(3, m - done, n))
        done = m
        terms = np.concatenate(chunks, 1)
        est, se = _stratified(terms, w)
        if n_samples is not None:
            break
        worst = max(se[0], se[1]) / LN2
        if worst <= target_se:
            break
        if m * n >= _MAX_DRAWS:
            warnings.warn(
                f"mixture: standard error {worst:.3g} bits after {m * n} draws is above target_se={target_se}; "
                "reporting it as is (pass n_samples to fix the number of draws)", RuntimeWarning, stacklevel=3)
            break
        need = math.ceil(1.2 * m * (worst / target_se) ** 2)  # SE ~ 1/sqrt(m), 20% margin
        m = int(min(max(need, m + 1), max(m + 1, _MAX_DRAWS // n)))
    i_xt = float(np.clip(est[0], 0.0, comp.h_x)) / LN2
    i_ty = float(np.clip(est[1], 0.0, comp.h_y)) / LN2
    h_t = est[2] / LN2 + gaussian_entropy_bits(d, noise_std)
    return MixtureEstimate(i_xt, i_ty, float(se[0] / LN2), float(se[1] / LN2), float(h_t), float(se[2] / LN2), int(m))


def mixture_information(means, labels, noise_std: float, n_samples: int | None = None,
                        target_se: float | None = TARGET_SE, seed=0) -> MixtureEstimate:
    """I(X;T), I(T;Y) and h(T) of a noise-injected layer, by Monte Carlo, with standard errors.

    Parameters
    ----------
    means : array or tensor, shape (n_samples, n_units) or (n_draws, n_samples, n_units)
        The **clean** (noiseless) output ``S_i`` of the layer for every input, i.e. the mean of
        ``T | X = x_i``; never the noisy activity itself. With a leading axis of ``K`` draws, draw
        ``k`` holds the clean means of this layer computed from the ``k``-th sampled draw of the
        earlier layers' noise (see Notes).
    labels : array of int, shape (n_samples,)
    noise_std : float
        Standard deviation sigma > 0 of the layer's own Gaussian noise, in activity units.
    n_samples : int, optional
        Noise draws per mixture component (>= 2). Given: exactly that many, and the standard
        error is whatever it comes out as. Default: chosen adaptively to reach ``target_se``.
    target_se : float, optional
        Standard error (bits) that both I(X;T) and I(T;Y) must reach when ``n_samples`` is None
        (default 0.05). Draws are added in rounds; if ``2**21`` draws in all do not reach it, a
        ``RuntimeWarning`` says so and the estimate is returned with its actual standard error.
    seed : int or numpy.random.Generator
        Randomness of the draws. The same seed gives the same numbers. Draws are made
        component by component in the order of the inputs, so with a fixed seed and distinct
        means input ``i`` gets the same noise draws at every call: estimates recorded at
        successive epochs share their random numbers, and the change from one epoch to the next
        carries far less Monte Carlo noise than either SE (about 25x less in the test).

    Returns
    -------
    MixtureEstimate
        ``(i_xt, i_ty, se_xt, se_ty, h_t, se_h, n_draws)``, bits. The Monte Carlo estimates are
        unbiased for the quantities in Notes (before clipping ``i_xt`` to ``[0, H]`` and ``i_ty``
        to ``[0, H(Y)]``, which only moves them towards the truth); on top of the standard error,
        floating-point error is at most 2.3e-4 nats = 3.4e-4 bits per estimate: exponents are
        computed in float32 only where a worst-case bound on their error is below 1e-4 nats,
        else in float64, else from the differences themselves (two log-densities per draw,
        2e-4 nats), and the densities are float32 sums of at most 256 terms added in float64
        (relative error below 1.6e-5 each, so 3e-5 nats). Terms below ``exp(-80)`` times the
        largest are raised to it (subnormal floats are slow): a relative change of a density of
        at most ``n^2 exp(|z|^2/2 - 80)`` for ``n`` components, below 1e-9 for n = 4096 unless
        the draw's ``|z|^2 > 85`` (probability 5e-13 per draw for 12 units).

    Notes
    -----
    *One draw (K = 1), the layer's own noise the only noise given X*: ``T|X = x_i ~
    N(S_i, sigma^2 I)`` exactly, and the result is unbiased for the true I(X;T) and I(T;Y) of the
    noisy layer under the uniform distribution over the rows. Inputs with identical means are
    indistinguishable through T, so I(X;T) <= log2 of the number of distinct means.

    *Deeper noisy layers*: given X, the earlier layers' noise makes the law of ``T_l`` given ``X`` a
    mixture, not a Gaussian. Following the sample-propagation estimator of Goldfeld et al. (2019), pass ``K``
    draws of the clean means of layer l, each computed from one sampled draw of the noisy layer
    l-1 (so from one sample of all the earlier noise); then ``p(t|x_i)`` is taken as the
    equal-weight mixture of its K Gaussians, ``p(t)`` as the mixture of all ``K N``, and the
    estimate is ``E[log p(t|x) - log p(t)]`` under these. That is exact Monte Carlo for the
    mixture with the K sampled means (the plug-in of Goldfeld et al.), and it converges to the
    true I(X;T_l) as K grows. With K = 1 it conditions on one draw ``zeta`` of the earlier noise
    per input and treats that draw as fixed: it estimates ``I(X; T_l|zeta)``, and since the
    noise is independent of X, ``I(X; T_l|zeta) = I(X; T_l, zeta) >= I(X; T_l)``: it
    over-states the information (it leaves out the part of h(T_l | X) due to the earlier
    noise). Averaging K = 1 estimates over several draws estimates the same conditional
    quantity and does not remove that bias; passing the K draws together does.

    Cost: ``m`` draws per component against all ``n`` components, ``O(m n^2 d)`` in blocked
    matrix products; at N = 4096 distinct means a handful of draws per component already gives a
    standard error far below 0.05 bits (``benchmarks/bench_mixture.py``).
    """
    noise_std = check_positive_float(noise_std, "noise_std")
    n_samples, target_se = _check_sampling(n_samples, target_se)
    rng = as_generator(seed)
    raw = means.detach() if isinstance(means, torch.Tensor) else means
    dims = raw.dim() if isinstance(raw, torch.Tensor) else np.ndim(raw)
    if dims not in (2, 3):
        raise ValueError(
            f"means must have shape (n_samples, n_units), or (n_draws, n_samples, n_units) for K draws "
            f"of the earlier layers' noise; got {dims} dimension(s)"
        )
    p = prepare(raw, labels)  # (1, N, d) or (K, N, d), checked
    a = p.activity.cpu().numpy()
    device = p.activity.device
    return _one_network(a, p.labels.cpu().numpy(), p.n_classes, noise_std, n_samples, target_se, rng, device)


def mixture(activity, labels, noise_std: float, n_samples: int | None = None,
            target_se: float | None = TARGET_SE, seed: int = 0, draws: int = 1) -> InformationEstimate:
    """Monte Carlo I(X;T) and I(T;Y), in bits, of a layer with Gaussian noise of std ``noise_std``.

    The registered form of :func:`mixture_information` (name ``"mixture"``): returns only the
    two estimates, each with a Monte Carlo standard error below ``target_se`` bits (0.05 by
    default; use :func:`mixture_information` to get the standard errors and h(T)).

    Parameters
    ----------
    activity : array or tensor
        The **clean** (noiseless) layer output ``S_i`` for every input: the means of the noisy
        layer ``T = S + Z``. With ``draws=1`` (the default): shape (n_samples, n_units), or
        (n_networks, n_samples, n_units) for a stack, one result per network. With ``draws=K >
        1``: shape (K, n_samples, n_units) for one network, whose draw ``k`` holds the layer's
        clean means computed from the ``k``-th independent draw of the earlier layers' noise,
        or (n_networks, K, n_samples, n_units) for a stack. The leading draw axis must have
        exactly ``K`` entries. Every network of a stack gets its own generator seeded with
        ``seed``, so a network's numbers do not depend on the others in the stack.
    labels : array of int, shape (n_samples,)
    noise_std : float
        Standard deviation sigma > 0 of the noise, in activity units.
    n_samples, target_se, seed
        As for :func:`mixture_information` (only an integer seed here).
    draws : int
        K >= 1, the number of draws of the earlier layers' noise per input that ``activity``
        holds. K = 1 (default) is exact for the first noisy layer and over-states I(X;T_l) of
        deeper ones; K > 1 takes ``p(t|x)`` as the mixture of the input's K Gaussians, which
        lowers that over-statement towards the true value as K grows (see Notes of
        :func:`mixture_information`). Cost grows like K**2 (K N components, each sampled).

    Returns
    -------
    InformationEstimate
        ``(i_xt, i_ty)`` in bits, unbiased up to Monte Carlo error when the layer's noise is the
        only noise given the input (see :func:`mixture_information` for deeper layers, where the
        one-draw form over-states I(X;T)). Unlike :func:`kde`, this is not a bound: the KDE upper
        and lower bounds with ``noise_var = noise_std**2`` (:func:`mixture_bounds`) bracket the
        one-draw value.

    Raises
    ------
    ValueError
        For a non-positive ``noise_std``, a ``draws`` that is not an integer >= 1, an activity
        whose shape does not fit ``draws`` (the message gives the shapes allowed), or bad
        ``n_samples``, ``target_se``, ``seed``, activity or labels.
    """
    noise_std = check_positive_float(noise_std, "noise_std")
    n_samples, target_se = _check_sampling(n_samples, target_se)
    if isinstance(seed, np.random.Generator):
        raise ValueError("mixture takes an integer seed (each network of a stack is seeded with it); "
                         "use mixture_information for a Generator")
    as_generator(seed)
    draws = check_int(draws, "draws (draws of the earlier layers' noise per input)", 1)
    if draws > 1:
        return _mixture_of_draws(activity, labels, noise_std, n_samples, target_se, int(seed), draws)
    p = prepare(activity, labels)
    a = p.activity.cpu().numpy()
    y = p.labels.cpu().numpy()
    S = a.shape[0]
    i_xt, i_ty = np.empty(S), np.empty(S)
    for k in range(S):
        r = _one_network(a[k : k + 1], y, p.n_classes, noise_std, n_samples, target_se,
                         np.random.default_rng(int(seed)), p.activity.device)
        i_xt[k], i_ty[k] = r.i_xt, r.i_ty
    return finish(p, i_xt, i_ty)


def _mixture_of_draws(activity, labels, noise_std, n_samples, target_se, seed: int, draws: int) -> InformationEstimate:
    """:func:`mixture` with ``draws = K > 1``: activity (K, N, d) or (S, K, N, d)."""
    raw = activity.detach() if isinstance(activity, torch.Tensor) else np.asarray(activity)
    shape = tuple(raw.shape)
    if len(shape) not in (3, 4) or shape[-3] != draws:
        raise ValueError(
            f"with draws={draws}, activity must have shape ({draws}, n_samples, n_units) for one network or "
            f"(n_networks, {draws}, n_samples, n_units) for a stack (draw k: the layer's clean means under the "
            f"k-th draw of the earlier layers' noise); got shape {shape}")
    batched = len(shape) == 4
    stack = raw if batched else raw[None]
    i_xt, i_ty = np.empty(stack.shape[0]), np.empty(stack.shape[0])
    for k in range(stack.shape[0]):
        r = mixture_information(stack[k], labels, noise_std, n_samples=n_samples, target_se=target_se,
                                seed=np.random.default_rng(seed))
        i_xt[k], i_ty[k] = r.i_xt, r.i_ty
    if batched:
        return InformationEstimate(i_xt, i_ty)
    return InformationEstimate(float(i_xt[0]), float(i_ty[0]))


def _probe_input(activity: np.ndarray, params: dict) -> np.ndarray:
    """The registry's value probe (:func:`ibtools.estimators.check_values`) for ``mixture``: a
    probe layer (N, d) repeated as ``draws`` identical draws when ``draws > 1``."""
    draws = params.get("draws", 1)
    if isinstance(draws, (int, np.integer)) and not isinstance(draws, bool) and draws > 1:
        return np.stack([activity] * int(draws))
    return activity


mixture.probe_input = _probe_input


def mixture_bounds(activity, labels, noise_std: float, bound: str = "upper",
                   chunk_size: int | None = None) -> InformationEstimate:
    """Kolchinsky-Tracey bounds on I(X;T), in bits, of a noisy layer with known noise
    ``N(0, noise_std**2 I)``, computed on its **clean** means.

    The registered name ``"mixture_bounds"``: :func:`ibtools.estimators.kde` with
    ``noise_var = noise_std**2`` applied to the clean means ``S_i`` of ``T = S + Z`` (the
    :class:`~ibtools.engine.Recorder` gives it the same means as ``"mixture"`` with one draw,
    never the noisy activity). For the layer whose own noise is the only noise given the input
    (the first noisy layer, or a deeper one given one draw of the earlier noise), ``T|X=x_i ~
    N(S_i, sigma^2 I)`` is exactly the Gaussian mixture the bounds are about, so::

        I_lower(X;T) <= I(X;T) = (one-draw) mixture value <= I_upper(X;T)

    (pairwise Bhattacharyya and KL bounds on h(T), Kolchinsky & Tracey 2017). The Monte Carlo
    estimate of :func:`mixture` (K = 1) must then lie between them up to its standard error.
    For deeper layers the pair brackets I(X;T_l | earlier noise), which over-states I(X;T_l);
    the upper bound is then still an upper bound of the true I(X;T_l) in expectation over the
    earlier noise, the lower bound is not a lower bound of it.

    Parameters
    ----------
    activity : array or tensor, shape (n_samples, n_units) or (n_networks, n_samples, n_units)
        Clean means of the noisy layer.
    labels : array of int, shape (n_samples,)
    noise_std : float
        Standard deviation sigma > 0 of the layer's noise, in activity units (the network's).
    bound : {"upper", "lower"}
        ``"upper"``: KL bound (biased high); ``"lower"``: Bhattacharyya bound (biased low).
    chunk_size : int, optional
        As for :func:`ibtools.estimators.kde`.

    Returns
    -------
    InformationEstimate
        ``(i_xt, i_ty)`` in bits. ``i_xt`` is a bound on I(X;T); ``i_ty`` is a difference of
        bounds, an estimate of I(T;Y) that is not itself a bound.
    """
    from .kde import kde

    noise_std = check_positive_float(noise_std, "noise_std")
    return kde(activity, labels, noise_var=noise_std * noise_std, bound=bound, chunk_size=chunk_size)


#: Estimators that the :class:`~ibtools.engine.Recorder` runs on the clean means of a noisy
#: network's hidden layers (not on the noisy activity), with the network's own ``noise_std``.
CLEAN_MEANS_ESTIMATORS = ("mixture", "mixture_bounds")

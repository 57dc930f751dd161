"""Estimators on known answers: a battery of layers whose mutual information is known, and a
bias table per estimator setting.

In the spirit of the benchmark of Czyż et al. (NeurIPS 2023), "Beyond Normal", but in this
project's form: every estimator sees one layer's activity ``T`` on ``n`` inputs, shape
``(n, d)``, and integer class labels ``Y``, and returns ``(i_xt, i_ty)`` in bits. Each task draws
such a pair and states the true value of the quantities it knows, in bits, with how it was
computed and its numerical error (:class:`KnownAnswer`):

============================ ========================================= =========================
family                       layer                                     truth
============================ ========================================= =========================
``gaussian``                 T | Y ~ N(+-mu, Sigma) in d dims          I(T;Y): 1-D quadrature
                             (given correlation), optionally under an  along the Mahalanobis
                             invertible elementwise transform          direction (~1e-10 bits);
                             (asinh, cube, half-cube)                  I(X;T): counting
``student``                  T | Y ~ multivariate t (nu dof), +-mu     I(T;Y): 2-D quadrature
                                                                       (1-D for d = 1)
``discrete``                 k distinct rows with given multiplicities I(X;T), I(T;Y): counting
                             and label mixes
``quantized``                tanh of a Gaussian-class layer, rounded   I(X;T), I(T;Y): counting
                             to 2**b levels on [-1, 1]
``noisy``                    T = S + N(0, sigma^2), S on a grid of     I(X;T), I(T;Y): 1-D
                             centres (the KDE estimators' own model)   quadrature of mixture
                                                                       entropies
============================ ========================================= =========================

What "true" means. The estimators treat the ``n`` rows as the outputs of a deterministic layer
on ``n`` distinct, equiprobable inputs X. For a deterministic layer I(X;T) is the entropy of the
partition of the inputs into equal rows: ``log2 n`` bits when every row is distinct (every
continuous task), less for the discrete and quantized layers; it is counted on each draw, exactly.
For I(T;Y) of a continuous task the truth is the *population* mutual information of the
distribution the rows are drawn from (what an estimator of I(T;Y) is for); for the discrete and
quantized layers it is the plug-in I(T;Y) of the ``n`` rows, counted. The ``noisy`` tasks are the
model behind the kernel estimators: the rows are noiseless centres ``S`` and the truth is
I(X; S + Z) and I(S + Z; Y) with Gaussian noise Z of the task's variance; ``kde`` with that
``noise_var`` (and ``akde`` with ``alpha = noise_var / max|S|``) bounds the very same quantity.

Use::

    from ibtools.mi_battery import bias_table, default_tasks
    table = bias_table(n=1024, n_repeats=5, seed=0)       # seconds; n=4096, n_repeats=20 for more
"""

from __future__ import annotations

import abc

import functools
import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple

import numpy as np
import pandas as pd
from scipy import integrate, special

from .validation import as_generator, check_int

__all__ = [
    "KnownAnswer",
    "Draw",
    "Task",
    "GaussianClasses",
    "StudentClasses",
    "DiscreteLayer",
    "QuantizedLayer",
    "NoisyMixture",
    "TRANSFORMS",
    "QUANTITIES",
    "default_tasks",
    "get_task",
    "DEFAULT_SETTINGS",
    "default_settings",
    "counted_information",
    "bias_table",
    "check_battery_size",
    "task_rng",
    "plot_bias",
    "setting_name",
]

LN2 = math.log(2.0)
#: Quantities a task can know, as the table names them, with the estimate's attribute.
QUANTITIES = {"I(X;T)": "i_xt", "I(T;Y)": "i_ty"}
_QUAD = {"epsabs": 1e-13, "epsrel": 1e-11, "limit": 400}


class KnownAnswer(NamedTuple):
    """A true value in bits, how it was obtained, and a bound on its numerical error (bits)."""

    bits: float
    method: str  # "counting", "quadrature" or "closed form"
    error: float


class Draw(NamedTuple):
    """One draw of a task: activity (n, d) float64, labels (n,) int64, and the true values of the
    quantities the task knows (``{"I(X;T)": KnownAnswer, ...}``) for this very draw."""

    activity: np.ndarray
    labels: np.ndarray
    truth: Mapping[str, KnownAnswer]


# ------------------------------------------------------------------------------------------------
# checks


def _check_float(value, name: str, lo: float = -math.inf, hi: float = math.inf, *, open_lo=True, open_hi=True) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = math.isfinite(v) and (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
    if not ok:
        lo_b, hi_b = ("(" if open_lo else "["), (")" if open_hi else "]")
        raise ValueError(f"{name} must be a finite number in {lo_b}{lo:g}, {hi:g}{hi_b}, got {value!r}")
    return v


def _rng(rng) -> np.random.Generator:
    return as_generator(rng, "rng", error=TypeError)


# ------------------------------------------------------------------------------------------------
# exact counting (independent of ibtools.estimators: np.unique over rows)


def _entropy_bits(counts: np.ndarray) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def counted_information(activity, labels) -> dict[str, KnownAnswer]:
    """Exact plug-in I(X;T) = H(T) and I(T;Y) of a deterministic layer, in bits, by counting
    equal rows of ``activity`` (n, d) over the ``n`` equiprobable inputs.

    This is the true information of a layer whose ``n`` inputs are distinct: ``log2 n`` bits when
    every row differs. Error: float rounding of the sums (below 1e-12 bits).
    """
    activity = np.asarray(activity)
    labels = np.asarray(labels)
    _, rows = np.unique(activity, axis=0, return_inverse=True)
    rows = rows.ravel()
    _, y = np.unique(labels, return_inverse=True)
    y = y.ravel()
    h_t = _entropy_bits(np.bincount(rows))
    h_y = _entropy_bits(np.bincount(y))
    h_ty = _entropy_bits(np.bincount(rows * (y.max() + 1) + y))
    i_ty = min(max(h_t + h_y - h_ty, 0.0), h_t, h_y)
    return {"I(X;T)": KnownAnswer(h_t, "counting", 1e-12), "I(T;Y)": KnownAnswer(i_ty, "counting", 1e-12)}


def _apportion(n: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts summing to n, proportional to weights (largest remainder; at least 1 each)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    raw = w * (n - len(w))
    counts = np.floor(raw).astype(np.int64) + 1
    rest = n - int(counts.sum())
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    counts[order[:rest]] += 1
    return counts


def _stratified_labels(n: int, class_prob: float, rng: np.random.Generator) -> np.ndarray:
    """Labels with exactly round(class_prob * n) ones (at least one of each class), shuffled."""
    ones = min(max(int(round(class_prob * n)), 1), n - 1)
    labels = np.zeros(n, dtype=np.int64)
    labels[:ones] = 1
    return rng.permutation(labels)


# ------------------------------------------------------------------------------------------------
# quadrature


def _binary_entropy_nats(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _gaussian_pair_information(delta: float, p: float) -> KnownAnswer:
    """I(U;Y) in bits for U | Y=1 ~ N(+delta/2, 1), U | Y=0 ~ N(-delta/2, 1), P(Y=1) = p.

    Computed as H(Y) - E[H(Y|U)] by adaptive quadrature of a smooth, bounded integrand."""
    a = delta / 2.0
    lp1, lp0 = math.log(p), math.log(1 - p)

    def density_times_conditional_entropy(u):
        l1 = lp1 - 0.5 * (u - a) ** 2
        l0 = lp0 - 0.5 * (u + a) ** 2
        m = max(l1, l0)
        lz = m + math.log(math.exp(l1 - m) + math.exp(l0 - m))
        q1, q0 = math.exp(l1 - lz), math.exp(l0 - lz)
        h = -(q1 * (l1 - lz) + q0 * (l0 - lz))
        return math.exp(lz) / math.sqrt(2 * math.pi) * h

    lim = a + 40.0
    value, err = integrate.quad(density_times_conditional_entropy, -lim, lim, points=[-a, 0.0, a], **_QUAD)
    return KnownAnswer((_binary_entropy_nats(p) - value) / LN2, "quadrature", (err + 1e-12) / LN2)


def _t_log_kernel(q: np.ndarray | float, dof: float, dim: int):
    return -0.5 * (dof + dim) * np.log1p(q / dof)


def _student_pair_information(delta: float, p: float, dof: float, dim: int) -> KnownAnswer:
    """I(T;Y) in bits for T | Y ~ standard multivariate t (``dof``, identity shape) located at
    +-delta/2 along e1 in ``dim`` dimensions. The likelihood ratio depends on T only through
    (u, r): the coordinate along e1 and the norm of the rest, so the integral is 2-D (1-D for
    dim = 1) over the joint density of (u, r)."""
    a = delta / 2.0
    lp1, lp0 = math.log(p), math.log(1 - p)
    # log normaliser of the multivariate t and of the (u, r) density
    log_c = special.gammaln((dof + dim) / 2) - special.gammaln(dof / 2) - 0.5 * dim * math.log(dof * math.pi)
    if dim > 1:
        k = dim - 1  # surface area of the unit sphere in R^k: 2 pi^(k/2) / Gamma(k/2)
        log_c += math.log(2.0) + 0.5 * k * math.log(math.pi) - special.gammaln(k / 2)

    def integrand(u, r=0.0):
        l1 = lp1 + _t_log_kernel((u - a) ** 2 + r * r, dof, dim)
        l0 = lp0 + _t_log_kernel((u + a) ** 2 + r * r, dof, dim)
        m = max(l1, l0)
        lz = m + math.log(math.exp(l1 - m) + math.exp(l0 - m))
        q1, q0 = math.exp(l1 - lz), math.exp(l0 - lz)
        h = -(q1 * (l1 - lz) + q0 * (l0 - lz))
        if dim > 2 and r == 0.0:  # the radial factor r^(dim-2) vanishes
            return 0.0
        radial = (dim - 2) * math.log(r) if dim > 2 else 0.0
        return math.exp(lz + log_c + radial) * h

    if dim == 1:
        lim = a + 50.0
        value, err = integrate.quad(integrand, -lim, lim, points=[-a, 0.0, a], **_QUAD)
        for lo, hi in ((-np.inf, -lim), (lim, np.inf)):  # heavy tails
            v, e = integrate.quad(integrand, lo, hi, **_QUAD)
            value, err = value + v, err + e
        return KnownAnswer((_binary_entropy_nats(p) - value) / LN2, "quadrature", (err + 1e-12) / LN2)
    # the conditional label entropy is ~0 where |u| is large compared with a: the integrand's
    # mass sits in |u| <~ a + a few scales, over all r
    opts = {"epsabs": 1e-11, "epsrel": 1e-9, "limit": 200}
    inner_err = [0.0]

    def over_r(u):
        v, e = integrate.quad(lambda r: integrand(u, r), 0.0, np.inf, **opts)
        inner_err[0] = max(inner_err[0], e)
        return v

    with warnings.catch_warnings():  # quad's round-off notices far out in the tails, where the integrand is ~0
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, err = integrate.quad(over_r, -np.inf, np.inf, **opts)
    total_err = err + 2 * inner_err[0] * (2 * a + 20) + 1e-10
    return KnownAnswer((_binary_entropy_nats(p) - value) / LN2, "quadrature", total_err / LN2)


def _mixture_entropy_nats(centres: np.ndarray, weights: np.ndarray, sigma: float) -> tuple[float, float]:
    """Differential entropy (nats) of sum_j w_j N(c_j, sigma^2) in 1-D, and its quadrature error."""
    c = np.asarray(centres, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    keep = w > 0
    c, w = c[keep], w[keep]
    log_w = np.log(w)
    norm = -0.5 * math.log(2 * math.pi) - math.log(sigma)

    def f(t):
        lp = special.logsumexp(log_w - 0.5 * ((t - c) / sigma) ** 2) + norm
        return -math.exp(lp) * lp

    knots = np.unique(np.concatenate([[c.min() - 40 * sigma], c, [c.max() + 40 * sigma]]))
    total, err = 0.0, 0.0
    for lo, hi in zip(knots[:-1], knots[1:]):
        v, e = integrate.quad(f, lo, hi, **_QUAD)
        total += v
        err += e
    return total, err + 1e-12


# ------------------------------------------------------------------------------------------------
# elementwise transforms (strictly increasing, so invertible: the MI does not change)

TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "asinh": np.arcsinh,
    "cube": lambda x: x**3,
    "half_cube": lambda x: x * np.sqrt(np.abs(x)),  # Czyż et al.'s "half-cube", sign(x)|x|^1.5
}


def _check_transform(transform: str) -> str:
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; valid transforms are: {', '.join(TRANSFORMS)}")
    return transform


# ------------------------------------------------------------------------------------------------
# tasks


@dataclass(frozen=True)
class Task(abc.ABC):
    """Base of the known-answer tasks (abstract). Subclasses set ``family`` and implement ``draw``."""

    name: str
    family = "task"
    #: smallest number of rows a draw can have
    min_n = 8

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a task needs a non-empty name, got {self.name!r}")

    @abc.abstractmethod
    def draw(self, n: int, rng) -> Draw:
        """One draw of ``n`` rows with the task's known answer (:class:`Draw`); ``rng`` a
        :class:`numpy.random.Generator` or seed."""

    def sample(self, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """``(activity, labels)`` of one draw: activity (n, d) float64, labels (n,) int64."""
        d = self.draw(n, rng)
        return d.activity, d.labels

    def _check_n(self, n) -> int:
        return check_int(n, f"n (rows of task {self.name!r})", self.min_n)

    def draw_key(self) -> str:
        """What a draw's random numbers depend on: the task's class and parameters except its
        name and an elementwise ``transform``."""
        params = {k: v for k, v in vars(self).items() if k not in ("name", "transform")}
        return f"{type(self).__name__}{sorted(params.items())}"


def _equicorrelation(dim: int, correlation: float) -> np.ndarray:
    return (1 - correlation) * np.eye(dim) + correlation * np.ones((dim, dim))


def _check_correlation(dim: int, correlation) -> float:
    if dim == 1:
        c = _check_float(correlation, "correlation", -1, 1)
        if c != 0.0:
            raise ValueError(f"correlation must be 0 in one dimension, got {correlation!r}")
        return c
    return _check_float(correlation, f"correlation (for dim={dim})", -1.0 / (dim - 1), 1.0)


def _mahalanobis_separation(dim: int, separation: float, correlation: float) -> float:
    """Mahalanobis distance between means +-(separation/2) * ones/sqrt(dim) under the
    equicorrelation matrix (unit variances)."""
    diff = separation * np.ones(dim) / math.sqrt(dim)
    return float(math.sqrt(diff @ np.linalg.solve(_equicorrelation(dim, correlation), diff)))


@dataclass(frozen=True)
class GaussianClasses(Task):
    """T | Y=1 ~ N(+mu, Sigma), T | Y=0 ~ N(-mu, Sigma) in ``dim`` dimensions, then an invertible
    elementwise ``transform``.

    ``mu = (separation / 2) * ones / sqrt(dim)`` (the means are ``separation`` apart) and Sigma has
    unit variances and equal ``correlation`` between units. Exactly round(class_prob * n) rows
    have label 1. True I(T;Y): the likelihood ratio depends on T only through its projection on
    Sigma^-1 mu, so I(T;Y) is that of two unit Gaussians a Mahalanobis distance apart, by 1-D
    quadrature (error ~1e-10 bits); a strictly increasing elementwise transform leaves it unchanged
    (the estimators may not). True I(X;T): counted (log2 n, the rows are distinct).
    """

    dim: int = 2
    separation: float = 2.0
    correlation: float = 0.0
    class_prob: float = 0.5
    transform: str = "none"
    family = "gaussian"

    def __post_init__(self):
        super().__post_init__()
        check_int(self.dim, "dim", 1)
        _check_float(self.separation, "separation", 0.0)
        _check_correlation(self.dim, self.correlation)
        _check_float(self.class_prob, "class_prob", 0.0, 1.0)
        _check_transform(self.transform)

    @property
    def mahalanobis(self) -> float:
        return _mahalanobis_separation(self.dim, self.separation, self.correlation)

    def population_ty(self) -> KnownAnswer:
        """The population I(T;Y) in bits (quadrature)."""
        return _cached_gaussian(self.mahalanobis, float(self.class_prob))

    def _base(self, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        n = self._check_n(n)
        rng = _rng(rng)
        labels = _stratified_labels(n, self.class_prob, rng)
        chol = np.linalg.cholesky(_equicorrelation(self.dim, self.correlation))
        mu = self.separation / 2 * np.ones(self.dim) / math.sqrt(self.dim)
        t = rng.standard_normal((n, self.dim)) @ chol.T + np.where(labels[:, None] == 1, mu, -mu)
        return t, labels

    def draw(self, n: int, rng) -> Draw:
        t, labels = self._base(n, rng)
        t = TRANSFORMS[self.transform](t)
        return Draw(t, labels, {"I(X;T)": counted_information(t, labels)["I(X;T)"], "I(T;Y)": self.population_ty()})


@functools.lru_cache(maxsize=128)
def _cached_gaussian(delta: float, p: float) -> KnownAnswer:
    return _gaussian_pair_information(delta, p)


@dataclass(frozen=True)
class StudentClasses(Task):
    """T | Y ~ multivariate Student t with ``dof`` degrees of freedom, location +-mu and shape
    matrix Sigma (as for :class:`GaussianClasses`), then an invertible elementwise ``transform``.

    Heavy tails (Czyż et al.'s Student-t task). True I(T;Y): after whitening, two standard
    multivariate t's a Mahalanobis distance apart; the likelihood ratio depends on the
    coordinate along the mean difference and the norm of the rest, so I(T;Y) is a 2-D integral
    (1-D for dim = 1), by nested adaptive quadrature (stated error: quadrature's own estimate,
    ~1e-8 bits; the tests check the value against a Monte Carlo with 200 000 draws to within
    ~1e-3 bits). True I(X;T): counted.
    """

    dim: int = 2
    separation: float = 2.0
    dof: float = 3.0
    correlation: float = 0.0
    class_prob: float = 0.5
    transform: str = "none"
    family = "student"

    def __post_init__(self):
        super().__post_init__()
        check_int(self.dim, "dim", 1)
        _check_float(self.separation, "separation", 0.0)
        _check_float(self.dof, "dof", 0.0)
        _check_correlation(self.dim, self.correlation)
        _check_float(self.class_prob, "class_prob", 0.0, 1.0)
        _check_transform(self.transform)

    @property
    def mahalanobis(self) -> float:
        return _mahalanobis_separation(self.dim, self.separation, self.correlation)

    def population_ty(self) -> KnownAnswer:
        return _cached_student(self.mahalanobis, float(self.class_prob), float(self.dof), int(self.dim))

    def draw(self, n: int, rng) -> Draw:
        n = self._check_n(n)
        rng = _rng(rng)
        labels = _stratified_labels(n, self.class_prob, rng)
        chol = np.linalg.cholesky(_equicorrelation(self.dim, self.correlation))
        mu = self.separation / 2 * np.ones(self.dim) / math.sqrt(self.dim)
        z = rng.standard_normal((n, self.dim)) @ chol.T
        scale = np.sqrt(self.dof / rng.chisquare(self.dof, size=(n, 1)))
        t = TRANSFORMS[self.transform](z * scale + np.where(labels[:, None] == 1, mu, -mu))
        return Draw(t, labels, {"I(X;T)": counted_information(t, labels)["I(X;T)"], "I(T;Y)": self.population_ty()})


@functools.lru_cache(maxsize=128)
def _cached_student(delta: float, p: float, dof: float, dim: int) -> KnownAnswer:
    return _student_pair_information(delta, p, dof, dim)


@dataclass(frozen=True)
class DiscreteLayer(Task):
    """A deterministic layer that takes ``n_rows`` distinct values (rows of ``dim`` units).

    Row j is used by a share of the inputs proportional to ``decay ** j`` (integer counts summing
    to n, at least one each); a fraction j / (n_rows - 1) of row j's inputs has label 1, so T
    carries some but not all of the label. ``layout="grid"``: the rows are points of a regular
    grid on [-0.9, 0.9]^dim (well separated, the same in every draw); ``"random"``: uniform in
    [-1, 1]^dim, drawn anew each time (close rows may share a bin). True I(X;T) = H(T) and
    I(T;Y): exact, by counting the draw's rows.
    """

    n_rows: int = 8
    dim: int = 2
    decay: float = 0.8
    layout: str = "grid"
    family = "discrete"

    def __post_init__(self):
        super().__post_init__()
        check_int(self.n_rows, "n_rows", 2)
        check_int(self.dim, "dim", 1)
        _check_float(self.decay, "decay", 0.0, 1.0, open_hi=False)
        if self.layout not in ("grid", "random"):
            raise ValueError(f"layout must be 'grid' or 'random', got {self.layout!r}")

    @property
    def min_n(self) -> int:  # every row used at least once, both labels present
        return max(2 * self.n_rows, 8)

    def _rows(self, rng: np.random.Generator) -> np.ndarray:
        if self.layout == "random":
            return rng.uniform(-1.0, 1.0, size=(self.n_rows, self.dim))
        m = 2
        while m**self.dim < self.n_rows:
            m += 1
        levels = np.linspace(-0.9, 0.9, m)
        grid = np.stack(np.meshgrid(*([levels] * self.dim), indexing="ij"), -1).reshape(-1, self.dim)
        return grid[: self.n_rows]

    def draw(self, n: int, rng) -> Draw:
        n = self._check_n(n)
        rng = _rng(rng)
        counts = _apportion(n, self.decay ** np.arange(self.n_rows))
        rows = self._rows(rng)
        which = np.repeat(np.arange(self.n_rows), counts)
        labels = np.zeros(n, dtype=np.int64)
        start = 0
        for j, c in enumerate(counts):
            ones = int(round(c * j / (self.n_rows - 1)))
            labels[start : start + ones] = 1
            start += c
        order = rng.permutation(n)
        t, labels = rows[which][order], labels[order]
        return Draw(t, labels, counted_information(t, labels))


@dataclass(frozen=True)
class QuantizedLayer(Task):
    """A tanh layer of Gaussian classes (as :class:`GaussianClasses`, ``dim`` units) quantized
    to ``2**bits`` levels evenly spaced on [-1, 1] (level k at -1 + 2k / (2**bits - 1)).

    Like the quantized networks of Lorenzen et al. (2022), I(X;T) = H(T) and I(T;Y) of such a
    layer are exact by counting its distinct rows.
    """

    bits: int = 4
    dim: int = 3
    separation: float = 2.0
    class_prob: float = 0.5
    family = "quantized"

    def __post_init__(self):
        super().__post_init__()
        check_int(self.bits, "bits", 1)
        if self.bits > 24:
            raise ValueError(f"bits must be at most 24 (levels exact in float), got {self.bits!r}")
        check_int(self.dim, "dim", 1)
        _check_float(self.separation, "separation", 0.0)
        _check_float(self.class_prob, "class_prob", 0.0, 1.0)

    def draw(self, n: int, rng) -> Draw:
        base = GaussianClasses(self.name, self.dim, self.separation, 0.0, self.class_prob)
        t, labels = base._base(n, rng)
        top = 2**self.bits - 1
        q = np.rint((np.tanh(t) + 1.0) / 2.0 * top)
        t = -1.0 + 2.0 * q / top
        return Draw(t, labels, counted_information(t, labels))


@dataclass(frozen=True)
class NoisyMixture(Task):
    """The kernel estimators' own model: T = S + Z with Z ~ N(0, noise_var) and S a noiseless
    1-unit layer on ``n_centres`` equally spaced centres in [0, 1].

    Centre j is used by a share of the inputs proportional to ``decay ** j``; its label is
    ``labels="half"``: 1 for the upper half of the centres, ``"alternate"``: j mod 2 (classes
    interleaved, so noise mixes them). The draw's activity is S (what the network computes); the
    truth is for the noisy layer: I(X;T) = h(T) - h(Z) and I(T;Y) = h(T) - sum_y p(y) h(T | Y=y),
    with the entropies of 1-D Gaussian mixtures (weights = the draw's counts) by adaptive
    quadrature (error ~1e-10 bits). ``kde(noise_var=noise_var)`` bounds exactly this I(X;T), and
    so does ``akde(alpha=noise_var)`` (the largest ``|S|`` is 1).
    """

    n_centres: int = 16
    noise_var: float = 1e-3
    decay: float = 0.9
    labels: str = "half"
    family = "noisy"

    def __post_init__(self):
        super().__post_init__()
        check_int(self.n_centres, "n_centres", 2)
        _check_float(self.noise_var, "noise_var", 0.0)
        _check_float(self.decay, "decay", 0.0, 1.0, open_hi=False)
        if self.labels not in ("half", "alternate"):
            raise ValueError(f"labels must be 'half' or 'alternate', got {self.labels!r}")

    @property
    def min_n(self) -> int:
        return max(self.n_centres, 8)

    def centres(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.n_centres)

    def centre_labels(self) -> np.ndarray:
        j = np.arange(self.n_centres)
        return (j >= self.n_centres // 2).astype(np.int64) if self.labels == "half" else j % 2

    def truth_for_counts(self, counts) -> dict[str, KnownAnswer]:
        """True I(X;T) and I(T;Y) of the noisy layer, in bits, for the given centre counts."""
        return dict(_cached_noisy(self.n_centres, float(self.noise_var), self.labels, tuple(int(c) for c in counts)))

    def draw(self, n: int, rng) -> Draw:
        n = self._check_n(n)
        rng = _rng(rng)
        counts = _apportion(n, self.decay ** np.arange(self.n_centres))
        which = rng.permutation(np.repeat(np.arange(self.n_centres), counts))
        return Draw(self.centres()[which][:, None], self.centre_labels()[which], self.truth_for_counts(counts))


@functools.lru_cache(maxsize=256)
def _cached_noisy(n_centres: int, noise_var: float, labels: str, counts: tuple) -> tuple:
    task = NoisyMixture("_", n_centres, noise_var, 0.9, labels)
    c, w, y = task.centres(), np.asarray(counts, dtype=np.float64), task.centre_labels()
    sigma = math.sqrt(noise_var)
    h_t, e_t = _mixture_entropy_nats(c, w, sigma)
    h_z = 0.5 * math.log(2 * math.pi * math.e * noise_var)
    h_t_given_y, e_y = 0.0, 0.0
    for cls in np.unique(y):
        sel = y == cls
        h, e = _mixture_entropy_nats(c[sel], w[sel], sigma)
        share = w[sel].sum() / w.sum()
        h_t_given_y += share * h
        e_y += share * e
    i_xt = KnownAnswer((h_t - h_z) / LN2, "quadrature", e_t / LN2)
    i_ty = KnownAnswer((h_t - h_t_given_y) / LN2, "quadrature", (e_t + e_y) / LN2)
    return (("I(X;T)", i_xt), ("I(T;Y)", i_ty))


def default_tasks() -> tuple[Task, ...]:
    """The battery shown in the estimators chapter (names are unique)."""
    return (
        GaussianClasses("gaussian 2-d", dim=2, separation=2.0),
        GaussianClasses("gaussian 5-d, ρ=0.5", dim=5, separation=3.0, correlation=0.5),
        GaussianClasses("gaussian 2-d, asinh", dim=2, separation=2.0, transform="asinh"),
        GaussianClasses("gaussian 2-d, half-cube", dim=2, separation=2.0, transform="half_cube"),
        GaussianClasses("gaussian 2-d, cube", dim=2, separation=2.0, transform="cube"),
        StudentClasses("student-t 2-d, ν=3", dim=2, separation=2.0, dof=3.0),
        StudentClasses("student-t 1-d, ν=1", dim=1, separation=2.0, dof=1.0),
        DiscreteLayer("discrete, 8 rows on a grid", n_rows=8, dim=2, layout="grid"),
        DiscreteLayer("discrete, 64 random rows", n_rows=64, dim=4, decay=0.97, layout="random"),
        QuantizedLayer("quantized 4-bit, 2 units", bits=4, dim=2),
        QuantizedLayer("quantized 8-bit, 1 unit", bits=8, dim=1),
        NoisyMixture("noisy centres, σ²=1e-3", noise_var=1e-3, labels="half"),
        NoisyMixture("noisy centres, σ²=1e-2, interleaved", noise_var=1e-2, labels="alternate"),
    )


def get_task(name: str) -> Task:
    """The default task called ``name``."""
    tasks = {t.name: t for t in default_tasks()}
    try:
        return tasks[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; the default tasks are: {', '.join(tasks)}") from None


# ------------------------------------------------------------------------------------------------
# estimator settings and the table

#: Settings of the bias table, in the command-line form of :class:`ibtools.config.EstimatorSpec`.
DEFAULT_SETTINGS = (
    "fixed",
    "binsize",
    "max",
    "ebab:n_bins=10",
    "ebab:n_bins=30",
    "ebab:n_bins=100",
    "kde:noise_var=0.001,bound=upper",
    "kde:noise_var=0.001,bound=lower",
    "akde:alpha=0.01,bound=upper",
    "akde:alpha=0.01,bound=lower",
)


def default_settings():
    """:data:`DEFAULT_SETTINGS` as :class:`~ibtools.config.EstimatorSpec` objects."""
    from .config import EstimatorSpec

    return tuple(EstimatorSpec.parse(s) for s in DEFAULT_SETTINGS)


def _settings(estimators) -> list:
    from .config import EstimatorSpec

    if estimators is None:
        return list(default_settings())
    if isinstance(estimators, (str, EstimatorSpec)):
        estimators = [estimators]
    out = []
    for e in estimators:
        if isinstance(e, EstimatorSpec):
            out.append(e)
        elif isinstance(e, str):
            out.append(EstimatorSpec.parse(e))
        else:
            raise TypeError(f"estimator settings must be EstimatorSpec objects or strings such as 'ebab:n_bins=30', got {e!r}")
    if not out:
        raise ValueError("bias_table needs at least one estimator setting")
    labels = [s.label for s in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"estimator settings repeat: {labels}")
    return out


def _tasks(tasks) -> list[Task]:
    if tasks is None:
        return list(default_tasks())
    if isinstance(tasks, (str, Task)):
        tasks = [tasks]
    out = [get_task(t) if isinstance(t, str) else t for t in tasks]
    for t in out:
        if not isinstance(t, Task):
            raise TypeError(f"tasks must be Task objects or names of default tasks, got {t!r}")
    if not out:
        raise ValueError("bias_table needs at least one task")
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise ValueError(f"task names repeat: {names}")
    return out


def task_rng(seed: int, task: Task, repeat: int) -> np.random.Generator:
    """The generator of one draw: depends on the seed, the repeat and :meth:`Task.draw_key` only,
    so a task's numbers do not depend on which other tasks share the table, and a transformed
    task draws the very rows of its untransformed twin (common random numbers: their estimates
    differ only through the transform)."""
    return np.random.default_rng([int(seed), zlib.crc32(task.draw_key().encode()), int(repeat)])


def check_battery_size(n, n_repeats, tasks=None, names=("n", "n_repeats")) -> None:
    """Check ``n`` and ``n_repeats`` for :func:`bias_table` before any work (ValueError naming the
    problem, with the parameters called ``names``): ``n`` at least every task's minimum,
    ``n_repeats`` at least 2."""
    n = check_int(n, names[0], 8)
    check_int(n_repeats, names[1], 2)
    task_list = _tasks(tasks)
    low = max(t.min_n for t in task_list)
    if n < low:
        worst = next(t for t in task_list if t.min_n == low)
        raise ValueError(f"{names[0]} (rows of task {worst.name!r}) must be an integer >= {low}, got {n!r}")


TABLE_COLUMNS = ["task", "family", "quantity", "estimator", "true_bits", "truth_method", "truth_error",
                 "mean_estimate", "bias", "spread", "relative_bias", "n", "n_repeats"]


def bias_table(estimators=None, tasks=None, n: int = 1024, n_repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    """Bias of each estimator setting on each known-answer task, in bits.

    Every repeat draws each task once (``n`` rows) and runs every setting on the same draw.

    Parameters
    ----------
    estimators : sequence of EstimatorSpec or str, optional
        Settings, e.g. ``"ebab:n_bins=30"`` or ``EstimatorSpec.make("akde", alpha=0.01)``
        (default :data:`DEFAULT_SETTINGS`: fixed, binsize and max binning, EBAB with 10/30/100
        bins, KDE upper/lower with noise variance 1e-3, aKDE upper/lower with alpha 0.01).
    tasks : sequence of Task or default-task names, optional
        Default :func:`default_tasks`.
    n : int
        Rows per draw (1024 by default: about ten seconds for the default battery on one core;
        4096, the task's number of inputs, with ``n_repeats=20`` for a bigger run).
    n_repeats : int
        Draws per task, at least 2 (the spread is their standard deviation).
    seed : int
        Seed of all draws (see :func:`task_rng`).

    Returns
    -------
    pandas.DataFrame
        One row per task, known quantity ("I(X;T)", "I(T;Y)") and setting (its label), with
        columns ``true_bits`` (mean over draws of the true value; constant for the population
        values), ``truth_method``, ``truth_error`` (largest numerical error of the truth, bits),
        ``mean_estimate``, ``bias`` (mean of estimate − truth over the draws; negative: the
        setting under-estimates), ``spread`` (standard deviation of estimate − truth over the
        draws), ``relative_bias`` (``|bias| / true_bits``; NaN where the truth is 0), ``n`` and
        ``n_repeats``.

    Raises
    ------
    ValueError, TypeError
        For an unknown setting or task, repeated names, ``n`` below a task's minimum,
        ``n_repeats`` < 2 or a bad seed.
    """
    from .estimators import get_estimator

    settings = _settings(estimators)
    task_list = _tasks(tasks)
    check_battery_size(n, n_repeats, task_list)
    n, n_repeats = int(n), int(n_repeats)
    seed = check_int(seed, "seed", 0)
    rows = []
    for task in task_list:
        errors: dict = {}
        truths: dict = {}
        for r in range(n_repeats):
            d = task.draw(n, task_rng(seed, task, r))
            for s in settings:
                est = get_estimator(s.name)(d.activity, d.labels, **s.kwargs)
                for q, known in d.truth.items():
                    value = float(getattr(est, QUANTITIES[q]))
                    errors.setdefault((q, s.label), []).append((value, value - known.bits))
            for q, known in d.truth.items():
                truths.setdefault(q, []).append(known)
        for (q, label), pairs in errors.items():
            values, errs = np.array(pairs).T
            known = truths[q]
            true_bits = float(np.mean([k.bits for k in known]))
            bias = float(errs.mean())
            rows.append({
                "task": task.name, "family": task.family, "quantity": q, "estimator": label,
                "true_bits": true_bits, "truth_method": known[0].method,
                "truth_error": float(max(k.error for k in known)),
                "mean_estimate": float(values.mean()), "bias": bias, "spread": float(errs.std(ddof=1)),
                "relative_bias": abs(bias) / true_bits if true_bits > 0 else float("nan"),
                "n": n, "n_repeats": n_repeats,
            })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


_SHORT = {"ebab": "EBAB", "kde": "KDE", "akde": "aKDE"}
_SYMBOL = {"noise_var": "σ²", "alpha": "α", "n_bins": "", "bound": ""}


def setting_name(label: str) -> str:
    """A short name for an estimator setting's label, for figures and tables:
    ``ebab(n_bins=30)`` -> ``"EBAB 30"``, ``"kde(bound=upper,noise_var=0.001)"`` ->
    ``"KDE upper σ²=0.001"``, ``"akde(alpha=0.01,bound=lower)"`` -> ``"aKDE lower α=0.01"``;
    other labels are returned unchanged."""
    name, _, rest = str(label).partition("(")
    if not rest.endswith(")") and rest:
        return str(label)
    params = dict(item.split("=", 1) for item in filter(None, rest[:-1].split(",")) if "=" in item)
    if name not in _SHORT or not set(params) <= set(_SYMBOL):
        return str(label)
    parts = [_SHORT[name]]
    if "n_bins" in params:
        parts.append(params["n_bins"])
    if "bound" in params:
        parts.append(params["bound"])
    parts += [f"{_SYMBOL[k]}={v}" for k, v in params.items() if k in ("noise_var", "alpha")]
    return " ".join(parts)


def _cell_text(value: float, fmt: str) -> str:
    text = fmt.format(value)
    return text.replace("+", "").replace("-0.0", "0.0") if float(text.replace("+", "")) == 0 else text


def plot_bias(table: pd.DataFrame, quantity: str = "I(T;Y)", ax=None, *, value: str = "bias", fmt: str = "{:.1f}",
              cmap: str = "RdBu_r", fontsize: float = 9, colorbar: bool = True):
    """Heat map of ``value`` (default: bias, bits) per task (rows) and estimator setting
    (columns, by :func:`setting_name`) for one quantity of a :func:`bias_table`, each cell
    annotated with ``fmt``. Blue: the setting reads low; red: high (a colour scale symmetric
    about 0). Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {list(QUANTITIES)}, got {quantity!r}")
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"plot_bias needs the DataFrame of bias_table(), got {type(table).__name__}")
    missing = {"task", "quantity", "estimator", value} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks column(s) {sorted(missing)}; pass the DataFrame of bias_table()")
    part = table[table.quantity == quantity]
    if part.empty:
        raise ValueError(f"the table has no rows for {quantity}")
    grid = part.pivot(index="task", columns="estimator", values=value)
    grid = grid.loc[list(dict.fromkeys(part.task)), list(dict.fromkeys(part.estimator))]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.3 * len(grid) + 1.8))
    data = grid.to_numpy(dtype=float)
    peak = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    peak = peak if peak > 0 else 1.0
    image = ax.imshow(data, cmap=cmap, norm=TwoSlopeNorm(0.0, -peak, peak), aspect="auto")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                dark = abs(data[i, j]) > 0.6 * peak
                ax.text(j, i, _cell_text(data[i, j], fmt), ha="center", va="center", fontsize=fontsize,
                        color="white" if dark else "black")
    ax.set_xticks(range(data.shape[1]), [setting_name(c) for c in grid.columns], rotation=90, fontsize=fontsize)
    ax.set_yticks(range(data.shape[0]), list(grid.index), fontsize=fontsize)
    ax.tick_params(length=0)
    ax.set_title(f"{value.replace('_', ' ')} of {quantity} (bits)", fontsize=fontsize + 1)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=f"{value.replace('_', ' ')} (bits)", shrink=0.8)
    return ax

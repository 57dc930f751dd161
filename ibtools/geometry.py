"""Geometric measures of a layer's representation: how tightly it clusters, by class and overall.

The binning and KDE estimators of I(X;T) see the *geometry* of a layer's activity (how many
inputs share a bin, how close points are at the kernel's width), not its information: for a
deterministic network and distinct inputs I(X;T) = H(X) whatever the weights (Goldfeld et al.,
ICML 2019; Geiger 2021). These functions measure that geometry directly, so that estimated
"compression" can be compared with clustering (see :mod:`ibtools.tracking`).

Every measure takes a layer's activity, ``(N, d)`` for one network or ``(S, N, d)`` for ``S``
networks at once (numpy or torch, any real dtype; computed in float64), and the class labels
``(N,)`` (integers; the classes are the distinct values, so none is empty). It returns a float for ``(N, d)`` and a
float64 array ``(S,)`` for ``(S, N, d)``. Activity must be finite: NaN or inf is refused with a
ValueError. Degenerate layers (constant activity, class means that coincide) give a documented
value (``inf`` or ``0``), never NaN.

Measures by name (the registry :data:`MEASURES`, used by ``TrainConfig.measures``):

============================== ====================================================== ===========
name                           what                                                   unit
============================== ====================================================== ===========
within_between                 tr(Sigma_W) / tr(Sigma_B)                              ratio
nc1                            tr(Sigma_W Sigma_B^+) / C (Papyan, Han & Donoho 2020)  ratio
spread                         tr(Sigma_T), total variance                            activity^2
distinct_rows                  number of distinct rows (exact, float equality)        rows
distinct_binned_rows_per_class distinct rows after EBAB binning, mean over classes    rows
effective_rank                 exp(entropy of normalized singular values)             dimensions
============================== ====================================================== ===========

Scatter matrices (all with ``1/N`` normalization, class weights ``p_c = N_c / N``, class means
``mu_c``, global mean ``mu``)::

    Sigma_W = 1/N sum_i (h_i - mu_{y_i}) (h_i - mu_{y_i})^T      within-class
    Sigma_B = sum_c p_c (mu_c - mu) (mu_c - mu)^T                between-class
    Sigma_T = 1/N sum_i (h_i - mu) (h_i - mu)^T = Sigma_W + Sigma_B

With balanced classes ``Sigma_B`` is the ``1/C sum_c`` form of Papyan, Han & Donoho (2020); the
12-bit task's classes are nearly balanced (the weights keep ``Sigma_T = Sigma_W + Sigma_B``
exact for any balance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .validation import check_int

__all__ = [
    "Measure",
    "MEASURES",
    "measure_names",
    "get_measure",
    "check_measure_names",
    "compute_measures",
    "within_between",
    "nc1",
    "spread",
    "distinct_rows",
    "distinct_binned_rows_per_class",
    "effective_rank",
    "scatter_traces",
]


# -- input checks -------------------------------------------------------------------------------


def _activity(activity) -> tuple[np.ndarray, bool]:
    """``(S, N, d)`` float64 array and whether the caller passed a stack of networks."""
    if hasattr(activity, "detach") and hasattr(activity, "cpu"):  # a torch tensor
        activity = activity.detach().cpu().numpy()
    try:
        a = np.asarray(activity)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"activity could not be converted to an array: {exc}") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"activity must be a real numeric array, got dtype {a.dtype}")
    if a.ndim not in (2, 3):
        raise ValueError(f"activity must have shape (N, d) or (S, N, d), got shape {a.shape}")
    batched = a.ndim == 3
    a = a.astype(np.float64, copy=False)
    if not batched:
        a = a[None]
    S, N, d = a.shape
    if S == 0 or N == 0 or d == 0:
        raise ValueError(f"activity must have at least one network, one input and one unit, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("activity holds NaN or inf values; measures are defined for finite activity only")
    return a, batched


def _labels(labels, n: int, min_classes: int = 1) -> tuple[np.ndarray, int]:
    """Labels as class indices ``0..C-1`` (sorted distinct values) and ``C``."""
    if hasattr(labels, "detach") and hasattr(labels, "cpu"):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), one class per input, got shape {y.shape}")
    if y.dtype.kind not in "biu":
        if y.dtype.kind == "f" and np.isfinite(y).all() and np.array_equal(y, np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    classes, idx = np.unique(y, return_inverse=True)
    if classes.size < min_classes:
        raise ValueError(f"this measure needs labels of at least {min_classes} classes, got {classes.size} "
                         f"({classes.tolist()}): with one class there is no between-class scatter")
    return idx.reshape(-1).astype(np.int64), int(classes.size)


def _out(values: np.ndarray, batched: bool):
    values = np.asarray(values, dtype=np.float64)
    return values if batched else float(values[0])


# -- scatter --------------------------------------------------------------------------------------


def _class_means(a: np.ndarray, idx: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Class means (S, C, d) and class weights p_c (C,)."""
    counts = np.bincount(idx, minlength=C).astype(np.float64)
    onehot = np.zeros((C, idx.size))
    onehot[idx, np.arange(idx.size)] = 1.0
    means = np.matmul(onehot, a) / counts[None, :, None]
    return means, counts / idx.size


def scatter_traces(activity, labels) -> tuple:
    """Traces of the within-class and between-class scatter matrices, ``(tr_W, tr_B)``.

    ``tr_W`` is the mean squared distance of a point from its class mean and ``tr_B`` the
    class-weighted mean squared distance of the class means from the global mean (module
    docstring), both in squared activity units; ``tr_W + tr_B`` is the total variance
    (:func:`spread`). Floats for ``(N, d)`` activity, arrays ``(S,)`` for ``(S, N, d)``.
    """
    a, batched = _activity(activity)
    idx, C = _labels(labels, a.shape[1], min_classes=1)
    tr_w, tr_b = _traces(a, idx, C)
    return _out(tr_w, batched), _out(tr_b, batched)


def _traces(a: np.ndarray, idx: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    means, p = _class_means(a, idx, C)
    mu = np.einsum("c,scd->sd", p, means)
    tr_w = ((a - means[:, idx, :]) ** 2).sum(axis=2).mean(axis=1)
    tr_b = np.einsum("c,sc->s", p, ((means - mu[:, None, :]) ** 2).sum(axis=2))
    return tr_w, tr_b


def within_between(activity, labels):
    """Within-class over between-class scatter: ``tr(Sigma_W) / tr(Sigma_B)``.

    The classic Fisher-style ratio of the traces (module docstring for the matrices). Small means
    tight, well-separated class clusters; it falls as a representation clusters by class.

    Parameters
    ----------
    activity : array (N, d) or (S, N, d)
        A layer's activity on all N inputs, for one network or a stack of S networks.
    labels : array (N,)
        Class of every input (integers); at least two classes.

    Returns
    -------
    float or ndarray (S,)
        Dimensionless ratio in ``[0, inf]``. Invariant to rescaling, shifting and rotating the
        activity, and to reordering the inputs. ``0`` when every point sits on its class mean
        and the means differ (perfect collapse); ``inf`` when the class means coincide
        (``tr(Sigma_B) = 0``: no between-class separation), which includes a constant layer.

    Raises
    ------
    ValueError
        Non-finite activity, wrong shapes, non-integer labels, or fewer than two classes.
    """
    a, batched = _activity(activity)
    idx, C = _labels(labels, a.shape[1], min_classes=2)
    tr_w, tr_b = _traces(a, idx, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tr_b > 0, tr_w / np.where(tr_b > 0, tr_b, 1.0), np.inf)
    return _out(ratio, batched)


def nc1(activity, labels):
    """Neural-collapse measure NC1 of Papyan, Han & Donoho (2020): ``tr(Sigma_W Sigma_B^+) / C``.

    Papyan, V., Han, X. Y. & Donoho, D. L. (2020), "Prevalence of neural collapse during the
    terminal phase of deep learning training", PNAS 117(40), 24652-24663: within-class
    variability measured in the metric of the between-class scatter, which tends to 0 as
    the last layer's features collapse to their class means. ``Sigma_B^+`` is the
    Moore-Penrose pseudo-inverse of ``Sigma_B`` (rank at most ``C - 1``; eigenvalues below
    ``d * eps`` times the largest, and all but the ``C - 1`` largest, count as zero). Scatter
    matrices as in the module docstring (class-weighted ``Sigma_B``, equal to the paper's for
    balanced classes). Unlike :func:`within_between` it sees only within-class spread along the
    directions that separate the class means (for two classes: along ``mu_1 - mu_0``).

    Parameters
    ----------
    activity : array (N, d) or (S, N, d)
    labels : array (N,)
        At least two classes.

    Returns
    -------
    float or ndarray (S,)
        Dimensionless, in ``[0, inf]``; invariant to rescaling, shifting, rotating and
        reordering. ``inf`` when ``tr(Sigma_B) = 0`` (the class means coincide, e.g. a constant
        layer), where the pseudo-inverse would otherwise give a misleading ``0``.

    Raises
    ------
    ValueError
        As :func:`within_between`.
    """
    a, batched = _activity(activity)
    idx, C = _labels(labels, a.shape[1], min_classes=2)
    S, N, d = a.shape
    means, p = _class_means(a, idx, C)
    mu = np.einsum("c,scd->sd", p, means)
    dm = means - mu[:, None, :]  # (S, C, d)
    sigma_b = np.einsum("c,sci,scj->sij", p, dm, dm)
    centred = a - means[:, idx, :]
    sigma_w = np.matmul(centred.transpose(0, 2, 1), centred) / N
    evals, evecs = np.linalg.eigh(sigma_b)  # ascending
    top = evals[:, -1:]
    keep = evals > d * np.finfo(np.float64).eps * np.maximum(top, 0)
    keep[:, : max(d - (C - 1), 0)] = False  # rank(Sigma_B) <= C - 1
    inv = np.where(keep, 1.0 / np.where(keep, evals, 1.0), 0.0)
    # tr(Sigma_W V diag(inv) V^T) = sum_k inv_k v_k^T Sigma_W v_k
    quad = np.einsum("sik,sij,sjk->sk", evecs, sigma_w, evecs)
    value = (quad * inv).sum(axis=1) / C
    tr_b = np.trace(sigma_b, axis1=1, axis2=2)
    value = np.where(tr_b > 0, np.maximum(value, 0.0), np.inf)
    return _out(value, batched)


def spread(activity, labels=None):
    """Total variance of the activity: ``tr(Sigma_T)``, the mean squared distance of a point
    from the layer's mean activity.

    Parameters
    ----------
    activity : array (N, d) or (S, N, d)
    labels : ignored
        Accepted so that every measure has the same signature.

    Returns
    -------
    float or ndarray (S,)
        In squared activity units; ``0`` for a constant layer. Scales with the square of the
        activity (not scale invariant); invariant to shifts, rotations and reordering. Equals
        ``tr_W + tr_B`` of :func:`scatter_traces`.
    """
    a, batched = _activity(activity)
    return _out(a.var(axis=1).sum(axis=1), batched)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, elementwise on uint64 (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _row_bits(codes: np.ndarray) -> np.ndarray:
    """uint64 bit patterns of the values, equal exactly when the values are equal."""
    if codes.dtype.kind == "f":
        v = np.ascontiguousarray(codes, dtype=np.float64) + 0.0  # -0.0 + 0.0 = +0.0; NaN was refused
        return v.view(np.uint64)
    return codes.astype(np.int64).view(np.uint64)


def _distinct_counts(codes: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Number of distinct rows of ``codes`` (S, N, d) within each group of inputs: (S, G) ints.

    Rows are compared by value (``-0.0 == 0.0``), exactly. Fast path: sort by (network, group,
    hash of the row) in one 64-bit key and count key changes, after checking that neighbours with equal
    hashes are equal rows (so that a hash collision cannot merge rows); if the check fails
    (a collision, about 2**-64 per pair), an exact lexicographic sort of the rows decides.
    """
    S, N, d = codes.shape
    bits = _row_bits(codes).reshape(S * N, d)
    with np.errstate(over="ignore"):
        h = np.zeros(S * N, dtype=np.uint64)
        for j in range(d):
            h = _mix(h ^ bits[:, j])
    cell = (np.repeat(np.arange(S, dtype=np.int64), N) * n_groups + np.tile(group, S))
    # one sort key: the cell in the top bits, the row's hash below it
    k = max(int(S * n_groups - 1).bit_length(), 1)
    key = (cell.astype(np.uint64) << np.uint64(64 - k)) | (h >> np.uint64(k))
    order = np.argsort(key, kind="stable")
    ks, cs = key[order], cell[order]
    same = np.empty(S * N, dtype=bool)
    same[0] = False
    same[1:] = ks[1:] == ks[:-1]
    pairs = np.flatnonzero(same)
    if pairs.size and (bits[order[pairs]] != bits[order[pairs - 1]]).any():
        order = np.lexsort([bits[:, j] for j in range(d - 1, -1, -1)] + [cell])  # exact, slower
        b, cs = bits[order], cell[order]
        same[1:] = (cs[1:] == cs[:-1]) & (b[1:] == b[:-1]).all(axis=1)
    return np.bincount(cs[~same], minlength=S * n_groups).reshape(S, n_groups)


def distinct_rows(activity, labels=None):
    """Number of distinct rows of the activity (distinct patterns of the layer), exactly.

    Two rows are the same when every unit's value is equal as a number (so ``-0.0`` and
    ``0.0`` are the same). For a deterministic network this is the number of distinct values of
    T, and ``log2`` of it bounds its exact I(X;T) from above.

    Parameters
    ----------
    activity : array (N, d) or (S, N, d)
        Compared in float64 (exact for float32 and float16 activity, and for integers up to
        2**53).
    labels : ignored

    Returns
    -------
    float or ndarray (S,)
        A count of rows, between 1 (constant layer) and N (every input distinct), as float64.
        Invariant to reordering the inputs and to any one-to-one map of the values.
    """
    a, batched = _activity(activity)
    counts = _distinct_counts(a, np.zeros(a.shape[1], dtype=np.int64), 1)[:, 0]
    return _out(counts, batched)


def distinct_binned_rows_per_class(activity, labels, n_bins: int = 30):
    """Distinct rows after EBAB binning, counted within each class and averaged over classes.

    Each network's layer is binned as the ``"ebab"`` estimator bins it
    (``ibtools.estimators.binning.ebab_bin_indices``, ``n_bins`` equal-count bins of the
    layer's distinct values, bottom edge the layer's minimum); the number of distinct binned
    rows among the inputs of each class is then averaged over the classes present (unweighted).
    This is the clustering that EBAB's I(X;T) sees: its I(X;T) is the entropy of the binned
    rows, at most ``log2`` of their number.

    Parameters
    ----------
    activity : array (N, d) or (S, N, d)
    labels : array (N,)
        Class of every input; one class is allowed (then it counts all rows).
    n_bins : int
        EBAB's number of equal-count bins (30, the paper's).

    Returns
    -------
    float or ndarray (S,)
        Mean count of rows per class, between 1 (every class's inputs share one binned row,
        e.g. a constant layer) and the mean class size. Invariant to strictly increasing
        transforms of the activity (EBAB uses ranks only) and to reordering the inputs.
    """
    from .estimators.binning import ebab_bin_indices

    n_bins = check_int(n_bins, "n_bins", 1)
    a, batched = _activity(activity)
    idx, C = _labels(labels, a.shape[1], min_classes=1)
    codes = ebab_bin_indices(a, n_bins)
    counts = _distinct_counts(codes, idx, C)
    return _out(counts.mean(axis=1), batched)


def effective_rank(activity, labels=None):
    """Effective rank of the centred activity (Roy & Vetterli, EUSIPCO 2007).

    ``exp(-sum_k q_k ln q_k)`` with ``q_k = s_k / sum_j s_j`` the normalized singular values
    of the mean-centred ``(N, d)`` activity: the number of dimensions the representation
    spreads over, counting a dimension by its share of the singular values.

    Parameters
    ----------
    activity : array (N, d) or (S, N, d)
    labels : ignored

    Returns
    -------
    float or ndarray (S,)
        Dimensions, between 1 and ``min(N - 1, d)`` for a layer that varies; defined as ``0``
        for a constant layer (no direction of variation). Invariant to rescaling, shifting,
        rotating and reordering.
    """
    a, batched = _activity(activity)
    centred = a - a.mean(axis=1, keepdims=True)
    gram = np.matmul(centred.transpose(0, 2, 1), centred)
    ev = np.linalg.eigvalsh(gram)
    top = ev[:, -1:]
    sv = np.sqrt(np.where(ev > a.shape[2] * np.finfo(np.float64).eps * np.maximum(top, 0), ev, 0.0))
    total = sv.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(total > 0, sv / np.where(total > 0, total, 1.0), 0.0)
        ent = -np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum(axis=1)
    return _out(np.where(total[:, 0] > 0, np.exp(ent), 0.0), batched)


# -- registry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """A geometric measure by name.

    Attributes
    ----------
    name : str
    function : callable
        ``function(activity, labels)``: float for ``(N, d)``, array ``(S,)`` for ``(S, N, d)``.
    unit : str
    summary : str
        One line for tables.
    log_change : bool
        Whether changes of the measure are compared on a log10 scale (ratios, counts, variances:
        a halving is the same change at any size) by :mod:`ibtools.tracking`.
    """

    name: str
    function: Callable
    unit: str
    summary: str
    log_change: bool = True


#: The measures ``TrainConfig.measures`` can record, by name. Every one of them falls as a
#: layer's representation clusters (fewer, tighter or better separated groups of points).
MEASURES: dict[str, Measure] = {
    m.name: m for m in (
        Measure("within_between", within_between, "ratio", "tr(Sigma_W) / tr(Sigma_B): within- over between-class scatter"),
        Measure("nc1", nc1, "ratio", "tr(Sigma_W Sigma_B^+) / C: neural-collapse NC1 (Papyan, Han & Donoho 2020)"),
        Measure("spread", spread, "activity^2", "tr(Sigma_T): total variance"),
        Measure("distinct_rows", distinct_rows, "rows", "number of distinct activity patterns (exact)"),
        Measure("distinct_binned_rows_per_class", distinct_binned_rows_per_class, "rows",
                "distinct EBAB-binned patterns (30 bins) per class, mean over classes"),
        Measure("effective_rank", effective_rank, "dimensions", "effective rank of the centred activity (Roy & Vetterli 2007)"),
    )
}


def measure_names() -> tuple[str, ...]:
    """Names of the registered measures."""
    return tuple(MEASURES)


def get_measure(name: str) -> Measure:
    """The :class:`Measure` called ``name``.

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.
    """
    if not isinstance(name, str) or name not in MEASURES:
        raise ValueError(f"unknown geometric measure {name!r}; valid measures are: {', '.join(MEASURES)}")
    return MEASURES[name]


def check_measure_names(names) -> tuple[str, ...]:
    """``names`` as a tuple of known, distinct measure names.

    Raises
    ------
    ValueError
        If ``names`` is a single string (a tuple is needed), holds an unknown name (the message
        lists the valid ones) or a name twice.
    """
    if isinstance(names, str):
        raise ValueError(f"measures must be a tuple of measure names, got the string {names!r} "
                         f"(write ({names!r},)); valid measures are: {', '.join(MEASURES)}")
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError(f"measures must be a tuple of measure names, got {names!r}") from None
    for name in names:
        get_measure(name)
    if len(set(names)) != len(names):
        raise ValueError(f"measures must be distinct, got {names}")
    return names


def compute_measures(activity, labels, names=None) -> dict:
    """Every measure in ``names`` (default: all) of one layer: ``{name: float or ndarray (S,)}``."""
    names = measure_names() if names is None else check_measure_names(names)
    return {name: MEASURES[name].function(activity, labels) for name in names}

"""The 12-bit, 4096-pattern task of Shwartz-Ziv & Tishby (2017), regenerated offline.

The original data file (``var_u.mat``) holds all 4096 binary patterns of 12 bits and one binary
label per pattern. The 12 bits sit on the 12 vertices of a regular icosahedron, and the label is a
rotation-invariant function of which vertices are "on". The rule used here reproduces all 4096
labels of the published file exactly; every generation is checked against the file's published
count of positive labels and the SHA-256 of its packed label vector, and a mismatch is an error.

Rule
----
For a pattern with ``n`` bits on, count the pairs of "on" vertices that are nearest neighbours
(``e1``), second neighbours (``e2``) and antipodes (``e3``) on the icosahedron. Then

    y = 1  if and only if  23 n + e1 - 5 e2 - 8 e3 >= 99.

Equivalently (also exact): ``y = 1`` iff ``n + |m| > 7.63`` where ``m`` is the vector sum of the
unit vectors of the active vertices; see :func:`dipole_rule_labels`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "N_BITS",
    "N_PATTERNS",
    "NEIGHBOURS",
    "Dataset",
    "Split",
    "tishby_task",
    "pair_classes",
    "vertex_positions",
    "dipole_rule_labels",
    "unshuffled_split",
    "stratified_split",
    "make_split",
    "SPLIT_KINDS",
    # the task registry, defined in ibtools.tasks and importable from here
    "load_task",
    "task_names",
    "task_info",
    "canonical_task",
    "DEFAULT_TASK",
    "TASKS",
]

N_BITS = 12
N_PATTERNS = 2**N_BITS

#: Nearest neighbours of each bit on the icosahedron (bit indices are the columns of the pattern
#: matrix, most significant bit first). Every vertex has five neighbours; derived from the
#: label statistics of the original file.
NEIGHBOURS: dict[int, tuple[int, ...]] = {
    0: (1, 3, 5, 10, 11),
    1: (0, 2, 3, 4, 11),
    2: (1, 3, 4, 8, 9),
    3: (0, 1, 2, 8, 10),
    4: (1, 2, 6, 9, 11),
    5: (0, 6, 7, 10, 11),
    6: (4, 5, 7, 9, 11),
    7: (5, 6, 8, 9, 10),
    8: (2, 3, 7, 9, 10),
    9: (2, 4, 6, 7, 8),
    10: (0, 3, 5, 7, 8),
    11: (0, 1, 4, 5, 6),
}

#: Integer weights of the label rule: 23 n + 1 e1 - 5 e2 - 8 e3 >= 99.
RULE_WEIGHTS = {"n": 23, "neighbour": 1, "second": -5, "antipode": -8}
RULE_THRESHOLD = 99

#: Published facts about ``var_u.mat`` that every generation is checked against.
EXPECTED_POSITIVES = 2118
EXPECTED_PACKED_SHA256 = "371b2b46a5052b4f69f7991ca141fb5afa1ac364ef7beb81ec900eecac2f86d9"


@functools.lru_cache(maxsize=1)
def pair_classes() -> dict[str, tuple[tuple[int, int], ...]]:
    """Split the 66 bit pairs into nearest neighbours, second neighbours and antipodes.

    Returns
    -------
    dict
        ``{"neighbour": 30 pairs, "second": 30 pairs, "antipode": 6 pairs}``; each pair is
        ``(i, j)`` with ``i < j``. The antipode of a vertex is the one vertex at graph distance 3.
    """
    adjacency = np.zeros((N_BITS, N_BITS), dtype=int)
    for i, nbrs in NEIGHBOURS.items():
        adjacency[i, list(nbrs)] = 1
    if not (adjacency == adjacency.T).all() or not (adjacency.sum(1) == 5).all():
        raise RuntimeError("NEIGHBOURS is not a symmetric 5-regular graph")
    # graph distances by repeated squaring of reachability
    reach2 = (adjacency @ adjacency) > 0
    classes: dict[str, list[tuple[int, int]]] = {"neighbour": [], "second": [], "antipode": []}
    for i in range(N_BITS):
        for j in range(i + 1, N_BITS):
            if adjacency[i, j]:
                classes["neighbour"].append((i, j))
            elif reach2[i, j]:
                classes["second"].append((i, j))
            else:
                classes["antipode"].append((i, j))
    sizes = {k: len(v) for k, v in classes.items()}
    if sizes != {"neighbour": 30, "second": 30, "antipode": 6}:
        raise RuntimeError(f"unexpected icosahedron pair classes: {sizes}")
    return {k: tuple(v) for k, v in classes.items()}


@functools.lru_cache(maxsize=1)
def vertex_positions() -> np.ndarray:
    """Unit vectors of the 12 icosahedron vertices, one row per bit.

    Built from the Gram matrix implied by the neighbour table (dot product ``+1/sqrt(5)`` for
    neighbours, ``-1/sqrt(5)`` for second neighbours, ``-1`` for antipodes, ``1`` on the
    diagonal), which has rank 3. The embedding is unique up to a rotation or reflection.

    Returns
    -------
    numpy.ndarray, shape (12, 3)
    """
    gram = np.eye(N_BITS)
    value = {"neighbour": 1 / np.sqrt(5), "second": -1 / np.sqrt(5), "antipode": -1.0}
    for kind, pairs in pair_classes().items():
        for i, j in pairs:
            gram[i, j] = gram[j, i] = value[kind]
    eigval, eigvec = np.linalg.eigh(gram)
    top = eigval[-3:]
    if not np.allclose(top, 4.0) or not np.allclose(eigval[:-3], 0.0, atol=1e-9):
        raise RuntimeError("icosahedron Gram matrix is not rank 3 with eigenvalues 4")
    return eigvec[:, -3:] * np.sqrt(top)


def _patterns() -> np.ndarray:
    """All 4096 patterns; row ``i`` is the binary expansion of ``i``, most significant bit first."""
    shifts = np.arange(N_BITS - 1, -1, -1)
    return ((np.arange(N_PATTERNS)[:, None] >> shifts) & 1).astype(np.uint8)


def _pair_counts(patterns: np.ndarray) -> dict[str, np.ndarray]:
    x = patterns.astype(np.int64)
    return {
        kind: sum(x[:, i] * x[:, j] for i, j in pairs) for kind, pairs in pair_classes().items()
    }


def _rule_labels(patterns: np.ndarray) -> np.ndarray:
    counts = _pair_counts(patterns)
    score = RULE_WEIGHTS["n"] * patterns.sum(1, dtype=np.int64)
    for kind in ("neighbour", "second", "antipode"):
        score = score + RULE_WEIGHTS[kind] * counts[kind]
    return (score >= RULE_THRESHOLD).astype(np.int64)


def dipole_rule_labels(patterns: np.ndarray, threshold: float = 7.63) -> np.ndarray:
    """The same labels from geometry: ``y = 1`` iff ``n + |sum of active vertex vectors| > threshold``.

    Any threshold in (7.5628, 7.7013) reproduces the published labels; the function exists so that
    the book can show that the integer rule is a rotation-invariant function of the pattern.
    """
    m = patterns.astype(float) @ vertex_positions()
    return (patterns.sum(1) + np.linalg.norm(m, axis=1) > threshold).astype(np.int64)


def _check_labels(y: np.ndarray) -> None:
    positives = int(y.sum())
    digest = hashlib.sha256(np.packbits(y.astype(np.uint8)).tobytes()).hexdigest()
    if positives != EXPECTED_POSITIVES or digest != EXPECTED_PACKED_SHA256:
        raise RuntimeError(
            "regenerated labels do not match the published var_u.mat "
            f"(positives {positives}, expected {EXPECTED_POSITIVES}; sha256 of packed labels "
            f"{digest}, expected {EXPECTED_PACKED_SHA256})"
        )


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set held in memory.

    Attributes
    ----------
    X : numpy.ndarray, shape (n_samples, n_features), float32
        Inputs (0/1 bits for the Tishby task).
    y : numpy.ndarray, shape (n_samples,), int64
        Class labels ``0 .. n_classes - 1``.
    name : str
        For a registered task, its canonical name (see :func:`ibtools.tasks.load_task`).
    checksum : str
        :func:`ibtools.tasks.array_checksum` of the arrays, verified when they were generated
        ("" for a data set built by hand).
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    checksum: str = ""

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1

    def label_entropy(self) -> float:
        """Entropy H(Y) of the label distribution over all samples, in bits."""
        p = np.bincount(self.y) / self.y.size
        p = p[p > 0]
        return float(-(p * np.log2(p)).sum())

    def split(self, kind: str = "unshuffled", train_fraction: float = 0.8, seed: int = 0) -> "Split":
        """A train/test split of this data set (see :func:`make_split`)."""
        return make_split(self, kind, train_fraction, seed)


@functools.lru_cache(maxsize=1)
def _tishby_arrays() -> tuple[np.ndarray, np.ndarray]:
    patterns = _patterns()
    y = _rule_labels(patterns)
    _check_labels(y)
    X = patterns.astype(np.float32)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def tishby_task() -> Dataset:
    """The 12-bit task of Shwartz-Ziv & Tishby (2017), identical to their ``var_u.mat``.

    Returns
    -------
    Dataset
        ``X`` holds all 4096 patterns (row ``i`` = bits of ``i``, most significant bit first,
        values 0.0/1.0) and ``y`` the labels (2118 ones, 1978 zeros; H(Y) = 0.99916 bits).
        The arrays are read-only. The same as ``load_task("tishby")``.

    Raises
    ------
    RuntimeError
        If the regenerated labels differ from the published file (count or checksum).
    """
    from .tasks import load_task

    return load_task("tishby")


@dataclass(frozen=True, eq=False)
class Split:
    """Indices of a train/test split of a :class:`Dataset`.

    Attributes
    ----------
    train : numpy.ndarray of int64
    test : numpy.ndarray of int64
    kind : str
        ``"unshuffled"`` or ``"stratified"``.
    """

    train: np.ndarray
    test: np.ndarray
    kind: str

    def class_balance(self, y: np.ndarray) -> dict[str, float]:
        """Fraction of label 1 in each part (and overall), e.g. ``{"train": 0.437, ...}``."""
        y = np.asarray(y)
        return {
            "all": float(y.mean()),
            "train": float(y[self.train].mean()),
            "test": float(y[self.test].mean()),
        }


def _check_fraction(train_fraction: float, n: int) -> int:
    if not (0.0 < float(train_fraction) < 1.0):
        raise ValueError(f"train_fraction must be strictly between 0 and 1, got {train_fraction!r}")
    n_train = int(round(float(train_fraction) * n))
    if n_train < 1 or n_train > n - 1:
        raise ValueError(f"train_fraction={train_fraction} leaves an empty train or test set of {n} samples")
    return n_train


def unshuffled_split(n_samples: int, train_fraction: float = 0.8) -> Split:
    """The split of the original code: the first ``round(train_fraction * n)`` patterns train.

    For the Tishby task the patterns are in binary counting order, so this split is **not**
    class-balanced: with 80 % training, p(y=1) is 0.437 on the 3277 training patterns and 0.836
    on the 819 test patterns (0.517 overall). Use it to reproduce the paper's code; prefer
    :func:`stratified_split` for clean generalization measurements.
    """
    n_train = _check_fraction(train_fraction, n_samples)
    idx = np.arange(n_samples, dtype=np.int64)
    return Split(train=idx[:n_train], test=idx[n_train:], kind="unshuffled")


def stratified_split(y: np.ndarray, train_fraction: float = 0.8, rng=None) -> Split:
    """A seeded split that keeps the class balance of ``y`` in both parts.

    Each class is shuffled with ``rng`` and its first share goes to training; shares are rounded
    by largest remainder so that the training set has exactly ``round(train_fraction * n)``
    samples (3277 of 4096 at 80 %, as in the unshuffled split). Class proportions of train and
    test then differ from the overall ones by less than one pattern per class.

    Parameters
    ----------
    y : array of int, shape (n_samples,)
    train_fraction : float in (0, 1)
    rng : numpy.random.Generator or int or None
        Source of randomness; an int is used as a seed.
    """
    y = np.asarray(y)
    n_train = _check_fraction(train_fraction, y.size)
    rng = np.random.default_rng(rng)
    classes = np.unique(y)
    sizes = np.array([(y == c).sum() for c in classes])
    exact = sizes * (n_train / y.size)
    take = np.floor(exact).astype(int)
    remainder_order = np.argsort(-(exact - take), kind="stable")
    take[remainder_order[: n_train - take.sum()]] += 1
    train_parts, test_parts = [], []
    for c, k in zip(classes, take):
        members = rng.permutation(np.flatnonzero(y == c))
        train_parts.append(members[:k])
        test_parts.append(members[k:])
    return Split(
        train=np.sort(np.concatenate(train_parts)).astype(np.int64),
        test=np.sort(np.concatenate(test_parts)).astype(np.int64),
        kind="stratified",
    )


SPLIT_KINDS = ("unshuffled", "stratified")


def make_split(dataset: Dataset, kind: str = "unshuffled", train_fraction: float = 0.8, seed: int = 0) -> Split:
    """Build a split by name: ``"unshuffled"`` (the paper's code) or ``"stratified"`` (seeded)."""
    if kind == "unshuffled":
        return unshuffled_split(dataset.n_samples, train_fraction)
    if kind == "stratified":
        return stratified_split(dataset.y, train_fraction, rng=seed)
    raise ValueError(f"unknown split kind {kind!r}; choose one of {SPLIT_KINDS}")


_TASK_EXPORTS = ("load_task", "task_names", "task_info", "canonical_task", "DEFAULT_TASK", "TASKS")


def __getattr__(name: str):
    # the registry lives in ibtools.tasks, which imports this module; re-exported lazily
    if name in _TASK_EXPORTS:
        from . import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

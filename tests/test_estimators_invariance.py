"""Invariances, agreement with reference implementations, and batched evaluation."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from ibtools import estimators as E

NAMES = {
    "fixed": E.fixed_binning,
    "binsize": E.binsize_binning,
    "max": E.max_binning,
    "ebab": E.ebab,
    "kde": lambda a, y: E.kde(a, y, noise_var=0.05),
    "akde": E.akde,
}


@pytest.fixture
def layer(task, rng):
    return np.maximum(task.X @ rng.normal(size=(12, 5)) - 0.5, 0).astype(np.float32)


@pytest.mark.parametrize("name", list(NAMES))
def test_permuting_samples_or_units_changes_nothing(task, layer, rng, name):
    est = NAMES[name]
    tol = 1e-5 if "kde" in name else 1e-9  # KDE sums float32 kernels in another order
    base = est(layer, task.y)
    perm = rng.permutation(4096)
    assert tuple(est(layer[perm], task.y[perm])) == pytest.approx(tuple(base), abs=tol)
    assert tuple(est(layer[:, ::-1].copy(), task.y)) == pytest.approx(tuple(base), abs=tol)


@pytest.mark.parametrize("transform", [lambda a: 3 * a + 1, np.tanh, lambda a: np.exp(a) - 1, np.sqrt, lambda a: a**3])
def test_ebab_is_invariant_to_monotone_transforms(task, layer, transform):
    a = layer.astype(np.float64)
    assert E.ebab(transform(a), task.y) == pytest.approx(E.ebab(a, task.y), abs=1e-9)


def test_fixed_binning_is_not(task, layer):
    a = layer.astype(np.float64)
    assert abs(E.fixed_binning(3 * a, task.y).i_xt - E.fixed_binning(a, task.y).i_xt) > 0.1


def test_fixed_binning_clips_instead_of_wrapping(task):
    # values below -1 must share the lowest bin, not land in the top one
    t = np.where(task.y[:, None] == 1, -5.0, 0.99)
    assert E.fixed_binning(t, task.y).i_ty == pytest.approx(task.label_entropy(), abs=1e-9)
    t = np.where(task.y[:, None] == 1, -5.0, -1.0)  # both in the first bin: no information
    assert E.fixed_binning(t, task.y).i_xt == pytest.approx(0.0, abs=1e-9)


def _paper_ebab(values, low, n_bins=30):
    """The paper code's EBAB, restated literally (numpy.digitize on equal-rank edges)."""
    u = np.unique(values)
    u = u[u != low]
    edges = [low] + [u[int(np.floor(k * len(u) / n_bins))] for k in range(n_bins)] + [u[-1]]
    return np.digitize(values, edges) - 1


@pytest.mark.parametrize("act, low", [("relu", 0.0), ("tanh", -1.000001)])
def test_ebab_matches_the_papers_code(task, rng, act, low):
    z = task.X @ rng.normal(size=(12, 6))
    a = np.maximum(z, 0) if act == "relu" else np.tanh(z)
    ours = E.ebab_bin_indices(a[None], 30, low)[0]
    assert np.array_equal(ours, _paper_ebab(a, low))
    # default low = the minimum; for ReLU with dead values that is 0, the paper's choice
    assert np.array_equal(E.ebab_bin_indices(a[None])[0], _paper_ebab(a, a.min()))


def test_max_binning_with_network_range_sees_fewer_bins(task, layer):
    own = E.max_binning(layer, task.y)
    wide = E.max_binning(layer, task.y, max_value=10 * layer.max())
    assert wide.i_xt < own.i_xt


def _kt_reference(a, y, var, factor):
    """Kolchinsky-Tracey bound in float64 with scipy: cdist + logsumexp."""

    def info(h):
        d = cdist(h, h, "sqeuclidean")
        return -np.mean(logsumexp(-d / (factor * var), axis=1) - np.log(len(h)))

    i_xt = info(a)
    i_ty = i_xt - sum((y == c).mean() * info(a[y == c]) for c in np.unique(y))
    return i_xt / np.log(2), i_ty / np.log(2)


@pytest.mark.parametrize("bound, factor", [("upper", 2.0), ("lower", 8.0)])
@pytest.mark.parametrize("var", [0.01, 0.3, 3.0])
def test_kde_matches_float64_reference(task, layer, var, bound, factor):
    a = layer[::4].astype(np.float64)  # 1024 rows with many duplicates (dead units)
    y = task.y[::4]
    ref = _kt_reference(a, y, var, factor)
    got = E.kde(a, y, var, bound)
    assert got == pytest.approx(ref, abs=1e-4)  # float32 distances: error ~1e-6 bits here
    assert E.kde(a, y, var, bound, chunk_size=7) == pytest.approx(got, abs=1e-6)


def test_three_classes(rng):
    y = rng.integers(0, 3, 900)
    t = (0.9 * (y[:, None] - 1.0)).repeat(2, 1)  # -0.9, 0, 0.9: separate bins, far apart for KDE
    p = np.bincount(y) / 900
    h = float(-(p * np.log2(p)).sum())
    for est in NAMES.values():
        assert est(t, y).i_ty == pytest.approx(h, abs=1e-3)


@pytest.mark.parametrize("name", list(NAMES))
def test_batched_equals_one_by_one_and_torch_equals_numpy(task, rng, name):
    est = NAMES[name]
    stack = np.stack([np.tanh(task.X @ rng.normal(size=(12, 4))) for _ in range(3)]).astype(np.float32)
    batched = est(stack, task.y)
    assert batched.i_xt.shape == (3,)
    for k in range(3):
        single = est(stack[k], task.y)
        assert (batched.i_xt[k], batched.i_ty[k]) == pytest.approx(single, abs=1e-9)
    assert est(torch.from_numpy(stack[0]), torch.tensor(task.y)) == pytest.approx(est(stack[0], task.y), abs=1e-9)

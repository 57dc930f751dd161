"""The fast EBAB path (blocked int8 digitize) against plain references: bin indices must be
identical, not merely close, and the bits must match a per-row dictionary count."""

import math
from collections import Counter

import numpy as np
import pytest

from ibtools import estimators as E
from ibtools.estimators import binning as B


def _reference_bins(values, n_bins, low):
    """Paper-style EBAB bins of one network's layer: np.unique for the edges, np.digitize."""
    bottom = values.min() if low is None else values.dtype.type(low)
    u = np.unique(values)
    u = u[u != bottom]
    if u.size == 0:
        edges = np.full(n_bins + 2, bottom)
    else:
        edges = np.array([bottom] + [u[(k * u.size) // n_bins] for k in range(n_bins)] + [u[-1]], dtype=values.dtype)
    return np.digitize(values, edges) - 1


def _reference_bits(bins, y):
    """H(T) and I(T;Y) in bits by counting binned rows in dictionaries."""
    n = len(y)
    rows = [tuple(r) for r in bins.tolist()]
    h = lambda counts: -sum(c / n * math.log2(c / n) for c in counts)  # noqa: E731
    h_t = h(Counter(rows).values())
    h_ty = h(Counter(zip(rows, y.tolist())).values())
    h_y = h(Counter(y.tolist()).values())
    return h_t, h_t + h_y - h_ty


def _layers(task, rng, width):
    z = (task.X @ rng.normal(size=(12, width))).astype(np.float32)
    yield np.tanh(z * 0.5)
    yield np.maximum(z - 1.0, 0.0)  # exact zeros: dead units, many repeated rows
    yield np.round(z, 1)  # ties
    yield np.where(z < 0, np.float32(-0.0), np.round(z)).astype(np.float32)  # -0.0 and +0.0
    yield np.full_like(z, 2.0)  # constant


@pytest.mark.parametrize("width", range(1, 13))
def test_fast_ebab_bins_are_identical_to_the_reference(task, rng, width):
    for a in _layers(task, rng, width):
        stack = np.stack([a, a * 3, np.abs(a)]).astype(np.float32)
        for n_bins, low in ((30, None), (1, None), (100, None), (30, float(stack.min()) - 1.0), (200, None)):
            got = B.ebab_bin_indices(stack, n_bins, low)
            for s in range(stack.shape[0]):
                assert np.array_equal(got[s], _reference_bins(stack[s], n_bins, low))


@pytest.mark.parametrize("width", [1, 3, 10, 12])
def test_fast_ebab_bits_match_dictionary_counts(task, rng, width):
    for a in _layers(task, rng, width):
        i_xt, i_ty = E.ebab(a, task.y)
        r_xt, r_ty = _reference_bits(_reference_bins(a, 30, None), task.y)
        assert abs(i_xt - r_xt) < 1e-12 and abs(i_ty - r_ty) < 1e-12


@pytest.mark.parametrize("n_edges", [1, 2, 32, 127, 128, 300])
@pytest.mark.parametrize("shape", [(1, 7), (50, 40), (3, 40960), (2, 0)])
def test_digitize_equals_numpy_digitize(rng, n_edges, shape):
    values = np.round(rng.normal(size=shape), 1).astype(np.float32)
    edges = np.sort(np.round(rng.normal(size=(shape[0], n_edges)), 1).astype(np.float32), axis=1)
    got = B.digitize(values, edges)
    for s in range(shape[0]):
        assert np.array_equal(got[s], np.digitize(values[s], edges[s]) - 1)
    assert np.array_equal(B.digitize(values, edges[0]), np.digitize(values, edges[0]) - 1)

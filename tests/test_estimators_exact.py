"""The exact estimator: plug-in entropies of the distinct rows of a deterministic layer.

Tolerance: the results are exact plug-in quantities, so only the rounding of a sum of N terms is
allowed, 1e-12 bits (the reference below counts Python tuples, independently of ibtools)."""

import importlib
from collections import Counter

import numpy as np
import pytest
import torch

from ibtools import estimators as E

TOL = 1e-12


def h_bits(counts):
    p = np.asarray(list(counts), dtype=float)
    p = p / p.sum()
    return float(-(p * np.log2(p)).sum())


def reference(rows, y):
    """I(X;T) = H(T) and I(T;Y) by counting tuples of Python floats (0.0 == -0.0 there too)."""
    rows = [tuple(float(v) for v in r) for r in np.asarray(rows)]
    h_t = h_bits(Counter(rows).values())
    h_ty = h_bits(Counter(zip(rows, np.asarray(y).tolist())).values())
    return h_t, h_t + h_bits(Counter(np.asarray(y).tolist()).values()) - h_ty


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 2, 5, 13])
def test_matches_tuple_counting_with_many_ties(rng, dtype, d):
    # few distinct values per unit: many coinciding rows, and all widths of the row codes
    a = rng.integers(-3, 4, size=(3000, d)).astype(dtype) * dtype(0.37)
    y = rng.integers(0, 3, 3000)
    est = E.exact(a, y)
    ref = reference(a, y)
    assert est.i_xt == pytest.approx(ref[0], abs=TOL)
    assert est.i_ty == pytest.approx(ref[1], abs=TOL)


def test_continuous_layer_of_distinct_inputs_has_log2_n_bits(task):
    a = np.tanh(task.X.astype(np.float32) @ np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32))
    assert len({tuple(r) for r in a.tolist()}) == 4096  # injective here
    est = E.exact(a, task.y)
    assert est.i_xt == pytest.approx(12.0, abs=TOL)
    assert est.i_ty == pytest.approx(task.label_entropy(), abs=TOL)


def test_no_tolerance_one_ulp_apart_is_distinct():
    base = np.float32(0.1)
    a = np.array([[base, 1.0], [np.nextafter(base, np.float32(1)), 1.0]], dtype=np.float32)
    assert E.exact(a, [0, 1]).i_xt == pytest.approx(1.0, abs=TOL)
    assert E.exact(np.array([[base, 1.0], [base, 1.0]], np.float32), [0, 1]).i_xt == pytest.approx(0.0, abs=TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_negative_zero_equals_zero(dtype):
    a = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, -0.0], [-0.0, 0.0]], dtype=dtype)
    est = E.exact(a, [0, 1, 0, 1])
    assert est.i_xt == pytest.approx(1.0, abs=TOL)  # two distinct rows, two inputs each
    assert est.i_ty == pytest.approx(0.0, abs=TOL)


def test_constant_and_label_copy_layers(task):
    assert E.exact(np.full((4096, 3), 0.3, np.float32), task.y) == pytest.approx((0.0, 0.0), abs=TOL)
    h_y = task.label_entropy()
    est = E.exact(np.stack([task.y, 1 - task.y], 1).astype(np.float32), task.y)
    assert est == pytest.approx((h_y, h_y), abs=TOL)


def test_repeated_inputs_use_the_empirical_distribution(task):
    # every input twice: rows identical in pairs, H(X) = H(T) = 12 bits for 8192 rows
    a = np.tanh(task.X.astype(np.float32) - 0.5)
    est = E.exact(np.concatenate([a, a]), np.concatenate([task.y, task.y]))
    assert est.i_xt == pytest.approx(12.0, abs=TOL)
    assert est.i_ty == pytest.approx(task.label_entropy(), abs=TOL)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_quantized_layer_equals_plugin_entropy_of_its_codes(rng, task, bits):
    # a b-bit uniform quantizer of a tanh layer, as a quantized network computes it in float32
    pre = task.X.astype(np.float32) @ rng.normal(size=(12, 4)).astype(np.float32)
    levels = 2**bits - 1
    codes = np.round((np.tanh(pre) + 1) / 2 * levels).astype(np.int64)
    activity = (codes.astype(np.float32) * np.float32(2.0 / levels) - np.float32(1.0))
    est = E.exact(activity, task.y)
    ref = E.information_from_bins(codes, task.y)
    assert est.i_xt == pytest.approx(ref.i_xt, abs=TOL)
    assert est.i_ty == pytest.approx(ref.i_ty, abs=TOL)
    assert est.i_xt <= 4 * bits + TOL  # at most 2**bits states per unit


def test_stack_gives_each_network_its_own_numbers(rng):
    a = rng.integers(0, 3, size=(4, 500, 3)).astype(np.float32)
    y = rng.integers(0, 2, 500)
    stacked = E.exact(a, y)
    assert stacked.i_xt.shape == (4,)
    for k in range(4):
        single = E.exact(a[k], y)
        assert stacked.i_xt[k] == single.i_xt and stacked.i_ty[k] == single.i_ty


def test_torch_input_and_registry(rng):
    a = rng.integers(0, 3, size=(500, 3)).astype(np.float32)
    y = rng.integers(0, 2, 500)
    assert E.exact(torch.from_numpy(a), torch.from_numpy(y)) == E.exact(a, y)
    assert E.get_estimator("exact") is E.exact
    E.check_values("exact", {})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_rejected_clearly(bad):
    a = np.zeros((10, 2), np.float32)
    a[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinite"):
        E.exact(a, np.arange(10) % 2)


@pytest.mark.parametrize("shape", [(10,), (1, 1, 10, 2)])
def test_wrong_shapes_are_rejected(shape):
    with pytest.raises(ValueError, match="shape"):
        E.exact(np.zeros(shape, np.float32), np.arange(10) % 2)


def test_labels_must_fit():
    with pytest.raises(ValueError, match="length"):
        E.exact(np.zeros((10, 2), np.float32), np.arange(9) % 2)


def test_hash_collisions_are_detected_and_resolved_exactly(rng, monkeypatch):
    exact_module = importlib.import_module("ibtools.estimators.exact")

    a = rng.integers(-3, 4, size=(2000, 4)).astype(np.float32)
    y = rng.integers(0, 2, 2000)
    words = exact_module._words(a[None])
    assert exact_module._hashed_ids(words) is not None  # the real hash: no collision here
    # a hash that sums the words collides for permuted rows: detected, then the exact fallback
    monkeypatch.setattr(exact_module, "_HASH_KEYS", np.ones(64, dtype=np.uint64) << np.uint64(32))
    assert exact_module._hashed_ids(words) is None
    est = E.exact(a, y)
    ref = reference(a, y)
    assert est.i_xt == pytest.approx(ref[0], abs=TOL) and est.i_ty == pytest.approx(ref[1], abs=TOL)


def test_float64_rows_differing_in_low_bits_are_distinct():
    x = 0.1
    a = np.array([[x, 1.0], [np.nextafter(x, 1.0), 1.0], [x, 1.0]])
    est = E.exact(a, [0, 1, 0])
    assert est.i_xt == pytest.approx(h_bits([2, 1]), abs=TOL)


@pytest.mark.parametrize("binning", [E.ebab, E.fixed_binning, E.binsize_binning, E.max_binning])
def test_every_binning_is_a_coarsening_of_the_exact_partition(task, binning):
    # binning merges rows, never splits them: H(binned T) <= H(T) and, by data processing,
    # I(binned T; Y) <= I(T; Y)
    rng = np.random.default_rng(3)
    for act in (np.tanh, lambda z: np.maximum(z - 0.5, 0)):
        a = act(task.X @ rng.normal(size=(12, 3))).astype(np.float32)
        ex, b = E.exact(a, task.y), binning(a, task.y)
        assert b.i_xt <= ex.i_xt + TOL and b.i_ty <= ex.i_ty + TOL

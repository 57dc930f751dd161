"""Bad input gets a ValueError that names the problem."""

import numpy as np
import pytest

from ibtools import estimators as E

ESTIMATORS = [
    E.fixed_binning,
    E.binsize_binning,
    E.max_binning,
    E.ebab,
    lambda a, y: E.kde(a, y, 0.1),
    E.akde,
]
GOOD = np.random.default_rng(0).normal(size=(50, 3))
LABELS = np.arange(50) % 2


@pytest.mark.parametrize("est", ESTIMATORS)
@pytest.mark.parametrize(
    "activity, labels, message",
    [
        (np.where(np.eye(50, 3) > 0, np.nan, GOOD), LABELS, "NaN"),
        (np.where(np.eye(50, 3) > 0, np.inf, GOOD), LABELS, "infinite"),
        (GOOD, LABELS[:-1], "labels has length 49 but activity has 50"),
        (np.empty((0, 3)), np.empty(0, int), "empty"),
        (np.empty((50, 0)), LABELS, "empty"),
        (GOOD[:, 0], LABELS, "shape \\(n_samples, n_units\\)"),
        (GOOD[None, None], LABELS, "shape \\(n_samples, n_units\\)"),
        (GOOD, LABELS + 0.5, "integer class indices"),
        (GOOD, np.zeros(50, int), "single class"),
        (GOOD, LABELS.reshape(25, 2), "1-D array"),
        (GOOD.astype(complex), LABELS, "real-valued"),
        (np.array([["a"] * 3] * 50, dtype=object), LABELS, "numeric"),
    ],
)
def test_bad_input(est, activity, labels, message):
    with pytest.raises(ValueError, match=message):
        est(activity, labels)


def test_nan_in_a_stack_names_the_network():
    stack = np.stack([GOOD, GOOD])
    stack[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"network\(s\) \[1\]"):
        E.ebab(stack, LABELS)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: E.kde(GOOD, LABELS, 0.0), "noise_var must be a positive"),
        (lambda: E.kde(GOOD, LABELS, -1), "noise_var must be a positive"),
        (lambda: E.kde(GOOD, LABELS, float("nan")), "noise_var must be a positive"),
        (lambda: E.kde(GOOD, LABELS, 0.1, bound="middle"), "bound must be one of"),
        (lambda: E.kde(GOOD, LABELS, 0.1, chunk_size=0), "chunk_size"),
        (lambda: E.akde(GOOD, LABELS, alpha=0), "alpha must be a positive"),
        (lambda: E.ebab(GOOD, LABELS, n_bins=0), "n_bins must be an integer >= 1"),
        (lambda: E.ebab(GOOD, LABELS, n_bins=2.5), "n_bins must be an integer"),
        (lambda: E.ebab(GOOD, LABELS, low=10.0), "goes below low"),
        (lambda: E.max_binning(GOOD, LABELS, n_bins=-3), "n_bins"),
        (lambda: E.max_binning(GOOD, LABELS, max_value=-100.0), "max_value must exceed"),
        (lambda: E.max_binning(GOOD, LABELS, max_value=[1.0, 2.0]), "one number per network"),
        (lambda: E.fixed_binning(GOOD, LABELS, lo=1, hi=-1), "lo < hi"),
        (lambda: E.fixed_binning(GOOD, LABELS, n_edges=1), "n_edges"),
        (lambda: E.binsize_binning(GOOD, LABELS, bin_size=0), "bin_size"),
        (lambda: E.get_estimator("ksg"), "unknown estimator 'ksg'; valid estimators are: fixed"),
    ],
)
def test_impossible_parameters(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_registry_accepts_a_new_estimator():
    def first_unit(activity, labels):
        return E.ebab(np.asarray(activity)[..., :1], labels)

    E.register_estimator("first_unit_ebab", first_unit)
    try:
        assert E.get_estimator("first_unit_ebab")(GOOD, LABELS) == E.ebab(GOOD[:, :1], LABELS)
        with pytest.raises(ValueError, match="already registered"):
            E.register_estimator("first_unit_ebab", first_unit)
    finally:
        E.ESTIMATORS.pop("first_unit_ebab")

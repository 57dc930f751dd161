"""Monte Carlo mutual information of a noise-injected layer (``mixture``), against closed forms,
numerical integration and the Kolchinsky-Tracey bounds.

Tolerances: Monte Carlo results are compared within 4 reported standard errors plus 1e-3 bits
(the stated floating-point bound is 3e-4 bits); quantities that are exact whatever the draws
(identical means, perfectly separated means) within 1e-9 bits."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from ibtools import estimators as E

EXACT = 1e-9
FP = 1e-3


def within(est, se, truth):
    return abs(est - truth) <= 4 * se + FP


def mixture_entropy_1d_nats(means, sigma):
    """h of the equal-weight 1-D Gaussian mixture, by adaptive quadrature (abs. error ~1e-10)."""
    means = np.asarray(means, float)

    def integrand(t):
        p = norm.pdf(t, means, sigma).mean()
        return -p * math.log(p) if p > 0 else 0.0

    lo, hi = means.min() - 12 * sigma, means.max() + 12 * sigma
    value, err = integrate.quad(integrand, lo, hi, limit=400, points=sorted(set(means.tolist())))
    assert err < 1e-7
    return value


def gauss_h_nats(sigma):
    return 0.5 * math.log(2 * math.pi * math.e * sigma**2)


@pytest.mark.parametrize("a", [0.1, 0.5, 1.0, 2.0, 4.0])
def test_two_point_mixture_matches_quadrature(a):
    sigma = 0.8
    means = np.array([[-a], [a]])
    truth = (mixture_entropy_1d_nats([-a, a], sigma) - gauss_h_nats(sigma)) / math.log(2)
    r = E.mixture_information(means, [0, 1], noise_std=sigma, target_se=0.01, seed=1)
    assert r.se_xt <= 0.01 and r.se_ty <= 0.01
    assert within(r.i_xt, r.se_xt, truth)
    assert within(r.i_ty, r.se_ty, truth)  # Y = X here
    h_truth = mixture_entropy_1d_nats([-a, a], sigma) / math.log(2)
    assert within(r.h_t, r.se_h, h_truth)


def test_several_draws_of_earlier_noise_match_quadrature():
    # K = 2 draws per input: p(t | x) is itself a two-component mixture
    sigma = 0.7
    draws = np.array([[[-3.0], [3.0]], [[0.3], [-0.3]]])  # (K=2, N=2, d=1): input 0 at -3 or 0.3
    h_t = mixture_entropy_1d_nats([-3, 3, 0.3, -0.3], sigma)
    h_t_x = 0.5 * (mixture_entropy_1d_nats([-3, 0.3], sigma) + mixture_entropy_1d_nats([3, -0.3], sigma))
    truth = (h_t - h_t_x) / math.log(2)
    r = E.mixture_information(draws, [0, 1], noise_std=sigma, target_se=0.01, seed=2)
    assert within(r.i_xt, r.se_xt, truth)
    assert within(r.i_ty, r.se_ty, truth)
    assert within(r.h_t, r.se_h, h_t / math.log(2))
    # one draw only: exact for the mixture of that draw, which over-states I here (it ignores
    # the spread that the earlier noise gives T | X)
    truth_one = (mixture_entropy_1d_nats([-3, 3], sigma) - gauss_h_nats(sigma)) / math.log(2)
    assert truth_one > truth + 0.3
    one = E.mixture_information(draws[0], [0, 1], noise_std=sigma, target_se=0.01, seed=2)
    assert within(one.i_xt, one.se_xt, truth_one)


def test_identical_draws_reduce_to_one_draw(rng):
    means = rng.normal(size=(40, 2))
    y = np.arange(40) % 2
    one = E.mixture_information(means, y, noise_std=0.5, seed=3)
    three = E.mixture_information(np.stack([means] * 3), y, noise_std=0.5, seed=3)
    assert one == three


@pytest.mark.parametrize("d", [1, 4])
def test_identical_means_carry_nothing(d):
    y = np.arange(50) % 2
    r = E.mixture_information(np.full((50, d), 0.7), y, noise_std=0.1, seed=0)
    assert r.i_xt == pytest.approx(0.0, abs=EXACT) and r.i_ty == pytest.approx(0.0, abs=EXACT)
    assert r.se_xt == pytest.approx(0.0, abs=EXACT)
    assert r.h_t == pytest.approx(E.gaussian_entropy_bits(d, 0.1), abs=1e-9)


def test_well_separated_means_give_log2_of_distinct_means():
    y = np.arange(64) % 2
    means = np.arange(64, dtype=float)[:, None] * 100.0  # 1000 sigma apart
    r = E.mixture_information(means, y, noise_std=0.1, seed=0)
    assert r.i_xt == pytest.approx(6.0, abs=EXACT) and r.i_ty == pytest.approx(1.0, abs=EXACT)
    # 16 distinct means, 4 inputs each (two of each class): log2 16 bits, nothing about Y
    r = E.mixture_information(np.repeat(np.arange(16.0), 4)[:, None] * 100.0, y, noise_std=0.1, seed=0)
    assert r.i_xt == pytest.approx(4.0, abs=EXACT) and r.i_ty == pytest.approx(0.0, abs=EXACT)


def test_huge_noise_gives_nothing(rng):
    means = rng.uniform(-1, 1, size=(200, 3))
    r = E.mixture_information(means, np.arange(200) % 2, noise_std=1e3, seed=0)
    assert 0.0 <= r.i_xt < 1e-3 and 0.0 <= r.i_ty < 1e-3


def test_classes_with_the_same_means_give_no_label_information(rng):
    means = rng.normal(size=(30, 2))
    r = E.mixture_information(np.concatenate([means, means]), np.repeat([0, 1], 30), noise_std=0.3, seed=0)
    assert r.i_ty == pytest.approx(0.0, abs=1e-6)


def test_far_apart_clusters_use_exact_differences():
    # two clusters 1e9 sigma apart (float64 products would lose the within-cluster distances):
    # I = 1 bit for the cluster + I of a two-point mixture 1 sigma wide inside it
    means = np.array([[0.0], [1.0], [1e9], [1e9 + 1.0]])
    inner = (mixture_entropy_1d_nats([0, 1], 1.0) - gauss_h_nats(1.0)) / math.log(2)
    r = E.mixture_information(means, [0, 0, 1, 1], noise_std=1.0, target_se=0.01, seed=4)
    assert within(r.i_xt, r.se_xt, 1.0 + inner)
    assert r.i_ty == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("d", [1, 3, 10])
@pytest.mark.parametrize("sigma", [0.1, 0.5, 2.0])
def test_between_kde_bounds_on_random_means(rng, d, sigma):
    means = rng.normal(size=(300, d))
    y = rng.integers(0, 3, 300)
    r = E.mixture_information(means, y, noise_std=sigma, seed=5)
    lo = E.kde(means, y, noise_var=sigma**2, bound="lower").i_xt
    up = E.kde(means, y, noise_var=sigma**2, bound="upper").i_xt
    assert lo - 4 * r.se_xt - FP <= r.i_xt <= up + 4 * r.se_xt + FP
    assert r.se_xt <= 0.05 and r.se_ty <= 0.05


def test_between_kde_bounds_on_a_trained_network(task):
    from ibtools.config import TrainConfig
    from ibtools.trainer import EnsembleTrainer

    trainer = EnsembleTrainer(TrainConfig(activation="tanh", epochs=20, seeds=(0,)))
    for _ in range(20):
        trainer.train_epoch()
    acts, _ = trainer.evaluate()
    y = trainer.y_all
    for layer in (acts[0][0], acts[3][0]):
        for sigma in (0.1, 0.5):
            r = E.mixture_information(layer, y, noise_std=sigma, seed=6)
            lo = E.kde(layer, y, noise_var=sigma**2, bound="lower").i_xt
            up = E.kde(layer, y, noise_var=sigma**2, bound="upper").i_xt
            assert r.se_xt <= 0.05 and r.se_ty <= 0.05
            assert lo - 4 * r.se_xt - FP <= r.i_xt <= up + 4 * r.se_xt + FP


def test_standard_error_is_calibrated():
    # the spread of estimates over 40 seeds matches the reported standard error
    means = np.random.default_rng(7).normal(size=(100, 2))
    y = np.arange(100) % 2
    runs = [E.mixture_information(means, y, noise_std=0.5, n_samples=4, seed=s) for s in range(40)]
    spread_x = np.std([r.i_xt for r in runs], ddof=1)
    spread_y = np.std([r.i_ty for r in runs], ddof=1)
    assert 0.7 <= spread_x / np.mean([r.se_xt for r in runs]) <= 1.4
    assert 0.7 <= spread_y / np.mean([r.se_ty for r in runs]) <= 1.4


def test_target_se_and_n_samples(rng):
    means = rng.normal(size=(20, 2))
    y = np.arange(20) % 2
    r = E.mixture_information(means, y, noise_std=0.5, target_se=0.02, seed=0)
    assert r.se_xt <= 0.02 and r.se_ty <= 0.02
    fixed = E.mixture_information(means, y, noise_std=0.5, n_samples=7, seed=0)
    assert fixed.n_draws == 7


def test_reproducible_and_seed_dependent(rng):
    means = rng.normal(size=(50, 2))
    y = np.arange(50) % 2
    a = E.mixture_information(means, y, noise_std=0.5, seed=11)
    assert a == E.mixture_information(means, y, noise_std=0.5, seed=11)
    assert a == E.mixture_information(means, y, noise_std=0.5, seed=np.random.default_rng(11))
    assert a.i_xt != E.mixture_information(means, y, noise_std=0.5, seed=12).i_xt


def test_registered_form_and_stacks(rng):
    means = rng.normal(size=(3, 60, 2)).astype(np.float32)
    y = np.arange(60) % 2
    stacked = E.get_estimator("mixture")(means, y, noise_std=0.4, seed=3)
    assert stacked.i_xt.shape == (3,)
    for k in range(3):  # each network's numbers do not depend on the others in the stack
        single = E.mixture(means[k], y, noise_std=0.4, seed=3)
        full = E.mixture_information(means[k], y, noise_std=0.4, seed=3)
        assert (stacked.i_xt[k], stacked.i_ty[k]) == (single.i_xt, single.i_ty) == (full.i_xt, full.i_ty)
    assert E.mixture(torch.from_numpy(means[2]), torch.from_numpy(y), noise_std=0.4, seed=3) == single
    E.check_values("mixture", {"noise_std": 0.1})


@pytest.mark.parametrize("kwargs, match", [
    ({"noise_std": 0.0}, "noise_std"),
    ({"noise_std": -1.0}, "noise_std"),
    ({"noise_std": float("nan")}, "noise_std"),
    ({"noise_std": float("inf")}, "noise_std"),
    ({"noise_std": 0.1, "n_samples": 1}, "n_samples"),
    ({"noise_std": 0.1, "n_samples": 2.5}, "n_samples"),
    ({"noise_std": 0.1, "target_se": 0.0}, "target_se"),
    ({"noise_std": 0.1, "target_se": None}, "n_samples"),
    ({"noise_std": 0.1, "seed": -1}, "seed"),
    ({"noise_std": 0.1, "seed": "a"}, "seed"),
])
def test_bad_parameters_are_clear_value_errors(kwargs, match):
    a = np.zeros((10, 2))
    for fn in (E.mixture, E.mixture_information):
        with pytest.raises(ValueError, match=match):
            fn(a, np.arange(10) % 2, **kwargs)


def test_bad_input_is_rejected():
    y = np.arange(10) % 2
    bad = np.zeros((10, 2))
    bad[2, 0] = np.nan
    for fn in (E.mixture, E.mixture_information):
        with pytest.raises(ValueError, match="NaN"):
            fn(bad, y, noise_std=0.1)
        with pytest.raises(ValueError, match="shape"):
            fn(np.zeros(10), y, noise_std=0.1)
        with pytest.raises(ValueError, match="shape"):
            fn(np.zeros((2, 2, 10, 2)), y, noise_std=0.1)
        with pytest.raises(ValueError, match="length"):
            fn(np.zeros((9, 2)), y, noise_std=0.1)
    with pytest.raises(ValueError, match="overflows"):
        E.mixture_information(np.array([[1e300], [-1e300]]), [0, 1], noise_std=1e-300)


def test_unreachable_target_warns_and_reports_the_actual_error(monkeypatch):
    import importlib

    module = importlib.import_module("ibtools.estimators.mixture")
    monkeypatch.setattr(module, "_MAX_DRAWS", 2000)
    means = np.random.default_rng(8).normal(size=(20, 2))
    with pytest.warns(RuntimeWarning, match="above target_se"):
        r = E.mixture_information(means, np.arange(20) % 2, noise_std=0.5, target_se=1e-4, seed=0)
    assert r.se_xt > 1e-4 and r.n_draws * 20 >= 2000


@pytest.mark.parametrize("d", [2, 10])
def test_float32_float64_and_differences_agree_within_the_stated_bound(monkeypatch, d):
    # same draws, three ways of computing the exponents: the estimates differ by at most the
    # stated floating-point bound (3.4e-4 bits), not by Monte Carlo error
    import importlib

    module = importlib.import_module("ibtools.estimators.mixture")
    means = np.random.default_rng(9).uniform(-1, 1, size=(500, d))
    y = np.arange(500) % 3
    results = {}
    for method in ("float32", "float64", "direct"):
        monkeypatch.setattr(module, "_method", lambda *args, m=method: m)
        results[method] = E.mixture_information(means, y, noise_std=1.0, n_samples=4, seed=0)
    for method in ("float32", "direct"):
        for field in ("i_xt", "i_ty", "h_t"):
            assert abs(getattr(results[method], field) - getattr(results["float64"], field)) <= 3.4e-4


def test_precision_choice_matters_and_is_made(monkeypatch):
    # two clusters 2000 activity units apart, sigma = 0.3: float32 products lose the
    # within-cluster distances (0.43 bits off here); the automatic choice matches the
    # differences within the stated bound
    import importlib

    module = importlib.import_module("ibtools.estimators.mixture")
    rng = np.random.default_rng(10)
    means = np.concatenate([rng.uniform(-1, 1, (200, 2)) + 1000, rng.uniform(-1, 1, (200, 2)) - 1000])
    y = np.arange(400) % 2
    auto = E.mixture_information(means, y, noise_std=0.3, n_samples=4, seed=0)
    results = {}
    for method in ("float32", "direct"):
        monkeypatch.setattr(module, "_method", lambda *args, m=method: m)
        results[method] = E.mixture_information(means, y, noise_std=0.3, n_samples=4, seed=0)
    assert abs(auto.i_xt - results["direct"].i_xt) <= 3.4e-4
    assert abs(auto.i_ty - results["direct"].i_ty) <= 3.4e-4
    assert abs(results["float32"].i_xt - results["direct"].i_xt) > 0.1


def test_same_seed_gives_common_random_numbers_across_calls():
    # a slightly changed layer (the next epoch) with the same seed: the change is estimated
    # with much less noise than each estimate's standard error
    rng = np.random.default_rng(0)
    means = rng.normal(size=(300, 3))
    moved = means + 0.02 * rng.normal(size=means.shape)
    y = np.arange(300) % 2
    changes, ses = [], []
    for seed in range(12):
        a = E.mixture_information(means, y, noise_std=0.5, n_samples=4, seed=seed)
        b = E.mixture_information(moved, y, noise_std=0.5, n_samples=4, seed=seed)
        changes.append(b.i_xt - a.i_xt)
        ses.append(a.se_xt)
    assert np.std(changes, ddof=1) < 0.2 * np.mean(ses)

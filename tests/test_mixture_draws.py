"""K > 1 draws of the earlier layers' noise for the Monte Carlo mixture estimate of deeper noisy
layers (``mixture(..., draws=K)``), and the Kolchinsky-Tracey bounds on the clean means
(``mixture_bounds``), against closed forms.

Tolerances (bits): a Monte Carlo value and a closed form agree within 4 reported standard errors
plus the stated slack of the comparison: 0.01 for a quantile grid of a Gaussian input against
the continuous-input formula (measured deviation 0.001-0.007), 0.02 for a random Gaussian
sample against the formula with its sample covariance (measured 0.006); 1e-3 is the
floating-point bound of the estimator (3.4e-4 stated). Orderings of biases (K = 1 over-states
more than K = 4, ...) are asserted with a margin of 4 combined standard errors; the gaps measured
are 10-50 times larger. All draws are seeded, so every test is deterministic. The Monte Carlo seeds differ from the
seeds of the simulated earlier noise: with equal seeds the estimator's draws would equal that
noise (numpy streams), which correlates them and biases the estimate (0.3 bits seen once)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from ibtools import estimators as E
from ibtools.config import EstimatorSpec

FP = 1e-3


def within(est, se, truth, slack=0.0):
    return abs(est - truth) <= 4 * se + FP + slack


def gaussian_grid(n):
    """n quantiles of N(0, 1): a discrete input whose mixtures approach the Gaussian's closely."""
    return norm.ppf((np.arange(n) + 0.5) / n)[:, None]


# -- one noisy layer: closed forms ------------------------------------------------------------

@pytest.mark.parametrize("a, sigma", [(1.0, 0.5), (2.0, 0.5), (1.0, 1.0)])
def test_one_linear_gaussian_layer_matches_the_closed_form(a, sigma):
    # T = a X + Z, X ~ N(0, 1), Z ~ N(0, sigma^2): I(X;T) = 1/2 log2(1 + a^2 / sigma^2)
    x = gaussian_grid(500)
    y = (x[:, 0] > 0).astype(int)
    truth = 0.5 * math.log2(1 + a * a / sigma**2)
    r = E.mixture_information(a * x, y, noise_std=sigma, target_se=0.01, seed=0)
    assert r.se_xt <= 0.01
    assert within(r.i_xt, r.se_xt, truth, slack=0.01)
    # the registered form with K > 1 identical draws (no earlier noise) gives the same quantity
    same = E.mixture(np.stack([a * x] * 3), y, noise_std=sigma, target_se=0.01, seed=0, draws=3)
    assert within(same.i_xt, 0.01, truth, slack=0.01)


def test_two_unit_linear_gaussian_layer_matches_log_det():
    # T = A X + Z in 2-D with correlated Gaussian X: I = 1/2 log2 det(I + A C A^T / sigma^2)
    rng = np.random.default_rng(1)
    C = np.array([[1.0, 0.8], [0.8, 1.0]])
    x = rng.normal(size=(2000, 2)) @ np.linalg.cholesky(C).T
    A = np.array([[1.0, 0.5], [-0.3, 1.2]])
    sigma = 0.7
    y = (x[:, 0] > 0).astype(int)
    sample_cov = np.cov(x.T, bias=True)
    truth = 0.5 * math.log2(np.linalg.det(np.eye(2) + A @ sample_cov @ A.T / sigma**2))
    r = E.mixture_information(x @ A.T, y, noise_std=sigma, target_se=0.01, seed=0)
    assert within(r.i_xt, r.se_xt, truth, slack=0.02)


# -- two noisy layers: K draws of the first layer's noise --------------------------------------

def _two_linear_layers(n=64, a=2.0, b=1.5, sigma=0.5, K=1, seed=0):
    """Clean means of layer 2 of T1 = a X + Z1, T2 = b T1 + Z2 under K draws of Z1: (K, n, 1)."""
    x = gaussian_grid(n)
    z1 = np.random.default_rng(seed).normal(size=(K, n, 1)) * sigma
    return b * (a * x[None] + z1), (x[:, 0] > 0).astype(int)


def test_more_draws_lower_the_overstatement_of_a_deeper_linear_layer():
    # Given X, T2 = a b X + b Z1 + Z2 is exactly N(a b x, sigma^2 (1 + b^2)): the true I(X;T2)
    # is the one-layer mixture with that noise. K = 1 conditions on one draw of Z1 and over-states
    # it; the K-draw estimate falls towards the truth as K grows, and a very large K (128) is
    # within its standard error plus 0.05 bits of it.
    a, b, sigma, n = 2.0, 1.5, 0.5, 64
    x = gaussian_grid(n)
    y = (x[:, 0] > 0).astype(int)
    truth = E.mixture_information(a * b * x, y, noise_std=sigma * math.sqrt(1 + b * b), target_se=0.005, seed=9)
    results = {}
    for K in (1, 4, 16, 128):
        means, _ = _two_linear_layers(n, a, b, sigma, K, seed=K)
        r = E.mixture_information(means if K > 1 else means[0], y, noise_std=sigma, target_se=0.01, seed=1000 + K)
        results[K] = r
    bias = {K: r.i_xt - truth.i_xt for K, r in results.items()}
    se = {K: math.hypot(r.se_xt, truth.se_xt) for K, r in results.items()}
    assert bias[1] > 0.5  # one draw: a large over-statement (0.72 bits measured)
    for small, large in ((1, 4), (4, 16), (16, 128)):
        assert bias[small] - bias[large] > 4 * math.hypot(se[small], se[large]), bias
    assert abs(bias[128]) <= 4 * se[128] + 0.05, bias
    # the same as a reference computed with very large K instead of the closed form
    for K in (1, 4, 16):
        assert results[K].i_xt - results[128].i_xt > 0


def test_more_draws_lower_the_overstatement_of_a_deeper_tanh_layer():
    # No closed form: the reference is K = 256 draws. Layer 1 = tanh(W1 x) + Z1, layer 2's clean
    # means = tanh(W2 t1) for each draw of Z1.
    rng = np.random.default_rng(3)
    n, sigma = 32, 0.3
    x = rng.normal(size=(n, 3))
    W1, W2 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    y = np.arange(n) % 2
    h1 = np.tanh(x @ W1)

    def layer2(K, seed):
        z = np.random.default_rng(seed).normal(size=(K, n, 4)) * sigma
        return np.tanh((h1[None] + z) @ W2)

    ref = E.mixture_information(layer2(256, 100), y, noise_std=sigma, target_se=0.01, seed=1)
    est = {K: E.mixture_information(layer2(K, K) if K > 1 else layer2(1, 1)[0], y, noise_std=sigma,
                                    target_se=0.01, seed=1000 + K) for K in (1, 4, 16)}
    bias = {K: r.i_xt - ref.i_xt for K, r in est.items()}
    se = {K: math.hypot(r.se_xt, ref.se_xt) for K, r in est.items()}
    assert bias[1] > 4 * se[1]
    assert bias[1] - bias[4] > 4 * math.hypot(se[1], se[4]), bias
    assert bias[4] - bias[16] > 4 * math.hypot(se[4], se[16]), bias
    assert bias[16] >= -4 * se[16]  # over-states, never under-states (in expectation)


def test_first_noisy_layer_k1_and_k_draws_agree():
    # the first noisy layer has no earlier noise: its K draws are identical, and the K-draw
    # estimate is the one-draw one (same expectation; here the same components and draws)
    rng = np.random.default_rng(4)
    means = rng.normal(size=(200, 3)).astype(np.float32)
    y = rng.integers(0, 2, 200)
    one = E.mixture(means, y, noise_std=0.4, seed=5)
    for K in (2, 5):
        many = E.mixture(np.stack([means] * K), y, noise_std=0.4, seed=5, draws=K)
        assert abs(many.i_xt - one.i_xt) <= 4 * 0.05 + FP and abs(many.i_ty - one.i_ty) <= 4 * 0.05 + FP


# -- the registered form --------------------------------------------------------------------

def test_draws_shapes_stacks_and_default():
    rng = np.random.default_rng(5)
    stack = rng.normal(size=(3, 4, 30, 2)).astype(np.float32)  # 3 networks, K = 4 draws
    y = np.arange(30) % 2
    both = E.mixture(stack, y, noise_std=0.5, n_samples=3, seed=2, draws=4)
    assert both.i_xt.shape == (3,)
    for k in range(3):
        alone = E.mixture(stack[k], y, noise_std=0.5, n_samples=3, seed=2, draws=4)
        assert (both.i_xt[k], both.i_ty[k]) == (alone.i_xt, alone.i_ty)
        full = E.mixture_information(stack[k], y, noise_std=0.5, n_samples=3, seed=2)
        assert (alone.i_xt, alone.i_ty) == (full.i_xt, full.i_ty)
    assert E.mixture(torch.from_numpy(stack[2]), y, noise_std=0.5, n_samples=3, seed=2, draws=4) == alone
    # draws=1 is the default, bit for bit
    assert E.mixture(stack[0, 0], y, noise_std=0.5, seed=2, draws=1) == E.mixture(stack[0, 0], y, noise_std=0.5, seed=2)


@pytest.mark.parametrize("draws, shape, match", [
    (0, (30, 2), "draws"),
    (1.5, (30, 2), "draws"),
    (True, (30, 2), "draws"),
    (4, (30, 2), r"with draws=4, activity must have shape \(4, n_samples, n_units\)"),
    (4, (3, 30, 2), r"got shape \(3, 30, 2\)"),
    (4, (2, 3, 30, 2), "with draws=4"),
])
def test_bad_draws_are_clear_value_errors(draws, shape, match):
    with pytest.raises(ValueError, match=match):
        E.mixture(np.zeros(shape), np.arange(30) % 2, noise_std=0.5, draws=draws)


def test_specs_with_draws_and_bounds():
    spec = EstimatorSpec.make("mixture", noise_std=0.1, draws=4, n_points=10)
    assert spec.label == "mixture(draws=4,noise_std=0.1)" and spec.n_points == 10
    assert EstimatorSpec.make("mixture", noise_std=0.1).label == "mixture(noise_std=0.1)"  # default: unchanged
    assert EstimatorSpec.parse("mixture:noise_std=0.1,draws=4") == spec.__class__.make("mixture", noise_std=0.1, draws=4)
    with pytest.raises(ValueError, match="draws"):
        EstimatorSpec.make("mixture", noise_std=0.1, draws=0)
    lo = EstimatorSpec.make("mixture_bounds", noise_std=0.1, bound="lower")
    assert lo.label == "mixture_bounds(bound=lower,noise_std=0.1)"
    with pytest.raises(ValueError, match="bound"):
        EstimatorSpec.make("mixture_bounds", noise_std=0.1, bound="middle")
    with pytest.raises(ValueError, match="noise_std"):
        EstimatorSpec.make("mixture_bounds", noise_std=-0.1)


# -- the bounds on the clean means ------------------------------------------------------------

@pytest.mark.parametrize("d, sigma", [(1, 0.1), (3, 0.5), (5, 2.0)])
def test_mixture_bounds_are_the_kde_bounds_and_bracket_the_mixture(d, sigma):
    rng = np.random.default_rng(d)
    means = rng.normal(size=(250, d))
    y = rng.integers(0, 3, 250)
    lo = E.mixture_bounds(means, y, noise_std=sigma, bound="lower")
    up = E.mixture_bounds(means, y, noise_std=sigma)
    assert lo == E.kde(means, y, noise_var=sigma * sigma, bound="lower")
    assert up == E.kde(means, y, noise_var=sigma * sigma, bound="upper")
    r = E.mixture_information(means, y, noise_std=sigma, seed=7)
    assert lo.i_xt - 4 * r.se_xt - FP <= r.i_xt <= up.i_xt + 4 * r.se_xt + FP
    assert lo.i_xt <= up.i_xt


# -- through the Recorder -------------------------------------------------------------------
# The task has 4096 inputs, so K draws make K * 4096 components per layer and cost grows like K^2:
# these tests use K = 2, small networks and two recorded epochs.

SIGMA = 0.1
MIX1 = EstimatorSpec.make("mixture", noise_std=SIGMA, n_samples=2)
MIX2 = EstimatorSpec.make("mixture", noise_std=SIGMA, n_samples=2, draws=2)
LOWER = EstimatorSpec.make("mixture_bounds", noise_std=SIGMA, bound="lower")
UPPER = EstimatorSpec.make("mixture_bounds", noise_std=SIGMA, bound="upper")


def _noisy(seeds=(0,), estimators=(MIX1, MIX2, LOWER, UPPER), **kw):
    from ibtools.config import TrainConfig

    kw = {"epochs": 2, "n_log_points": 2, **kw}
    return TrainConfig(activation="tanh", hidden=(4, 3), noise_std=SIGMA, seeds=seeds, estimators=estimators, **kw)


@pytest.mark.slow
def test_recorder_gives_k_draws_and_bounds_the_clean_means():
    from ibtools.engine import mixture_seed, train
    from ibtools.trainer import EnsembleTrainer

    cfg = _noisy()
    result = train(cfg, progress=False)
    for spec in (MIX1, MIX2, LOWER, UPPER):
        values = result.mi[spec.label]
        assert np.isnan(values[:, -1]).all() and np.isfinite(values[:, :-1]).all(), spec.label
    last = len(result.epochs) - 1
    tr = EnsembleTrainer(cfg)
    while tr.epoch < int(result.epochs[last]):
        tr.train_epoch()
    draws = [tr.evaluate_noisy_means(k)[0] for k in range(2)]
    y = tr.y_all.numpy()
    for layer in range(len(cfg.hidden)):
        for k, seed in enumerate(cfg.seeds):
            s = mixture_seed(0, seed, layer)
            stack = torch.stack([d[layer][k] for d in draws])
            again = E.mixture(stack, y, noise_std=SIGMA, n_samples=2, seed=s, draws=2)
            assert result.mi[MIX2.label][last, layer, k, 0] == np.float32(again.i_xt)
            assert result.mi[MIX2.label][last, layer, k, 1] == np.float32(again.i_ty)
            for spec, bound in ((LOWER, "lower"), (UPPER, "upper")):
                b = E.kde(draws[0][layer][k], y, noise_var=SIGMA * SIGMA, bound=bound)
                assert result.mi[spec.label][last, layer, k, 0] == np.float32(b.i_xt)
            # the one-draw value is what the bounds bracket (4 standard errors + 1e-3 bits)
            full = E.mixture_information(draws[0][layer][k], y, noise_std=SIGMA, n_samples=2, seed=s)
            lo = result.mi[LOWER.label][last, layer, k, 0]
            up = result.mi[UPPER.label][last, layer, k, 0]
            assert lo - 4 * full.se_xt - FP <= full.i_xt <= up + 4 * full.se_xt + FP
    # first hidden layer: its draws are identical (no earlier noise), so K = 2 estimates the
    # K = 1 quantity; the deeper layer may only drop, within Monte Carlo error (4 x 0.05 bits)
    mix1, mix2 = result.mi[MIX1.label], result.mi[MIX2.label]
    np.testing.assert_allclose(mix2[:, 0], mix1[:, 0], atol=4 * 0.05)
    assert (mix2[:, 1:-1, :, 0] <= mix1[:, 1:-1, :, 0] + 4 * 0.05).all()


@pytest.mark.slow
def test_k_draws_do_not_depend_on_the_ensemble():
    from ibtools.engine import train

    alone = train(_noisy(seeds=(3,), estimators=(MIX2,), ensemble_invariant=True), progress=False)
    shared = train(_noisy(seeds=(7, 3), estimators=(MIX2,), ensemble_invariant=True), progress=False)
    for label, values in alone.mi.items():
        assert np.array_equal(values[:, :, 0], shared.mi[label][:, :, 1], equal_nan=True), label


def test_probe_seconds_times_the_clean_means_estimators(monkeypatch):
    from ibtools import engine

    calls = []
    real = engine.Recorder._record_mixture
    monkeypatch.setattr(engine.Recorder, "_record_mixture",
                        lambda self, *a: calls.append(a[1].label) or real(self, *a))
    cfg = _noisy(seeds=(0, 1, 2), estimators=(MIX1, LOWER))
    assert engine.probe_seconds(cfg, train_epochs=1, probe_networks=1) > 0
    assert calls == [MIX1.label, LOWER.label]  # as the Recorder runs them, on the clean means

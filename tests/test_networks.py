"""Networks: shapes, every activation, initialization, errors."""

import math

import numpy as np
import pytest
import torch

from ibtools.activations import ACTIVATIONS, ActivationSpec, PAPER_ACTIVATIONS, get_activation, register_activation
from ibtools.networks import DEFAULT_WIDTHS, EnsembleMLP, MLP, initial_parameters

X = torch.rand(64, 12)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_runs_with_the_right_shapes(name):
    net = MLP(activation=name, seed=1)
    acts = net.layer_activities(X)
    assert [a.shape for a in acts] == [(64, w) for w in DEFAULT_WIDTHS[1:]]
    assert all(torch.isfinite(a).all() for a in acts)
    assert torch.allclose(acts[-1].sum(1), torch.ones(64))  # softmax output
    ens = EnsembleMLP(activation=name, seeds=(1, 2, 3))
    eacts = ens.layer_activities(X)
    assert [a.shape for a in eacts] == [(3, 64, w) for w in DEFAULT_WIDTHS[1:]]
    # member 0 of the ensemble is MLP(seed=1)
    for a, b in zip(acts, eacts):
        assert torch.allclose(a, b[0], rtol=1e-5, atol=1e-5)  # float32: nn.Linear vs batched matmul


def test_paper_activations_are_registered():
    assert set(PAPER_ACTIVATIONS) <= set(ACTIVATIONS)
    assert {"sigmoid", "softsign", "linear"} <= set(ACTIVATIONS)


def test_activation_values():
    z = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.allclose(get_activation("centered_softplus").fn(z), torch.nn.functional.softplus(z) - math.log(2))
    assert get_activation("centered_softplus").fn(torch.zeros(1)).abs().item() < 1e-7
    assert torch.allclose(get_activation("swish").fn(z), z * torch.sigmoid(z))
    assert torch.allclose(get_activation("abs").fn(z), z.abs())
    assert torch.allclose(get_activation("prelu").fn(z, torch.tensor(0.25)), torch.tensor([-0.5, 0.0, 3.0]))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_derivatives_match_autograd(name):
    spec = ACTIVATIONS[name]
    z = torch.linspace(-5, 5, 201, dtype=torch.float64, requires_grad=True)
    slope = torch.tensor(0.3, dtype=torch.float64)
    a = spec.fn(z, slope) if spec.learnable_slope else spec.fn(z)
    (g,) = torch.autograd.grad(a.sum(), z)
    args = (z.detach(), a.detach()) + ((slope,) if spec.learnable_slope else ())
    assert torch.allclose(spec.derivative(*args), g, atol=1e-12)


def test_unknown_activation_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown activation 'relu6'.*tanh, relu, abs"):
        MLP(activation="relu6")


def test_register_activation_refuses_silent_overwrite():
    with pytest.raises(ValueError, match="already registered"):
        register_activation(ActivationSpec("tanh", torch.tanh, 1.0, True))


@pytest.mark.parametrize("widths", [(12,), (12, 0, 2), (12, 10, 1), (12, 2.5, 2), "abc", None])
def test_bad_widths(widths):
    with pytest.raises(ValueError, match="width"):
        MLP(widths=widths)


@pytest.mark.parametrize("shape", [(64, 11), (64,), (2, 64, 12)])
def test_wrong_input_shape(shape):
    with pytest.raises(ValueError, match=r"expected \(n_samples, 12\)"):
        MLP().layer_activities(torch.rand(*shape))
    with pytest.raises(ValueError, match=r"expected \(n_samples, 12\)"):
        EnsembleMLP(seeds=(0, 1)).layer_activities(torch.rand(*shape))


def test_unknown_init():
    with pytest.raises(ValueError, match="unknown init 'glorot'"):
        initial_parameters(init="glorot")


def test_initialization_is_seeded_and_follows_the_paper():
    a = initial_parameters(activation="relu", seed=5)
    b = initial_parameters(activation="relu", seed=5)
    c = initial_parameters(activation="relu", seed=6)
    assert all(torch.equal(w1, w2) for (w1, _), (w2, _) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    # paper: truncated normal (2 std), std = gain / sqrt(fan_in); gain 2 for ReLU, 1 for tanh
    big = initial_parameters(widths=(400, 2000, 2), activation="relu", seed=0)[0][0]
    std = 2 / math.sqrt(400)
    assert big.abs().max() <= 2 * std + 1e-6
    truncated_std = std * 0.8796  # std of a normal truncated at +-2 sigma
    assert big.std().item() == pytest.approx(truncated_std, rel=0.02)
    tanh = initial_parameters(widths=(400, 2000, 2), activation="tanh", seed=0)[0][0]
    assert tanh.std().item() == pytest.approx(truncated_std / 2, rel=0.02)
    assert all((b == 0).all() for _, b in a)


def test_ensemble_member_roundtrip():
    ens = EnsembleMLP(activation="prelu", seeds=(4, 8))
    net = ens.member(1)
    for a, b in zip(net.layer_activities(X), ens.layer_activities(X)):
        assert torch.allclose(a, b[1], rtol=1e-5, atol=1e-5)
    assert np.isclose(net.slopes[0].item(), 0.25)


# sha256 (first 16 hex digits) of the concatenated initial weights of DEFAULT_WIDTHS, computed
# with torch 2.13.0, the version every stored result was computed with. The draws are part of
# every stored number: if this fails, a change in ibtools or in torch's `Tensor.normal_` stream
# means no stored unit can be recomputed bit for bit any more.
INITIAL_WEIGHT_CHECKSUMS = {
    ("paper", "tanh", 0): "dbe06d415b2c8811", ("paper", "tanh", 49): "ab9a03d8ddde433c",
    ("paper", "relu", 0): "8ed577796a3f311b", ("paper", "relu", 49): "1f908bc2194f70dd",
    ("tishby", "relu", 0): "dbe06d415b2c8811", ("he", "tanh", 0): "7333d73f0934241e",
    ("xavier", "relu", 49): "b764bceb254b71d4",
}


@pytest.mark.parametrize("init, activation, seed", list(INITIAL_WEIGHT_CHECKSUMS))
def test_initial_weights_are_the_stored_results_draws(init, activation, seed):
    import hashlib

    weights = np.concatenate([W.numpy().ravel() for W, _ in initial_parameters(DEFAULT_WIDTHS, activation, init, seed)])
    assert hashlib.sha256(weights.tobytes()).hexdigest()[:16] == INITIAL_WEIGHT_CHECKSUMS[init, activation, seed]


def test_truncated_normal_is_truncated_with_the_right_spread():
    from ibtools.networks import truncated_normal_

    w = truncated_normal_(torch.empty(200_000), 0.5, torch.Generator().manual_seed(3))
    assert w.abs().max().item() <= 1.0
    # std of a normal cut at +-2 std: 0.87962566 std; standard error of the sample std ~0.001
    assert abs(w.std().item() / 0.5 - 0.87962566) < 0.005
    assert abs(w.mean().item()) < 0.005


@pytest.mark.skipif(not torch.__version__.startswith("2.13."), reason="torch 2.13's trunc_normal_ is the reference")
def test_truncated_normal_gives_torch_2_13_trunc_normal_bits():
    from ibtools.networks import truncated_normal_

    for seed, shape, std in ((0, (12, 10), 0.3), (5, (3, 2), 1.0), (9, (1000,), 0.05)):
        mine = truncated_normal_(torch.empty(shape), std, torch.Generator().manual_seed(seed))
        theirs = torch.nn.init.trunc_normal_(torch.empty(shape), 0.0, std, -2 * std, 2 * std,
                                             generator=torch.Generator().manual_seed(seed))
        assert torch.equal(mine, theirs)

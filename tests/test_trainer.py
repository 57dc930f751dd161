"""The batched trainer: every network behaves exactly as if trained alone."""

import pytest
import torch
import torch.nn.functional as F

from ibtools.activations import ACTIVATIONS, PAPER_ACTIVATIONS, ActivationSpec, register_activation
from ibtools.config import TrainConfig
from ibtools.networks import MLP
from ibtools.trainer import EnsembleTrainer

# float32 parameters after a few hundred Adam steps: differences of ~1e-7 from summation order
TOL = 1e-5


def _train_alone(config, seed, epochs, order=None):
    """A single MLP trained by a plain PyTorch loop with torch.optim.Adam."""
    tr = EnsembleTrainer(config.replace(seeds=(seed,)))
    net = MLP(config.widths, config.activation, config.init, seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    for epoch in range(epochs):
        if config.shuffle_batches:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm = torch.randperm(tr.n_train, generator=g)
        else:
            perm = torch.arange(tr.n_train)
        for a, b in tr.batch_bounds:
            idx = perm[a:b]
            opt.zero_grad()
            loss = F.cross_entropy(net(tr.X_train[idx]), tr.y_train[idx])
            if config.l2:
                loss = loss + 0.5 * config.l2 * sum((layer.weight**2).sum() for layer in net.linears[:-1])
            loss.backward()
            opt.step()
    return net


def _max_diff(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_ensemble_member_equals_network_trained_alone(activation):
    config = TrainConfig(activation=activation, seeds=(5, 2, 9), epochs=3)
    tr = EnsembleTrainer(config)
    for _ in range(3):
        tr.train_epoch()
    for k, seed in enumerate(config.seeds):
        assert _max_diff(tr.model.member(k), _train_alone(config, seed, 3)) < TOL


@pytest.mark.parametrize("l2, shuffle", [(0.015, False), (0.0, True), (0.05, True)])
def test_equivalence_with_l2_and_shuffling(l2, shuffle):
    config = TrainConfig(activation="relu", seeds=(1, 4), epochs=4, l2=l2, shuffle_batches=shuffle)
    tr = EnsembleTrainer(config)
    for _ in range(4):
        tr.train_epoch()
    assert _max_diff(tr.model.member(1), _train_alone(config, 4, 4)) < TOL


def test_autograd_fallback_gives_the_same_training():
    spec = ACTIVATIONS["elu"]
    name = "elu_without_derivative"
    register_activation(ActivationSpec(name, spec.fn, spec.paper_gain, False), overwrite=True)
    try:
        a = EnsembleTrainer(TrainConfig(activation="elu", seeds=(0, 1), l2=0.01))
        b = EnsembleTrainer(TrainConfig(activation=name, seeds=(0, 1), l2=0.01))
        assert not b._manual
        for _ in range(3):
            la, lb = a.train_epoch(), b.train_epoch()
        assert torch.allclose(la, lb, atol=1e-6)
        assert torch.allclose(a.model.flat, b.model.flat, atol=TOL)
    finally:
        ACTIVATIONS.pop(name)


def test_members_do_not_interact():
    # network 7 trains identically whatever its companions are
    a = EnsembleTrainer(TrainConfig(seeds=(7, 1)))
    b = EnsembleTrainer(TrainConfig(seeds=(3, 7, 11)))
    for _ in range(3):
        a.train_epoch(), b.train_epoch()
    assert _max_diff(a.model.member(0), b.model.member(1)) < TOL


def test_cuda_request_without_cuda_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA device"):
        EnsembleTrainer(TrainConfig(device="cuda"))


# 20 networks make tensors large enough (20 x 256 x 10 > 32768 elements) for torch to split
# element-wise operations across threads: exp-based activations then differ in the last bit unless
# ibtools.activations.thread_invariant_elementwise is doing its job (ELU drifted by 0.07 bits without it).
THREAD_CASES = [("tanh", n) for n in (1, 2, 5, 12)] + [(a, 20) for a in PAPER_ACTIVATIONS + ("sigmoid",)]


@pytest.mark.parametrize("activation,n_networks", THREAD_CASES)
def test_numbers_do_not_depend_on_the_number_of_threads(activation, n_networks):
    before = torch.get_num_threads()
    flats = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(n_networks))))
            for _ in range(8):
                tr.train_epoch()
            flats.append((tr.model.flat.detach().clone(), tr.evaluate()[0]))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(flats[0][0], flats[1][0])
    assert all(torch.equal(a, b) for a, b in zip(flats[0][1], flats[1][1]))  # evaluation too


@pytest.mark.parametrize("f", [F.elu, F.softplus, F.silu, torch.sigmoid, torch.tanh], ids=lambda f: f.__name__)
def test_thread_invariant_elementwise_matches_one_thread(f):
    # Raw, 1 vs 8 threads on these inputs differ in 2-16 elements for elu, softplus, silu and
    # sigmoid on this machine's CPU (vectorized vs scalar code at the threads' range ends).
    from ibtools.activations import thread_invariant_elementwise

    x = 3 * torch.randn(1_000_003, generator=torch.Generator().manual_seed(0))  # odd length
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = f(x)
        torch.set_num_threads(8)
        many = thread_invariant_elementwise(f)(x)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, many)


def test_the_elementwise_guard_keeps_its_former_name():
    from ibtools import activations

    assert activations.thread_invariant is activations.thread_invariant_elementwise


@pytest.mark.parametrize("n_networks, inside", [(EnsembleTrainer.SINGLE_THREAD_BELOW - 1, 1),
                                                (EnsembleTrainer.SINGLE_THREAD_BELOW, 3)])
def test_small_ensembles_run_on_one_thread_and_the_count_comes_back(n_networks, inside):
    # the other guard: small ensembles' matrix products on one thread; large ones keep every thread
    tr = EnsembleTrainer(TrainConfig(seeds=tuple(range(n_networks))))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with tr._one_thread_for_small_ensembles():
            seen = torch.get_num_threads()
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert (seen, after) == (inside, 3)

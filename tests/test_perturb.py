"""Quantized and noise-injected hidden layers (ibtools.perturb and the trainer's hook).

Checks: the quantizer's levels, ranges, edge cases and errors; the trainer's straight-through
gradients against autograd of ``a + (quantize(a) - a).detach()`` (and of ``a + noise``) on a
tiny ensemble; at most 2**bits distinct values per unit; the noise: reproducible, independent of
the ensemble and of padding, the same after a resume, of the stated mean and variance; and
``noise_std=0`` / ``quantize_bits=None`` leave the engine and the configs' keys as they were.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.engine import train
from ibtools.perturb import (NATURAL_RANGES, Perturber, check_noise_std, check_quantize_bits, noise_seed, quantize,
                             quantize_levels)
from ibtools.trainer import EnsembleTrainer

TINY = dict(hidden=(4, 3), seeds=(0, 1), epochs=3)


# -- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, 17, -1, 2.0, 8.5, True, "8", [8]])
def test_quantize_bits_must_be_an_integer_from_1_to_16(bad):
    with pytest.raises(ValueError, match="quantize_bits"):
        TrainConfig(quantize_bits=bad)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "x", True, None])
def test_noise_std_must_be_finite_and_nonnegative(bad):
    with pytest.raises(ValueError, match="noise_std"):
        TrainConfig(noise_std=bad)


def test_quantization_and_noise_together_are_refused():
    with pytest.raises(ValueError, match="cannot both be set"):
        TrainConfig(quantize_bits=8, noise_std=0.1)
    with pytest.raises(ValueError, match="cannot both be set"):
        Perturber("relu", (3,), (0,), 8, 0.1, torch.device("cpu"))


def test_defaults_keep_every_stored_key():
    # the key of the default config before these fields existed (computed on the main branch)
    assert TrainConfig().key() == "f67103781a629bcdaa54"
    assert TrainConfig(quantize_bits=None, noise_std=0.0).key() == "f67103781a629bcdaa54"
    d = TrainConfig(noise_std=0).to_dict()
    assert "quantize_bits" not in d and "noise_std" not in d
    assert TrainConfig(noise_std=0).noise_std == 0.0 and isinstance(TrainConfig(noise_std=0).noise_std, float)


def test_set_fields_change_the_key_and_round_trip():
    base = TrainConfig()
    for cfg in (TrainConfig(quantize_bits=8), TrainConfig(quantize_bits=np.int64(4)), TrainConfig(noise_std=0.1)):
        assert cfg.key() != base.key()
        again = TrainConfig.from_dict(cfg.to_dict())
        assert again == cfg and again.key() == cfg.key()
    assert TrainConfig(quantize_bits=8).key() != TrainConfig(quantize_bits=4).key()
    assert isinstance(TrainConfig(quantize_bits=np.int64(4)).quantize_bits, int)
    assert check_quantize_bits(None) is None and check_noise_std(1) == 1.0


def test_activation_without_fast_path_is_refused():
    with pytest.raises(ValueError, match="fast path"):
        EnsembleTrainer(TrainConfig(activation="softsign", quantize_bits=8, **TINY))


# -- the quantizer -----------------------------------------------------------------------------

def test_levels_and_rounding_on_a_known_grid():
    a = torch.tensor([-5.0, -1.0, -0.7, -0.66, 0.0, 0.2, 0.34, 1.0, 7.0])
    q = quantize(a, -1.0, 1.0, 2)  # levels -1, -1/3, 1/3, 1 (k = 0..3)
    t = 1 / 3
    # saturation at both ends; nearest level; 0 is half-way between k = 1 and 2: ties to even (k = 2)
    expect = torch.tensor([-1, -1, -1, -t, t, t, t, 1, 1])
    assert torch.allclose(q, expect, atol=1e-6)
    assert torch.equal(quantize_levels(-1, 1, 2), torch.unique(quantize(torch.linspace(-2, 2, 1001), -1, 1, 2)))
    assert len(quantize_levels(-1, 1, 8)) == 256 and len(quantize_levels(0, 1, 1)) == 2


@pytest.mark.parametrize("lo, hi, bits", [(-1.0, 1.0, 8), (0.0, 3.7, 4), (-0.3, 12.5, 16), (0.0, 1.0, 1)])
def test_quantizer_is_nearest_level_and_idempotent(lo, hi, bits):
    a = torch.randn(20000, generator=torch.Generator().manual_seed(1)) * (hi - lo) + (lo + hi) / 2
    q = quantize(a, lo, hi, bits)
    levels = quantize_levels(lo, hi, bits)
    assert len(levels) == 2**bits
    assert torch.isin(q, levels).all()
    step = (hi - lo) / (2**bits - 1)
    assert float((q - a.clamp(lo, hi)).abs().max()) <= step / 2 * (1 + 1e-4) + 1e-6
    assert torch.equal(quantize(levels, lo, hi, bits), levels)  # levels are fixed points
    assert torch.equal(quantize(q, lo, hi, bits), q)
    assert float(q.min()) >= lo - 1e-6 and float(q.max()) <= hi + 1e-6


def test_degenerate_range_and_per_network_ranges():
    a = torch.randn(3, 4, 50, generator=torch.Generator().manual_seed(2))
    assert torch.equal(quantize(a, 0.5, 0.5, 8), torch.full_like(a, 0.5))  # one level
    lo = torch.tensor([-1.0, 0.0, 2.0]).view(3, 1, 1)
    hi = torch.tensor([1.0, 0.0, 4.0]).view(3, 1, 1)
    q = quantize(a, lo, hi, 3)
    for k in range(3):
        assert torch.equal(q[k], quantize(a[k], float(lo[k]), float(hi[k]), 3))
    assert torch.equal(q[1], torch.zeros_like(q[1]))
    out = a.clone()
    assert quantize(out, lo, hi, 3, out=out) is out and torch.equal(out, q)  # in place


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(bits=0), ValueError, "1 to 16"), (dict(bits=17), ValueError, "1 to 16"),
    (dict(bits=None), ValueError, "1 to 16"), (dict(bits=2.0), ValueError, "1 to 16"),
    (dict(lo=1.0, hi=-1.0), ValueError, "lo <= hi"), (dict(lo=math.nan), ValueError, "finite"),
    (dict(hi=math.inf), ValueError, "finite"), (dict(a=torch.arange(5)), ValueError, "floating"),
    (dict(a=np.zeros(3)), TypeError, "torch.Tensor"),
])
def test_quantizer_errors(kwargs, error, match):
    args = dict(a=torch.zeros(3), lo=-1.0, hi=1.0, bits=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        quantize(**args)


# -- straight-through gradients against autograd ----------------------------------------------

def _autograd_reference(tr, batch, perturb):
    """Gradient of the summed per-network mean cross-entropy (+ L2) by autograd, with
    ``perturb(i, a)`` giving hidden layer i's fed activity from its activation ``a``; the same
    operations as the trainer's forward pass (so the same forward bits)."""
    x_t, x, y, onehot_t, n = batch
    spec, L, S = tr.model.spec, len(tr.config.widths) - 1, tr.S
    flat = tr.model.flat.detach().clone().requires_grad_(True)
    parts = [flat[o: o + math.prod(shape)].view(shape) for o, shape in tr.model._layout]
    Ws, bs, slopes = parts[0:2 * L:2], parts[1:2 * L:2], parts[2 * L:]
    h, fed = x_t, []
    for i in range(L):
        W, b = Ws[i], bs[i]
        if i == 0:
            fo, fi = W.shape[1:]
            z = torch.addmm(b.reshape(S * fo, 1), W.reshape(S * fo, fi), h).view(S, fo, -1)
        else:
            z = torch.baddbmm(b, W, h)
        if i < L - 1:
            a = spec.fn(z, slopes[i]) if spec.learnable_slope else spec.fn(z)
            h = perturb(i, a)
            fed.append(h.detach())
        else:
            h = z
    log_p = torch.log_softmax(h, dim=1)
    per_net = -(log_p * onehot_t).sum(dim=(1, 2)) / n
    total = per_net.sum()
    if tr.config.l2:
        total = total + 0.5 * tr.config.l2 * sum((W * W).sum() for W in Ws[:-1])
    total.backward()
    return flat.grad, fed


@pytest.mark.parametrize("activation, bits, l2", [("tanh", 2, 0.0), ("relu", 3, 0.0), ("elu", 4, 0.05),
                                                  ("prelu", 3, 0.0), ("swish", 2, 0.0), ("sigmoid", 3, 0.0)])
def test_straight_through_gradient_equals_autograd(activation, bits, l2):
    cfg = TrainConfig(activation=activation, quantize_bits=bits, l2=l2, **TINY)
    tr = EnsembleTrainer(cfg)
    tr.train_epoch()  # away from the initial state, ranges updated
    batch = tr._fixed_batches[1]
    tr._manual_gradients(*batch)  # updates a tracked range, then quantizes with it
    p = tr._perturber
    ranges = p.ranges.clone()

    def ste(i, a):
        lo, hi = ranges[i, :, 0, None, None], ranges[i, :, 1, None, None]
        # a + (q - a).detach() in exact arithmetic; written so that the forward value is q exactly
        return (a - a.detach()) + quantize(a.detach(), lo, hi, bits)

    ref, fed = _autograd_reference(tr, batch, ste)
    buf = tr._buffers(batch[-1])
    for i, f in enumerate(fed):  # the same quantized activity was fed forward
        assert torch.equal(buf["fed"][i], f)
        assert all(len(torch.unique(f[k])) <= 2**bits for k in range(tr.S))
    assert torch.allclose(tr.grad, ref, rtol=1e-4, atol=1e-6), float((tr.grad - ref).abs().max())

    # and it is not the gradient of the unquantized network (the check can fail)
    plain, _ = _autograd_reference(tr, batch, lambda i, a: a)
    assert not torch.allclose(tr.grad, plain, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_noisy_gradient_equals_autograd_with_the_same_noise(activation):
    tr = EnsembleTrainer(TrainConfig(activation=activation, noise_std=0.3, **TINY))
    tr.train_epoch()
    batch = tr._fixed_batches[2]
    tr._manual_gradients(*batch)
    p = tr._perturber
    noise = [p.noise(i).clone() for i in range(len(tr.config.hidden))]
    ref, fed = _autograd_reference(tr, batch, lambda i, a: a + noise[i])
    buf = tr._buffers(batch[-1])
    for i, f in enumerate(fed):
        assert torch.equal(buf["fed"][i], f)
    assert torch.allclose(tr.grad, ref, rtol=1e-4, atol=1e-6), float((tr.grad - ref).abs().max())
    plain, _ = _autograd_reference(tr, batch, lambda i, a: a)
    assert not torch.allclose(tr.grad, plain, rtol=1e-3, atol=1e-4)


# -- quantized networks ------------------------------------------------------------------------

@pytest.mark.parametrize("activation, bits", [("tanh", 2), ("relu", 3), ("elu", 2), ("centered_softplus", 4),
                                              ("prelu", 1)])
def test_quantized_activity_takes_at_most_2_to_the_bits_values(activation, bits):
    tr = EnsembleTrainer(TrainConfig(activation=activation, quantize_bits=bits, seeds=(0, 1, 2), epochs=3))
    for _ in range(3):
        tr.train_epoch()
    acts, _ = tr.evaluate()
    for i, a in enumerate(acts[:-1]):  # hidden layers; the softmax output is not quantized
        for k in range(tr.S):
            assert len(torch.unique(a[k])) <= 2**bits  # per layer (shared range), hence per unit
            lo, hi = (NATURAL_RANGES[activation] if activation in NATURAL_RANGES
                      else tr._perturber.ranges[i, k].tolist())
            assert torch.isin(a[k], quantize_levels(lo, hi, bits)).all()
    assert len(torch.unique(acts[-1][0])) > 2**bits  # softmax output untouched


def test_tracked_range_is_state_and_sensible():
    tr = EnsembleTrainer(TrainConfig(activation="relu", quantize_bits=8, seeds=(0, 1), epochs=2))
    p = tr._perturber
    assert p.tracked and torch.isfinite(p.ranges).all()
    assert (p.ranges[..., 0] == 0).all() and (p.ranges[..., 1] > 0).all()  # ReLU: lo = 0 exactly
    start = p.ranges.clone()
    tr.train_epoch()
    assert not torch.equal(start, p.ranges)
    assert torch.equal(tr.state_dict()["quant_range"], p.ranges)
    assert "quant_range" not in EnsembleTrainer(TrainConfig(activation="tanh", quantize_bits=8, **TINY)).state_dict()
    # evaluation does not move the range
    before = p.ranges.clone()
    tr.evaluate()
    assert torch.equal(before, p.ranges)


def test_sixteen_bits_trains_almost_like_float():
    base = EnsembleTrainer(TrainConfig(activation="tanh", **TINY))
    q16 = EnsembleTrainer(TrainConfig(activation="tanh", quantize_bits=16, **TINY))
    q1 = EnsembleTrainer(TrainConfig(activation="tanh", quantize_bits=1, **TINY))
    for _ in range(3):
        base.train_epoch(), q16.train_epoch(), q1.train_epoch()
    assert float((base.model.flat - q16.model.flat).detach().abs().max()) < 1e-3
    assert float((base.model.flat - q1.model.flat).detach().abs().max()) > 1e-3


# -- reproducibility, ensemble invariance, resume ----------------------------------------------

PERTURBED = [dict(activation="relu", noise_std=0.2), dict(activation="tanh", noise_std=0.05, shuffle_batches=True),
             dict(activation="relu", quantize_bits=4), dict(activation="tanh", quantize_bits=8),
             dict(activation="softplus", quantize_bits=3, shuffle_batches=True)]


def _same_trainers(a, b, ka=slice(None), kb=slice(None)):
    params = lambda t: t.model.weights + t.model.biases + t.model.slopes  # noqa: E731
    for pa, pb in zip(params(a), params(b)):
        assert torch.equal(pa[ka], pb[kb])
    for state in ("exp_avg", "exp_avg_sq"):  # Adam's moments too
        mine, theirs = a._split(getattr(a, state)), b._split(getattr(b, state))
        assert all(torch.equal(p[ka], q[kb]) for part, other in zip(mine, theirs) for p, q in zip(part, other))
    if a._perturber.tracked:
        assert torch.equal(a._perturber.ranges[:, ka], b._perturber.ranges[:, kb])
    (acts_a, logits_a), (acts_b, logits_b) = a.evaluate(), b.evaluate()
    assert torch.equal(logits_a[ka], logits_b[kb])
    assert all(torch.equal(x[ka], y[kb]) for x, y in zip(acts_a, acts_b))


@pytest.mark.parametrize("kw", PERTURBED)
def test_same_seed_gives_identical_networks(kw):
    cfg = TrainConfig(seeds=(0, 1), **kw)
    a, b = EnsembleTrainer(cfg), EnsembleTrainer(cfg)
    for _ in range(3):
        assert torch.equal(a.train_epoch(), b.train_epoch())
    _same_trainers(a, b)
    assert torch.equal(a.evaluate()[1], a.evaluate()[1])  # evaluation noise: fixed per epoch


@pytest.mark.parametrize("kw", PERTURBED)
def test_a_network_does_not_depend_on_its_ensemble(kw):
    # ensemble_invariant=True: needed for the rest of the arithmetic (see ibtools.trainer); the
    # noise and the quantizer are invariant by themselves
    make = lambda seeds: EnsembleTrainer(TrainConfig(seeds=seeds, ensemble_invariant=True, **kw))  # noqa: E731
    alone = make((3,))
    others = [make((7, 3, 11)), make((1, 2, 4, 3, 5, 6, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19))]
    for _ in range(3):
        loss = alone.train_epoch().clone()
        for tr in others:
            assert torch.equal(tr.train_epoch()[tr.config.seeds.index(3)], loss[0])
    for tr in others:
        _same_trainers(alone, tr, 0, tr.config.seeds.index(3))


def test_noise_does_not_depend_on_padding_or_companions():
    dev = torch.device("cpu")
    p1 = Perturber("relu", (4, 3), (5,), None, 0.5, dev)
    p2 = Perturber("relu", (4, 3), (9, 5), None, 0.5, dev)
    p1.draw(2, 0, 17, 205, 205)
    p2.draw(2, 0, 17, 205, 224)  # padded to 224 samples, as under ensemble_invariant
    for i in range(2):
        assert torch.equal(p1.noise(i)[0], p2.noise(i)[1, :, :205])
        assert torch.equal(p2.noise(i)[1, :, 205:], torch.zeros(p2.noise(i).shape[1], 19))  # padding: none
        assert not torch.equal(p2.noise(i)[0, :, :205], p2.noise(i)[1, :, :205])
    assert len({noise_seed(5, 2, 0, 17), noise_seed(5, 2, 0, 18), noise_seed(5, 3, 0, 17), noise_seed(5, 2, 1, 17),
                noise_seed(6, 2, 0, 17)}) == 5


@pytest.mark.parametrize("kw", PERTURBED[::2])
def test_resume_equals_uninterrupted(kw):
    cfg = TrainConfig(seeds=(2, 0), **kw)
    whole = EnsembleTrainer(cfg)
    for _ in range(4):
        whole.train_epoch()
    first = EnsembleTrainer(cfg)
    for _ in range(2):
        first.train_epoch()
    state = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in first.state_dict().items()}
    resumed = EnsembleTrainer(cfg)
    resumed.load_state_dict(state)
    for _ in range(2):
        resumed.train_epoch()
    _same_trainers(whole, resumed)


class _Stop(KeyboardInterrupt):
    pass


def test_checkpointed_run_resumes_to_identical_numbers(tmp_path):
    cfg = TrainConfig(activation="relu", quantize_bits=4, seeds=(1, 0), epochs=8, record_activations=(8,),
                      estimators=(EstimatorSpec("ebab"),))
    whole = train(cfg, progress=False)
    ckpt = tmp_path / "q.ckpt"

    def stop(epoch):
        if epoch == 5:
            raise _Stop

    with pytest.raises(_Stop):
        train(cfg, checkpoint=ckpt, checkpoint_every=0.0, on_epoch=stop, progress=False)
    resumed = train(cfg, checkpoint=ckpt, progress=False)
    assert np.array_equal(resumed.epoch_loss, whole.epoch_loss)
    assert np.array_equal(resumed.mi["ebab"], whole.mi["ebab"], equal_nan=True)
    assert all(np.array_equal(a, b) for a, b in zip(resumed.activations[8], whole.activations[8]))
    for a in whole.activations[8][:-1]:
        assert max(len(np.unique(a[k])) for k in range(2)) <= 16


# -- noise_std = 0 is the engine of today ------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "tanh", "prelu"])
def test_no_perturbation_is_bit_identical_to_the_reference_engine(activation):
    from test_invariance import _legacy, _same_state
    cfg = TrainConfig(activation=activation, seeds=(4, 0, 9), quantize_bits=None, noise_std=0.0)
    old, new = _legacy()(cfg), EnsembleTrainer(cfg)
    assert new._perturber is None
    for _ in range(2):
        assert torch.equal(old.train_epoch(), new.train_epoch())
    assert _same_state(old, new)
    (ao, lo), (an, ln) = old.evaluate(), new.evaluate()
    assert torch.equal(lo, ln) and all(torch.equal(a, b) for a, b in zip(ao, an))


# -- noise: statistics and the noiseless means -------------------------------------------------

def test_injected_noise_has_the_stated_mean_and_variance():
    std = 0.25
    tr = EnsembleTrainer(TrainConfig(activation="relu", noise_std=std, seeds=(0, 1), epochs=2))
    tr.train_epoch()
    means, noisy = tr.evaluate_noisy_means()
    acts, _ = tr.evaluate()
    assert all(torch.equal(a, b) for a, b in zip(acts, noisy))  # draw 0 is what evaluate() records
    z = torch.cat([(b - a).flatten() for a, b in zip(means, noisy)]).double()
    n = z.numel()  # 2 networks x 4096 inputs x 29 units = 237,568 draws
    # float32 rounding of (mean + z) - mean is < 1e-6 here, far below these tolerances
    assert abs(float(z.mean())) < 5 * std / math.sqrt(n)  # 5 standard errors of the mean
    assert abs(float(z.var()) / std**2 - 1) < 5 * math.sqrt(2 / n)  # 5 standard errors of the variance
    # another draw: other, independent noise around other means of the deeper layers
    means1, noisy1 = tr.evaluate_noisy_means(draw=1)
    assert torch.equal(means1[0], means[0])  # the first hidden layer's mean is noiseless
    z1 = torch.cat([(b - a).flatten() for a, b in zip(means1, noisy1)]).double()
    r = float(torch.corrcoef(torch.stack([z, z1]))[0, 1])
    assert abs(r) < 5 / math.sqrt(n)
    m2, n2 = tr.evaluate_noisy_means(draw=1)
    assert all(torch.equal(a, b) for a, b in zip(n2, noisy1))


def test_noisy_means_are_the_forward_pass_of_the_previous_noisy_layer():
    tr = EnsembleTrainer(TrainConfig(activation="tanh", noise_std=0.1, **TINY))
    tr.train_epoch()
    means, noisy = tr.evaluate_noisy_means(draw=3)
    Ws, bs = tr.model.weights, tr.model.biases
    prev = tr.X_all.expand(tr.S, -1, -1)
    for i, m in enumerate(means):
        expect = torch.tanh(prev @ Ws[i].transpose(1, 2) + bs[i].transpose(1, 2))
        assert torch.allclose(m, expect, atol=1e-5)
        prev = noisy[i]


def test_noisy_means_errors():
    tr = EnsembleTrainer(TrainConfig(activation="relu", quantize_bits=4, **TINY))
    with pytest.raises(ValueError, match="noise_std > 0"):
        tr.evaluate_noisy_means()
    noisy = EnsembleTrainer(TrainConfig(activation="relu", noise_std=0.1, **TINY))
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="draw"):
            noisy.evaluate_noisy_means(draw=bad)


@pytest.mark.parametrize("kw", [dict(quantize_bits=4), dict(noise_std=0.1)])
def test_every_paper_activation_trains_quantized_and_noisy(kw):
    from ibtools.activations import PAPER_ACTIVATIONS
    for activation in PAPER_ACTIVATIONS:
        tr = EnsembleTrainer(TrainConfig(activation=activation, **TINY, **kw))
        start = tr.model.flat.detach().clone()
        loss = tr.train_epoch()
        acts, _ = tr.evaluate()
        assert torch.isfinite(loss).all() and all(torch.isfinite(a).all() for a in acts), activation
        assert not torch.equal(start, tr.model.flat), activation
        if "quantize_bits" in kw:
            assert all(len(torch.unique(a[k])) <= 16 for a in acts[:-1] for k in range(tr.S)), activation

"""Bit-for-bit properties of the training engine.

1. The engine gives exactly the numbers of the engine the stored study was computed with
   (``benchmarks/legacy_trainer.py``, kept as the reference): buffers, in-place activations and
   fused derivatives change speed, not bits.
2. With ``ensemble_invariant=True`` a network's numbers do not depend on how many or which other
   networks share its ensemble, nor on its position in it.
3. The thread policy: one torch thread unless told otherwise.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from ibtools.activations import ACTIVATIONS, PAPER_ACTIVATIONS
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.engine import default_threads, set_threads, train
from ibtools.trainer import EnsembleTrainer

_LEGACY = Path(__file__).resolve().parents[1] / "benchmarks" / "legacy_trainer.py"


def _legacy():
    spec = importlib.util.spec_from_file_location("legacy_trainer", _LEGACY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EnsembleTrainer


def _same_state(a, b) -> bool:
    return (torch.equal(a.model.flat, b.model.flat) and torch.equal(a.exp_avg, b.exp_avg)
            and torch.equal(a.exp_avg_sq, b.exp_avg_sq))


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_engine_is_bit_identical_to_the_reference_engine(activation):
    config = TrainConfig(activation=activation, seeds=(4, 0, 9, 2, 7))
    old, new = _legacy()(config), EnsembleTrainer(config)
    for _ in range(3):
        assert torch.equal(old.train_epoch(), new.train_epoch())
        assert _same_state(old, new)
    (acts_old, logits_old), (acts_new, logits_new) = old.evaluate(), new.evaluate()
    assert torch.equal(logits_old, logits_new)
    assert all(torch.equal(a, b) for a, b in zip(acts_old, acts_new))
    # the Recorder's reused buffers hold the same values
    acts_buf, _ = new.evaluate(reuse_buffers=True)
    assert all(torch.equal(a, b) for a, b in zip(acts_old, acts_buf))


@pytest.mark.parametrize("activation, l2, shuffle", [("relu", 0.015, False), ("prelu", 0.05, True),
                                                    ("swish", 0.0, True), ("tanh", 0.015, True)])
def test_bit_identity_with_l2_and_shuffled_batches(activation, l2, shuffle):
    config = TrainConfig(activation=activation, seeds=(1, 6, 3), l2=l2, shuffle_batches=shuffle)
    old, new = _legacy()(config), EnsembleTrainer(config)
    for _ in range(3):
        assert torch.equal(old.train_epoch(), new.train_epoch())
    assert _same_state(old, new)


# Member `seed` of the 50-network ensemble against the same seed in smaller ensembles, at other
# positions (first, middle, last) and with other companions.
ENSEMBLES = [(3,), (49, 3), (7, 3, 11), (1, 2, 4, 3, 5, 6, 8)]


@pytest.mark.parametrize("activation", PAPER_ACTIVATIONS + ("sigmoid",))
def test_numbers_do_not_depend_on_the_ensemble(activation):
    def make(seeds):
        return EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(seeds), ensemble_invariant=True))

    big = make(range(50))
    small = [make(s) for s in ENSEMBLES]
    for _ in range(4):
        loss_big = big.train_epoch().clone()
        for tr in small:
            loss = tr.train_epoch()
            for k, seed in enumerate(tr.config.seeds):
                assert torch.equal(loss[k], loss_big[seed])
    acts_big, logits_big = big.evaluate()
    for tr in small:
        acts, logits = tr.evaluate()
        for k, seed in enumerate(tr.config.seeds):
            for p_small, p_big in zip(tr.model.weights + tr.model.biases + tr.model.slopes,
                                      big.model.weights + big.model.biases + big.model.slopes):
                assert torch.equal(p_small[k], p_big[seed])
            for state in ("exp_avg", "exp_avg_sq"):  # Adam's moments too
                mine, theirs = tr._split(getattr(tr, state)), big._split(getattr(big, state))
                assert all(torch.equal(p[k], q[seed]) for part, other in zip(mine, theirs) for p, q in zip(part, other))
            assert torch.equal(logits[k], logits_big[seed])
            assert all(torch.equal(a[k], b[seed]) for a, b in zip(acts, acts_big))


def test_recorded_information_does_not_depend_on_the_ensemble():
    estimators = (EstimatorSpec("ebab"), EstimatorSpec.make("max", max_value="network"))
    runs = {}
    for seeds in ((5, 0, 2), (2,), (9, 2, 8, 1, 4, 6, 7)):
        config = TrainConfig(activation="softplus", seeds=seeds, epochs=12, estimators=estimators, ensemble_invariant=True)
        runs[seeds] = train(config, progress=False)
    ref = runs[(2,)]
    for seeds, run in runs.items():
        k = seeds.index(2)
        for label in ref.mi:
            assert np.array_equal(run.mi[label][:, :, k], ref.mi[label][:, :, 0], equal_nan=True)
        assert np.array_equal(run.epoch_loss[:, k], ref.epoch_loss[:, 0])
        for name in ref.history:
            assert np.array_equal(run.history[name][:, k], ref.history[name][:, 0])


def test_invariant_training_still_learns_like_the_default():
    # padding is masked: the same networks, trained the same way, up to float rounding
    default = EnsembleTrainer(TrainConfig(activation="tanh", seeds=(0, 1)))
    invariant = EnsembleTrainer(TrainConfig(activation="tanh", seeds=(0, 1), ensemble_invariant=True))
    for _ in range(5):
        la, lb = default.train_epoch(), invariant.train_epoch()
    assert torch.allclose(la, lb, atol=1e-6)
    assert torch.allclose(default.model.flat, invariant.model.flat, atol=1e-5)


def test_ensemble_invariant_is_part_of_the_key_only_when_set():
    plain = TrainConfig(activation="elu", seeds=(1, 2))
    assert "ensemble_invariant" not in plain.to_dict()  # keys of stored units are unchanged
    inv = plain.replace(ensemble_invariant=True)
    assert inv.key() != plain.key()
    assert TrainConfig.from_dict(inv.to_dict()) == inv
    with pytest.raises(ValueError, match="ensemble_invariant must be True or False"):
        TrainConfig(ensemble_invariant="yes")


def test_default_is_one_thread_and_the_environment_overrides_it(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("IBTOOLS_THREADS", raising=False)
        assert default_threads() == 1
        assert set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("IBTOOLS_THREADS", "2")
        assert default_threads() == 2
        assert set_threads(3) == 3 and torch.get_num_threads() == 3  # an explicit number wins
        for bad in ("0", "two", "-1"):
            monkeypatch.setenv("IBTOOLS_THREADS", bad)
            with pytest.raises(ValueError, match=r"IBTOOLS_THREADS \(torch CPU threads\) must be an integer >= 1"):
                default_threads()
        for bad in (0, -2, 1.5, True):
            with pytest.raises(ValueError, match="threads must be an integer >= 1"):
                set_threads(bad)
    finally:
        torch.set_num_threads(before)

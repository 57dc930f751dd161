"""ibtools.rounding_sensitivity: the drift yardstick of the CUDA tests, checked on the CPU."""

import numpy as np
import pytest
import torch

from ibtools.config import TrainConfig
from ibtools.rounding_sensitivity import drift_between, perturb_weights, rounding_drift
from ibtools.trainer import EnsembleTrainer


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_two_identical_ensembles_do_not_drift_at_all(activation):
    config = TrainConfig(activation=activation, seeds=(0, 1), ensemble_invariant=True)
    drift = drift_between(EnsembleTrainer(config), EnsembleTrainer(config), epochs=3)
    assert drift.loss.shape == (3,)
    assert np.all(drift.loss == 0) and drift.params == 0 and drift.logits == 0


def test_a_one_ulp_change_drifts_by_rounding_on_the_12_bit_task():
    """tanh on the 12-bit task: the changed copy is not the same network (a nonzero gap somewhere),
    and stays within a few float32 ulps of the loss over 5 epochs (measured for this setting:
    8.6e-8 relative, parameters 3.0e-7 apart; the bounds leave a factor of about 10)."""
    drift = rounding_drift(TrainConfig(activation="tanh", seeds=(0, 1, 2)), epochs=5,
                           generator=torch.Generator().manual_seed(1))
    assert drift.params > 0
    assert drift.loss.max() <= 1e-6
    assert drift.params <= 1e-5


def test_a_bigger_change_drifts_further():
    config = TrainConfig(activation="tanh", seeds=(0, 1))
    small = rounding_drift(config, epochs=2, eps=1e-7, generator=torch.Generator().manual_seed(3))
    large = rounding_drift(config, epochs=2, eps=1e-3, generator=torch.Generator().manual_seed(3))
    assert large.params > 100 * small.params


def test_bad_arguments_are_refused_with_a_clear_message():
    config = TrainConfig(activation="tanh", seeds=(0,))
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        rounding_drift(config, epochs=1, eps=0.0)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        drift_between(EnsembleTrainer(config), EnsembleTrainer(config), epochs=0)
    with pytest.raises(ValueError, match="different networks"):
        drift_between(EnsembleTrainer(config), EnsembleTrainer(config.replace(seeds=(0, 1))), epochs=1)


def test_several_draws_give_the_largest_drift_of_each():
    config = TrainConfig(activation="tanh", seeds=(0, 1))
    both = rounding_drift(config, epochs=2, draws=2, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    first, second = rounding_drift(config, 2, generator=g), rounding_drift(config, 2, generator=g)
    assert np.array_equal(both.loss, np.maximum(first.loss, second.loss))
    assert both.params == max(first.params, second.params) and both.logits == max(first.logits, second.logits)
    with pytest.raises(ValueError, match="draws must be at least 1"):
        rounding_drift(config, epochs=1, draws=0)


def test_perturb_weights_changes_by_rounding_and_refuses_a_change_that_moves_nothing():
    trainer = EnsembleTrainer(TrainConfig(activation="tanh", seeds=(0, 1, 2)))
    before = trainer.model.flat.detach().clone()
    changed = perturb_weights(trainer, 1e-7, torch.Generator().manual_seed(0))
    after = trainer.model.flat.detach()
    assert changed == int((after != before).sum()) and 0 < changed < before.numel()
    rel = ((after - before).abs() / before.abs().clamp_min(1e-30)).max().item()
    assert rel <= 1e-6, "a rounding-sized change (eps = 1e-7, |z| < 5 at this size)"
    with pytest.raises(ValueError, match="below float32 rounding for every parameter"):
        perturb_weights(trainer, 1e-12, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        perturb_weights(trainer, float("nan"), torch.Generator().manual_seed(0))


def test_ensembles_of_other_networks_are_refused():
    with pytest.raises(ValueError, match="different networks"):
        drift_between(EnsembleTrainer(TrainConfig(activation="tanh", seeds=(0,))),
                      EnsembleTrainer(TrainConfig(activation="tanh", seeds=(0,), hidden=(10, 7, 5, 4, 2, 3))), 1)

"""The CUDA path against the CPU reference (runs only where torch sees a GPU).

CI has no GPU, so these tests skip there; a session with a GPU machine runs them (see
``benchmarks/bench_cuda.py`` and the CUDA section of ``benchmarks/README.md`` for when they last
ran and what they measured). Setting ``IBTOOLS_TEST_DEVICE=cpu`` runs the same comparisons CPU
against CPU, which checks the tests themselves on a machine without a GPU (everything must then
agree exactly).

Tolerances, fixed before the first GPU run and why:

* Training: the same initial weights (drawn on the CPU and copied) and the same minibatches,
  but float32 sums taken in another order, so the two devices drift apart by rounding. Over
  20 epochs (260 Adam steps) the per-epoch training loss may differ by at most 1e-4 relative,
  the logits on all 4096 inputs by 1e-3, the parameters by 1e-3 (rounding differences of a few
  float32 ulps per step, far below these, unless training amplifies them chaotically).
* Estimators on the same activity tensor: binning and exact MI copy the activity to the CPU, so
  they must agree exactly; the KDE bounds and the mixture estimate sum float32 kernel terms in
  another order: at most 1e-4 bits apart.
* Recorded runs (training + estimators at every scheduled epoch), **version 2**. Version 1
  asked the recorded EBAB of a device run to be within 0.02 bits of the CPU run's; the first GPU
  run (H200, 2026-11-26) found 0.291 bits. The cause is EBAB, not the device: EBAB is
  discontinuous in the activity (its bin edges sit at sample quantiles); on the CPU alone, a
  relative change of 1e-6 in a network's weights moves its EBAB by up to 0.11 bits in the
  softmax output layer, and the two devices' networks drift further apart over 40 epochs
  (``experiments/ebab_rounding_sensitivity.md``). So version 2 splits the claim in two checkable
  parts: the device run's activity follows the CPU run's (within 1e-3 of the activity's scale),
  and what the device recorded equals, exactly, the estimators run on the CPU from the device's
  own recorded activity. Adaptive KDE, which is continuous, must still be within 1e-3 bits of
  the CPU run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ibtools.activations import ACTIVATIONS, PAPER_ACTIVATIONS
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.estimators import get_estimator
from ibtools.rounding_sensitivity import Drift, drift_between, rounding_drift
from ibtools.trainer import EnsembleTrainer
from ibtools.training import train

DEVICE = os.environ.get("IBTOOLS_TEST_DEVICE", "cuda")

pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                reason="needs a CUDA device (or IBTOOLS_TEST_DEVICE=cpu to check the tests)")

LOSS_RTOL = 1e-4
LOGIT_ATOL = 1e-3
PARAM_ATOL = 1e-3
KDE_ATOL_BITS = 1e-4
ACTIVITY_RTOL = 1e-3
AKDE_RUN_ATOL_BITS = 1e-3
#: MNIST-1D training (version 2): a gap may be this many times the CPU's own rounding drift.
DRIFT_FACTOR = 10
#: ... measured as the largest drift of this many rounding-sized changes of the weights (version 3).
DRIFT_DRAWS = 5
EPOCHS = 20


def _pair(config: TrainConfig) -> tuple[EnsembleTrainer, EnsembleTrainer]:
    return EnsembleTrainer(config), EnsembleTrainer(config.replace(device=DEVICE))


def _train_side_by_side(config: TrainConfig, epochs: int = EPOCHS, yardstick: Drift | None = None) -> None:
    """Train ``config`` on the CPU and on the device side by side; every gap within its
    tolerance, or, given the CPU's own rounding ``yardstick``, within the larger of the tolerance
    and ``DRIFT_FACTOR`` times the yardstick (for the loss, its largest value up to that epoch)."""
    cpu, dev = _pair(config)
    assert dev.model.flat.device.type == DEVICE
    assert torch.equal(cpu.model.flat, dev.model.flat.cpu())  # the same initial weights
    drift = drift_between(cpu, dev, epochs)
    assert np.isfinite(drift.loss).all() and np.isfinite([drift.params, drift.logits]).all()
    if DEVICE == "cpu":  # the tests checking themselves: the same arithmetic, the same bits
        assert drift.loss.max() == 0 and drift.params == 0 and drift.logits == 0
    (acts_c, _), (acts_d, _) = cpu.evaluate(), dev.evaluate()
    assert [a.shape for a in acts_c] == [a.shape for a in acts_d]
    loss_bound, param_bound, logit_bound = np.full(epochs, LOSS_RTOL), PARAM_ATOL, LOGIT_ATOL
    if yardstick is not None:
        assert np.isfinite(yardstick.loss).all() and np.isfinite([yardstick.params, yardstick.logits]).all()
        loss_bound = np.maximum(loss_bound, DRIFT_FACTOR * np.maximum.accumulate(yardstick.loss))
        param_bound = max(param_bound, DRIFT_FACTOR * yardstick.params)
        logit_bound = max(logit_bound, DRIFT_FACTOR * yardstick.logits)
    over = np.flatnonzero(drift.loss > loss_bound)
    assert over.size == 0, (f"epoch {over[0]}: training losses {drift.loss[over[0]]:.2e} apart (relative), "
                            f"allowed {loss_bound[over[0]]:.2e}")
    assert drift.params <= param_bound, f"parameters {drift.params:.2e} apart, allowed {param_bound:.2e}"
    assert drift.logits <= logit_bound, f"logits {drift.logits:.2e} apart, allowed {logit_bound:.2e}"


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_training_on_the_device_follows_the_cpu(activation):
    _train_side_by_side(TrainConfig(activation=activation, seeds=(0, 1, 2, 3)))


@pytest.mark.parametrize("activation, l2, shuffle, invariant",
                         [("relu", 0.015, True, False), ("tanh", 0.05, False, True), ("swish", 0.0, True, True)])
def test_device_training_with_l2_shuffling_and_invariant_arithmetic(activation, l2, shuffle, invariant):
    _train_side_by_side(TrainConfig(activation=activation, seeds=(5, 6), l2=l2, shuffle_batches=shuffle,
                                    ensemble_invariant=invariant))


def _mnist1d(**kwargs) -> TrainConfig:
    from ibtools.study import MNIST1D_HIDDEN
    return TrainConfig(task="mnist1d", hidden=MNIST1D_HIDDEN, **kwargs)


@pytest.mark.parametrize("activation", list(PAPER_ACTIVATIONS))
def test_mnist1d_training_on_the_device_follows_the_cpu(activation):
    """The MNIST-1D study's networks (40-100-50-20-10-5-10, 4000 training signals), **version 3**.

    Version 1 held them to the 12-bit task's fixed tolerances. Its first run on a GPU (H200,
    2026-11-27) failed for ReLU, abs and PReLU: training losses 1.2e-4 to 1.9e-4 apart
    (relative) by epochs 7-17 (counted from 0); the smooth activations passed. On the CPU alone,
    a 1e-7 relative change of the initial weights can drift those three as far within 20 epochs
    (up to 2e-4 to 7e-3) while the smooth ones stay near 1e-7
    (``experiments/training_rounding_sensitivity.md``): piecewise-linear networks on continuous
    inputs can amplify rounding, so no fixed tolerance separates a device bug from rounding for
    them. **Version 2** measures that yardstick in the test
    (:func:`ibtools.rounding_sensitivity.rounding_drift`) and allows each gap the larger of the
    version-1 tolerance and ``DRIFT_FACTOR`` times the yardstick (for the loss, its largest value
    up to that epoch). For the smooth activations the version-1 tolerances still decide.

    **Version 3.** Version 2 took the yardstick from one change of the weights; on its first GPU
    run ReLU failed (1.56e-4 at epoch 17, allowed 1e-4) because that one change had drifted the
    CPU's ReLU networks by only rounding (2e-7): whether a change crosses a kink within 20
    epochs is itself chance. Version 3 takes the largest drift of ``DRIFT_DRAWS`` changes; factor
    and tolerances as in version 2. (Since its first GPU run, the change is taken in float64 and
    rounded once, :func:`ibtools.rounding_sensitivity.perturb_weights`, where it had been a
    float32 multiplier; the rule is the same.)

    What this can and cannot catch: the bounds are strict over the first epochs and for the
    smooth activations; once a piecewise-linear ensemble has crossed kinks, the CPU's own drift
    (and with it the bound) grows to percent-level losses and logit gaps of order 1-10, so late
    in training the test checks little more than that the device trains at all."""
    pytest.importorskip("mnist1d")
    config = _mnist1d(activation=activation, seeds=(0, 1, 2), ensemble_invariant=True)
    _train_side_by_side(config, yardstick=rounding_drift(config, EPOCHS, draws=DRIFT_DRAWS))


def _activity(seed: int, S: int = 3, N: int = 4096, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.tanh(torch.randn(S, N, d, generator=g))
    a[:, ::7] = a[:, 3:4]  # repeated rows, as in saturated layers
    y = (torch.arange(N) % 2).to(torch.int64)
    return a, y


@pytest.mark.parametrize("name, params, atol", [
    ("ebab", {}, 0.0),
    ("exact", {}, 0.0),
    ("kde", {"noise_var": 0.01, "bound": "upper"}, KDE_ATOL_BITS),
    ("kde", {"noise_var": 0.01, "bound": "lower"}, KDE_ATOL_BITS),
    ("akde", {"alpha": 0.01}, KDE_ATOL_BITS),
    ("mixture_bounds", {"noise_std": 0.1, "bound": "upper"}, KDE_ATOL_BITS),
])
def test_estimators_give_the_cpu_numbers_on_the_device(name, params, atol):
    a, y = _activity(1)
    fn = get_estimator(name)
    on_cpu = fn(a, y, **params)
    on_dev = fn(a.to(DEVICE), y.to(DEVICE), **params)
    for c, d in zip(on_cpu, on_dev):
        c, d = np.asarray(c, dtype=np.float64), np.asarray(d, dtype=np.float64)
        assert c.shape == d.shape
        assert np.all(np.isfinite(d))
        assert np.abs(c - d).max() <= atol, f"{name} {params}: {np.abs(c - d).max():.2e} bits apart"


def test_mixture_monte_carlo_gives_the_cpu_numbers_on_the_device():
    a, y = _activity(2, S=2, N=1024, d=4)
    fn = get_estimator("mixture")
    on_cpu = fn(a, y, noise_std=0.1, n_samples=2000, seed=0)
    on_dev = fn(a.to(DEVICE), y.to(DEVICE), noise_std=0.1, n_samples=2000, seed=0)
    for c, d in zip(on_cpu, on_dev):
        assert np.abs(np.asarray(c, dtype=np.float64) - np.asarray(d, dtype=np.float64)).max() <= KDE_ATOL_BITS


def test_a_recorded_run_on_the_device_follows_the_cpu():
    estimators = (EstimatorSpec("ebab"), EstimatorSpec("akde"), EstimatorSpec("exact"))
    config = TrainConfig(activation="relu", seeds=(0, 1, 2), epochs=40, n_log_points=30, estimators=estimators,
                         record_activations="all")
    _compare_recorded_runs(config)


def _compare_recorded_runs(config: TrainConfig) -> None:
    cpu = train(config, progress=False)
    dev = train(config.replace(device=DEVICE), progress=False)
    assert dev.meta["device"] == DEVICE
    assert set(cpu.mi) == set(dev.mi) and sorted(cpu.activations) == sorted(dev.activations)
    assert np.allclose(cpu.epoch_loss, dev.epoch_loss, rtol=LOSS_RTOL)
    epochs = list(config.evaluation_epochs())
    y = torch.as_tensor(np.asarray(cpu_labels(config)))
    for epoch in sorted(dev.activations):
        i = epochs.index(epoch)
        for layer, (a_cpu, a_dev) in enumerate(zip(cpu.activations[epoch], dev.activations[epoch])):
            scale = 1.0 + float(np.abs(a_cpu).max())
            assert np.abs(a_cpu - a_dev).max() <= ACTIVITY_RTOL * scale, f"epoch {epoch} layer {layer}"
            for label in ("ebab", "exact"):  # the device's recording = the estimator on its own activity
                again = get_estimator(label)(torch.from_numpy(a_dev), y)
                assert np.array_equal(dev.mi[label][i, layer, :, 0], np.asarray(again[0], dtype=np.float32))
                assert np.array_equal(dev.mi[label][i, layer, :, 1], np.asarray(again[1], dtype=np.float32))
    gap = np.nanmax(np.abs(cpu.mi["akde"] - dev.mi["akde"]))
    assert gap <= AKDE_RUN_ATOL_BITS, f"akde: {gap:.3g} bits apart"


def test_a_recorded_mnist1d_run_on_the_device_follows_the_cpu():
    """The recorded-run check (its version 2, above) on MNIST-1D: 5000 distinct continuous inputs
    and the study's estimators (EBAB, adaptive KDE, exact), with tanh networks (**version 2** of
    this test). Version 1 used ReLU and failed on its first GPU run (H200, 2026-11-27) at the
    loss check: 5e-4 relative at epoch 19, the rounding drift that ReLU networks show on MNIST-1D
    on the CPU alone (see the training test above). What this test is for, that the device
    records what the estimators give on its own activity, does not depend on the activation."""
    pytest.importorskip("mnist1d")
    config = _mnist1d(activation="tanh", seeds=(0, 1), epochs=20, n_log_points=8, record_activations="all",
                      estimators=(EstimatorSpec("ebab"), EstimatorSpec("akde"), EstimatorSpec("exact")),
                      ensemble_invariant=True)
    _compare_recorded_runs(config)


def cpu_labels(config: TrainConfig):
    return EnsembleTrainer(config).y_all.cpu().numpy()


def test_the_command_line_sweep_runs_on_the_device_and_keys_like_the_cpu(tmp_path):
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "ibtools", "sweep", "--activations", "tanh", "--seeds", "0-1", "--epochs", "12",
           "--n-log-points", "8", "--device", DEVICE, "--cache", str(cache), "--no-progress", "--no-estimate"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    sidecars = sorted(cache.glob("*.json"))
    assert len(sidecars) == 1
    meta = json.loads(sidecars[0].read_text())
    cpu_key = TrainConfig(activation="tanh", seeds=(0, 1), epochs=12, n_log_points=8).key()
    assert meta["config_key"] == cpu_key  # the device is not part of a unit's identity
    assert meta["meta"]["device"] == DEVICE


def test_ensemble_invariance_on_the_device():
    """Seed 3 trained alone, second of three and inside 50 networks (``ensemble_invariant``): the
    CPU gives the same bits. On a GPU it holds only to rounding (1-4 float32 ulps after 5 epochs
    on an H200, ``benchmarks/bench_cuda.py``), so this checks the loss tolerance."""
    def make(seeds):
        return EnsembleTrainer(TrainConfig(activation="softplus", seeds=tuple(seeds), ensemble_invariant=True,
                                           device=DEVICE))

    alone, three, big = make((3,)), make((7, 3, 11)), make(range(50))
    for _ in range(5):
        la, l3, lb = alone.train_epoch().cpu(), three.train_epoch().cpu(), big.train_epoch().cpu()
        assert abs(l3[1] - la[0]) <= LOSS_RTOL * la[0] and abs(lb[3] - la[0]) <= LOSS_RTOL * la[0]

"""How far two trainings drift apart when they differ only by float32 rounding.

Another device, thread count or summation order changes the last bits of a training step; how
much that matters depends on the networks. Smooth activations keep two such runs within a few
float32 ulps for many epochs. Piecewise-linear ones (ReLU, abs, PReLU) can amplify the
difference: when a pre-activation sits near the kink, rounding decides which side it is on, and
so whether that unit passes a gradient at that step. On MNIST-1D (4000 continuous training
signals, 100 first-layer units) this happens within 20 epochs
(``experiments/training_rounding_sensitivity.md``).

:func:`rounding_drift` measures the effect on the CPU alone. It multiplies every initial
parameter of a copy of the ensemble by (1 + eps z), z standard normal (eps = 1e-7 is about one
float32 ulp; :func:`perturb_weights`), trains both copies and reports how far apart they end up. The CUDA tests
(``tests/test_cuda.py``) use it as the yardstick for what "the same up to rounding" can mean for a
given task and activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import TrainConfig
from .trainer import EnsembleTrainer

__all__ = ["Drift", "drift_between", "perturb_weights", "rounding_drift"]


@dataclass(frozen=True)
class Drift:
    """How far apart two ensembles trained side by side ended up.

    Attributes
    ----------
    loss : numpy.ndarray
        Shape ``(epochs,)``: the largest relative difference of the per-network training loss at
        each epoch, over the networks (dimensionless).
    params : float
        The largest absolute difference of any parameter after the last epoch.
    logits : float
        The largest absolute difference of any logit on the task's full input set after the last
        epoch.
    """

    loss: np.ndarray
    params: float
    logits: float


def _trajectory(trainer: EnsembleTrainer, epochs: int):
    """Train ``trainer`` in place; its per-epoch losses (float64, on the CPU), final parameters
    and final logits on the full input set."""
    loss = torch.stack([trainer.train_epoch().cpu().double() for _ in range(epochs)])
    _, logits = trainer.evaluate()
    return loss, trainer.model.flat.detach().cpu().clone(), logits.cpu()


def _drift(a, b) -> Drift:
    (loss_a, params_a, logits_a), (loss_b, params_b, logits_b) = a, b
    loss = ((loss_a - loss_b).abs() / loss_a.abs()).amax(dim=1).numpy()
    return Drift(loss=loss, params=float((params_a - params_b).abs().max()),
                 logits=float((logits_a - logits_b).abs().max()))


def drift_between(first: EnsembleTrainer, second: EnsembleTrainer, epochs: int) -> Drift:
    """Train ``first`` and ``second`` for ``epochs`` epochs and measure how far apart they end up.

    The two must hold the same networks (same task, architecture and number of networks); they
    may live on different devices. Both are trained in place.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    a, b = first.config, second.config
    if (a.task, a.widths, len(a.seeds)) != (b.task, b.widths, len(b.seeds)):
        raise ValueError(f"the two ensembles hold different networks: task {a.task!r}, widths {a.widths}, "
                         f"{len(a.seeds)} networks against task {b.task!r}, widths {b.widths}, {len(b.seeds)} networks")
    return _drift(_trajectory(first, epochs), _trajectory(second, epochs))


def perturb_weights(trainer: EnsembleTrainer, eps: float, generator: torch.Generator) -> int:
    """Multiply every parameter of ``trainer`` by (1 + eps z), z standard normal, in place.

    The product is taken in float64 and rounded once to the parameters' float32, so a change
    smaller than half a float32 ulp of a parameter leaves that parameter as it was (at eps = 1e-7
    about a third of them stay unchanged). Returns how many parameters changed; a change that
    moves none is refused (``ValueError``), since it would measure nothing.
    """
    if not (eps > 0 and np.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite number, got {eps}")
    flat = trainer.model.flat
    z = torch.randn(flat.shape, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        moved = (flat.detach().cpu().double() * (1 + eps * z)).to(flat.dtype)
        changed = int((moved != flat.detach().cpu()).sum())
        flat.copy_(moved.to(flat.device))
    if changed == 0:
        raise ValueError(f"eps = {eps:g} is below float32 rounding for every parameter: nothing changed "
                         "(use eps >= 1e-7)")
    return changed


def rounding_drift(config: TrainConfig, epochs: int, eps: float = 1e-7, generator: torch.Generator | None = None,
                   draws: int = 1) -> Drift:
    """The drift that a rounding-sized change of the initial weights causes on the CPU.

    Parameters
    ----------
    config : TrainConfig
        The ensemble to train (its ``device`` is ignored: both copies train on the CPU).
    epochs : int
        How many epochs to train the two copies.
    eps : float
        Relative size of the change: every parameter is multiplied by (1 + eps z), z standard
        normal, in float64 and rounded to float32 (:func:`perturb_weights`). 1e-7 is about one
        float32 ulp (float32's machine epsilon is 1.19e-7).
    generator : torch.Generator, optional
        Source of z (default: a generator seeded with 0).
    draws : int
        How many independent changes to try. Whether a change pushes some pre-activation across
        a kink within ``epochs`` is itself a matter of chance
        (``experiments/training_rounding_sensitivity.md``), so a yardstick should take several.

    Returns
    -------
    Drift
        How far the changed copies ended up from the unchanged one: the largest of the draws',
        epoch by epoch for the loss.
    """
    if not (eps > 0 and np.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite number, got {eps}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    config = config.replace(device="cpu")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    reference = _trajectory(EnsembleTrainer(config), epochs)  # deterministic: trained once
    drifts = []
    for _ in range(draws):
        changed = EnsembleTrainer(config)
        perturb_weights(changed, eps, generator)
        drifts.append(_drift(reference, _trajectory(changed, epochs)))
    return Drift(loss=np.max([d.loss for d in drifts], axis=0), params=max(d.params for d in drifts),
                 logits=max(d.logits for d in drifts))

"""The grid of a sweep: activations x L2 strengths x seeds, cut into *units*.

A unit is one activation, one L2 strength and one block of seeds, trained together by
:func:`ibtools.training.train`; it is also the granule of caching
(:class:`ibtools.result_cache.ResultCache`) and of distribution over workers
(:mod:`ibtools.distributed`). :func:`ibtools.sweep.run_sweep` runs a grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .activations import get_activation
from .config import TrainConfig
from .validation import check_int

__all__ = ["SweepConfig", "work_summary"]


@dataclass(frozen=True)
class SweepConfig:
    """A grid of training runs.

    Attributes
    ----------
    base : TrainConfig
        Everything not swept (task, epochs, estimators, split, ...). Its ``activation``, ``l2`` and
        ``seeds`` are the defaults of the three swept fields.
    activations : tuple of str, optional
    l2s : tuple of float, optional
    seeds : tuple of int, optional
    seeds_per_unit : int
        Networks trained together in one unit; a unit is also the granule of caching and of
        distribution over workers.
    """

    base: TrainConfig = TrainConfig()
    activations: tuple[str, ...] | None = None
    l2s: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None
    seeds_per_unit: int = 50

    def __post_init__(self):
        if not isinstance(self.base, TrainConfig):
            raise ValueError(f"base must be a TrainConfig, got {type(self.base).__name__}")
        acts = tuple(self.activations) if self.activations is not None else (self.base.activation,)
        for a in acts:
            get_activation(a)
        l2s = tuple(self.l2s) if self.l2s is not None else (self.base.l2,)
        seeds = tuple(self.seeds) if self.seeds is not None else self.base.seeds
        if not acts or not l2s or not seeds:
            raise ValueError("a sweep needs at least one activation, one l2 strength and one seed")
        for name, values in (("activations", acts), ("l2s", l2s), ("seeds", seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct, got {values}")
        object.__setattr__(self, "seeds_per_unit", check_int(self.seeds_per_unit, "seeds_per_unit", 1))
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "l2s", l2s)
        object.__setattr__(self, "seeds", seeds)
        self.units()  # validates every unit's configuration up front

    def units(self) -> list[TrainConfig]:
        """The unit configurations, in a fixed order (activation, then l2, then seed block)."""
        blocks = [self.seeds[i : i + self.seeds_per_unit] for i in range(0, len(self.seeds), self.seeds_per_unit)]
        return [
            self.base.replace(activation=a, l2=l2, seeds=tuple(block))
            for a in self.activations
            for l2 in self.l2s
            for block in blocks
        ]


def work_summary(configs: Sequence[TrainConfig]) -> dict[str, int]:
    """How much work a list of run configurations holds: networks, network-epochs, and
    estimator evaluations (one estimator on one layer of one network at one epoch)."""
    networks = sum(len(c.seeds) for c in configs)
    net_epochs = sum(len(c.seeds) * c.epochs for c in configs)
    evaluations = sum(
        len(c.seeds) * c.n_layers * len(c.estimator_schedule(s)) for c in configs for s in c.estimators
    )
    return {"units": len(configs), "networks": networks, "network_epochs": net_epochs, "estimator_evaluations": evaluations}

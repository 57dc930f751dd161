"""How much do the estimators move when a layer's activity moves by float32 rounding?

EBAB puts its bin edges at sample quantiles, so it is discontinuous in the activity: a sample
that sits on an edge changes bins under any perturbation. This script measures the size of that
effect on networks of the paper's setting: every parameter of every network multiplied by
(1 + eps * z), z standard normal, for eps = 1e-7 (about one float32 ulp, what another device or
summation order leaves after a few steps) and 1e-6; the perturbed networks are evaluated on all
inputs as usual (so inputs that give identical rows still give identical rows), and the change in
I(X;T) of EBAB (30 bins), adaptive KDE (alpha 0.01) and the exact (distinct-row) I(X;T) is
recorded per layer and network. ``--perturb activity`` instead multiplies every activity value
by (1 + eps * z) independently, which also separates rows that coincide (an upper bound, not
what rounding does). Recorded in ``experiments/ebab_rounding_sensitivity.md``.

    python scripts/ebab_rounding_sensitivity.py [--perturb weights|activity] [--networks 10] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from ibtools.config import TrainConfig
from ibtools.estimators import get_estimator
from ibtools.trainer import EnsembleTrainer

EPSILONS = (1e-7, 1e-6)
EPOCHS = (0, 10, 100, 1000)
ESTIMATORS = {"ebab": {}, "akde": {"alpha": 0.01}, "exact": {}}


def measure(activation: str, networks: int, generator: torch.Generator, perturb: str = "weights") -> dict:
    trainer = EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(networks)), ensemble_invariant=True))
    y = trainer.y_all
    out = {}
    for epoch in range(max(EPOCHS) + 1):
        if epoch in EPOCHS:
            acts, _ = trainer.evaluate()
            flat = trainer.model.flat.detach().clone()
            moved = {}
            for eps in EPSILONS:
                if perturb == "activity":
                    moved[eps] = [a * (1 + eps * torch.randn(a.shape, generator=generator)) for a in acts]
                    continue
                with torch.no_grad():
                    trainer.model.flat.mul_(1 + eps * torch.randn(flat.shape, generator=generator))
                moved[eps], _ = trainer.evaluate()
                with torch.no_grad():
                    trainer.model.flat.copy_(flat)
            for name, params in ESTIMATORS.items():
                fn = get_estimator(name)
                base = [np.asarray(fn(a, y, **params)[0], dtype=np.float64) for a in acts]
                for eps in EPSILONS:
                    gaps = np.array([np.abs(np.asarray(fn(m, y, **params)[0], dtype=np.float64) - b)
                                     for m, b in zip(moved[eps], base)])  # (layers, networks)
                    out[f"epoch={epoch} {name} eps={eps:g}"] = {
                        "median_bits": float(np.median(gaps)), "max_bits": float(gaps.max()),
                        "max_by_layer_bits": [round(float(v), 4) for v in gaps.max(1)]}
        if epoch < max(EPOCHS):
            trainer.train_epoch()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", type=int, default=10)
    p.add_argument("--perturb", choices=("weights", "activity"), default="weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    g = torch.Generator().manual_seed(args.seed)
    record = {a: measure(a, args.networks, g, args.perturb) for a in ("tanh", "relu")}
    for activation, rows in record.items():
        for key, row in rows.items():
            print(f"{activation:5s} {key:32s} median {row['median_bits']:.4f}  max {row['max_bits']:.3f}  by layer {row['max_by_layer_bits']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

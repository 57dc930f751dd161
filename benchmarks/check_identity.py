"""Bit-identity of the training engine against the previous one (``legacy_trainer.py``, the
engine the stored study in ``results/paper`` was computed with).

Trains the same ensemble with both engines, side by side, and compares with ``torch.equal``
after every epoch: parameters, Adam state, the epoch's losses, and at the end the evaluation pass
(activity of every layer on all 4096 inputs).

    python benchmarks/check_identity.py [--epochs 300] [--networks 50] [--threads 1] [ACTIVATION ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from legacy_trainer import EnsembleTrainer as LegacyTrainer  # noqa: E402

from ibtools.activations import ACTIVATIONS  # noqa: E402
from ibtools.config import TrainConfig  # noqa: E402
from ibtools.trainer import EnsembleTrainer  # noqa: E402


def compare(config: TrainConfig, epochs: int) -> str:
    old, new = LegacyTrainer(config), EnsembleTrainer(config)
    for epoch in range(epochs):
        lo, ln = old.train_epoch(), new.train_epoch()
        if not (torch.equal(lo, ln) and torch.equal(old.model.flat, new.model.flat)
                and torch.equal(old.exp_avg, new.exp_avg) and torch.equal(old.exp_avg_sq, new.exp_avg_sq)):
            return f"DIFFERENT from epoch {epoch + 1}"
    (ao, go), (an, gn) = old.evaluate(), new.evaluate()
    if not (torch.equal(go, gn) and all(torch.equal(a, b) for a, b in zip(ao, an))):
        return "DIFFERENT evaluation"
    return "identical"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("activations", nargs="*", default=list(ACTIVATIONS))
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--shuffle", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    failed = 0
    for name in args.activations:
        t0 = time.process_time()
        config = TrainConfig(activation=name, seeds=tuple(range(args.networks)), l2=args.l2, shuffle_batches=args.shuffle)
        verdict = compare(config, args.epochs)
        failed += verdict != "identical"
        print(f"{name:18s} {args.networks} networks x {args.epochs} epochs, {args.threads} thread(s), l2={args.l2}, "
              f"shuffle={args.shuffle}: {verdict}  ({time.process_time() - t0:.0f} s CPU)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

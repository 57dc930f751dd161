"""How far does training drift when only float32 rounding differs? (CPU alone)

For each paper activation, on the 12-bit task (its 12-10-7-5-4-3-2 network) and on MNIST-1D (the
study's 40-100-50-20-10-5-10 network), three networks (seeds 0-2, ``ensemble_invariant=True``)
are trained for 20 epochs beside a copy whose initial parameters were multiplied by
(1 + 1e-7 z), z standard normal (:func:`ibtools.rounding_sensitivity.rounding_drift`). Printed and
written: the largest relative gap of the training loss, its epoch, the first epoch above 1e-4,
and the parameter and logit gaps after the last epoch. Recorded in
``experiments/training_rounding_sensitivity.md``; about 20 CPU seconds, one thread.

    python scripts/training_rounding_sensitivity.py [--epochs 20] [--eps 1e-7] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from ibtools.activations import PAPER_ACTIVATIONS
from ibtools.config import TrainConfig
from ibtools.rounding_sensitivity import rounding_drift
from ibtools.study import MNIST1D_HIDDEN, MNIST1D_TASK

TASKS = {"tishby": {}, MNIST1D_TASK: {"task": MNIST1D_TASK, "hidden": MNIST1D_HIDDEN}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--eps", type=float, default=1e-7)
    p.add_argument("--out", default=None, help="write the rows as JSON to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    print("| task | activation | largest loss gap | at epoch | first epoch > 1e-4 | parameter gap | logit gap |")
    print("|---|---|---|---|---|---|---|")
    for task, kwargs in TASKS.items():
        for activation in PAPER_ACTIVATIONS:
            config = TrainConfig(activation=activation, seeds=(0, 1, 2), ensemble_invariant=True, **kwargs)
            drift = rounding_drift(config, args.epochs, eps=args.eps, generator=torch.Generator().manual_seed(1))
            above = np.flatnonzero(drift.loss > 1e-4)
            row = {"task": task, "activation": activation, "loss_gap_max": float(drift.loss.max()),
                   "loss_gap_epoch": int(drift.loss.argmax()),
                   "first_epoch_over_1e-4": int(above[0]) if above.size else None,
                   "param_gap": drift.params, "logit_gap": drift.logits, "loss_gap": drift.loss.tolist()}
            rows.append(row)
            first = row["first_epoch_over_1e-4"]
            print(f"| {task} | {activation} | {row['loss_gap_max']:.2g} | {row['loss_gap_epoch']} | "
                  f"{'-' if first is None else first} | {drift.params:.2g} | {drift.logits:.2g} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"epochs": args.epochs, "eps": args.eps, "seeds": [0, 1, 2], "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

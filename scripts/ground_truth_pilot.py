"""Pilot of the ground-truth study (issue 11): quantized networks with exact I(X;T) beside EBAB,
and noise-injected tanh networks with the Monte Carlo mixture I(X;T).

Exploration only: prints markdown tables and writes a JSON summary (not a stored result).

    export PYTHONPATH=$PWD IBTOOLS_THREADS=1 OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1
    nice -n 5 python scripts/ground_truth_pilot.py quantized --out /tmp/gt_quantized.json
    nice -n 5 python scripts/ground_truth_pilot.py noise --out /tmp/gt_noise.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ibtools import settings
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.engine import set_threads
from ibtools.training import train


def _fmt(values) -> str:
    return " | ".join(f"{v:.2f}" for v in values)


def quantized(seeds=tuple(range(5)), epochs=2000, n_points=30):
    rows = []
    for activation in ("tanh", "relu"):
        for bits in (8, 4):
            cfg = TrainConfig(activation=activation, quantize_bits=bits, seeds=seeds, epochs=epochs,
                              n_log_points=n_points,
                              estimators=(EstimatorSpec("exact"), settings.EBAB))
            t0 = time.process_time()
            res = train(cfg, progress=False)
            cpu = time.process_time() - t0
            ex = res.mi["exact"][..., 0]  # (E, L, S)
            eb = res.mi[settings.EBAB.label][..., 0]
            mean = np.nanmean(ex, axis=2)  # (E, L)
            peak_epoch = np.nanargmax(mean, axis=0)
            per_seed_comp = np.nanmax(ex, axis=0) - ex[-1]  # (L, S): peak - final per network
            row = dict(
                activation=activation, bits=bits, cpu_s=cpu, epochs=[int(e) for e in res.epochs],
                exact_first=mean[0].tolist(), exact_peak=mean.max(0).tolist(),
                peak_epoch=[int(res.epochs[k]) for k in peak_epoch], exact_last=mean[-1].tolist(),
                compression_mean=per_seed_comp.mean(1).tolist(), compression_max=per_seed_comp.max(1).tolist(),
                ebab_minus_exact_mean=np.nanmean(eb - ex, axis=(0, 2)).tolist(),
                ebab_minus_exact_min=np.nanmin(eb - ex, axis=(0, 2)).tolist(),
                ebab_minus_exact_last=np.nanmean(eb[-1] - ex[-1], axis=1).tolist(),
                ebab_last=np.nanmean(eb[-1], axis=1).tolist(),
                exact_ity_last=np.nanmean(res.mi["exact"][-1, :, :, 1], axis=1).tolist(),
                test_acc_last=float(np.mean(res.history["test_acc"][-1])),
                diverged=len(res.diverged_seeds()),
            )
            rows.append(row)
            print(f"\n### {activation}, {bits} bits ({cpu:.0f} CPU s, test acc {row['test_acc_last']:.3f})", flush=True)
            print("| | " + " | ".join(f"L{i + 1}" for i in range(cfg.n_layers)) + " |")
            print("|---" * (cfg.n_layers + 1) + "|")
            for key in ("exact_first", "exact_peak", "peak_epoch", "exact_last", "compression_mean", "compression_max",
                        "ebab_last", "ebab_minus_exact_last", "ebab_minus_exact_mean", "ebab_minus_exact_min",
                        "exact_ity_last"):
                print(f"| {key} | {_fmt(row[key])} |", flush=True)
    return rows


def noise(seeds=(0, 1, 2), epochs=500, n_points=30, levels=(0.1, 0.3, 0.05, 0.01)):
    rows = []
    for sigma in levels:
        cfg = TrainConfig(activation="tanh", noise_std=sigma, seeds=seeds, epochs=epochs, n_log_points=n_points,
                          estimators=(EstimatorSpec.make("mixture", noise_std=sigma, n_points=2),
                                      settings.EBAB))
        t0 = time.process_time()
        res = train(cfg, progress=False)
        cpu = time.process_time() - t0
        mix = res.mi[cfg.estimators[0].label]
        first = int(np.flatnonzero(np.isfinite(mix[:, 0, 0, 0]))[0])
        row = dict(
            noise_std=sigma, cpu_s=cpu,
            test_acc_last=float(np.mean(res.history["test_acc"][-1])),
            train_acc_last=float(np.mean(res.history["train_acc"][-1])),
            mixture_xt_first=np.mean(mix[first, :, :, 0], axis=1).tolist(),
            mixture_xt_last=np.mean(mix[-1, :, :, 0], axis=1).tolist(),
            mixture_ty_last=np.mean(mix[-1, :, :, 1], axis=1).tolist(),
            ebab_last=np.mean(res.mi[settings.EBAB.label][-1, :, :, 0], axis=1).tolist(),
            diverged=len(res.diverged_seeds()),
        )
        rows.append(row)
        print(f"\n### tanh, noise_std {sigma} ({cpu:.0f} CPU s, train acc {row['train_acc_last']:.3f}, "
              f"test acc {row['test_acc_last']:.3f})", flush=True)
        for key in ("mixture_xt_first", "mixture_xt_last", "mixture_ty_last", "ebab_last"):
            print(f"| {key} | {_fmt(row[key])} |", flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["quantized", "noise"])
    p.add_argument("--out", default=None, help="JSON summary to write (default: none)")
    args = p.parse_args()
    set_threads(1)
    t0 = time.process_time()
    rows = quantized() if args.part == "quantized" else noise()
    print(f"\ntotal CPU {time.process_time() - t0:.0f} s", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()

"""Cost of quantized and noise-injected hidden layers (``TrainConfig.quantize_bits`` /
``noise_std``) against the plain engine, in one process, interleaved: process CPU seconds per
training epoch and per evaluation on all 4096 inputs, 50 networks, one thread.

    python benchmarks/bench_perturb.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import save  # noqa: E402

from ibtools.config import TrainConfig  # noqa: E402
from ibtools.trainer import EnsembleTrainer  # noqa: E402

VARIANTS = {"plain": {}, "quantize_bits=8": {"quantize_bits": 8}, "noise_std=0.1": {"noise_std": 0.1}}


def cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    networks, epochs, repeats = (10, 2, 2) if quick else (50, 5, 3)
    record = {"networks": networks, "epochs_per_repeat": epochs, "repeats": repeats,
              "load_average_before": os.getloadavg()[0], "results": {}}
    for activation in ("relu", "tanh"):
        trainers = {name: EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(networks)), **kw))
                    for name, kw in VARIANTS.items()}
        for tr in trainers.values():  # warm-up: buffers
            tr.train_epoch(), tr.evaluate(reuse_buffers=True)
        times = {name: {"train": [], "evaluate": []} for name in trainers}
        for _ in range(repeats):  # interleaved
            for name, tr in trainers.items():
                times[name]["train"].append(cpu(lambda: [tr.train_epoch() for _ in range(epochs)]) / epochs)
                times[name]["evaluate"].append(cpu(lambda: tr.evaluate(reuse_buffers=True)))
        res = {}
        for name, t in times.items():
            res[name] = {k: statistics.median(v) for k, v in t.items()}
            res[name].update({f"{k}_ratio": statistics.median(v) / statistics.median(times["plain"][k])
                              for k, v in t.items()})
        record["results"][activation] = res
        for name, r in res.items():
            print(f"{activation:5s} {name:16s} train {r['train'] * 1e3:7.1f} ms/epoch ({r['train_ratio']:.2f}x)  "
                  f"evaluate {r['evaluate'] * 1e3:7.1f} ms ({r['evaluate_ratio']:.2f}x)")
    record["load_average_after"] = os.getloadavg()[0]
    if not quick:
        save("perturb", record)
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 networks, fewer repeats; nothing saved")
    main(parser.parse_args().quick)

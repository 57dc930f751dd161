"""Training throughput of the ensemble engine against a plain PyTorch loop that trains one
network at a time (nn.Linear layers, torch.optim.Adam), in one process, interleaved.

Also: the cost of one recorded epoch (evaluation of all 4096 inputs + EBAB on every layer) next
to one training epoch, for 50 networks.

    python benchmarks/bench_training.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from common import save

from ibtools.config import TrainConfig
from ibtools.engine import Recorder
from ibtools.networks import MLP
from ibtools.trainer import EnsembleTrainer

EPOCHS = 10


def plain_loop(activation: str, networks: int) -> float:
    """Seconds per network-epoch of the plain loop (one network after another)."""
    tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=(0,)))
    t0 = time.perf_counter()
    for seed in range(networks):
        net = MLP((12, 10, 7, 5, 4, 3, 2), activation, seed=seed)
        opt = torch.optim.Adam(net.parameters(), lr=4e-4)
        for _ in range(EPOCHS):
            for a, b in tr.batch_bounds:
                opt.zero_grad()
                F.cross_entropy(net(tr.X_train[a:b]), tr.y_train[a:b]).backward()
                opt.step()
    return (time.perf_counter() - t0) / (EPOCHS * networks)


def ensemble(activation: str, networks: int) -> float:
    tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(networks))))
    tr.train_epoch()
    t0 = time.perf_counter()
    for _ in range(EPOCHS):
        tr.train_epoch()
    return (time.perf_counter() - t0) / (EPOCHS * networks)


def main():
    torch.set_num_threads(2)
    record = {"epochs_timed": EPOCHS, "throughput": {}}
    sizes = (1, 10, 50, 200, 1000)
    for activation in ("relu", "tanh"):
        rows = {s: [] for s in sizes}
        plain = []
        for _ in range(3):  # interleaved repeats: the machine's speed drifts
            plain.append(plain_loop(activation, 3))
            for s in sizes:
                rows[s].append(ensemble(activation, s))
        base = float(np.median(plain))
        record["throughput"][activation] = {
            "plain_ms_per_network_epoch": 1e3 * base,
            "ensemble": {str(s): {"ms_per_network_epoch": 1e3 * float(np.median(v)),
                                  "speedup": base / float(np.median(v))} for s, v in rows.items()},
        }
        print(f"{activation}: plain loop {1e3 * base:.1f} ms per network-epoch")
        for s, v in rows.items():
            m = float(np.median(v))
            print(f"  ensemble of {s:5d}: {1e3 * m:7.3f} ms per network-epoch, {base / m:6.1f}x the plain loop")
    # a recorded epoch vs a training epoch, 50 networks
    config = TrainConfig(activation="relu", seeds=tuple(range(50)))
    tr = EnsembleTrainer(config)
    for _ in range(20):
        tr.train_epoch()
    rec = Recorder(config, tr)
    t0 = time.perf_counter()
    for e in range(10):
        rec.record(e)
    record_s = (time.perf_counter() - t0) / 10
    t0 = time.perf_counter()
    for _ in range(10):
        tr.train_epoch()
    train_s = (time.perf_counter() - t0) / 10
    schedule = len(config.schedule())
    record["recording_50_networks"] = {
        "recorded_epoch_s": record_s, "training_epoch_s": train_s,
        "run_share_of_recording_8000_epochs": schedule * record_s / (schedule * record_s + config.epochs * train_s),
    }
    print(f"50 networks: a recorded epoch (forward on 4096 inputs + EBAB on 6 layers) {1e3 * record_s:.0f} ms, "
          f"a training epoch {1e3 * train_s:.0f} ms; over 8000 epochs with {schedule} recorded, recording is "
          f"{100 * record['recording_50_networks']['run_share_of_recording_8000_epochs']:.0f} % of the run")
    print("written", save("training", record))


if __name__ == "__main__":
    main()

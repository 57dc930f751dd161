"""Training throughput of the ensemble engine against (a) a plain PyTorch loop that trains one
network at a time (nn.Linear layers, torch.optim.Adam) and (b) the previous engine
(``legacy_trainer.py``, bit-identical numbers), all in one process, interleaved, one thread.

Times are **process CPU time** (``time.process_time``), not wall time: the machine is shared,
and CPU time is what one process spends whatever else runs. The load average is recorded next to
the numbers (a busy machine still slows CPU time through shared caches).

Also: the cost of one recorded epoch (evaluation of all 4096 inputs + EBAB on every layer) next
to one training epoch, for 50 networks, previous and current engine.

    python benchmarks/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))

from common import save  # noqa: E402
from legacy_trainer import EnsembleTrainer as LegacyTrainer  # noqa: E402
from legacy_trainer import Recorder as LegacyRecorder  # noqa: E402

from ibtools.activations import PAPER_ACTIVATIONS  # noqa: E402
from ibtools.config import TrainConfig  # noqa: E402
from ibtools.engine import Recorder  # noqa: E402
from ibtools.networks import MLP  # noqa: E402
from ibtools.trainer import EnsembleTrainer  # noqa: E402

EPOCHS = 3


def cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def plain_loop(activation: str, networks: int) -> float:
    """CPU seconds per network-epoch of the plain loop (one network after another)."""
    tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=(0,)))

    def run():
        for seed in range(networks):
            net = MLP((12, 10, 7, 5, 4, 3, 2), activation, seed=seed)
            opt = torch.optim.Adam(net.parameters(), lr=4e-4)
            for _ in range(EPOCHS):
                for a, b in tr.batch_bounds:
                    opt.zero_grad()
                    F.cross_entropy(net(tr.X_train[a:b]), tr.y_train[a:b]).backward()
                    opt.step()

    return cpu(run) / (EPOCHS * networks)


def engine(cls, activation: str, networks: int, **options) -> float:
    tr = cls(TrainConfig(activation=activation, seeds=tuple(range(networks)), **options))
    tr.train_epoch()  # warm-up (buffers)

    def run():
        for _ in range(EPOCHS):
            tr.train_epoch()

    return cpu(run) / (EPOCHS * networks)


def recording(repeats: int) -> dict:
    config = TrainConfig(activation="relu", seeds=tuple(range(50)))
    out = {}
    for name, tcls, rcls in (("previous", LegacyTrainer, LegacyRecorder), ("current", EnsembleTrainer, Recorder)):
        tr = tcls(config)
        for _ in range(5):
            tr.train_epoch()
        rec = rcls(config, tr)
        rec.record(0)
        record_s = min(cpu(lambda e=e: rec.record(e)) for e in range(1, 1 + repeats))
        eval_s = min(cpu(tr.evaluate) for _ in range(repeats))
        train_s = min(cpu(tr.train_epoch) for _ in range(repeats))
        out[name] = {"recorded_epoch_s": record_s, "evaluation_s": eval_s, "training_epoch_s": train_s}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    repeats = 2 if args.quick else 3
    load_before = os.getloadavg()
    record = {"epochs_timed": EPOCHS, "threads": 1, "clock": "process CPU time", "load_before": load_before}

    # all paper activations at 50 networks: plain loop, previous engine, current engine
    per_activation = {}
    for activation in PAPER_ACTIVATIONS:
        rows = {"plain": [], "previous": [], "current": []}
        for _ in range(repeats):  # interleaved: the machine's speed drifts
            rows["plain"].append(plain_loop(activation, 2))
            rows["previous"].append(engine(LegacyTrainer, activation, 50))
            rows["current"].append(engine(EnsembleTrainer, activation, 50))
        m = {k: float(np.min(v)) for k, v in rows.items()}
        per_activation[activation] = {
            "ms_per_network_epoch": {k: 1e3 * v for k, v in m.items()},
            "current_vs_plain": m["plain"] / m["current"], "current_vs_previous": m["previous"] / m["current"],
            "previous_vs_plain": m["plain"] / m["previous"],
        }
        print(f"{activation:18s} plain {1e3 * m['plain']:6.2f}  previous {1e3 * m['previous']:6.3f}  current "
              f"{1e3 * m['current']:6.3f} ms CPU per network-epoch: {m['plain'] / m['current']:5.1f}x plain, "
              f"{m['previous'] / m['current']:4.2f}x previous", flush=True)
    record["paper_activations_50_networks"] = per_activation

    # ensemble sizes, ReLU and tanh
    sizes = (1, 10, 50, 200) if args.quick else (1, 10, 50, 200, 1000)
    scaling = {}
    for activation in ("relu", "tanh"):
        rows = {s: {"previous": [], "current": [], "invariant": []} for s in sizes}
        for _ in range(repeats):
            for s in sizes:
                rows[s]["previous"].append(engine(LegacyTrainer, activation, s))
                rows[s]["current"].append(engine(EnsembleTrainer, activation, s))
                rows[s]["invariant"].append(engine(EnsembleTrainer, activation, s, ensemble_invariant=True))
        scaling[activation] = {str(s): {k: 1e3 * float(np.min(v)) for k, v in r.items()} for s, r in rows.items()}
        for s in sizes:
            r = scaling[activation][str(s)]
            print(f"{activation} x{s:5d}: previous {r['previous']:.3f}, current {r['current']:.3f}, "
                  f"ensemble_invariant {r['invariant']:.3f} ms CPU per network-epoch", flush=True)
    record["scaling_ms_per_network_epoch"] = scaling

    rec = recording(repeats)
    record["recording_50_networks_relu"] = rec
    for name, r in rec.items():
        print(f"{name} engine, 50 networks: recorded epoch (evaluation + EBAB on 6 layers) "
              f"{1e3 * r['recorded_epoch_s'] / 50:.2f} ms per network, evaluation alone "
              f"{1e3 * r['evaluation_s'] / 50:.2f} ms, training epoch {1e3 * r['training_epoch_s'] / 50:.2f} ms")
    record["load_after"] = os.getloadavg()
    print("load average before", load_before, "after", record["load_after"])
    print("written", save("training", record))


if __name__ == "__main__":
    main()

"""Training throughput of the fused numba kernel (``TrainConfig(backend="fused")``) against the
torch engine (the reference, ``backend="torch"``) and the plain one-network PyTorch loop of
``bench_training.py``, side by side in one process, one thread, interleaved.

Times are process CPU time (``time.process_time``) per network-epoch; the load average
(``uptime``) is recorded before and after. Also the kernel's compile time from a cold numba
cache and its load time from a warm one (each in a fresh process).

    NUMBA_NUM_THREADS=1 python benchmarks/bench_fused.py [--quick] [--epochs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

import bench_training  # noqa: E402
from common import save  # noqa: E402

from ibtools.activations import PAPER_ACTIVATIONS  # noqa: E402
from ibtools.config import TrainConfig  # noqa: E402
from ibtools.trainer import EnsembleTrainer  # noqa: E402

_COMPILE_SNIPPET = """
import time
t0, c0 = time.perf_counter(), time.process_time()
from ibtools.config import TrainConfig
from ibtools.trainer import EnsembleTrainer
tr = EnsembleTrainer(TrainConfig(activation="tanh", seeds=(0,), backend="fused"))
t1, c1 = time.perf_counter(), time.process_time()
tr.train_epoch()
print(time.perf_counter() - t1, time.process_time() - c1)
"""


def compile_times() -> dict:
    """Wall and CPU seconds of the first fused epoch in a fresh process: with an empty numba cache
    (compilation) and then with the cache it left (loading)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
        for name in ("cold_cache", "warm_cache"):
            res = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], env=env, capture_output=True,
                                 text=True, check=True)
            wall, cpu = map(float, res.stdout.split()[-2:])
            out[name] = {"wall_s": wall, "cpu_s": cpu}
    return out


def engine(backend: str, activation: str, networks: int, epochs: int) -> float:
    """CPU seconds per network-epoch (after one warm-up epoch)."""
    tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(networks)), backend=backend))
    tr.train_epoch()
    t0 = time.process_time()
    for _ in range(epochs):
        tr.train_epoch()
    return (time.process_time() - t0) / (epochs * networks)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="50 networks only, no compile timing")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement (default: 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bench_training.EPOCHS = args.epochs
    sizes = (50,) if args.quick else (50, 200, 1000)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    record = {"epochs_timed": args.epochs, "threads": 1, "clock": "process CPU time", "uptime_before": uptime_before}
    print(uptime_before, flush=True)
    if not args.quick:
        record["compile"] = compile_times()
        c = record["compile"]
        print(f"first fused epoch in a fresh process: cold cache {c['cold_cache']['wall_s']:.1f} s wall "
              f"({c['cold_cache']['cpu_s']:.1f} s CPU), warm cache {c['warm_cache']['wall_s']:.2f} s wall", flush=True)
    bench_training.plain_loop("tanh", 1)  # warm-up: the first step of a process costs ~1 s of CPU
    rows = {}
    for activation in PAPER_ACTIVATIONS:
        plain = bench_training.plain_loop(activation, 2)
        rows[activation] = {"plain_ms": 1e3 * plain}
        for s in sizes:
            fused = engine("fused", activation, s, args.epochs)
            ref = engine("torch", activation, s, args.epochs)
            rows[activation][str(s)] = {"fused_ms": 1e3 * fused, "torch_ms": 1e3 * ref,
                                        "fused_vs_torch": ref / fused, "fused_vs_plain": plain / fused}
            print(f"{activation:18s} x{s:5d}: fused {1e3 * fused:6.3f}  torch {1e3 * ref:6.3f}  plain "
                  f"{1e3 * plain:6.2f} ms CPU per network-epoch; fused {ref / fused:5.2f}x torch, "
                  f"{plain / fused:6.1f}x plain", flush=True)
    record["ms_per_network_epoch"] = rows
    record["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(record["uptime_after"])
    print("written", save("fused", record))


if __name__ == "__main__":
    main()

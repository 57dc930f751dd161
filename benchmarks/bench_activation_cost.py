"""What each activation's arithmetic costs inside the fused kernel, and what issue 12's "150x the
plain loop" leaves for it.

For every paper activation, side by side in one process (one thread, process CPU time, median of
interleaved repeats):

* ``kernel``: the fused kernel's training epoch at 50 networks (``bench_fused.kernel_time``);
* ``plain``: the plain one-network PyTorch loop (``bench_training.plain_loop``);
* ``arithmetic``: the activation and its derivative alone, with the kernel's own functions
  (``ibtools.fused._activate`` and ``_derivative``, four rows of eight lanes at a time) on as many
  rows as one epoch of the kernel applies them to (every hidden unit of every training sample, per
  group of 8 networks), on buffers that stay in the L1 cache, with nothing else to do. The same
  loops for the linear activation (the same loads and stores, no arithmetic) are subtracted, so the
  number is the activation's arithmetic at full throughput, the most favourable case for it.

From these: the time the 150x target allows (``plain / 150``), the budget it leaves for the
activation beyond what ReLU's kernel takes (``plain / 150 - kernel(ReLU)``), and how much of the
activation's standalone arithmetic the kernel would have to hide behind its matrix products to
meet it. ReLU's own arithmetic (a comparison and a select) is small; its kernel time stands for the
rest of the epoch.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_activation_cost.py [--repeats R] [--epochs N]

Writes ``activation_cost.json`` into ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from numba import njit  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

import bench_training  # noqa: E402
from bench_fused import kernel_time, uptime  # noqa: E402
from common import save  # noqa: E402

import ibtools.fused as fused  # noqa: E402
from ibtools._version import source_commit  # noqa: E402
from ibtools.activations import PAPER_ACTIVATIONS  # noqa: E402
from ibtools.config import TrainConfig  # noqa: E402
from ibtools.trainer import EnsembleTrainer  # noqa: E402

#: Rows per pass: 256 rows x 8 lanes x 4 bytes = 8 KiB per buffer, four buffers in L1.
_ROWS = 256
_TARGET = 150.0


@njit(cache=True, error_model="numpy")
def _passes(code, Z, A, g, g0, P, n_passes):
    """``n_passes`` times: f(z) into A (and, for the softplus family and Swish, f'(z) into Z, as in
    training), then g *= f'(z). g is restored from g0 first, so that repeated products do not
    drift into subnormal numbers (the copy is in the linear baseline too)."""
    rows = Z.shape[0] // fused.LANES
    for _ in range(n_passes):
        g[:] = g0
        fused._activate(code, Z, A, 0, rows, P, 0, False)
        fused._derivative(code, g, Z, A, 0, rows, P, 0)


def arithmetic_time(code: int, n_rows: int, rng: np.random.Generator) -> float:
    """CPU seconds of :func:`_passes` over ``n_rows`` rows (one group-epoch's hidden units)."""
    size = _ROWS * fused.LANES
    Z = fused._aligned_zeros(size)
    Z[:] = rng.normal(0.0, 1.5, size)
    A, g, g0 = fused._aligned_zeros(size), fused._aligned_zeros(size), fused._aligned_zeros(size)
    g0[:] = rng.normal(0.0, 1.0, size)
    P = fused._aligned_zeros(fused.LANES)
    P[:] = 0.25
    n_passes = max(1, round(n_rows / _ROWS))
    _passes(code, Z, A, g, g0, P, 1)  # compile / warm up
    t0 = time.process_time()
    _passes(code, Z, A, g, g0, P, n_passes)
    return time.process_time() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; medians reported (default: 5)")
    parser.add_argument("--epochs", type=int, default=3, help="timed kernel epochs per repeat (default: 3)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bench_training.EPOCHS = 2
    networks = 50
    groups = -(-networks // fused.LANES)
    record = {"networks": networks, "repeats": args.repeats, "kernel_epochs": args.epochs, "threads": 1,
              "clock": "process CPU time", "statistic": "median of interleaved repeats", "target_ratio": _TARGET,
              "revision": source_commit(), "uptime_before": uptime()}
    print(record["uptime_before"], flush=True)
    trainers = {a: EnsembleTrainer(TrainConfig(activation=a, seeds=tuple(range(networks)), backend="fused"))
                for a in PAPER_ACTIVATIONS}
    n_train = trainers["relu"].n_train
    hidden = sum(trainers["relu"].config.widths[1:-1])
    n_rows = hidden * n_train  # rows of 8 lanes per group and epoch
    record.update(training_samples=n_train, hidden_units=hidden, rows_per_group_epoch=n_rows)
    rng = np.random.default_rng(0)
    bench_training.plain_loop("tanh", 1)  # the first step of a process pays one-time costs
    names = ("linear",) + tuple(PAPER_ACTIVATIONS)
    for name in names:
        arithmetic_time(fused.SUPPORTED_ACTIVATIONS[name], _ROWS, rng)
    times = {a: {"kernel": [], "plain": [], "arithmetic": []} for a in PAPER_ACTIVATIONS}
    linear = []
    for rep in range(args.repeats):
        linear.append(arithmetic_time(fused.SUPPORTED_ACTIVATIONS["linear"], n_rows, rng) * groups / networks)
        for a in PAPER_ACTIVATIONS:
            times[a]["kernel"].append(kernel_time(fused, trainers[a], args.epochs))
            times[a]["plain"].append(bench_training.plain_loop(a, 2))
            times[a]["arithmetic"].append(arithmetic_time(fused.SUPPORTED_ACTIVATIONS[a], n_rows, rng) * groups / networks
                                          - linear[-1])
        print(f"repeat {rep + 1}/{args.repeats} done ({uptime()})", flush=True)
    record["uptime_after"] = uptime()
    ms = {a: {k: 1e3 * statistics.median(v) for k, v in t.items()} for a, t in times.items()}
    relu = ms["relu"]
    rows = {}
    print(f"{'activation':18s} {'plain':>7s} {'kernel':>7s} {'ratio':>6s} {'allowed':>8s} {'budget':>7s} "
          f"{'arith':>7s} {'kernel-ReLU':>11s}  (ms per network-epoch)")
    for a in PAPER_ACTIVATIONS:
        m = ms[a]
        allowed = m["plain"] / _TARGET
        budget = allowed - relu["kernel"]
        extra_arith = m["arithmetic"] - relu["arithmetic"]
        rows[a] = dict(m, ratio=m["plain"] / m["kernel"], allowed_ms=allowed, budget_beyond_relu_ms=budget,
                       arithmetic_beyond_relu_ms=extra_arith, kernel_beyond_relu_ms=m["kernel"] - relu["kernel"],
                       repeats_ms={k: [round(1e3 * t, 4) for t in v] for k, v in times[a].items()})
        print(f"{a:18s} {m['plain']:7.2f} {m['kernel']:7.3f} {m['plain'] / m['kernel']:6.1f} {allowed:8.3f} "
              f"{budget:7.3f} {extra_arith:7.3f} {m['kernel'] - relu['kernel']:11.3f}", flush=True)
    record["linear_arithmetic_baseline_ms"] = 1e3 * statistics.median(linear)
    record["ms_per_network_epoch"] = rows
    print(record["uptime_after"])
    print("written", save("activation_cost", record))
    return 0


if __name__ == "__main__":
    sys.exit(main())

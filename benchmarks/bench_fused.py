"""Training throughput of the fused numba kernel (``TrainConfig(backend="fused")``) against the
previous version of the kernel, the torch engine (the reference, ``backend="torch"``) and the
plain one-network PyTorch loop of ``bench_training.py``, side by side in one process, one
thread, interleaved, median of repeats.

Times are process CPU time (``time.process_time``) per network-epoch; the load average
(``uptime``) is recorded before, between the two parts and after. "Previous" is
``ibtools/fused.py`` as of the git revision ``--baseline`` (loaded from git into a temporary
module with its own numba cache); both kernels are timed by calling
:meth:`~ibtools.fused.FusedKernel.train_epoch` on the same trainer's data and parameters. Also
the kernel's compile time from a cold numba cache and its load time from a warm one (each in a
fresh process).

    NUMBA_NUM_THREADS=1 python benchmarks/bench_fused.py [--quick] [--epochs N] [--repeats R]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

import bench_training  # noqa: E402
from common import save  # noqa: E402

import ibtools.fused as fused_now  # noqa: E402
from ibtools.activations import PAPER_ACTIVATIONS  # noqa: E402
from ibtools.config import TrainConfig  # noqa: E402
from ibtools.trainer import EnsembleTrainer  # noqa: E402

#: The kernel before the vector-type rewrite (issue 12's "0.49-0.59 ms" version).
BASELINE = "eadfcd0"

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


def load_baseline(rev: str):
    """``ibtools/fused.py`` at git revision ``rev`` as a module (cached between runs in the temp
    directory, so its numba cache survives)."""
    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "show", f"{rev}:ibtools/fused.py"], cwd=root, capture_output=True, text=True,
                         check=True).stdout
    src = src.replace("from .validation import", "from ibtools.validation import")
    folder = Path(tempfile.gettempdir()) / f"ibtools_bench_fused_{rev}"
    folder.mkdir(exist_ok=True)
    path = folder / f"fused_{rev}.py"
    if not path.exists() or path.read_text() != src:
        path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"fused_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's cache finds the module again by name
    spec.loader.exec_module(module)
    return module


def kernel_time(module, trainer: EnsembleTrainer, epochs: int) -> float:
    """CPU seconds per network-epoch of ``module.FusedKernel`` on the trainer's data, from a copy of
    its initial parameters (after one warm-up epoch)."""
    cfg = trainer.config
    kernel = module.FusedKernel(cfg.widths, cfg.activation, trainer.model._layout, trainer.S)
    flat = trainer.model.flat.data.numpy().copy()
    m, v = np.zeros_like(flat), np.zeros_like(flat)

    def epoch(e):
        kernel.train_epoch(flat, m, v, trainer._fused_X, trainer._fused_y, trainer._fused_order,
                           e * len(trainer.batch_bounds), lr=cfg.lr, l2=cfg.l2, batch_size=cfg.batch_size)

    epoch(0)
    t0 = time.process_time()
    for e in range(epochs):
        epoch(e + 1)
    return (time.process_time() - t0) / (epochs * trainer.S)


def torch_time(trainer: EnsembleTrainer, epochs: int) -> float:
    """CPU seconds per network-epoch of the torch engine (after one warm-up epoch)."""
    trainer.train_epoch()
    t0 = time.process_time()
    for _ in range(epochs):
        trainer.train_epoch()
    return (time.process_time() - t0) / (epochs * trainer.S)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def measure(activation: str, networks: int, epochs: int, repeats: int, previous, with_plain: bool) -> dict:
    """Medians (ms per network-epoch) of interleaved repeats: fused now, fused previous, torch
    engine, and (``with_plain``) the plain loop."""
    fused_tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(networks)), backend="fused"))
    times = {"fused": [], "previous": [], "torch": [], "plain": []}
    for _ in range(repeats):
        times["fused"].append(kernel_time(fused_now, fused_tr, epochs))
        times["previous"].append(kernel_time(previous, fused_tr, epochs))
        torch_tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(networks))))
        times["torch"].append(torch_time(torch_tr, epochs))
        del torch_tr
        if with_plain:
            times["plain"].append(bench_training.plain_loop(activation, 2))
    row = {f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items() if v}
    row["repeats_ms"] = {k: [round(1e3 * t, 4) for t in v] for k, v in times.items() if v}
    row["fused_vs_previous"] = row["previous_ms"] / row["fused_ms"]
    row["fused_vs_torch"] = row["torch_ms"] / row["fused_ms"]
    if with_plain:
        row["fused_vs_plain"] = row["plain_ms"] / row["fused_ms"]
        row["previous_vs_plain"] = row["plain_ms"] / row["previous_ms"]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="50 networks only, no compile timing")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; medians reported (default: 3)")
    parser.add_argument("--baseline", default=BASELINE, help=f"git revision of the previous kernel (default: {BASELINE})")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bench_training.EPOCHS = args.epochs
    record = {"epochs_timed": args.epochs, "repeats": args.repeats, "statistic": "median of interleaved repeats",
              "threads": 1, "clock": "process CPU time", "baseline_revision": args.baseline,
              "uptime_before": uptime()}
    print(record["uptime_before"], flush=True)
    previous = load_baseline(args.baseline)
    if not args.quick:
        record["compile"] = compile_times()
        c = record["compile"]
        print(f"first fused epoch in a fresh process: cold cache {c['cold_cache']['wall_s']:.1f} s wall "
              f"({c['cold_cache']['cpu_s']:.1f} s CPU), warm cache {c['warm_cache']['wall_s']:.2f} s wall", flush=True)
    bench_training.plain_loop("tanh", 1)  # warm-up: the first step of a process costs ~1 s of CPU
    for act in ("relu",):  # warm-up (and compile) both kernels
        measure(act, 8, 1, 1, previous, False)
    rows = {}
    for activation in PAPER_ACTIVATIONS:
        r = measure(activation, 50, args.epochs, args.repeats, previous, True)
        rows[activation] = {"plain_ms": r.pop("plain_ms"), "50": r}
        print(f"{activation:18s} x50: fused {r['fused_ms']:6.3f}  previous {r['previous_ms']:6.3f}  torch "
              f"{r['torch_ms']:6.3f}  plain {rows[activation]['plain_ms']:6.2f} ms CPU per network-epoch; fused "
              f"{r['fused_vs_previous']:4.2f}x previous, {r['fused_vs_torch']:4.2f}x torch, "
              f"{r['fused_vs_plain']:5.1f}x plain", flush=True)
    record["uptime_middle"] = uptime()
    print(record["uptime_middle"], flush=True)
    if not args.quick:
        for activation in ("relu", "tanh"):
            for s in (200, 1000):
                r = measure(activation, s, args.epochs, args.repeats, previous, False)
                rows[activation][str(s)] = r
                print(f"{activation:18s} x{s:4d}: fused {r['fused_ms']:6.3f}  previous {r['previous_ms']:6.3f}  "
                      f"torch {r['torch_ms']:6.3f} ms; fused {r['fused_vs_previous']:4.2f}x previous, "
                      f"{r['fused_vs_torch']:4.2f}x torch", flush=True)
    record["ms_per_network_epoch"] = rows
    record["uptime_after"] = uptime()
    print(record["uptime_after"])
    print("written", save("fused", record))


if __name__ == "__main__":
    main()

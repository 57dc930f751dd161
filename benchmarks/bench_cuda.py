"""The CUDA path, measured: training throughput, recording cost, ensemble invariance, and one
full unit of the re-run on the GPU beside the same unit computed on the CPU.

Needs a machine where torch sees a GPU (this project's own VM has none; sessions that are lent one
run this there). Everything is measured in one process, side by side with the CPU engine on the
same machine (one torch thread, CPU time), so the ratios do not depend on which machine it was.
GPU times are **wall** times around ``torch.cuda.synchronize()`` (CPU time says nothing about a
GPU).

    python benchmarks/bench_cuda.py [--quick] [--out DIR] [--full-unit-limit SECONDS]

Writes ``cuda.json`` (into ``--out``, default ``benchmarks/results``) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402

from ibtools.activations import PAPER_ACTIVATIONS  # noqa: E402
from ibtools.config import EstimatorSpec, TrainConfig  # noqa: E402
from ibtools.engine import Recorder  # noqa: E402
from ibtools.trainer import EnsembleTrainer  # noqa: E402


#: What ``--parts`` can choose.
PARTS = ("training", "recording", "invariance", "full-unit", "mnist1d")


def _sync():
    torch.cuda.synchronize()


def gpu_per_net_epoch(activation: str, networks: int, epochs: int, invariant: bool = False, **task) -> float:
    """Wall seconds per network-epoch of the engine on the GPU (after two warm-up epochs).
    ``task`` may hold ``task=`` and ``hidden=`` (default: the 12-bit task's network)."""
    tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(networks)), device="cuda",
                                     ensemble_invariant=invariant, **task))
    tr.train_epoch(), tr.train_epoch()
    _sync()
    t0 = time.perf_counter()
    for _ in range(epochs):
        tr.train_epoch()
    _sync()
    return (time.perf_counter() - t0) / (epochs * networks)


def cpu_per_net_epoch(activation: str, networks: int, epochs: int, **task) -> float:
    """CPU seconds per network-epoch of the same engine on the CPU, one thread."""
    tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=tuple(range(networks)), **task))
    tr.train_epoch()
    t0 = time.process_time()
    for _ in range(epochs):
        tr.train_epoch()
    return (time.process_time() - t0) / (epochs * networks)


def plain_per_net_epoch(activation: str, networks: int = 3, epochs: int = 2) -> float:
    """CPU seconds per network-epoch of the plain loop of ``bench_training.py`` (one network at a
    time, nn.Linear + torch.optim.Adam), the baseline of every ratio in ``benchmarks/``."""
    from bench_training import plain_loop

    import bench_training

    bench_training.EPOCHS = epochs
    return plain_loop(activation, networks)


def recording_seconds(device: str, estimators, networks: int = 50, repeats: int = 3) -> float:
    """Seconds (wall on the GPU, CPU time on the CPU) of one recorded epoch: all 4096 inputs
    through every network and ``estimators`` on every layer."""
    config = TrainConfig(activation="tanh", seeds=tuple(range(networks)), estimators=tuple(estimators),
                         record_activations=(), device=device)
    tr = EnsembleTrainer(config)
    for _ in range(30):
        tr.train_epoch()
    rec = Recorder(config, tr)
    epoch = int(rec.epochs[0])
    clock = time.perf_counter if device == "cuda" else time.process_time
    times = []
    for k in range(repeats + 1):
        rec.recorded.clear()
        if device == "cuda":
            _sync()
        t0 = clock()
        rec.record(epoch)
        if device == "cuda":
            _sync()
        if k:  # the first is a warm-up (numba's cache, cuBLAS handles)
            times.append(clock() - t0)
    return float(np.median(times))


def invariance(activation: str, sizes=(1, 3, 50, 1000), epochs: int = 5) -> dict:
    """Seed 3 trained in ensembles of ``sizes`` networks on the GPU, ``ensemble_invariant`` on and
    off: are its parameters the same bits in every ensemble, and how far apart are they? Each size
    is compared with the second size (3 networks: a batched product over several networks)."""
    out = {}
    for invariant in (True, False):
        params = {}
        for n in sizes:
            others = [s for s in range(n + 1) if s != 3][: n - 1]
            seeds = tuple(others[:1] + [3] + others[1:])  # seed 3 second (first when alone)
            tr = EnsembleTrainer(TrainConfig(activation=activation, seeds=seeds, device="cuda",
                                             ensemble_invariant=invariant))
            k = seeds.index(3)
            for _ in range(epochs):
                tr.train_epoch()
            with torch.no_grad():
                params[n] = torch.cat([p[k].reshape(-1) for p in tr.model.weights + tr.model.biases + tr.model.slopes]).cpu()
        ref = params[sizes[1]]
        for n in sizes:
            if n != sizes[1]:
                out[f"invariant={invariant} n={n} vs n={sizes[1]}"] = {
                    "bit_identical": bool(torch.equal(params[n], ref)), "max_abs_diff": float((params[n] - ref).abs().max())}
    return out


def full_unit(limit_s: float, save_to: Path | None = None, study: str = "rerun") -> dict:
    """One stored unit computed again on the GPU, if ``probe_seconds`` expects it within
    ``limit_s``, and compared with the unit stored from the CPU when that is there. ``study``:
    ``"rerun"``, the re-run's tanh unit (50 networks x 8000 epochs, every estimator and measure
    of the re-run), or ``"mnist1d"``, the MNIST-1D study's ReLU unit (50 networks x 4000 epochs,
    EBAB, adaptive KDE and exact MI)."""
    from ibtools.result_cache import ResultCache
    from ibtools.results import load_run
    from ibtools.training import probe_seconds, train

    if study == "mnist1d":
        from ibtools.mnist1d_study import MNIST1D_RESULTS as stored_dir, mnist1d_units
        unit = next(u for u in mnist1d_units(parts=("activations",)) if u.activation == "relu")
    else:
        from ibtools.rerun import RERUN_RESULTS as stored_dir, rerun_units
        unit = next(u for u in rerun_units(parts=("activations-paper",)) if u.activation == "tanh")
    gpu = unit.replace(device="cuda")
    probe = probe_seconds(gpu)
    out = {"unit": ResultCache(stored_dir).name(unit), "probe_s": round(probe, 1)}
    if probe > limit_s:
        out["skipped"] = f"probe expects {probe:.0f} s, over the limit of {limit_s:.0f} s"
        return out
    t0 = time.perf_counter()
    run = train(gpu, progress=False)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    if save_to is not None:
        out["saved"] = str(run.save(save_to))
    stored = ResultCache(stored_dir).path(unit)
    if not stored.with_suffix(".npz").exists():
        return out
    cpu = load_run(stored, expected=unit)
    comparison = {}
    epochs = np.asarray(unit.evaluation_epochs())
    for label in cpu.mi:
        a, b = cpu.mi[label][..., 0], run.mi[label][..., 0]  # I(X;T): (E, L, S)
        rows = np.flatnonzero(np.isfinite(a).any(axis=(1, 2)))
        early = rows[epochs[rows] <= 100]
        late = rows[-1]
        comparison[label] = {
            "per_network_max_gap_epochs_le_100": float(np.nanmax(np.abs(a[early] - b[early]))) if early.size else None,
            "per_network_median_gap_epochs_le_100": float(np.nanmedian(np.abs(a[early] - b[early]))) if early.size else None,
            "per_network_median_gap_last_epoch": float(np.nanmedian(np.abs(a[late] - b[late]))),
            "last_epoch": int(epochs[late]),
            "mean_over_networks_cpu": [round(float(v), 3) for v in np.nanmean(a[late], axis=1)],
            "mean_over_networks_gpu": [round(float(v), 3) for v in np.nanmean(b[late], axis=1)],
        }
    out["vs_cpu"] = comparison
    out["test_acc_final_mean"] = {"cpu": float(np.nanmean(cpu.history["test_acc"][-1])),
                                  "gpu": float(np.nanmean(run.history["test_acc"][-1]))}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer sizes and epochs")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("results"))
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="what to measure")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="ensemble sizes to time on the GPU (default: 50 200 1000 5000 20000; --quick: 50 1000)")
    p.add_argument("--full-unit-limit", type=float, default=240.0,
                   help="run a full stored unit (the re-run's tanh unit; with the mnist1d part, also the MNIST-1D "
                        "study's ReLU unit) only if the probe expects at most this many seconds (0: skip)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_cuda: torch sees no CUDA device; nothing to measure", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    record = {"machine": machine(), "gpu": torch.cuda.get_device_name(0)}
    sizes = tuple(args.sizes) if args.sizes else (50, 1000) if args.quick else (50, 200, 1000, 5000, 20000)

    if "training" in args.parts:
        record.update(_training(sizes))
    if "recording" in args.parts:
        record["recording_s_per_epoch_50_networks"] = _recording()
        print("recording", record["recording_s_per_epoch_50_networks"], flush=True)
    if "invariance" in args.parts:
        record["invariance"] = {a: invariance(a) for a in (("softplus", "relu") if args.quick else PAPER_ACTIVATIONS)}
        print("invariance", json.dumps(record["invariance"]), flush=True)
    if "full-unit" in args.parts and args.full_unit_limit > 0:
        record["full_unit"] = full_unit(args.full_unit_limit, save_to=args.out / "full_unit_gpu")
        print("full unit", json.dumps(record["full_unit"]), flush=True)
    if "mnist1d" in args.parts:
        record["mnist1d"] = _mnist1d(sizes, args.full_unit_limit, args.out)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "cuda.json"
    path.write_text(json.dumps(record, indent=1))
    print("wrote", path)
    return 0


def _training(sizes) -> dict:
    plain_per_net_epoch("relu")  # warm-up: the first plain loop of a process pays one-time costs
    plain = {a: plain_per_net_epoch(a) for a in ("tanh", "relu")}
    training = {}
    for activation in PAPER_ACTIVATIONS:
        cpu50 = cpu_per_net_epoch(activation, 50, 3)
        row = {"cpu_engine_50_ms": cpu50 * 1e3}
        for n in sizes:
            row[f"gpu_{n}_ms"] = gpu_per_net_epoch(activation, n, 10 if n <= 1000 else 4) * 1e3
        if activation in plain:
            row["plain_loop_ms"] = plain[activation] * 1e3
        training[activation] = row
        print(activation, {k: round(v, 4) for k, v in row.items()}, flush=True)
    return {"training_ms_per_net_epoch": training,
            "invariant_gpu_50_ms": {a: gpu_per_net_epoch(a, 50, 10, invariant=True) * 1e3 for a in ("tanh", "relu")}}


def _mnist1d(sizes, full_unit_limit: float, out: Path) -> dict:
    """MNIST-1D (the study's 40-100-50-20-10-5-10 networks): training throughput of ReLU and
    tanh beside the CPU engine, then the study's ReLU unit on the GPU."""
    from ibtools.study import MNIST1D_HIDDEN, MNIST1D_TASK

    task = {"task": MNIST1D_TASK, "hidden": MNIST1D_HIDDEN}  # ensemble-invariant, as the study trains
    training = {}
    for activation in ("relu", "tanh"):
        row = {"cpu_engine_50_ms": cpu_per_net_epoch(activation, 50, 3, ensemble_invariant=True, **task) * 1e3}
        for n in sizes:
            row[f"gpu_{n}_ms"] = gpu_per_net_epoch(activation, n, 10 if n <= 1000 else 4, invariant=True,
                                                   **task) * 1e3
        training[activation] = row
        print("mnist1d", activation, {k: round(v, 4) for k, v in row.items()}, flush=True)
    result = {"training_ms_per_net_epoch": training}
    if full_unit_limit > 0:
        result["full_unit"] = full_unit(full_unit_limit, save_to=out / "mnist1d_unit_gpu", study="mnist1d")
        print("mnist1d full unit", json.dumps(result["full_unit"]), flush=True)
    return result


def _recording() -> dict:
    from ibtools.rerun import RERUN_ESTIMATORS

    ebab, akde = (EstimatorSpec("ebab"),), (EstimatorSpec("akde"),)
    return {"ebab": {"cpu": recording_seconds("cpu", ebab), "cuda": recording_seconds("cuda", ebab)},
            "akde": {"cpu": recording_seconds("cpu", akde, repeats=1), "cuda": recording_seconds("cuda", akde)},
            "rerun_all": {"cuda": recording_seconds("cuda", RERUN_ESTIMATORS, repeats=1)}}


if __name__ == "__main__":
    sys.exit(main())

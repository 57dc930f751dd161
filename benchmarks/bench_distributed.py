"""The same sweep in-process vs on a local Dask cluster of 2 worker processes (1 thread each).

    python benchmarks/bench_distributed.py
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from common import save

from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.distributed import DaskExecutor
from ibtools.sweep import SweepConfig, run_sweep

SWEEP = SweepConfig(TrainConfig(epochs=1000, estimators=(EstimatorSpec("ebab"),)),
                    activations=("tanh", "relu", "elu", "swish"), l2s=(0.0,), seeds=tuple(range(20)), seeds_per_unit=20)


def main():
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench_dask_"))
    try:
        t0 = time.perf_counter()
        a = run_sweep(SWEEP, work / "here", progress=False)
        here = time.perf_counter() - t0
        with DaskExecutor(n_workers=2, threads_per_worker=1) as ex:
            t0 = time.perf_counter()
            b = run_sweep(SWEEP, work / "dask", progress=False, executor=ex)
            dask = time.perf_counter() - t0
        same = a.table().equals(b.table())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {"units": len(SWEEP.units()), "networks": 80, "epochs": 1000, "in_process_s": here,
              "dask_2_workers_s": dask, "speedup": here / dask, "identical_results": same}
    print(f"{record['units']} units (80 networks x 1000 epochs, EBAB): in-process {here:.0f} s, "
          f"local Dask 2 workers {dask:.0f} s ({here / dask:.2f}x); identical results: {same}")
    print("written", save("distributed", record))


if __name__ == "__main__":
    main()

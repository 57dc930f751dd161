"""This CPU's packed fused multiply-add rate, the ceiling the fused kernel is measured against.

Independent chains of 8-lane float32 fused multiply-adds (``ibtools.fused``'s own ``F8`` vector
type and ``_fma``, so the same instructions as the kernel), nothing loaded or stored inside the
loop. With too few chains the rate is bound by the instruction's latency, not its throughput:
the script runs 4, 8 and 12 chains and reports each, then torch's float32 matrix product for
comparison. One thread, process CPU time.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_fma_peak.py

Writes ``fma_peak.json`` into ``benchmarks/results`` (with the CPU model LLVM reports).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).parent))

from common import machine, save  # noqa: E402

from ibtools.fused import _fma, _splat, _st  # noqa: E402

_f = np.float32


@njit
def _chains4(n, out):
    x, y = _splat(_f(1.0000001)), _splat(_f(0.9999999))
    c0 = _splat(_f(0.0))
    c1, c2, c3 = c0, c0, c0
    for _ in range(n):
        c0, c1, c2, c3 = _fma(x, c0, y), _fma(x, c1, y), _fma(x, c2, y), _fma(x, c3, y)
    _st(out, 0, (c0 + c1) + (c2 + c3))


@njit
def _chains8(n, out):
    x, y = _splat(_f(1.0000001)), _splat(_f(0.9999999))
    c0 = _splat(_f(0.0))
    c1, c2, c3, c4, c5, c6, c7 = c0, c0, c0, c0, c0, c0, c0
    for _ in range(n):
        c0, c1, c2, c3 = _fma(x, c0, y), _fma(x, c1, y), _fma(x, c2, y), _fma(x, c3, y)
        c4, c5, c6, c7 = _fma(x, c4, y), _fma(x, c5, y), _fma(x, c6, y), _fma(x, c7, y)
    _st(out, 0, ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)))


@njit
def _chains12(n, out):
    x, y = _splat(_f(1.0000001)), _splat(_f(0.9999999))
    c0 = _splat(_f(0.0))
    c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11 = c0, c0, c0, c0, c0, c0, c0, c0, c0, c0, c0
    for _ in range(n):
        c0, c1, c2, c3 = _fma(x, c0, y), _fma(x, c1, y), _fma(x, c2, y), _fma(x, c3, y)
        c4, c5, c6, c7 = _fma(x, c4, y), _fma(x, c5, y), _fma(x, c6, y), _fma(x, c7, y)
        c8, c9, c10, c11 = _fma(x, c8, y), _fma(x, c9, y), _fma(x, c10, y), _fma(x, c11, y)
    _st(out, 0, ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11)))


def rate(kernel, chains: int, n: int = 20_000_000, repeats: int = 3) -> float:
    """Packed (8-lane) fused multiply-adds per ns: the best of ``repeats``."""
    out = np.zeros(8, np.float32)
    kernel(1000, out)  # compile
    best = 0.0
    for _ in range(repeats):
        t0 = time.process_time()
        kernel(n, out)
        best = max(best, n * chains / (time.process_time() - t0) / 1e9)
    return best


def sgemm_gflops(n: int = 1024, reps: int = 20) -> float:
    """float32 GFLOP/s of torch's matrix product (MKL) on one thread: the best of 3."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n ** 3 * reps / (time.process_time() - t0) / 1e9)
    return best


def main() -> int:
    import llvmlite.binding as llvm

    import torch

    torch.set_num_threads(1)  # before machine() records it
    llvm.initialize_native_target()
    record = {"machine": machine(), "llvm_cpu": llvm.get_host_cpu_name(), "clock": "process CPU time, best of 3",
              "packed_fma_per_ns": {}}
    for chains, kernel in ((4, _chains4), (8, _chains8), (12, _chains12)):
        r = rate(kernel, chains)
        record["packed_fma_per_ns"][str(chains)] = r
        print(f"{chains:2d} chains: {r:.2f} packed FMAs per ns = {16 * r:.0f} GFLOP/s (float32)", flush=True)
    record["torch_sgemm_1024_gflops"] = sgemm_gflops()
    print(f"torch float32 matrix product (1024^3, one thread): {record['torch_sgemm_1024_gflops']:.0f} GFLOP/s")
    print("LLVM CPU:", record["llvm_cpu"], "| written", save("fma_peak", record))
    return 0


if __name__ == "__main__":
    sys.exit(main())

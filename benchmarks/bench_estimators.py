"""Estimator speed against plain baselines, in one process.

EBAB: ours vs the paper code's way (numpy.unique for the edges, numpy.digitize, then numpy.unique
over rows and per-label entropies). KDE: ours (float32 matrix products, symmetric blocks, merged
duplicate rows) vs scipy cdist + logsumexp in float64, on continuous activity and on ReLU-like
activity with many identical rows; the largest difference between the two is reported too.

    python benchmarks/bench_estimators.py
    python benchmarks/bench_estimators.py --ebab-only   # just the EBAB old-vs-new comparison

EBAB old vs new: the frozen previous EBAB (``benchmarks/legacy_estimators``) against the current
compiled one, on a recording's worth of layers (50 networks, widths 10-7-5-4-3-2, tanh and ReLU),
interleaved, in process CPU time; the bits are checked to be identical (==). (The functions
``old_digitize`` and ``old_sum_c_log_c`` below are the step before that, kept for reference.)
"""

from __future__ import annotations

import importlib
import os
import sys
import time

import numpy as np
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from common import save, timeit

from ibtools import estimators as E
from ibtools.estimators import _core as core
from ibtools.data import tishby_task


def baseline_ebab(a, y, n_bins=30):
    low = a.min()
    u = np.unique(a)
    u = u[u != low]
    edges = [low] + [u[int(k * len(u) / n_bins)] for k in range(n_bins)] + [u[-1]]
    binned = np.digitize(a, edges)
    _, inverse, counts = np.unique(binned, axis=0, return_inverse=True, return_counts=True)
    p = counts / counts.sum()
    h_t = -(p * np.log2(p)).sum()
    h_t_given_y = 0.0
    for c in np.unique(y):
        sub = binned[y == c]
        _, cc = np.unique(sub, axis=0, return_counts=True)
        q = cc / cc.sum()
        h_t_given_y += (y == c).mean() * -(q * np.log2(q)).sum()
    return h_t, h_t - h_t_given_y


def old_digitize(values, edges):
    """``ibtools.estimators.binning.digitize`` before the blocked int8 version (the baseline)."""
    edges = np.asarray(edges)
    if edges.ndim == 1:
        edges = np.broadcast_to(edges, (values.shape[0], edges.size))
    out = np.full(values.shape, -1, dtype=np.int16 if edges.shape[1] < 2**15 else np.int64)
    for k in range(edges.shape[1]):
        out += values >= edges[:, k : k + 1]
    return out


def old_sum_c_log_c(sorted_codes):
    """``ibtools.estimators._core._sum_c_log_c`` before the c*ln(c) lookup table (the baseline)."""
    S, N = sorted_codes.shape
    new = np.empty((S, N), dtype=bool)
    new[:, 0] = True
    np.not_equal(sorted_codes[:, 1:], sorted_codes[:, :-1], out=new[:, 1:])
    starts = np.flatnonzero(new.ravel())
    counts = np.diff(np.append(starts, S * N)).astype(np.float64)
    return np.bincount(starts // N, weights=counts * np.log(counts), minlength=S)


def ebab_old_vs_new(repeats: int = 7) -> dict:
    """CPU ms per network for EBAB on all layers of 50 networks: the frozen previous EBAB
    (``benchmarks/legacy_estimators``: numpy sort, blocked int8 digitize, row codes, int64 sort,
    bincount) against the current compiled one, interleaved, bits checked identical."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import legacy_estimators as legacy

    task = tishby_task()
    y = task.y
    rng = np.random.default_rng(1)
    out = {"load_before": os.getloadavg()[0]}
    for act in ("tanh", "relu"):
        layers = []
        for w in (10, 7, 5, 4, 3, 2):
            z = np.stack([task.X @ rng.normal(size=(12, w)) for _ in range(50)]).astype(np.float32)
            layers.append(np.tanh(z) if act == "tanh" else np.maximum(z - 0.5, 0.0))

        def run(fn):
            t0 = time.process_time()
            res = [fn(a, y) for a in layers]
            return time.process_time() - t0, res

        run(E.ebab)  # warm-up: numba compiles or loads its cache
        times = {"old": [], "new": []}
        for _ in range(repeats):
            for name, fn in (("old", legacy.ebab), ("new", E.ebab)):
                t, res = run(fn)
                times[name].append(t)
                if name == "old":
                    ref = res
                else:
                    assert all(np.array_equal(r[0], q[0]) and np.array_equal(r[1], q[1]) for r, q in zip(ref, res))
        old_ms = 1e3 * float(np.median(times["old"])) / 50
        new_ms = 1e3 * float(np.median(times["new"])) / 50
        out[act] = {"old_ms_per_network": old_ms, "new_ms_per_network": new_ms, "speedup": old_ms / new_ms,
                    "identical": True}
        print(f"EBAB, 6 {act} layers: old {old_ms:.2f} ms, new {new_ms:.2f} ms CPU per network ({old_ms / new_ms:.2f}x), bits identical")
    out["load_after"] = os.getloadavg()[0]
    print(f"load average {out['load_before']:.1f} before, {out['load_after']:.1f} after")
    return out


def baseline_kde(a, y, var):
    def info(h):
        d = cdist(h, h, "sqeuclidean")
        return -np.mean(logsumexp(-d / (2 * var), axis=1) - np.log(len(h)))

    i_xt = info(a)
    return i_xt / np.log(2), (i_xt - sum((y == c).mean() * info(a[y == c]) for c in np.unique(y))) / np.log(2)


def main():
    if "--ebab-only" in sys.argv:
        torch.set_num_threads(1)
        print("written", save("estimators_ebab", {"ebab old vs new": ebab_old_vs_new()}))
        return
    torch.set_num_threads(2)
    task = tishby_task()
    y = task.y
    rng = np.random.default_rng(0)
    continuous = np.tanh(task.X @ rng.normal(size=(12, 10)) * 0.5).astype(np.float32)
    relu = np.maximum(task.X @ rng.normal(size=(12, 10)) - 1.0, 0).astype(np.float32)
    record = {}
    for name, a in (("tanh 4096x10", continuous), ("relu 4096x10", relu)):
        ours = timeit(lambda a=a: E.ebab(a, y), repeats=20)
        base = timeit(lambda a=a: baseline_ebab(a, y), repeats=5)
        assert np.allclose(E.ebab(a, y, low=a.min()), baseline_ebab(a, y), atol=1e-9)
        record[f"ebab {name}"] = {"ours": ours, "baseline": base, "speedup_median": base["median_s"] / ours["median_s"]}
    stack = np.stack([np.tanh(task.X @ rng.normal(size=(12, 10)) * 0.5) for _ in range(50)]).astype(np.float32)
    batched = timeit(lambda: E.ebab(stack, y), repeats=5)
    record["ebab 50 networks x 4096x10 (one call)"] = {"ours": batched, "per_network_ms": 1e3 * batched["median_s"] / 50}
    for name, a in (("tanh 4096x10", continuous), ("relu 4096x10, duplicate rows", relu)):
        var = 0.01 * float(np.abs(a).max())
        ours = timeit(lambda a=a, var=var: E.kde(a, y, var), repeats=5)
        base = timeit(lambda a=a, var=var: baseline_kde(a.astype(np.float64), y, var), repeats=2)
        diff = np.abs(np.subtract(E.kde(a, y, var), baseline_kde(a.astype(np.float64), y, var))).max()
        distinct = len(np.unique(a, axis=0))
        record[f"kde {name}"] = {"ours": ours, "baseline": base, "speedup_median": base["median_s"] / ours["median_s"],
                                 "max_abs_difference_bits": float(diff), "distinct_rows": distinct}
    # adaptive KDE: the precision-safe way (float64 products where float32's worst-case error
    # bound exceeds 1e-4 nats) against the previous way (float32 products always), same process
    kde_module = importlib.import_module("ibtools.estimators.kde")  # the package exports the function kde

    safe_choice = kde_module._choose_method
    for name, a in (("tanh 4096x10", continuous), ("relu 4096x10, duplicate rows", relu)):
        ours = timeit(lambda a=a: E.akde(a, y), repeats=5)
        got = E.akde(a, y)
        kde_module._choose_method = lambda d, log_q: "float32" if log_q < 80 else safe_choice(d, log_q)
        try:
            old = timeit(lambda a=a: E.akde(a, y), repeats=5)
            before = E.akde(a, y)
        finally:
            kde_module._choose_method = safe_choice
        record[f"akde {name} (vs float32-only products)"] = {
            "ours": ours, "baseline": old, "speedup_median": old["median_s"] / ours["median_s"],
            "max_abs_difference_bits": float(np.abs(np.subtract(got, before)).max())}
    record["ebab old vs new (recording, 50 networks, 6 layers)"] = ebab_old_vs_new()
    path = save("estimators", record)
    for k, v in record.items():
        if "ours" not in v:
            continue
        line = f"{k:45s} ours {1e3 * v['ours']['median_s']:8.2f} ms"
        if "baseline" in v:
            line += f"   baseline {1e3 * v['baseline']['median_s']:9.1f} ms   speed-up {v['speedup_median']:6.1f}x"
        if "max_abs_difference_bits" in v:
            line += f"   max |diff| {v['max_abs_difference_bits']:.1e} bits"
        print(line)
    print("written", path)


if __name__ == "__main__":
    main()

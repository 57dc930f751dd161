"""Speed of the ground-truth estimators against plain baselines, in one process.

Monte Carlo mixture (``mixture_information``) against a plain NumPy/SciPy version of the same
estimator (the same stratified draws, ``m`` per input; exponents from ``scipy.spatial.distance.cdist``
in float64, ``scipy.special.logsumexp`` over all components, then over each class), on layers of
4096 inputs x 10 units (tanh and ReLU of random weights on the Tishby inputs), at two noise
levels. Both are given the same number of draws (2 per input, which reaches a standard error far
below 0.05 bits here); the estimates are compared within their standard errors.

Exact (``exact``) against EBAB (``ebab``), the cheapest estimator recorded online: one layer,
and a recording's worth (50 networks, widths 10-7-5-4-3-2) in one call per layer.

Process CPU time, one thread, median of interleaved repeats; load average noted before and after.

    python benchmarks/bench_mixture.py            # about 2 minutes on a quiet core
    python benchmarks/bench_mixture.py --quick    # fewer repeats
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import statistics
import sys
import time

import numpy as np
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from common import save

from ibtools import estimators as E
from ibtools.data import tishby_task

LN2 = np.log(2.0)


def baseline_mixture(means: np.ndarray, y: np.ndarray, sigma: float, m: int, seed: int):
    """Plain NumPy: I(X;T), I(T;Y) in bits with their standard errors, m stratified draws per input."""
    rng = np.random.default_rng(seed)
    mu = means.astype(np.float64)
    N, d = mu.shape
    classes = np.unique(y)
    fx = np.empty((m, N))
    fy = np.empty((m, N))
    for k in range(m):
        t = mu + sigma * rng.standard_normal((N, d))
        e = -cdist(t, mu, "sqeuclidean") / (2 * sigma**2)  # log N(t; mu_j) + const
        log_p = logsumexp(e, axis=1) - np.log(N)
        fx[k] = e[np.arange(N), np.arange(N)] - log_p  # log p(t|x) - log p(t)
        for c in classes:
            rows = y == c
            fy[k, rows] = logsumexp(e[rows][:, rows], axis=1) - np.log(rows.sum()) - log_p[rows]
    out = []
    for f in (fx, fy):
        out += [f.mean() / LN2, np.sqrt(f.var(0, ddof=1).mean() / (m * N)) / LN2]
    return out  # i_xt, se_xt, i_ty, se_ty


def cpu(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return times


def layers(task, rng, width=10, networks=1):
    z = np.stack([task.X @ rng.normal(size=(12, width)) for _ in range(networks)]).astype(np.float32)
    return {"tanh": np.tanh(z), "relu": np.maximum(z - 0.5, 0.0)}


def bench_mixture(task, repeats):
    y = task.y
    acts = layers(task, np.random.default_rng(0))
    record = {}
    for act, a in acts.items():
        a = a[0]
        for sigma in (0.1, 0.5):
            ours_fn = lambda: E.mixture_information(a, y, sigma, n_samples=2, seed=0)
            base_fn = lambda: baseline_mixture(a, y, sigma, 2, seed=0)
            t_ours, t_base = [], []
            for _ in range(repeats):  # interleaved
                t_base += cpu(base_fn, 1)
                t_ours += cpu(ours_fn, 1)
            r = ours_fn()
            b = base_fn()
            auto = E.mixture_information(a, y, sigma, seed=0)  # default: adaptive to 0.05 bits
            key = f"{act} 4096x10, sigma={sigma}"
            record[key] = {
                "ours_cpu_s": statistics.median(t_ours), "baseline_cpu_s": statistics.median(t_base),
                "speedup": statistics.median(t_base) / statistics.median(t_ours),
                "ours": {"i_xt": r.i_xt, "se_xt": r.se_xt, "i_ty": r.i_ty, "se_ty": r.se_ty},
                "baseline": {"i_xt": b[0], "se_xt": b[1], "i_ty": b[2], "se_ty": b[3]},
                "default_target_se": {"n_draws": auto.n_draws, "se_xt": auto.se_xt, "se_ty": auto.se_ty},
                "distinct_means": int(len(np.unique(a, axis=0))),
            }
            print(f"mixture {key}: ours {statistics.median(t_ours):.2f} s, NumPy {statistics.median(t_base):.2f} s CPU "
                  f"({record[key]['speedup']:.1f}x); I(X;T) {r.i_xt:.3f}±{r.se_xt:.3f} vs {b[0]:.3f}±{b[1]:.3f}, "
                  f"I(T;Y) {r.i_ty:.3f}±{r.se_ty:.3f} vs {b[2]:.3f}±{b[3]:.3f} bits; default: "
                  f"{auto.n_draws} draws/input, SE {max(auto.se_xt, auto.se_ty):.3f} bits", flush=True)
    return record


def bench_exact(task, repeats):
    y = task.y
    record = {}
    one = layers(task, np.random.default_rng(1))
    for act, a in one.items():
        a = a[0]
        t_ex, t_eb = [], []
        for _ in range(repeats):
            t_eb += cpu(lambda: [E.ebab(a, y) for _ in range(20)], 1)
            t_ex += cpu(lambda: [E.exact(a, y) for _ in range(20)], 1)
        ex, eb = statistics.median(t_ex) / 20 * 1e3, statistics.median(t_eb) / 20 * 1e3
        record[f"one {act} layer 4096x10"] = {"exact_ms": ex, "ebab_ms": eb, "ratio_exact_over_ebab": ex / eb}
        print(f"exact, one {act} layer 4096x10: {ex:.2f} ms, EBAB {eb:.2f} ms CPU (exact/EBAB {ex / eb:.2f})", flush=True)
    rng = np.random.default_rng(2)
    for act in ("tanh", "relu"):
        stack = [layers(task, rng, w, networks=50)[act] for w in (10, 7, 5, 4, 3, 2)]
        t_ex, t_eb = [], []
        for _ in range(max(1, repeats // 2)):
            t_eb += cpu(lambda: [E.ebab(a, y) for a in stack], 1)
            t_ex += cpu(lambda: [E.exact(a, y) for a in stack], 1)
        ex, eb = statistics.median(t_ex) / 50 * 1e3, statistics.median(t_eb) / 50 * 1e3
        record[f"50 networks, 6 {act} layers"] = {"exact_ms_per_network": ex, "ebab_ms_per_network": eb,
                                                   "ratio_exact_over_ebab": ex / eb}
        print(f"exact, 50 networks x 6 {act} layers: {ex:.2f} ms, EBAB {eb:.2f} ms CPU per network "
              f"(exact/EBAB {ex / eb:.2f})", flush=True)
    return record


def main():
    torch.set_num_threads(1)
    quick = "--quick" in sys.argv
    repeats = 3 if quick else 5
    task = tishby_task()
    record = {"load_before": os.getloadavg()[0], "threads": 1, "timer": "process CPU time"}
    record["exact"] = bench_exact(task, repeats)
    record["mixture"] = bench_mixture(task, repeats)
    record["load_after"] = os.getloadavg()[0]
    print(f"load average {record['load_before']:.1f} before, {record['load_after']:.1f} after")
    print("written", save("mixture", record))


if __name__ == "__main__":
    main()

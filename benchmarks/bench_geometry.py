"""Geometric measures (ibtools.geometry) against plain per-network baselines, in one process.

On a recording's worth of activity (50 networks, 4096 inputs, widths 10-7-5-4-3-2, tanh), each
measure of ``ibtools.geometry`` (vectorized over networks) against a plain loop over networks:
``numpy.unique(axis=0)`` for the distinct rows (after EBAB binning, per class, for the binned
count), and per-network numpy for the scatter ratio. Interleaved repeats, process CPU time,
medians; the values are checked to agree (distinct counts ==, the ratio to 1e-10). Also the
cost that recording measures adds to ``Recorder.record`` (EBAB only vs EBAB plus measures).

    python benchmarks/bench_geometry.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from common import save

from ibtools import geometry as G
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.data import tishby_task
from ibtools.engine import Recorder, set_threads
from ibtools.estimators.binning import ebab_bin_indices
from ibtools.trainer import EnsembleTrainer

WIDTHS = (10, 7, 5, 4, 3, 2)


def layers(seed: int = 0, S: int = 50):
    task = tishby_task()
    rng = np.random.default_rng(seed)
    x = task.X.astype(np.float32)
    out = []
    for d in WIDTHS:
        w = rng.normal(size=(S, x.shape[-1], d)).astype(np.float32)
        x = np.tanh(np.einsum("...nd,sdk->snk", x, w) if x.ndim == 2 else np.matmul(x, w))
        out.append(x)
    return out, task.y


def plain_distinct_rows(a, y):
    return np.array([len(np.unique(a[s], axis=0)) for s in range(a.shape[0])], float)


def plain_binned_per_class(a, y):
    codes = ebab_bin_indices(a.astype(np.float64), 30)
    return np.array([np.mean([len(np.unique(codes[s][y == c], axis=0)) for c in np.unique(y)])
                     for s in range(a.shape[0])])


def plain_within_between(a, y):
    out = []
    for s in range(a.shape[0]):
        x = a[s].astype(np.float64)
        mu = x.mean(0)
        tw = tb = 0.0
        for c in np.unique(y):
            xc = x[y == c]
            mc = xc.mean(0)
            tw += ((xc - mc) ** 2).sum()
            tb += len(xc) * ((mc - mu) ** 2).sum()
        out.append(tw / tb)
    return np.array(out)


def cpu_median(fns: dict, repeats: int = 5) -> dict:
    times = {k: [] for k in fns}
    for k, fn in fns.items():
        fn()  # warm-up
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.process_time()
            fn()
            times[k].append(time.process_time() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    set_threads(1)
    acts, y = layers()
    record = {"measures": {}}
    pairs = {
        "distinct_rows": (G.distinct_rows, plain_distinct_rows, "=="),
        "distinct_binned_rows_per_class": (G.distinct_binned_rows_per_class, plain_binned_per_class, "=="),
        "within_between": (G.within_between, plain_within_between, "1e-10"),
    }
    for name, (ours, plain, tol) in pairs.items():
        a_ours = np.concatenate([ours(a, y) for a in acts])
        a_plain = np.concatenate([plain(a, y) for a in acts])
        agree = np.array_equal(a_ours, a_plain) if tol == "==" else np.allclose(a_ours, a_plain, rtol=1e-10)
        t = cpu_median({"ours": lambda: [ours(a, y) for a in acts], "plain": lambda: [plain(a, y) for a in acts]})
        record["measures"][name] = {"ours_s": t["ours"], "plain_s": t["plain"], "ratio": t["plain"] / t["ours"],
                                    "agree": bool(agree), "tolerance": tol}
        print(f"{name:32s} ours {t['ours'] * 1000:7.1f} ms  plain {t['plain'] * 1000:7.1f} ms  "
              f"x{t['plain'] / t['ours']:.1f}  agree ({tol}): {agree}   [6 layers x 50 networks, CPU]")
    for name in ("nc1", "spread", "effective_rank"):
        f = G.MEASURES[name].function
        t = cpu_median({"ours": lambda: [f(a, y) for a in acts]})
        record["measures"][name] = {"ours_s": t["ours"]}
        print(f"{name:32s} ours {t['ours'] * 1000:7.1f} ms   [6 layers x 50 networks, CPU]")

    base = TrainConfig(seeds=tuple(range(50)), epochs=10, activation="tanh", estimators=(EstimatorSpec("ebab"),))
    cfgs = {"ebab": base, "ebab+2": base.replace(measures=("within_between", "distinct_rows")),
            "ebab+all": base.replace(measures=G.measure_names())}
    recs = {k: Recorder(c, EnsembleTrainer(c)) for k, c in cfgs.items()}
    for r in recs.values():
        r.trainer.train_epoch()

    def once(r):
        r.recorded.clear()
        with torch.no_grad():
            r.record(0)

    t = cpu_median({k: (lambda r=r: once(r)) for k, r in recs.items()})
    record["record_epoch_s"] = t
    for k, v in t.items():
        print(f"Recorder.record, {k:9s} {v:.3f} s CPU per recorded epoch (50 networks, 6 layers)")
    print(save("geometry", record))


if __name__ == "__main__":
    main()

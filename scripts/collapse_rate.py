"""Failure rate of ReLU networks at the paper code's L2 strength (λ = 0.015), pooled over the
stored study's 50 networks (seeds 0-49, results/paper) and the extra networks of
results/collapse (seeds 50 and up, trained with ``ensemble_invariant``), with the failure criteria
of :mod:`ibtools.failures` and a Wilson 95 % interval.

Usage: ``python scripts/collapse_rate.py`` (prints one table; reads stored results only).
The extra units were made with::

    python -m ibtools sweep --activations relu --l2 0.015 --seeds 50-199 --seeds-per-unit 50 \\
        --estimators ebab:n_bins=30 --n-log-points 30 --ensemble-invariant --cache results/collapse
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ibtools.failures import classify_runs, failure_counts
from ibtools.results import load_run
from ibtools.settings import EBAB
from ibtools.study import PAPER_RESULTS

ROOT = Path(__file__).resolve().parents[1]
EXTRA = ROOT / "results" / "collapse"


def main() -> None:
    stored = [load_run(p.with_suffix("")) for p in sorted(PAPER_RESULTS.glob("relu_l2-0p015_s0-49x50_*.npz"))]
    extra = [load_run(p.with_suffix("")) for p in sorted(EXTRA.glob("relu_l2-0p015_*.npz"))]
    parts = {"stored study (seeds 0-49)": stored, "extra (seeds 50+)": extra, "pooled": stored + extra}
    rows = []
    for name, runs in parts.items():
        if not runs:
            continue
        counts = failure_counts(classify_runs(runs, estimator=EBAB.label))
        counts.insert(0, "networks from", name)
        rows.append(counts)
    table = pd.concat(rows, ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()

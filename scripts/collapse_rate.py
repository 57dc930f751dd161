"""Failure rate of ReLU networks at the paper code's L2 strength (λ = 0.015), pooled over the
stored study's 50 networks (seeds 0-49, results/paper) and the extra networks of
results/collapse (seeds 50 and up, trained with ``ensemble_invariant``), with the failure criteria
of :mod:`ibtools.failures` and a Wilson 95 % interval. Chapter 6 shows the same table.

Usage: ``python scripts/collapse_rate.py`` (prints one table; reads stored results only).
The extra units were made with::

    python -m ibtools sweep --activations relu --l2 0.015 --seeds 50-199 --seeds-per-unit 50 \\
        --estimators ebab:n_bins=30 --n-log-points 30 --ensemble-invariant --cache results/collapse
"""

from __future__ import annotations

import pandas as pd

from ibtools.failures import pooled_failure_rate
from ibtools.results import load_run
from ibtools.settings import EBAB
from ibtools.study import PAPER_RESULTS, extra_failure_runs


def main() -> None:
    stored = [load_run(p.with_suffix("")) for p in sorted(PAPER_RESULTS.glob("relu_l2-0p015_s0-49x50_*.npz"))]
    extra = extra_failure_runs("relu", 0.015)
    table = pooled_failure_rate({"stored study (seeds 0-49)": stored, "extra (seeds 50+)": extra},
                                estimator=EBAB.label)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()

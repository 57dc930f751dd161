"""Failure rates pooled over groups of networks (ibtools.failures.pooled_failure_rate) and the
stored extra networks at λ = 0.015 (results/collapse)."""

from __future__ import annotations

import numpy as np
import pytest

from ibtools.analysis import wilson_interval
from ibtools.failures import classify_runs, pooled_failure_rate, rate_text
from ibtools.results import load_run
from ibtools.study import COLLAPSE_RESULTS, PAPER_RESULTS, extra_failure_runs, pooled_reference_failures

from ibtools.settings import EBAB  # noqa: E402

LABEL = EBAB.label


@pytest.fixture(scope="module")
def groups():
    stored = [load_run(p.with_suffix("")) for p in sorted(PAPER_RESULTS.glob("relu_l2-0p015_s0-49x50_*.npz"))]
    extra = extra_failure_runs("relu", 0.015)
    assert stored and len(extra) == 3
    return stored, extra


def test_pooled_row_adds_the_groups_and_has_a_wilson_interval(groups):
    stored, extra = groups
    table = pooled_failure_rate({"stored": stored, "extra": extra}, estimator=LABEL)
    assert list(table.group) == ["stored", "extra", "pooled"]
    pooled = table.iloc[-1]
    assert pooled.networks == table.networks.iloc[0] + table.networks.iloc[1] == 200
    assert pooled.failed == table.failed.iloc[0] + table.failed.iloc[1]
    lo, hi = wilson_interval(int(pooled.failed), int(pooled.networks))
    assert (pooled.rate_low, pooled.rate_high) == pytest.approx((lo, hi))
    # each group alone equals classifying it alone
    alone = classify_runs(extra, LABEL)
    assert table.failed.iloc[1] == int(alone.failed.sum())
    # the issue asked for an interval narrower than ±5 percentage points
    assert (pooled.rate_high - pooled.rate_low) / 2 < 0.05
    assert rate_text(pooled).startswith(f"{int(pooled.failed)} of 200 (")


def test_a_network_in_two_groups_is_an_error(groups):
    stored, _ = groups
    with pytest.raises(ValueError, match="more than one group"):
        pooled_failure_rate({"a": stored, "b": stored}, estimator=LABEL)
    with pytest.raises(ValueError, match="at least one group"):
        pooled_failure_rate({"a": []})


def test_extra_runs_match_their_condition_only(groups):
    _, extra = groups
    assert all(r.config.activation == "relu" and np.isclose(r.config.l2, 0.015) for r in extra)
    assert extra_failure_runs("tanh", 0.0) == []
    assert extra_failure_runs("relu", 0.05) == []
    assert pooled_reference_failures([], "relu", 0.015) is None
    assert COLLAPSE_RESULTS.is_dir()

"""Versioned claim rules, failure criteria, Wilson intervals, Holm's correction, the noise floor
and equal-epoch scoring, on synthetic data whose answer is known."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ibtools import claims
from ibtools.analysis import (_compression_scores_loop, common_epochs, compression_scores, exact_information_changes, mean_curve_shape, holm, noise_null,
                              restrict_epochs, wilson_interval)
from ibtools.claims import NOT, PARTLY, REPRODUCED, RULES, rule
from ibtools.failures import classify_network, drop_failed, failure_counts


# ----------------------------------------------------------------------------------------------
# statistics


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert np.allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    out = holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1]) and np.allclose(out[[0, 2]], [0.02, 0.02])  # NaN does not count
    with pytest.raises(ValueError, match="lie in"):
        holm([1.5])


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 50)
    assert lo == 0 and hi == pytest.approx(0.0713, abs=1e-4)
    lo, hi = wilson_interval(4, 50)
    assert (lo, hi) == (pytest.approx(0.0315, abs=1e-4), pytest.approx(0.1884, abs=1e-4))
    lo, hi = wilson_interval(25, 50)
    assert lo < 0.5 < hi and lo == pytest.approx(1 - hi)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(3, 2)


# ----------------------------------------------------------------------------------------------
# rule versions


def test_every_rule_is_versioned_and_its_text_uses_its_thresholds():
    for key, versions in RULES.items():
        assert [r.version for r in versions] == sorted({r.version for r in versions})
        assert claims.CURRENT[key] in [r.version for r in versions]
        for r in versions:
            text = r.text()
            assert "{" not in text, (key, r.version)
            for name, value in r.params:
                if isinstance(value, float) and name in ("alpha", "min_bits", "min_gap"):
                    assert f"{value:g}" in text, (key, name)


def test_r6b_versions_disagree_where_only_deep_layers_converge():
    m = {"rho_all": 0.7, "ratio_all": 1.2, "rho_deep": -0.9, "ratio_deep": 0.2}
    v1, _ = rule("R6b", 1)(m)
    v2, parts = rule("R6b", 2)(m)
    assert v1 == NOT and v2 == PARTLY
    assert [ok for _, ok in parts] == [False, True]
    assert rule("R6b", 2).data_seen and not rule("R6b", 1).data_seen
    assert rule("R6b").version == 1  # the post-hoc version does not decide


def test_r7_parts_and_versions():
    # the last layer correlates, and so do hidden layers (uncorrected); after Holm only the last
    m = {"last_ok_raw": True, "hidden_raw": [4], "last_ok_holm": True, "hidden_holm": []}
    v1, p1 = rule("R7", 1)(m)
    v2, p2 = rule("R7", 2)(m)
    assert v1 == PARTLY and [ok for _, ok in p1] == [True, False]
    assert v2 == REPRODUCED
    # nothing correlates: version 1 said "partly" (the "only" part holds), version 2 says no
    none = {"last_ok_raw": False, "hidden_raw": [], "last_ok_holm": False, "hidden_holm": []}
    assert rule("R7", 1)(none)[0] == PARTLY and rule("R7", 2)(none)[0] == NOT


def test_r2_v2_counts_activations():
    base = {"nonsat_ci": 1, "nonsat_n": 7, "kw_p": 1e-5}
    assert rule("R2", 1)(base | {"nonsat_k": 1})[0] == REPRODUCED  # one of seven suffices under v1
    verdict, parts = rule("R2", 2)(base | {"nonsat_k": 1})
    assert verdict == PARTLY and "1 of 7" in parts[0][0]
    assert rule("R2", 2)(base | {"nonsat_k": 4})[0] == REPRODUCED


def test_threshold_change_is_a_new_version_not_an_edit():
    r = rule("R4", 1)
    with pytest.raises(Exception):
        r.params = (("high", 0.1),)  # frozen


# ----------------------------------------------------------------------------------------------
# synthetic information-plane tables


def _table(curves, epochs, estimator="ebab", activation="relu", l2=0.0):
    """Tidy table from ``{(seed, layer): (i_xt array, i_ty array)}``."""
    rows = []
    for (seed, layer), (xt, ty) in curves.items():
        for e, x, y in zip(epochs, xt, ty):
            rows.append((activation, l2, seed, int(e), layer, f"h{layer}", estimator, x, y, False))
    return pd.DataFrame(rows, columns=["activation", "l2", "seed", "epoch", "layer", "layer_name", "estimator",
                                       "i_xt", "i_ty", "diverged"])


def test_noise_floor_separates_noise_from_compression():
    rng = np.random.default_rng(1)
    epochs = np.unique(np.round(np.logspace(0, np.log10(8000), 120)).astype(int)) - 1
    n = epochs.size
    ty = np.minimum(1.0, 0.2 + epochs / 50)  # fitting ends by epoch 40, compression (layer 2) after 500
    curves = {}
    for seed in range(30):
        flat = 6.0 + 0.05 * rng.standard_normal(n)                      # no compression, jitter only
        drop = 6.0 - 2.0 * (epochs > 500) + 0.05 * rng.standard_normal(n)  # 2 bits lost late
        curves[(seed, 1)] = (flat, ty)
        curves[(seed, 2)] = (drop, ty)
        curves[(seed, 3)] = (np.full(n, 3.0), ty)  # softmax stand-in
    s = compression_scores(_table(curves, epochs), "ebab")
    flat, drop = s[s.layer == 1], s[s.layer == 2]
    assert (flat.absolute > 0).all()                       # peak - final is positive on pure noise ...
    assert abs(flat.excess.mean()) < 3 * flat.excess.std() / np.sqrt(len(flat))  # ... but not beyond the floor
    assert flat.noise.mean() == pytest.approx(0.05, rel=0.3)  # the jitter is recovered
    assert drop.excess.mean() == pytest.approx(2.0, abs=0.1)
    cells = claims.layer_tests(s)
    assert cells.set_index("layer").loc[2, "compresses"] and not cells.set_index("layer").loc[1, "compresses"]


def test_noise_null_scales_and_is_reproducible():
    e = np.arange(50)
    assert noise_null(e) == noise_null(e.copy())
    mean, q95 = noise_null(e)
    assert 0 < mean < q95


def test_vectorized_scores_match_the_loop():
    rng = np.random.default_rng(2)
    epochs = np.arange(40)
    curves = {(s, l): (rng.normal(5, 1, 40), np.sort(rng.uniform(0, 1, 40))) for s in range(3) for l in (1, 2, 3)}
    t = _table(curves, epochs)
    a, b = compression_scores(t, "ebab"), _compression_scores_loop(t, "ebab")
    pd.testing.assert_frame_equal(a, b, check_dtype=False, atol=1e-12)


def test_equal_epoch_scoring():
    full = np.arange(0, 100)
    sparse = np.array([0, 3, 10, 50, 99, 120])
    t = pd.concat([_table({(0, 1): (np.linspace(5, 4, full.size), np.ones(full.size))}, full, "a"),
                   _table({(0, 1): (np.linspace(5, 4, sparse.size), np.ones(sparse.size))}, sparse, "b")])
    common = common_epochs(t, ["a", "b"])
    assert common.tolist() == [0, 3, 10, 50, 99]
    r = restrict_epochs(t, common)
    assert set(r[r.estimator == "a"].epoch) == set(common)
    with pytest.raises(ValueError, match="no epochs"):
        restrict_epochs(t, [])


# ----------------------------------------------------------------------------------------------
# failures


def test_failure_criteria_on_synthetic_networks():
    majority = 0.563
    healthy = np.array([12, 11, 9, 7, 5, 1.0])
    assert classify_network(healthy, healthy, 0.98, majority) == "ok"
    dead_start = healthy.copy()
    dead_start[4] = 0.0
    dead_end = healthy.copy()
    dead_end[4:] = 0.0
    assert classify_network(dead_start, dead_end, majority, majority) == "dead_at_init"
    assert classify_network(dead_start, healthy, 0.97, majority) == "recovered"
    assert classify_network(healthy, dead_end, 0.9, majority) == "collapsed"        # constant layer at the end
    assert classify_network(healthy, healthy, majority + 0.001, majority) == "collapsed"  # majority-class predictor
    assert classify_network(healthy, healthy, 0.98, majority, diverged=True) == "diverged"
    assert classify_network(healthy, healthy, np.nan, majority) == "diverged"
    with pytest.raises(ValueError, match="same length"):
        classify_network(healthy, healthy[:3], 0.9, majority)


def test_failure_counts_and_dropping():
    status = pd.DataFrame({"activation": ["relu"] * 4, "l2": [0.05] * 4, "seed": range(4),
                           "status": ["ok", "collapsed", "recovered", "ok"]})
    status["failed"] = status.status.isin(["collapsed", "dead_at_init", "diverged"])
    fc = failure_counts(status).iloc[0]
    assert (fc.networks, fc.failed, fc.recovered) == (4, 1, 1)
    assert (fc.rate_low, fc.rate_high) == wilson_interval(1, 4)
    table = pd.DataFrame({"activation": ["relu"] * 4, "l2": [0.05] * 4, "seed": range(4), "x": range(4)})
    assert drop_failed(table, status).seed.tolist() == [0, 2, 3]


def test_one_sided_t_matches_scipy():
    v = np.array([0.1, 0.3, -0.05, 0.2, 0.4])
    from ibtools.analysis import one_sided_t
    m, p, n = one_sided_t(v)
    assert n == 5 and m == pytest.approx(v.mean())
    assert p == pytest.approx(stats.ttest_1samp(v, 0, alternative="greater").pvalue)


def test_stored_study_failures():
    """The stored study's failed networks, by the documented criteria (skipped without it)."""
    from ibtools.failures import classify_runs
    from ibtools.study import PAPER_RESULTS, activation_sweep, l2_sweep
    from ibtools.sweep import ResultCache

    cache = ResultCache(PAPER_RESULTS)
    runs = [cache.load(u) for sweep in (activation_sweep(), l2_sweep()) for u in sweep.units()]
    if any(r is None for r in runs):
        pytest.skip("stored study not present")
    status = classify_runs(runs)
    assert len(status) == 650  # ReLU without L2 is in both sweeps and counted once
    failed = status[status.failed]
    assert sorted(zip(failed.activation, failed.l2, failed.seed)) == sorted(
        [("relu", 0.0, 18), ("softplus", 0.0, 10), ("relu", 0.005, 10), ("relu", 0.015, 10)]
        + [("relu", 0.05, s) for s in (2, 4, 10, 17)])
    assert (failed.final_test_acc < 0.2).all()  # all predict the majority class of the training set


# nested schedules: tests/test_schedules.py


def test_thresholds_are_the_rules_parameters():
    """The named thresholds that chapters quote are the ones the rules decide with."""
    from ibtools import claims

    assert claims.rule("R1", 1).p["min_gap"] == claims.GLOBAL_RANGE_GAP_BITS
    assert claims.rule("R3", 1).p["strong"] == claims.STRONG_COMPRESSION_BITS
    assert claims.rule("R2", 2).p["min_bits"] == claims.rule("R5a", 2).p["min_bits"] == claims.MIN_EXCESS_BITS
    assert (claims.rule("R4", 1).p["high"], claims.rule("R4", 1).p["low"]) == (claims.SPREAD_BITS, claims.SPREAD_PARTLY_BITS)
    assert f"> {claims.STRONG_COMPRESSION_BITS:g} bit" in claims.rule("R3", 1).text()


def test_claims_table_links_carry_chapter_titles(tmp_path):
    """The summary's claims table links each claim to its chapter by the chapter's title, not its file name."""
    import json

    from ibtools.chapters import chapter_title

    assert chapter_title("05_activations") == "Activation functions"  # the book next to the package
    assert chapter_title("02_estimators.ipynb") == "Estimating information"
    with pytest.raises(ValueError, match="no chapter 99_missing.ipynb"):
        chapter_title("99_missing")
    (tmp_path / "untitled.ipynb").write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["no heading"]}]}))
    with pytest.raises(ValueError, match="has no title"):
        chapter_title("untitled", tmp_path)
    claim = claims.ClaimResult(key="R2", claim="c", measured="m", verdict=REPRODUCED, rule="r", version=1)
    table = claims.claims_markdown([claim], links={"R2": (chapter_title("05_activations"), "05_activations")})
    assert "[Activation functions](05_activations)" in table and "[05_activations]" not in table
    assert "[05_activations](05_activations)" in claims.claims_markdown([claim], links={"R2": "05_activations"})


# ----------------------------------------------------------------------------------------------
# Which rule version decides, per study


def test_the_rerun_is_judged_by_the_rules_adopted_before_its_data():
    from ibtools.claims import CURRENT, current_versions

    assert current_versions("paper") == CURRENT
    assert current_versions("rerun") == {**{k: 1 for k in CURRENT}, "R2": 2, "R5a": 2, "R6b": 2, "R7": 2}
    with pytest.raises(ValueError, match="unknown study 'papers'"):
        current_versions("papers")


def test_rerun_data_from_is_no_later_than_the_first_stored_rerun_unit():
    import json
    from pathlib import Path

    from ibtools.claims import RERUN_DATA_FROM, RULES, _time, current_versions

    created = [json.loads(p.read_text())["meta"]["created"]
               for p in (Path(__file__).resolve().parents[1] / "results" / "rerun").glob("*.json")]
    assert created, "results/rerun holds no unit"
    first = min(_time(c) for c in created)
    assert _time(RERUN_DATA_FROM) <= first
    for key, version in current_versions("rerun").items():  # every deciding rule predates every unit
        assert _time(next(r for r in RULES[key] if r.version == version).adopted_at) < first


def test_the_mnist1d_study_is_judged_by_the_rules_adopted_before_its_first_unit():
    """The MNIST-1D verdicts' rule versions were fixed before any unit of that study existed:
    every deciding version is older than MNIST1D_DATA_FROM (the study's start), and every stored
    MNIST-1D unit was created after the commit that made that choice (MNIST1D_VERSIONS_COMMITTED)."""
    import json
    from pathlib import Path

    from ibtools.claims import (MNIST1D_DATA_FROM, MNIST1D_VERSIONS_COMMITTED, RULES, _time, current_versions,
                                written_after_data)

    versions = current_versions("mnist1d")
    assert versions == {**{k: 1 for k in RULES}, "R2": 2, "R5a": 2, "R6b": 2, "R7": 2}
    start = _time(MNIST1D_DATA_FROM)
    for key, version in versions.items():
        r = next(r for r in RULES[key] if r.version == version)
        assert _time(r.adopted_at) < start and not written_after_data(r, "mnist1d")
    created = [json.loads(p.read_text())["meta"]["created"]
               for p in (Path(__file__).resolve().parents[1] / "results" / "mnist1d").glob("*.json")]
    assert created, "results/mnist1d holds no unit"
    assert _time(MNIST1D_VERSIONS_COMMITTED) > start
    assert all(_time(c) > _time(MNIST1D_VERSIONS_COMMITTED) for c in created)


def test_for_study_takes_the_deciding_version_from_by_version():
    from ibtools.claims import ClaimResult, for_study, rule, versions_markdown

    by = {1: ("reproduced", (("old part", True),)), 2: ("not reproduced", (("new part", False),))}
    c = ClaimResult("R2", "claim", "measured", "reproduced", rule("R2").text(), 1, by[1][1], by, {})
    (paper,), (rerun,) = for_study([c], "paper"), for_study([c], "rerun")
    assert (paper.verdict, paper.version) == ("reproduced", 1)
    assert (rerun.verdict, rerun.version, rerun.parts) == ("not reproduced", 2, (("new part", False),))
    assert rerun.rule == rule("R2", 2).text()
    lines = versions_markdown([rerun], study="rerun").splitlines()[2:]
    assert lines[1].startswith("| R2 | v2 (current) |") and "| no | **not reproduced** |" in lines[1]
    assert "| yes |" in versions_markdown([paper]).splitlines()[3]  # v2 is post hoc for the stored study


def test_mean_curve_shape_reads_landmarks_of_the_averaged_curves():
    epochs = np.array([0, 10, 50, 100, 200, 1000, 4000, 7999])
    ty = np.array([0.1, 0.2, 0.4, 0.6, 0.9, 0.99, 1.0, 1.0])  # reaches 95 % of 1.0 at epoch 1000
    curves = {}
    for seed, shift in ((0, -0.5), (1, +0.5)):  # two networks, averaging to the curves below
        curves[(seed, 1)] = (np.array([8.0, 7.5, 7.0, 7.2, 8.0, 9.0, 8.5, 8.4]) + shift, ty)
        curves[(seed, 2)] = (np.array([3.0, 3.0, 3.0, 3.0, 2.5, 2.0, 2.0, 2.0]) + shift, ty)
    shape = mean_curve_shape(_table(curves, epochs), "ebab", early=100)
    one, two = shape.loc[1], shape.loc[2]
    assert one.start == pytest.approx(8.0) and one.early_dip == pytest.approx(1.0)   # 8.0 - min(7.5, 7.0, 7.2)
    assert one.peak == pytest.approx(9.0) and one.final == pytest.approx(8.4)
    assert one.late_drop == pytest.approx(0.6) and one.gain == pytest.approx(0.4)
    assert one.fit_epoch == 1000
    assert two.early_dip == 0.0 and two.late_drop == pytest.approx(0.5) and two.gain == pytest.approx(-1.0)
    other = _table(curves, epochs, activation="tanh")
    with pytest.raises(ValueError, match=r"one \(activation, l2\) condition"):
        mean_curve_shape(pd.concat([_table(curves, epochs), other]), "ebab")


def test_exact_information_changes_counts_networks_whose_rows_merge():
    epochs = np.array([0, 10, 100])
    curves = {}
    for seed in range(4):
        merged = seed == 0  # only seed 0's layer 2 merges inputs, late
        curves[(seed, 1)] = (np.full(3, 12.0), np.zeros(3))
        curves[(seed, 2)] = (np.array([12.0, 12.0, 9.5 if merged else 12.0]), np.zeros(3))
    ex = exact_information_changes(_table(curves, epochs, estimator="exact"), "exact").set_index("layer")
    assert ex.loc[1, "changed"] == 0.0 and ex.loc[1, "lowest"] == 12.0 and ex.loc[1, "networks"] == 4
    assert ex.loc[2, "changed"] == pytest.approx(0.25) and ex.loc[2, "lowest"] == 9.5
    assert ex.loc[2, "final"] == pytest.approx((9.5 + 3 * 12.0) / 4)
    with pytest.raises(ValueError, match="no rows for estimator"):
        exact_information_changes(_table(curves, epochs, estimator="exact"), "ebab")

"""The quantized-networks chapter's module (ibtools.quantized_study), at tiny scale: reading and
computing units, estimator errors against the exact MI (EBAB never reads high), the agreement of
compression scores (an estimator agrees perfectly with itself), the verdict columns, and clear
errors for bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ibtools import quantized_study as Q
from ibtools.clustering_verdicts import within_condition_rho, within_condition_rho_ci
from ibtools.ground_truth_study import quantized_base
from ibtools.rerun import EXACT
from ibtools.settings import EBAB
from ibtools.sweep import SweepConfig, stored_units

ACTS = ("tanh", "relu", "elu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Q.quantized_data(bits=(8, 4), activations=ACTS, epochs=20, seeds=range(4), estimators=(EXACT, EBAB),
                                compute_missing=True, scratch_dir=tmp_path_factory.mktemp("q"), progress=False)


def test_data_has_every_unit_with_its_bits(data):
    assert data.bits == (8, 4) and data.missing.empty
    assert set(data.runs) == {(b, a) for b in (8, 4) for a in ACTS}
    assert set(data.table["bits"]) == {8, 4} and set(data.history["bits"]) == {8, 4}
    assert len(data.status) == 2 * len(ACTS) * 4
    assert data.layer_names[-1] == "softmax" and data.hidden_layers == (1, 2, 3, 4, 5)


def test_errors_are_estimate_minus_exact_and_ebab_never_reads_high(data):
    err = Q.estimator_errors(data.table, [EBAB.label])
    assert (err["largest"] <= Q.ERROR_TOL_BITS).all()  # binning merges rows, never splits them
    assert (err["most_negative"] <= err["mean"] + 1e-12).all() and (err["mean"] <= err["largest"] + 1e-12).all()
    # one group by hand
    t = data.table
    pick = (t.bits == 8) & (t.activation == "relu") & (t.layer == 4)
    e = t[pick & (t.estimator == EBAB.label)].set_index(["seed", "epoch"]).i_xt
    x = t[pick & (t.estimator == EXACT.label)].set_index(["seed", "epoch"]).i_xt
    row = err[(err.bits == 8) & (err.activation == "relu") & (err.layer == 4)].iloc[0]
    assert row["mean"] == pytest.approx((e - x).mean(), abs=1e-12)
    last = e.index.get_level_values("epoch").max()
    assert row["final"] == pytest.approx((e - x).xs(last, level="epoch").mean(), abs=1e-12)
    assert row["networks"] == 4 and row["points"] == len(e)
    # the exact value against itself: zero error everywhere
    self_err = Q.estimator_errors(data.table, [EXACT.label], by=("bits", "layer"))
    assert (self_err["equal_share"] == 1).all() and (self_err["mean"] == 0).all()
    pooled = Q.estimator_errors(data.table, [EBAB.label], by=("bits", "layer"))
    assert set(pooled.columns) >= {"bits", "layer", "estimator", "final", "equal_share"} and len(pooled) == 12


def test_a_layer_quantized_to_4_bits_is_read_exactly_by_30_bins(data):
    err = Q.estimator_errors(data.table, [EBAB.label], by=("bits", "layer"))
    hidden = err[(err.bits == 4) & (err.layer < 6)]
    assert (hidden["equal_share"] == 1).all()  # 16 levels per unit fit into 30 equal-mass bins


def test_agreement_of_the_exact_value_with_itself_is_one_where_defined(data):
    agree = Q.compression_agreement(data.table, [EXACT.label, EBAB.label], n_boot=100)
    mine = agree[agree.estimator == EXACT.label]
    defined = mine[np.isfinite(mine.rho)]
    assert len(defined) and np.allclose(defined.rho, 1.0)
    assert (mine.loc[~np.isfinite(mine.rho), "ref_changed"] <= 4).all()
    ours = agree[agree.estimator == EBAB.label]
    ok = np.isfinite(ours.rho)
    assert ((ours.low[ok] <= ours.rho[ok] + 1e-12) & (ours.rho[ok] <= ours.high[ok] + 1e-12)).all()
    again = Q.compression_agreement(data.table, [EXACT.label, EBAB.label], n_boot=100)
    pd.testing.assert_frame_equal(agree, again)  # seeded: reproducible


def test_verdict_columns_and_the_deciding_one(data):
    claims = Q.quantized_claims(data, [EBAB.label])
    assert list(claims) == ["exact, 8 bits", "exact, 4 bits", "exact, 8 bits, without failed", f"{EBAB.label}, 8 bits"]
    assert Q.RULE_COLUMN in claims
    frame = Q.quantized_verdicts(claims)
    assert list(frame.columns) == list(claims) and "R4" in frame.index
    with pytest.raises(ValueError, match="decided at 2 bits"):
        Q.quantized_claims(data, rule_bits=2)


def test_rho_ci_matches_spearman_for_one_group():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    r = within_condition_rho_ci(x, y, np.zeros(40), n_boot=300, rng=1)
    assert r["rho"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert r["low"] <= r["rho"] <= r["high"] and r["defined_share"] == 1 and r["n"] == 40
    g = np.repeat([0, 1], 20)
    assert within_condition_rho_ci(x, y, g, n_boot=50)["rho"] == pytest.approx(within_condition_rho(x, y, g))
    const = within_condition_rho_ci(x, np.ones(40), np.zeros(40), n_boot=50)
    assert np.isnan(const["rho"]) and np.isnan(const["low"]) and const["defined_share"] == 0
    with pytest.raises(ValueError, match="level"):
        within_condition_rho_ci(x, y, g, level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        within_condition_rho_ci(x, y, g, n_boot=0)


def test_bad_input_is_a_clear_error(tmp_path, data):
    with pytest.raises(ValueError, match="unknown activation"):
        Q.quantized_data(activations=("sigmoidal",), results_dir=tmp_path)
    with pytest.raises(ValueError, match="must include 'exact'"):
        Q.quantized_data(estimators=(EBAB,), results_dir=tmp_path)
    with pytest.raises(ValueError, match="bits"):
        Q.quantized_data(bits=(0,), results_dir=tmp_path)
    with pytest.raises(ValueError, match="none of the 2 quantized units"):
        Q.quantized_data(bits=(8,), activations=("tanh", "relu"), results_dir=tmp_path)
    with pytest.raises(ValueError, match="no values of estimator"):
        Q.estimator_errors(data.table, ["kde(noise=1)"])
    with pytest.raises(ValueError, match="quantity"):
        Q.estimator_errors(data.table, [EBAB.label], quantity="h")
    with pytest.raises(ValueError, match="cannot group by"):
        Q.estimator_errors(data.table, [EBAB.label], by=("epoch",))


def test_stored_units_lists_names_and_presence(tmp_path):
    sweep = SweepConfig(quantized_base(8, epochs=5), activations=("tanh",), seeds=(0, 1), seeds_per_unit=50)
    ok, names = stored_units(sweep, tmp_path)
    assert not ok and names.startswith("tanh_")

"""Verdicts under each ground truth (ibtools.ground_truth_verdicts), at tiny scale: the claims'
own rules (ibtools.claims) applied to quantized networks with exact MI and to noisy networks with
the Monte Carlo mixture, and "not testable" where the networks cannot decide a claim."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ibtools import ground_truth_study as gt
from ibtools import ground_truth_verdicts as gv
from ibtools.claims import activation_claims, initialization_claims
from ibtools.config import EstimatorSpec
from ibtools.engine import train
from ibtools.settings import EBAB
from ibtools.sweep import SweepConfig, SweepResult

pytestmark = pytest.mark.slow  # trains 13 small ensembles (about a minute of CPU)

MIX = EstimatorSpec.make("mixture", noise_std=0.1, n_points=4)


@pytest.fixture(scope="module")
def quantized():
    base = gt.quantized_base(4, epochs=30, estimators=(gt.EXACT, EBAB))
    sweep = SweepConfig(base, activations=("tanh", "relu", "elu", "softplus", "centered_softplus"), seeds=(0, 1, 2),
                        seeds_per_unit=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = SweepResult([train(u, progress=False) for u in sweep.units()])
    return res.table(), res.history_table()


@pytest.fixture(scope="module")
def noisy():
    cfg = gt.noisy_base(0.1, epochs=30).replace(estimators=(MIX, EBAB), seeds=(0, 1, 2))
    res = SweepResult([train(cfg, progress=False)])
    return res.table(), res.history_table()


def test_quantized_verdicts_are_the_claims_rules_on_exact_mi(quantized):
    table, history = quantized
    claims = {c.key: c for c in gv.ground_truth_claims(table, history, "exact")}
    assert set(claims) == {"R2", "R3", "R4", "R5a", "R5b", "R5c", "R7"}
    # the same functions as the main study, on the exact values: identical verdicts and numbers
    exact = table[table["estimator"] == "exact"]
    for c in activation_claims(exact, "exact") + initialization_claims(exact[exact["activation"] == "relu"], "exact"):
        assert claims[c.key].verdict == c.verdict and claims[c.key].measured == c.measured
    frame = gv.ground_truth_verdicts({"exact": list(claims.values()),
                                      "EBAB": gv.ground_truth_claims(table, history, EBAB.label)})
    assert list(frame.index) == list(gv.CLAIM_KEYS) and list(frame.columns) == ["exact", "EBAB"]
    for key in ("R1", "R6a", "R6b", "R6c"):
        assert (frame.loc[key] == gv.NOT_TESTABLE).all()
    allowed = {"reproduced", "partly reproduced", "not reproduced", gv.NOT_TESTABLE}
    assert set(np.ravel(frame.to_numpy())) <= allowed


def test_noisy_verdicts_skip_what_one_activation_and_no_output_value_cannot_decide(noisy):
    table, history = noisy
    mix = table[table["estimator"] == MIX.label]
    hidden = int(table["layer"].max()) - 1
    assert mix["i_xt"].notna().any()
    assert mix[mix["layer"] == hidden + 1]["i_xt"].isna().all()  # no value for the softmax output
    claims = gv.ground_truth_claims(table, history, MIX.label)
    assert [c.key for c in claims] == ["R3", "R4"]  # one activation: no R2/R5; no output: no R7
    r4 = claims[1]
    assert len(r4.numbers["per_layer"]) == hidden  # every hidden layer judged, the last one included
    # the table of the mixture alone needs the output layer's index
    only = table[table["estimator"] == MIX.label]
    again = gv.ground_truth_claims(only, history, MIX.label, output_layer=hidden + 1)
    assert [c.verdict for c in again] == [c.verdict for c in claims]
    # EBAB on the same (noisy) activity has an output value, so R7 is judged for it
    assert "R7" in {c.key for c in gv.ground_truth_claims(table, history, EBAB.label)}
    frame = gv.ground_truth_verdicts({"mixture": claims})
    assert frame.loc["R7", "mixture"] == gv.NOT_TESTABLE and frame.loc["R2", "mixture"] == gv.NOT_TESTABLE


def test_unknown_estimator_is_an_error(noisy):
    table, history = noisy
    with pytest.raises(ValueError, match="no values of estimator 'akde'"):
        gv.ground_truth_claims(table, history, "akde")

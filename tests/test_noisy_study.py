"""The noisy-networks chapter's module (ibtools.noisy_study), at tiny scale: roles instead of
labels, the Monte Carlo value between the Kolchinsky-Tracey bounds, stored values recomputed
exactly with their standard errors (below the 0.05-bit target), the verdict columns, and clear
errors for bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ibtools import noisy_study as N
from ibtools import quantized_study as Q
from ibtools.config import EstimatorSpec
from ibtools.estimators.mixture import TARGET_SE
from ibtools.settings import AKDE, EBAB


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("ignore")
        mp.setattr(N, "NOISY_SEEDS_PER_UNIT", 1)  # units of one network, as the study stores units of 10
        return N.noisy_data((0.1, 0.3), epochs=6, seeds=range(2), sensitivity_seeds=range(2), deep_draws=(),
                            compute_missing=True, scratch_dir=tmp_path_factory.mktemp("n"), progress=False)


def test_roles_replace_labels_whatever_the_noise(data):
    assert data.noise_stds == (0.1, 0.3) and data.missing.empty
    assert [len(data.runs[s].runs) for s in data.noise_stds] == [2, 2]  # read from two units each
    assert set(data.table.estimator) == {"mixture", "lower", "upper", "ebab", "akde"}
    mix = data.table[data.table.estimator == "mixture"]
    assert mix[mix.layer == 6].i_xt.isna().all()  # the softmax output has no noise of its own
    assert mix[mix.layer < 6].i_xt.notna().any()
    assert N.role_of(EstimatorSpec.make("mixture", noise_std=0.3, draws=4)) == "mixture K=4"
    assert N.role_of(EBAB) == "ebab" and N.role_of(AKDE) == "akde"
    assert N.role_of(EstimatorSpec.make("exact")) is None


def test_monte_carlo_value_lies_between_the_bounds(data):
    check = N.bracket_check(data.table)
    assert len(check) == 2 * 5 and (check.points > 0).all()
    assert (check.inside == 1).all()  # every network-epoch within 3 SE of the bracket
    assert (check.gap >= 0).all()
    strict = N.bracket_check(data.table, tol=0)
    assert (strict.strictly_inside == strict.inside).all()
    with pytest.raises(ValueError, match="tol"):
        N.bracket_check(data.table, tol=-1)
    with pytest.raises(ValueError, match="no 'lower' values"):
        N.bracket_check(data.table[data.table.estimator != "lower"])


def test_stored_values_are_recomputed_exactly_with_small_standard_errors(data):
    se = N.mixture_standard_errors(data, 0.1, [1], 5)
    assert list(se.layer) == [1, 2, 3, 4, 5]
    assert se.same.all()
    assert (se.se_xt <= TARGET_SE).all() and (se.se_xt > 0).all()
    assert np.allclose(se.i_xt, se.stored_i_xt, atol=1e-5)
    with pytest.raises(ValueError, match="not recorded at epoch 99; recorded at \\[0, "):
        N.mixture_standard_errors(data, 0.1, [1], 99)
    with pytest.raises(ValueError, match="seeds \\[7\\]"):
        N.mixture_standard_errors(data, 0.1, [7], 5)
    with pytest.raises(ValueError, match="was not read"):
        N.mixture_standard_errors(data, 0.05, [0], 5)


def test_estimators_compared_with_the_mixture(data):
    err = Q.estimator_errors(data.table, ["ebab", "akde"], reference="mixture", condition="noise_std",
                             by=("noise_std", "layer"))
    assert set(err.noise_std) == {0.1, 0.3} and set(err.layer) == {1, 2, 3, 4, 5}  # no mixture for the output
    agree = Q.compression_agreement(data.table, ["ebab"], reference="mixture", condition="noise_std", n_boot=20)
    assert set(agree.noise_std) == {0.1, 0.3}
    with pytest.raises(ValueError, match="no column 'bits'"):
        Q.estimator_errors(data.table, ["ebab"], reference="mixture")


def test_verdict_columns(data):
    claims = N.noisy_claims(data)
    assert list(claims) == [N.RULE_COLUMN, f"{N.RULE_COLUMN}, without failed", "mixture, σ = 0.3", "ebab, σ = 0.1",
                            "akde, σ = 0.1"]
    assert [c.key for c in claims[N.RULE_COLUMN]] == ["R3", "R4"]  # one activation, no noisy output
    frame = N.noisy_verdicts(claims)
    assert frame.loc["R7", N.RULE_COLUMN] == "not testable" and frame.loc["R2", N.RULE_COLUMN] == "not testable"


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="noise levels must be among"):
        N.noisy_data((0.2,), results_dir=tmp_path)
    with pytest.raises(ValueError, match="none of the 1 noisy units"):
        N.noisy_data((0.1,), results_dir=tmp_path)
    with pytest.raises(ValueError, match="deep_draws"):
        N.noisy_data((0.1,), deep_draws=(1,), results_dir=tmp_path)

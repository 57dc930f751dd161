"""The summary chapter's ground-truth columns (ibtools.ground_truth_summary): verdicts by each
study's own rule when the deciding units exist, "not stored" in every row when they do not (never
a verdict from part of the networks), and clear errors for bad input."""

from __future__ import annotations

import warnings

import pytest

from ibtools import ground_truth_summary as S
from ibtools import noisy_study as N
from ibtools import quantized_study as Q
from ibtools.ground_truth_verdicts import CLAIM_KEYS, NOT_TESTABLE

VERDICTS = {"reproduced", "partly reproduced", "not reproduced", NOT_TESTABLE}


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("gt_summary")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cols = S.ground_truth_columns(("tanh", "relu"), epochs=6, seeds=range(2), compute_missing=True,
                                      results_dir=scratch / "none", scratch_dir=scratch)
    return cols, scratch


def test_both_columns_decided_by_their_rules(computed):
    cols, scratch = computed
    assert list(cols.verdicts.columns) == [S.QUANTIZED_COLUMN, S.NOISY_COLUMN]
    assert list(cols.verdicts.index) == list(CLAIM_KEYS)
    assert set(cols.verdicts.stack()) <= VERDICTS
    assert cols.missing.empty
    assert cols.networks.loc[S.QUANTIZED_COLUMN, "networks"] == 4  # 2 activations x 2 seeds
    assert cols.networks.loc[S.NOISY_COLUMN, "networks"] == 2
    # The same verdicts as the deciding columns of the two chapters' modules, on the same networks.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = Q.quantized_data((8,), ("tanh", "relu"), epochs=6, seeds=range(2), compute_missing=True,
                             results_dir=scratch / "none", scratch_dir=scratch, progress=False)
        n = N.noisy_data((0.1,), epochs=6, seeds=range(2), deep_draws=(), compute_missing=True,
                         results_dir=scratch / "none", scratch_dir=scratch, progress=False)
    q_col = Q.quantized_verdicts(Q.quantized_claims(q))[Q.RULE_COLUMN]
    n_col = N.noisy_verdicts(N.noisy_claims(n, estimators=()))[N.RULE_COLUMN]
    assert cols.verdicts[S.QUANTIZED_COLUMN].tolist() == q_col.tolist()
    assert cols.verdicts[S.NOISY_COLUMN].tolist() == n_col.tolist()
    # one activation and a noise-free softmax output cannot decide R2, R5 or R7
    assert (cols.verdicts.loc[["R2", "R5a", "R7"], S.NOISY_COLUMN] == NOT_TESTABLE).all()


def test_columns_without_stored_units_say_so(tmp_path):
    cols = S.ground_truth_columns(("tanh",), epochs=6, seeds=range(2), results_dir=tmp_path)
    assert (cols.verdicts == S.NOT_STORED).all().all()
    assert set(cols.missing.column) == {S.QUANTIZED_COLUMN, S.NOISY_COLUMN}
    assert cols.networks["networks"].tolist() == [0, 0]
    assert cols.networks["units missing"].tolist() == [1, 1]
    # the full study's noisy part is five units of 10 networks: each missing one is counted
    full = S.ground_truth_columns(("tanh",), results_dir=tmp_path)
    assert full.networks["units missing"].tolist() == [1, 5]
    assert len(full.missing) == 6


def test_a_partly_stored_column_is_not_decided(computed, tmp_path):
    _, scratch = computed
    # only the tanh unit is stored: the quantized column for tanh and relu must not be judged on it
    for f in scratch.glob("tanh_*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cols = S.ground_truth_columns(("tanh", "relu"), epochs=6, seeds=range(2), results_dir=tmp_path)
    assert (cols.verdicts[S.QUANTIZED_COLUMN] == S.NOT_STORED).all()
    assert cols.networks.loc[S.QUANTIZED_COLUMN, "units missing"] == 1
    # the copied noisy unit is the cheap one (no K > 1 estimates), not the study's: not stored either
    assert (cols.verdicts[S.NOISY_COLUMN] == S.NOT_STORED).all()


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="activations must be among"):
        S.ground_truth_columns(("sigmoid",))
    with pytest.raises(ValueError, match="epochs"):
        S.ground_truth_columns(("tanh",), epochs=0)

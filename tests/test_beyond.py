"""The analysis of the chapter beyond the 12-bit task (ibtools.beyond), at tiny scale: a cheap
version of the MNIST-1D study (3 seeds, 12 epochs, 2000 samples, small widths, EBAB and the exact
MI) judged by the rules of ibtools.claims, with and without failed networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ibtools import beyond
from ibtools.analysis import compression_scores
from ibtools.rerun import EXACT
from ibtools.settings import EBAB
from ibtools.sweep import ResultCache
from ibtools.verdicts import study_claims

KEYS = {"R1", "R2", "R3", "R4", "R5a", "R5b", "R5c", "R6a", "R6b", "R6c", "R7"}
VERDICTS = {"reproduced", "partly reproduced", "not reproduced"}
ACTS = ("tanh", "relu", "elu", "softplus", "centered_softplus")


CHEAP = dict(epochs=12, seeds=range(3), activations=ACTS, l2s=(0.0, 0.015), task="mnist1d:num_samples=2000",
             hidden=(10, 8, 6, 4), estimators=(EBAB, EXACT))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("beyond")


@pytest.fixture(scope="module")
def data(scratch):
    """The cheap study, computed into ``scratch`` (nothing is stored in ``scratch / "stored"``)."""
    return beyond.task_study_data(**CHEAP, results_dir=scratch / "stored", scratch_dir=scratch, progress=False)


def test_study_data_holds_every_part(data):
    assert {r.config.activation for r in data.activations.runs} == set(ACTS)
    assert sorted(r.config.l2 for r in data.l2.runs) == [0.0, 0.015]
    assert len(data.pool.runs) == len(ACTS) + 1  # ReLU at L2 0 once
    assert data.relu_single.seeds == (0,) and data.relu_ranged.config.estimators[0].name == "max"
    assert all(r.config.task == "mnist1d:num_samples=2000" for r in data.pool.runs)


def test_claims_are_the_verdicts_modules(data):
    all_claims, kept, status, reason = beyond.claims_with_and_without_failed(data, EBAB.label)
    assert {c.key for c in all_claims} == KEYS and {c.verdict for c in all_claims} <= VERDICTS
    direct = study_claims(data, EBAB.label)
    assert [(c.key, c.verdict, c.measured) for c in all_claims] == [(c.key, c.verdict, c.measured) for c in direct]
    assert len(status) == 3 * (len(ACTS) + 1)
    if not status.failed.any():
        assert reason == "" and [c.verdict for c in kept] == [c.verdict for c in all_claims]


def _fake_status(failed_rows):
    from ibtools.failures import classify_runs

    def fake(runs, estimator=None):  # every network ok but ``failed_rows`` (tiny networks do fail)
        st = classify_runs(runs, estimator)
        st["status"], st["failed"] = "ok", False
        for activation, l2, seed in failed_rows:
            hit = (st.activation == activation) & (st.l2 == l2) & (st.seed == seed)
            st.loc[hit, ["status", "failed"]] = ["collapsed", True]
        return st

    return fake


def test_failed_networks_are_left_out(data, monkeypatch):
    monkeypatch.setattr(beyond, "classify_runs", _fake_status([("relu", 0.0, 0)]))
    all_claims, kept, status, reason = beyond.claims_with_and_without_failed(data, EBAB.label)
    assert reason == "" and int(status.failed.sum()) == 1
    r4_all = next(c for c in all_claims if c.key == "R4")
    r4_kept = next(c for c in kept if c.key == "R4")
    assert "across 3 initializations" in r4_all.measured and "across 2 initializations" in r4_kept.measured


def test_a_condition_left_with_too_few_networks_is_not_judged(data, monkeypatch):
    monkeypatch.setattr(beyond, "classify_runs", _fake_status([("elu", 0.0, 0), ("elu", 0.0, 1)]))
    all_claims, kept, status, reason = beyond.claims_with_and_without_failed(data, EBAB.label)
    assert kept is None and "elu (L2 0): 1" in reason and len(all_claims) == len(KEYS)
    table = beyond.verdict_table({"MNIST-1D": all_claims, "without failed": kept})
    assert list(table.columns) == ["MNIST-1D", "without failed"] and set(table.index) == KEYS
    assert (table["without failed"] == "not judged").all()
    assert table["MNIST-1D"].isin(VERDICTS).all()
    md = beyond.verdict_markdown({"MNIST-1D": all_claims, "without failed": kept})
    assert md.count("\n") == len(KEYS) + 1 and "**not judged**" in md


def test_layer_scores_have_intervals_around_their_means(data):
    table = data.activations.table(EBAB.label)
    s = beyond.layer_scores(table, EBAB.label)
    assert len(s) == len(ACTS) * 5 and (s.n == 3).all()
    finite = s.dropna(subset=["abs_low"])
    assert (finite.abs_low <= finite.absolute + 1e-12).all() and (finite.absolute <= finite.abs_high + 1e-12).all()
    direct = compression_scores(table, EBAB.label)
    want = direct[(direct.activation == "tanh") & (direct.layer == 4)].absolute.mean()
    assert s[(s.activation == "tanh") & (s.layer == 4)].absolute.iloc[0] == pytest.approx(want)
    # exact I(X;T) never exceeds log2 N
    exact = data.activations.table(EXACT.label)
    assert exact.i_xt.max() <= beyond.ceiling_bits("mnist1d:num_samples=2000") + 1e-9


def test_plot_layer_scores_returns_two_axes(data):
    import matplotlib

    matplotlib.use("Agg")
    s = beyond.layer_scores(data.activations.table(EBAB.label), EBAB.label)
    axes = beyond.plot_layer_scores(s, ["h1", "h2", "h3", "h4", "softmax"])
    assert len(axes) == 2 and axes[0].get_ylabel() == "compression (bits)"


def test_ceiling_bits():
    assert beyond.ceiling_bits("tishby") == 12.0
    assert beyond.ceiling_bits("mnist1d") == pytest.approx(np.log2(5000))


def test_verdict_table_of_nothing_judged():
    t = beyond.verdict_table({"a": None})
    assert isinstance(t, pd.DataFrame) and list(t.columns) == ["a"] and t.empty


def test_estimator_specs():
    assert beyond.estimator_specs(["exact", "ebab"]) == (EBAB, EXACT)
    assert beyond.estimator_specs("ebab") == (EBAB,)
    with pytest.raises(ValueError, match="unknown study estimator"):
        beyond.estimator_specs(["ebab", "ksg"])
    with pytest.raises(ValueError, match="must include 'ebab'"):
        beyond.estimator_specs(["akde"])
    with pytest.raises(ValueError, match="distinct"):
        beyond.estimator_specs(["ebab", "ebab"])


def test_plot_task_examples():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    out = beyond.plot_task_examples("mnist1d", per_class=2, ax=ax)
    assert out is ax and len(ax.lines) == 20 and len(ax.get_yticks()) == 10
    with pytest.raises(ValueError, match="per_class"):
        beyond.plot_task_examples("mnist1d", per_class=0, ax=ax)
    plt.close(fig)


def test_task_column_reads_not_stored_until_every_unit_is_stored(tmp_path):
    column = beyond.task_column(results_dir=tmp_path)
    assert (column.verdicts == beyond.NOT_STORED).all().all() and set(column.verdicts.index) == KEYS
    assert list(column.verdicts.columns) == [beyond.MNIST1D_COLUMN, beyond.MNIST1D_KEPT_COLUMN]
    assert (column.networks, column.failed, column.claims, column.kept_claims) == (0, 0, (), ())
    # the single network, its network-wide-range re-run, 8 activations and 5 more L2 strengths
    assert len(column.missing) == 1 + 1 + 8 + 5 and len(set(column.missing)) == len(column.missing)
    for bad, message in ((dict(estimator="exact"), "estimator must be one of"),
                         (dict(estimator="ksg"), "estimator must be one of"),
                         (dict(seed=3), r"unknown study parameter\(s\) \['seed'\]"),
                         (dict(seeds=20), "seeds must be a non-empty sequence of integer seeds"),
                         (dict(seeds=[]), "seeds must be a non-empty sequence"),
                         (dict(seeds=[0, 1.5]), "seeds must be a non-empty sequence"),
                         (dict(compute_missing=True), "needs a scratch_dir"),
                         (dict(estimator="akde", **CHEAP), "not among the study's recorded estimators")):
        with pytest.raises(ValueError, match=message):
            beyond.task_column(results_dir=tmp_path, **bad)


def test_task_column_judges_the_stored_study_by_its_confirmatory_versions(data, scratch):
    """With every unit stored (here: the cheap study, read from where it was computed) the column
    holds the claims of :func:`ibtools.verdicts.study_claims` with every network and without the
    failed ones, each decided by the rule version fixed for the MNIST-1D study, and counts the
    networks and the failed ones; one unit less (a sweep unit, or the single network's
    network-wide-range re-run) and every cell reads "not stored" again."""
    from ibtools.claims import current_versions, for_study
    from ibtools.failures import classify_runs

    column = beyond.task_column(results_dir=scratch, **CHEAP)
    assert column.missing == ()
    versions = current_versions("mnist1d")
    for c in column.claims + column.kept_claims:  # the deciding version, and its verdict
        assert c.version == versions[c.key] and c.verdict == c.by_version[c.version][0]
    all_claims, kept, status, reason = beyond.claims_with_and_without_failed(data, EBAB.label)
    want = {c.key: c.verdict for c in for_study(all_claims, "mnist1d")}
    assert column.verdicts[beyond.MNIST1D_COLUMN].to_dict() == want
    if kept is None:
        assert (column.verdicts[beyond.MNIST1D_KEPT_COLUMN] == "not judged").all() and column.kept_reason == reason
    else:
        assert column.verdicts[beyond.MNIST1D_KEPT_COLUMN].to_dict() == {c.key: c.verdict for c in for_study(kept, "mnist1d")}
    assert set(column.verdicts.stack()) <= VERDICTS | {"not judged"}
    status = classify_runs(data.pool.runs, EBAB.label)
    assert (column.networks, column.failed) == (len(status), int(status.failed.sum()))
    assert column.networks == 3 * (len(ACTS) + 1)
    # computing what is missing: nothing stored in an empty directory, everything found in the scratch
    computed = beyond.task_column(compute_missing=True, results_dir=scratch / "empty", scratch_dir=scratch, **CHEAP)
    assert computed.missing == () and computed.verdicts.equals(column.verdicts)
    ranged = beyond.global_range_config(data.relu_single)
    for hide in (sorted(scratch.glob("*tanh*.npz"))[0],
                 next(p for p in scratch.glob("*.npz") if ResultCache(scratch).name(ranged) in p.name)):
        away = hide.with_name(hide.name + ".away")
        hide.rename(away)
        try:
            again = beyond.task_column(results_dir=scratch, **CHEAP)
            assert (again.verdicts == beyond.NOT_STORED).all().all() and again.missing == (hide.stem,)
        finally:
            away.rename(hide)


def test_layer_findings_names_ceiling_layers_and_the_top_compressor():
    import pandas as pd

    from ibtools.beyond import layer_findings

    rows = []
    for activation, drop in (("tanh", 3.0), ("relu", 1.0)):
        for seed in (0, 1):
            for epoch in (0, 10, 100):
                rows.append((activation, seed, epoch, 1, 12.29))                    # h1 at the ceiling throughout
                rows.append((activation, seed, epoch, 2, 12.29 - (0.5 if epoch == 100 and activation == "relu" else 0)))
                rows.append((activation, seed, epoch, 3, 3.0 - (drop if epoch == 100 else 0)))
    table = pd.DataFrame(rows, columns=["activation", "seed", "epoch", "layer", "i_xt"]).assign(estimator="ebab")
    summary = pd.DataFrame({"activation": ["tanh", "relu", "tanh", "relu"], "layer": [2, 2, 3, 3],
                            "absolute": [0.0, 0.5, 3.0, 1.0], "abs_low": [0.0, 0.4, 2.5, 0.8],
                            "abs_high": [0.0, 0.6, 3.5, 1.2], "floor": [0.01, 0.02, 0.05, 0.04]})
    found = layer_findings(table, summary, "ebab", ceiling=12.29, layer_names=("h1", "h2", "softmax"))
    assert found["at_ceiling"] == "h1"  # h2 leaves it (relu's mean drops 0.5 bit at the end)
    assert found["top_last_hidden"] == "relu (0.50 bits, 95 % CI [0.40, 0.60]; noise floor 0.02)"
    assert found["top_output"] == "tanh (3.00 bits, 95 % CI [2.50, 3.50]; noise floor 0.05)"
    relaxed = layer_findings(table, summary, "ebab", ceiling=12.29, layer_names=("h1", "h2", "softmax"), tol=0.6)
    assert relaxed["at_ceiling"] == "h1 and h2"
    with pytest.raises(ValueError, match="no rows of estimator 'akde'"):
        layer_findings(table, summary, "akde", ceiling=12.29, layer_names=("h1", "h2", "softmax"))

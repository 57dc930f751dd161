"""The clustering chapter's loader and figures (ibtools.clustering_study) on a tiny re-run computed
here: stored units are read and missing ones listed (never computed unless asked), arms stay
apart, and the verdict table and figures are drawn from the rule's output."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ibtools import clustering_study as S  # noqa: E402
from ibtools import clustering_verdicts as C  # noqa: E402
from ibtools.rerun import EXACT  # noqa: E402
from ibtools.settings import AKDE, EBAB  # noqa: E402

TINY = dict(epochs=12, seeds=range(3), estimators=("ebab",), sensitivity=False, progress=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A directory holding the tanh units of both arms (computed here, then read as 'stored')."""
    root = tmp_path_factory.mktemp("rerun")
    S.clustering_data(("paper", "tishby"), ("tanh",), compute_missing=True, scratch_dir=root, **TINY)
    return root


def test_stored_units_are_read_and_missing_ones_listed(store):
    data = S.clustering_data(("paper", "tishby"), ("tanh", "relu"), (0.0, 0.015), results_dir=store, **TINY)
    assert sorted(data.runs) == [("paper", "tanh", 0.0), ("tishby", "tanh", 0.0)]
    assert data.missing[["arm", "activation", "l2"]].values.tolist() == [
        ["paper", "relu", 0.0], ["tishby", "relu", 0.0], ["paper", "relu", 0.015]]
    assert all(name.startswith("relu_l2-") for name in data.missing.unit)
    assert not list(store.glob("relu*")), "a missing unit is listed, not computed"
    # networks of the two arms share activation and seed: the arm keeps them apart
    assert data.table.groupby("arm").seed.nunique().tolist() == [3, 3]
    assert set(data.table.estimator) == {EBAB.label, EXACT.label}
    assert set(data.measures.measure) == {"within_between", "distinct_binned_rows_per_class"}
    assert len(data.status) == 6 and set(data.status.arm) == {"paper", "tishby"}
    assert data.hidden_layers == tuple(range(1, len(data.layer_names))) and data.layer_names[-1]
    assert len(data.all_runs) == 2


def test_nothing_stored_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="none of the 1 units asked for is stored"):
        S.clustering_data(("paper",), ("tanh",), results_dir=tmp_path, **TINY)


@pytest.mark.parametrize("kwargs, message", [
    (dict(arms=("kaiming",)), "unknown initialization arm"),
    (dict(estimators=("ksg",)), "unknown study estimator"),
    (dict(activations=()), "at least one arm and one activation"),
])
def test_bad_arguments(kwargs, message, tmp_path):
    args = dict(TINY, arms=("paper",), activations=("tanh",), results_dir=tmp_path) | kwargs
    with pytest.raises(ValueError, match=message):
        S.clustering_data(**args)


def test_recorded_estimators():
    assert S.recorded_estimators(("akde",), sensitivity=False) == (EBAB, AKDE, EXACT)
    assert EXACT in S.recorded_estimators(("ebab",), sensitivity=True)


def test_verdict_table_and_figures(store):
    data = S.clustering_data(("paper", "tishby"), ("tanh",), results_dir=store, **TINY)
    verdicts = C.clustering_verdicts(data.table, data.measures, data.status, n_boot=100)
    pivot = S.verdict_pivot(verdicts, data.layer_names)
    n_layers = len(data.layer_names)
    assert pivot.shape == (2 * n_layers, 4)  # two measures x layers; two network sets x two questions
    assert list(pivot.columns.get_level_values(0)) == ["all networks"] * 2 + ["without failed"] * 2
    # 6 networks are fewer than the rule's minimum: every cell says so
    assert (pivot.map(lambda s: s.startswith(C.TOO_FEW) or s.startswith(C.NOT_JUDGED))).all().all()
    frame = C.tracking_frame(data.table, data.measures)
    per_net = S.arm_curve_correlations(data, [EBAB.label])
    assert set(per_net.arm) == {"paper", "tishby"} and set(per_net.estimator) == {EBAB.label, EXACT.label}
    assert (per_net.n_common == frame.n_epochs.iloc[0]).all()
    fig, axes = plt.subplots(1, 3)
    assert S.plot_compression_vs_change(frame, EBAB.label, "within_between", 5, axes[0]) is axes[0]
    assert S.plot_tracking(verdicts, "within_between", data.layer_names, ax=axes[1]) is axes[1]
    from ibtools.tracking import summarize_curve_correlations

    summary = summarize_curve_correlations(per_net, rng=0, n_boot=100)
    assert S.plot_curve_correlations(summary, "within_between", data.layer_names, ax=axes[2]) is axes[2]
    with pytest.raises(ValueError, match="no verdicts for measure 'nc1'"):
        S.plot_tracking(verdicts, "nc1", data.layer_names)
    plt.close(fig)

"""The pre-registered rule of ibtools.clustering_verdicts on tables whose answer is constructed:
compression that tracks a measure exactly (rho = 1), the opposite within conditions while the
conditions themselves agree (so a pooled correlation would mislead), no association, information
that never changed, information tracked better than clustering and the reverse, failed networks,
equal epochs for every estimator, and bad input."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ibtools import clustering_verdicts as C
from ibtools.analysis import compression_scores, restrict_epochs

EPOCHS = np.arange(60)
LOG10E = np.log10(np.e)


def _curve(drop: float) -> np.ndarray:
    """Rises to 5 over 20 epochs, stays, then falls by ``drop`` between epochs 30 and 50."""
    return 5 * np.minimum(EPOCHS / 20, 1.0) - drop * np.clip((EPOCHS - 30) / 20, 0, 1)


def make_tables(drops, measure_drops, info_drops=None, *, conditions=None, layers=(1,), akde_every=None):
    """Information-plane and measure tables: network k's EBAB I(X;T) falls by ``drops[k]`` bits,
    its measure is exp(curve falling by ``measure_drops[k]``) and its exact I(X;T) is 12 bits
    minus a fall of ``info_drops[k]`` (constant 12 bits when None). ``conditions[k]`` is the
    network's (activation, l2); ``akde_every`` adds an "akde" estimator recorded every n epochs."""
    n = len(drops)
    conditions = conditions or [("tanh", 0.0)] * n
    planes, measures = [], []
    for k in range(n):
        act, l2 = conditions[k]
        for layer in layers:
            base = dict(activation=act, l2=l2, seed=k, epoch=EPOCHS, layer=layer, diverged=False)
            xt = _curve(drops[k]) * layer
            planes.append(pd.DataFrame(base | dict(estimator="ebab", i_xt=xt, i_ty=np.minimum(EPOCHS / 20, 1.0))))
            info = np.full(EPOCHS.size, 12.0) if info_drops is None else 12 - (5 - _curve(info_drops[k]))
            planes.append(pd.DataFrame(base | dict(estimator="exact", i_xt=info, i_ty=1.0)))
            if akde_every:
                sel = EPOCHS % akde_every == 0
                planes.append(pd.DataFrame({**{c: v[sel] if isinstance(v, np.ndarray) else v for c, v in base.items()},
                                            "estimator": "akde", "i_xt": xt[sel] + 0.5, "i_ty": 0.5}))
            measures.append(pd.DataFrame(base | dict(measure="within_between", value=np.exp(_curve(measure_drops[k])))))
    return pd.concat(planes, ignore_index=True), pd.concat(measures, ignore_index=True)


def frame_of(x, y, z, conditions=None):
    """A tracking_frame-like table of one cell with given compression, change and info change."""
    n = len(x)
    conditions = conditions or [("tanh", 0.0)] * n
    return pd.DataFrame({"arm": "", "activation": [c[0] for c in conditions], "l2": [c[1] for c in conditions],
                         "seed": np.arange(n), "layer": 1, "estimator": "ebab", "measure": "within_between",
                         "compression": x, "change": y, "info_change": z})


def one(frame, **kw):
    out = C.judge_tracking(frame, rng=0, n_boot=kw.pop("n_boot", 500), **kw)
    assert len(out) == 1
    return out.iloc[0]


# -- the statistic ---------------------------------------------------------------------------------


def test_within_condition_rho_is_spearman_for_one_condition(rng):
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    y[:5] = y[5]  # ties get mean ranks, as in scipy
    assert C.within_condition_rho(x, y, ["a"] * 40) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


def test_within_condition_rho_removes_differences_between_conditions():
    # within each condition y falls as x rises; condition b has larger x and larger y
    x = np.r_[np.arange(10.0), 100 + np.arange(10.0)]
    y = np.r_[10 - np.arange(10.0), 100 - np.arange(10.0)]
    groups = ["a"] * 10 + ["b"] * 10
    assert stats.spearmanr(x, y)[0] > 0.4  # pooled, the conditions make a positive correlation
    assert C.within_condition_rho(x, y, groups) == pytest.approx(-1.0)
    assert np.isnan(C.within_condition_rho(x, np.ones(20), groups))  # no variation: undefined
    with pytest.raises(ValueError, match="one length"):
        C.within_condition_rho(x, y[:5], groups)


# -- Q1 and Q2 on cells with a constructed answer ------------------------------------------------------


def test_perfect_tracking_of_clustering_while_information_is_constant():
    x = np.linspace(0.1, 3, 30)
    row = one(frame_of(x, 2 * x, np.zeros(30)))
    assert row.rho == 1 and row.rho_low == 1 and row.rho_high == 1 and row.tracking == C.TRACKS
    # the exact I(X;T) never changed: said so, not a NaN passed off as a verdict
    assert row.vs_information == C.INFO_UNCHANGED and row.n_info_changed == 0 and np.isnan(row.rho_info)


def test_opposite_within_conditions_although_conditions_agree():
    x = np.r_[np.linspace(0.1, 1, 15), np.linspace(2.1, 3, 15)]
    y = np.r_[1.1 - np.linspace(0.1, 1, 15), 5.1 - np.linspace(2.1, 3, 15)]
    conds = [("tanh", 0.0)] * 15 + [("relu", 0.0)] * 15
    row = one(frame_of(x, y, np.zeros(30), conds))
    assert row.n_conditions == 2 and row.rho == pytest.approx(-1) and row.tracking == C.OPPOSITE


def test_no_association_in_many_networks_does_not_track(rng):
    x, y = rng.normal(size=600), rng.normal(size=600)
    row = one(frame_of(x, y, x))
    assert row.rho_low < 0 < row.rho_high < C.WEAK_RHO and row.tracking == C.DOES_NOT_TRACK


def test_a_wide_interval_around_zero_is_inconclusive():
    x = np.arange(12.0)
    y = np.array([5, 2, 9, 0, 11, 4, 1, 8, 3, 10, 7, 6.0])  # fixed, rho near 0
    row = one(frame_of(x, y, x))
    assert row.rho_low < 0 < C.WEAK_RHO < row.rho_high and row.tracking == C.INCONCLUSIVE


def test_information_tracked_better_than_clustering(rng):
    x = np.linspace(0.1, 3, 40)
    y = x + rng.normal(scale=2.0, size=40)  # clustering follows compression loosely
    row = one(frame_of(x, y, 0.5 * x))  # information follows it exactly
    assert row.rho_info == 1 and row.diff_high < 0 and row.vs_information == C.INFORMATION


def test_clustering_tracked_better_than_information(rng):
    x = np.linspace(0.1, 3, 40)
    row = one(frame_of(x, x ** 2, rng.normal(size=40)))
    assert row.rho == 1 and row.diff_low > 0 and row.vs_information == C.CLUSTERING
    assert row.rho_info_low <= row.rho_info <= row.rho_info_high


def test_information_that_changed_equally_everywhere_did_not_vary():
    x = np.linspace(0.1, 3, 20)
    row = one(frame_of(x, x, np.full(20, 0.25)))
    assert row.n_info_changed == 20 and row.vs_information == C.INFO_NO_VARIATION


def test_information_that_rarely_varies_is_not_compared(monkeypatch):
    x = np.linspace(0.1, 3, 20)
    z = np.zeros(20)
    z[7] = 1.0  # one network lost information: a resample misses it about a third of the time
    monkeypatch.setattr(C, "MIN_DEFINED_SHARE", 0.9)
    row = one(frame_of(x, x, z))
    assert row.tracking == C.TRACKS and row.vs_information == C.INFO_RARELY_VARIES


def test_too_few_networks_and_no_variation_get_no_verdict():
    x = np.linspace(0, 1, C.MIN_NETWORKS - 1)
    row = one(frame_of(x, x, x))
    assert row.tracking == C.TOO_FEW and row.vs_information == C.NOT_JUDGED and np.isnan(row.rho)
    x = np.linspace(0, 1, 20)
    row = one(frame_of(x, np.ones(20), x))
    assert row.tracking == C.UNDEFINED and row.vs_information == C.NOT_JUDGED


def test_undefined_values_are_counted_and_left_out():
    x = np.linspace(0.1, 3, 25)
    y = x.copy()
    y[[2, 5]] = np.nan  # e.g. an infinite measure on a log scale
    z = np.zeros(25)
    z[9] = np.nan  # e.g. a diverged network
    row = one(frame_of(x, y, z))
    assert row.n == 22 and row.n_undefined == 3 and row.rho == 1


def test_intervals_are_reproducible():
    x = np.linspace(0.1, 3, 30)
    y = np.sin(7 * x) + x
    f = frame_of(x, y, np.cos(5 * x))
    pd.testing.assert_frame_equal(C.judge_tracking(f, rng=4, n_boot=300), C.judge_tracking(f, rng=4, n_boot=300))


# -- from recorded-like tables -------------------------------------------------------------------------


def test_tracking_frame_recovers_the_constructed_changes():
    drops = np.linspace(0.2, 2.0, 12)
    table, measures = make_tables(drops, 2 * drops, info_drops=drops[::-1], layers=(1, 2))
    f = C.tracking_frame(table, measures)
    assert set(f.estimator) == {"ebab"} and (f.n_epochs == 60).all() and len(f) == 24
    layer1 = f[f.layer == 1].sort_values("seed")
    assert np.allclose(layer1.compression, drops, atol=1e-9)
    assert np.allclose(layer1.change, LOG10E * 2 * drops, atol=1e-9)  # log10 of exp(curve)
    assert np.allclose(layer1.info_change, drops[::-1], atol=1e-9)
    v = C.clustering_verdicts(table, measures, n_boot=300)
    all_nets = v[v.networks == "all networks"]
    assert (all_nets.tracking == C.TRACKS).all() and (all_nets.rho == 1).all()
    # the exact I(X;T) lost the most where the estimate lost the least: rho(info) = -1
    assert (all_nets.rho_info == -1).all() and (all_nets.vs_information == C.CLUSTERING).all()


def test_constant_exact_information_is_reported_as_unchanged():
    drops = np.linspace(0.2, 2.0, 12)
    table, measures = make_tables(drops, drops)  # exact I(X;T) = 12 bits at every epoch
    v = C.clustering_verdicts(table, measures, n_boot=200)
    assert (v.vs_information == C.INFO_UNCHANGED).all() and (v.tracking == C.TRACKS).all()


def test_every_estimator_is_scored_on_the_common_epochs():
    drops = np.linspace(0.2, 2.0, 12)
    table, measures = make_tables(drops, drops, akde_every=3)
    epochs = C.common_epochs(table, measures, ["ebab", "akde"])
    assert np.array_equal(epochs, np.arange(0, 60, 3))
    f = C.tracking_frame(table, measures)
    assert set(f.estimator) == {"ebab", "akde"} and (f.n_epochs == 20).all()
    sparse = compression_scores(restrict_epochs(table, epochs), "ebab").sort_values("seed")
    ebab = f[f.estimator == "ebab"].sort_values("seed")
    assert np.allclose(ebab.compression, sparse.absolute)


def test_failed_networks_are_counted_and_removed_in_the_second_set():
    drops = np.linspace(0.2, 2.0, 14)
    table, measures = make_tables(drops, drops)
    status = pd.DataFrame({"activation": "tanh", "l2": 0.0, "seed": np.arange(14), "failed": np.arange(14) < 3})
    v = C.clustering_verdicts(table, measures, status, n_boot=200).set_index("networks")
    assert v.loc["all networks", "n"] == 14 and v.loc["without failed", "n"] == 11
    assert v.loc["all networks", "n_failed"] == 3 == v.loc["without failed", "n_failed"]


def test_arms_are_kept_apart():
    drops = np.linspace(0.2, 2.0, 12)
    t1, m1 = make_tables(drops, drops)
    t2, m2 = make_tables(drops, -drops)  # the same seeds, clustering the other way
    table = pd.concat([t1.assign(arm="paper"), t2.assign(arm="tishby")], ignore_index=True)
    measures = pd.concat([m1.assign(arm="paper"), m2.assign(arm="tishby")], ignore_index=True)
    f = C.tracking_frame(table, measures)
    assert len(f) == 24 and f.groupby("arm").size().tolist() == [12, 12]
    row = C.judge_tracking(f, rng=0, n_boot=200).iloc[0]
    # within each arm rho is +1 and -1: pooled within conditions they cancel
    assert row.n_conditions == 2 and row.rho == pytest.approx(0, abs=1e-12)


def test_summary_is_the_median_over_hidden_layers_of_the_primary_measure():
    v = pd.DataFrame({"networks": "all networks", "estimator": "ebab", "measure": C.PRIMARY_MEASURE,
                      "layer": [1, 2, 3, 4], "rho": [0.1, 0.5, np.nan, 0.9],
                      "tracking": [C.DOES_NOT_TRACK, C.TRACKS, C.UNDEFINED, C.TRACKS],
                      "vs_information": [C.NO_DIFFERENCE, C.CLUSTERING, C.NOT_JUDGED, C.INFO_UNCHANGED]})
    other = v.assign(measure="distinct_binned_rows_per_class", rho=-1.0)
    failed = v.assign(networks="without failed", rho=-1.0)
    s = C.tracking_summary(pd.concat([v, other, failed]), hidden_layers=[1, 2, 3]).iloc[0]
    assert s.rho == pytest.approx(0.3) and s.n_layers == 2 and s.tracks == 1 and s.clustering_better == 1
    with pytest.raises(ValueError, match="primary measure"):
        C.tracking_summary(other, hidden_layers=[1])
    with pytest.raises(ValueError, match="none of the hidden layers"):
        C.tracking_summary(v, hidden_layers=[7])


def test_the_rule_text_quotes_the_constants():
    for value in (f"{C.WEAK_RHO:g}", f"{C.LEVEL:.0%}", str(C.N_BOOT), str(C.MIN_NETWORKS), C.SCORE):
        assert value in C.RULE_TEXT
    assert C.PRIMARY_MEASURE in C.SUMMARY_TEXT and C.RULE_VERSION == 1


# -- bad input ------------------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_clear_message():
    drops = np.linspace(0.2, 2.0, 12)
    table, measures = make_tables(drops, drops)
    with pytest.raises(ValueError, match="no rows for the exact I"):
        C.tracking_frame(table[table.estimator != "exact"], measures)
    with pytest.raises(ValueError, match="ground truth"):
        C.tracking_frame(table, measures, estimators="exact")
    with pytest.raises(ValueError, match="no rows for estimator 'akde'"):
        C.tracking_frame(table, measures, estimators="akde")
    with pytest.raises(ValueError, match="lacks the column"):
        C.tracking_frame(table.drop(columns="i_xt"), measures)
    with pytest.raises(ValueError, match="measures is empty"):
        C.tracking_frame(table, measures.iloc[:0])
    with pytest.raises(TypeError, match="DataFrames"):
        C.tracking_frame(table.to_numpy(), measures)
    with pytest.raises(ValueError, match="different arms"):
        C.tracking_frame(table.assign(arm="paper"), measures)
    with pytest.raises(ValueError, match="share no recorded epoch"):
        C.tracking_frame(table, measures.assign(epoch=measures.epoch + 1000))
    with pytest.raises(ValueError, match="unknown compression score"):
        C.information_changes(table, "ebab", score="peak")
    f = frame_of(drops, drops, drops)
    with pytest.raises(ValueError, match="level must be in"):
        C.judge_tracking(f, level=95)
    with pytest.raises(ValueError, match="n_boot must be at least 100"):
        C.judge_tracking(f, n_boot=10)
    with pytest.raises(ValueError, match="output of tracking_frame"):
        C.judge_tracking(f.drop(columns="info_change"))
    with pytest.raises(ValueError, match="status lacks"):
        C.clustering_verdicts(table, measures, pd.DataFrame({"seed": [1]}), n_boot=100)

"""Reading the re-run (ibtools.rerun's loaders, rerun_status) and judging it
(ibtools.verdicts.rerun_verdicts): equal terms on nested schedules, two initialization arms,
with and without failed networks, the exact I(X;T) as a ground-truth column."""

import numpy as np
import pandas as pd
import pytest

from ibtools.rerun import (EXACT, INIT_ARMS, RERUN_RESULTS, rerun_activations, rerun_single, rerun_status,
                           single_exact_config, single_rerun_config)
from ibtools.config import EstimatorSpec
from ibtools.settings import EBAB
from ibtools.sweep import ResultCache
from ibtools.verdicts import (ARM_CLAIMS, EXACT_NAME, IXT_CLAIMS, NETWORK_SETS, common_recorded_epochs,
                              rerun_study_data, rerun_verdict_frame, rerun_verdict_table, rerun_verdicts)

STORED_COMMIT = "b5938fa175803aa0b771b7741a91a8ba4121450e"


def test_status_lists_every_unit_and_the_stored_single_networks():
    status = rerun_status()
    assert list(status.columns[:4]) == ["unit", "part", "init", "activation"]
    sweeps = status[status.part != "single"]
    # 8 activations x 2 arms + 5 non-zero L2 strengths, 50 networks each
    assert len(sweeps) == 21 and set(sweeps.seeds) == {50}
    assert set(sweeps[sweeps.part == "activations-tishby"].init) == {"tishby"}
    single = status[status.part == "single"].set_index("unit")
    stored = single[single.finished]
    # stored: at least the estimator and snapshot runs (the ranged runs are not listed), from the
    # clean commit b5938fa; anything stored later (the exact-MI units) from a clean commit too
    assert len(stored) >= 4 and not stored.dirty.any()
    assert all(len(c) == 40 for c in stored.commit)
    for activation in ("relu", "tanh"):
        assert stored.loc[ResultCache(RERUN_RESULTS).name(single_rerun_config(activation)), "commit"] == STORED_COMMIT
    assert single.finished.sum() == sum((RERUN_RESULTS / f"{u}.json").exists() for u in single.index)


def test_status_of_an_empty_directory(tmp_path):
    status = rerun_status(tmp_path, epochs=5, seeds=range(2))
    assert not status.finished.any() and status.commit.isna().all()
    assert set(status.seeds[status.part != "single"]) == {2}


def test_single_network_loads_the_stored_unit():
    run = rerun_single("tanh", progress=False)
    assert run.config == single_rerun_config("tanh")
    assert run.config.ensemble_invariant and run.config.nested_schedules
    assert run.meta["git_commit"] == STORED_COMMIT
    assert EBAB.label in run.mi


def test_exact_unit_is_the_same_network_with_the_exact_estimator_only():
    a, b = single_rerun_config("relu"), single_exact_config("relu")
    assert b.estimators == (EXACT,)
    assert a.replace(estimators=b.estimators) == b


@pytest.mark.parametrize("call, message", [
    (lambda: rerun_activations("xavier"), "unknown initialization arm 'xavier'"),
    (lambda: rerun_activations(seeds=()), "seeds must name at least one seed"),
    (lambda: rerun_single("relu", "everything"), "unknown single-network kind 'everything'"),
])
def test_bad_arguments_say_what_is_allowed(call, message):
    with pytest.raises(ValueError, match=message):
        call()


#: A sparse setting (8 epochs, nested in the main schedule) that is cheap to record.
SPARSE = EstimatorSpec.make("ebab", n_bins=10, n_points=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The re-run at tiny scale: tanh and ReLU, 3 seeds, 30 epochs, both arms, the L2 sweep at
    0 and 0.015; EBAB at every epoch, a sparse EBAB-10 and the exact MI (nested schedules); no
    single networks. (The book's settings with adaptive KDE cost minutes at this scale.)"""
    scratch = tmp_path_factory.mktemp("rerun_tiny")
    return rerun_study_data(("tanh", "relu"), (0.0, 0.015), epochs=30, seeds=range(3),
                            estimators=(EBAB, SPARSE, EXACT), measures=(), single=False, scratch_dir=scratch,
                            progress=False)


def test_tiny_rerun_verdicts(tiny):
    assert set(tiny) == set(INIT_ARMS)
    assert all(r.config.nested_schedules and r.config.ensemble_invariant for r in tiny["paper"].pool.runs)
    assert {r.config.init for r in tiny["tishby"].pool.runs} == {"tishby"}
    res = rerun_verdicts(tiny, settings=("ebab", SPARSE))
    names = ("ebab", SPARSE.label, EXACT_NAME)
    assert set(res) == {(arm, net, s) for arm in INIT_ARMS for net in NETWORK_SETS for s in names}
    # equal terms: every setting of an arm is judged on the same epochs, the sparsest schedule's
    for arm, data in tiny.items():
        common = common_recorded_epochs(data.pool.runs, [EBAB.label, SPARSE.label, EXACT.label])
        sparse = common_recorded_epochs(data.pool.runs, [SPARSE.label])
        assert 3 <= len(sparse) < len(common_recorded_epochs(data.pool.runs, [EBAB.label]))
        np.testing.assert_array_equal(common, sparse)  # nested: the sparse schedule lies on the others
        assert {n for (a, _, _), (_, n) in res.items() if a == arm} == {len(common)}
    # the second arm judges the activation claims only; the exact column the I(X;T) claims only
    keys = lambda arm, s: {c.key for c in res[(arm, "all networks", s)][0]}
    assert keys("tishby", "ebab") <= set(ARM_CLAIMS)
    assert keys("paper", "ebab") >= {"R6a", "R6b", "R6c", "R7"}
    assert keys("paper", EXACT_NAME) <= set(IXT_CLAIMS) and "R6c" not in keys("paper", EXACT_NAME)
    table = rerun_verdict_table(res)
    assert table.columns.names == ["arm", "networks", "setting"]
    assert pd.isna(table.loc["R6c", ("tishby", "all networks", "ebab")])
    assert pd.isna(table.loc["R6c", ("paper", "all networks", EXACT_NAME)])
    assert not pd.isna(table.loc["R6c", ("paper", "all networks", "ebab")])
    cells = {v for v in table.to_numpy().ravel() if not pd.isna(v)}
    assert cells and cells <= {"reproduced", "partly reproduced", "not reproduced"}
    # every verdict is that of the rule version that decides for the re-run (v2 of R2, R5a, R6b, R7)
    from ibtools.claims import current_versions

    versions = current_versions("rerun")
    for claims, _ in res.values():
        for c in claims:
            assert c.version == versions[c.key] and c.verdict == c.by_version[c.version][0]
    assert any(c.version == 2 for claims, _ in res.values() for c in claims)
    flat = rerun_verdict_frame(res, "without failed")
    assert all(" · " in c and "@" in c for c in flat.columns) and len(flat.columns) == 6
    with pytest.raises(ValueError, match="networks must be one of"):
        rerun_verdict_frame(res, "some")


def test_exact_column_reads_the_float32_network(tiny):
    """The exact I(X;T) of a tanh layer with distinct rows is log2 4096 = 12 bits: the ground
    truth that the estimators approximate."""
    tanh = tiny["paper"].activations.select(activation="tanh").runs[0]
    exact = tanh.mi[EXACT.label][..., 0]
    recorded = exact[~np.isnan(exact).all(axis=(1, 2))]
    assert recorded.size and np.all(recorded <= 12.0 + 1e-9) and recorded[:, 0].min() == pytest.approx(12.0)


def test_study_choice():
    from ibtools.studies import STUDIES, check_study, study_activations, study_estimators, study_results_dir
    from ibtools.study import PAPER_RESULTS, study_estimators as paper_estimators

    assert STUDIES == ("paper", "rerun")
    for bad in ("Paper", "rerun2", None, 1):
        with pytest.raises(ValueError, match=r"STUDY must be one of \('paper', 'rerun'\)"):
            check_study(bad)
    assert study_results_dir("paper") == PAPER_RESULTS and study_results_dir("rerun") == RERUN_RESULTS
    assert study_results_dir("rerun", "/x").as_posix() == "/x"
    assert study_estimators("paper") == paper_estimators(True)
    assert EXACT in study_estimators("rerun") and EXACT in study_estimators("rerun", sensitivity=False)
    # both studies record the same settings under the same labels (the chapters look them up by label)
    assert {s.label for s in paper_estimators(True)} <= {s.label for s in study_estimators("rerun")}
    with pytest.raises(ValueError, match="paper initialization only"):
        study_activations("paper", ("relu",), 5, range(1), init="tishby")

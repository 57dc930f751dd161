"""The re-run's definition (ibtools.rerun): every unit ensemble-invariant and on nested
schedules, both initialization arms, the exact MI and the geometric measures recorded, and stored
results only from a clean tree."""

from __future__ import annotations

import numpy as np
import pytest

from ibtools import rerun
from ibtools.activations import PAPER_ACTIVATIONS
from ibtools.study import L2_STRENGTHS


def test_units_cover_both_arms_and_the_l2_sweep_once():
    units = rerun.rerun_units(parts=("activations-paper", "activations-tishby", "l2"))
    assert len(units) == 2 * len(PAPER_ACTIVATIONS) + len([v for v in L2_STRENGTHS if v])
    assert len({u.key() for u in units}) == len(units)
    for init in rerun.INIT_ARMS:
        assert {u.activation for u in units if u.init == init and u.l2 == 0} == set(PAPER_ACTIVATIONS)
    assert {u.l2 for u in units if u.activation == "relu" and u.init == "paper"} == set(L2_STRENGTHS)
    for u in units:
        assert u.ensemble_invariant and u.nested_schedules
        assert u.estimators == rerun.RERUN_ESTIMATORS and u.measures == rerun.RERUN_MEASURES
        assert len(u.seeds) == 50 and u.epochs == 8000
        main = set(u.schedule().tolist())
        for spec in u.estimators:
            assert set(u.estimator_schedule(spec).tolist()) <= main


def test_single_networks_are_invariant_and_record_every_estimator():
    for activation in rerun.SINGLE_ACTIVATIONS:
        c = rerun.single_rerun_config(activation)
        assert c.ensemble_invariant and c.seeds == (0,) and len(c.estimators) >= 5


def test_unknown_part_is_an_error():
    with pytest.raises(ValueError, match="unknown re-run part"):
        rerun.rerun_sweeps(parts=("everything",))


def test_stored_results_need_a_clean_tree(monkeypatch, tmp_path):
    import ibtools._version as version

    monkeypatch.setattr(version, "source_commit", lambda: "0123abc-dirty")
    with pytest.raises(rerun.DirtyTreeError, match="clean, committed tree"):
        rerun.run_rerun(rerun.RERUN_RESULTS, parts=("l2",), epochs=2, seeds=(0,), progress=False)
    monkeypatch.setattr(version, "source_commit", lambda: None)
    with pytest.raises(rerun.DirtyTreeError):
        rerun.run_rerun(rerun.RERUN_RESULTS, parts=("l2",), epochs=2, seeds=(0,), progress=False)


def test_cli_reports_a_dirty_tree_without_a_traceback(monkeypatch, capsys):
    import ibtools._version as version

    monkeypatch.setattr(version, "source_commit", lambda: "0123abc-dirty")
    assert rerun.main(["--parts", "l2"]) == 2
    assert "clean, committed tree" in capsys.readouterr().err


def test_exit_status_is_shared_by_the_study_commands(capsys):
    calls = []
    assert rerun.exit_status(lambda *a, **k: calls.append((a, k)), 1, x=2) == 0
    assert calls == [((1,), {"x": 2})]

    def dirty():
        raise rerun.DirtyTreeError("results/rerun holds stored results")

    assert rerun.exit_status(dirty) == 2
    assert capsys.readouterr().err == "error: results/rerun holds stored results\n"

    def broken():
        raise ValueError("not a dirty tree")

    with pytest.raises(ValueError, match="not a dirty tree"):  # other errors are not swallowed
        rerun.exit_status(broken)


def test_dry_run_lists_units(capsys, tmp_path):
    assert rerun.main(["--dry-run", "--parts", "activations-tishby", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "activations-tishby: 8 units, 8 to compute" in out and "init=tishby" in out


@pytest.mark.slow
def test_a_cheap_rerun_elsewhere_records_exact_mi_and_measures(tmp_path):
    from ibtools.sweep import load_sweep

    rerun.run_rerun(tmp_path, parts=("single", "l2"), epochs=4, seeds=(0, 1), progress=False)
    result = load_sweep(tmp_path)
    # 5 L2 units, and per single-network activation: the network, its network-wide-range re-run, the snapshot,
    # the exact MI of the same network
    assert len(result.runs) == len([v for v in L2_STRENGTHS if v]) + 4 * len(rerun.SINGLE_ACTIVATIONS)
    result.runs = [r for r in result.runs if len(r.seeds) == 2]
    run = result.runs[0]
    exact = run.mi[rerun.EXACT.label][..., 0]
    assert np.isfinite(exact).all() and (exact <= 12 + 1e-9).all()
    assert set(rerun.RERUN_MEASURES) <= set(run.measure_table().measure)
    # resuming finds everything done
    from ibtools.sweep import pending_units

    assert all(not pending_units(s, tmp_path) for s in rerun.rerun_sweeps(parts=("l2",), epochs=4, seeds=(0, 1)).values())

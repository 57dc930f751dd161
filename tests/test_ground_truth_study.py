"""The ground-truth study's definition (ibtools.ground_truth_study): quantized and noisy parts at
the paper's scale, every unit ensemble-invariant on nested schedules, K-draw mixture estimates
on a subset of the one-draw epochs, and stored results only from a clean tree."""

from __future__ import annotations

import pytest

from ibtools import ground_truth_study as gt
from ibtools.activations import PAPER_ACTIVATIONS
from ibtools.sweep import pending_units


def test_parts_cover_the_issue_at_full_scale():
    sweeps = gt.ground_truth_sweeps()
    assert tuple(sweeps) == gt.GROUND_TRUTH_PARTS
    units = gt.ground_truth_units()
    main_units = 50 // gt.NOISY_SEEDS_PER_UNIT
    assert len({u.key() for u in units}) == len(units) == 2 * len(PAPER_ACTIVATIONS) + main_units + len(gt.SENSITIVITY_STDS)
    for bits in gt.QUANTIZE_BITS:
        q = [u for u in units if u.quantize_bits == bits]
        assert {u.activation for u in q} == set(PAPER_ACTIVATIONS)
        for u in q:
            assert u.estimators == gt.QUANTIZED_ESTIMATORS and u.noise_std == 0
            assert len(u.seeds) == 50 and u.epochs == 8000
    noisy = [u for u in units if u.noise_std > 0]
    assert {u.noise_std for u in noisy} == {gt.NOISE_STD, *gt.SENSITIVITY_STDS}
    for u in noisy:
        assert u.activation == "tanh" and u.quantize_bits is None and u.epochs == 8000
        assert len(u.seeds) == gt.NOISY_SEEDS_PER_UNIT == len(gt.SENSITIVITY_SEEDS)
        draws = sorted(s.kwargs.get("draws", 1) for s in u.estimators if s.name == "mixture")
        assert draws == ([1, *gt.DEEP_DRAWS] if u.noise_std == gt.NOISE_STD else [1, 4])
        bounds = {s.kwargs["bound"] for s in u.estimators if s.name == "mixture_bounds"}
        assert bounds == {"lower", "upper"}
        for s in u.estimators:
            if s.name.startswith("mixture"):
                assert s.kwargs["noise_std"] == u.noise_std
    main = sorted(s for u in noisy if u.noise_std == gt.NOISE_STD for s in u.seeds)
    assert main == list(range(50))  # the main noisy part: 50 seeds in units of 10


def test_every_unit_is_invariant_with_nested_schedules():
    for u in gt.ground_truth_units():
        assert u.ensemble_invariant and u.nested_schedules
        main = set(u.schedule().tolist())
        one_draw = None
        for s in u.estimators:
            epochs = set(u.estimator_schedule(s).tolist())
            assert epochs <= main
            if s.name == "mixture" and "draws" not in s.kwargs:
                one_draw = epochs
        for s in u.estimators:
            if s.name == "mixture_bounds":
                assert set(u.estimator_schedule(s).tolist()) == one_draw  # the bracket: same epochs
            if s.name == "mixture" and "draws" in s.kwargs:
                deep = set(u.estimator_schedule(s).tolist())
                assert deep <= one_draw and len(deep) == gt.DEEP_POINTS


def test_a_cheap_version_keeps_the_structure():
    units = gt.ground_truth_units(epochs=10, seeds=(0, 1), sensitivity_seeds=(0,), parts=("quantized-4", "noisy-sensitivity"))
    assert len(units) == len(PAPER_ACTIVATIONS) + len(gt.SENSITIVITY_STDS)
    assert all(u.epochs == 10 for u in units)


def test_unknown_part_is_an_error():
    with pytest.raises(ValueError, match="unknown ground-truth part"):
        gt.ground_truth_sweeps(parts=("quantized-2",))


def test_stored_results_need_a_clean_tree(monkeypatch):
    import ibtools._version as version

    monkeypatch.setattr(version, "source_commit", lambda: "0123abc-dirty")
    with pytest.raises(gt.DirtyTreeError, match="results/ground_truth holds stored results"):
        gt.run_ground_truth(gt.GROUND_TRUTH_RESULTS, parts=("quantized-4",), epochs=2, seeds=(0,), progress=False)
    assert gt.main(["--parts", "quantized-4"]) == 2
    monkeypatch.setattr(version, "source_commit", lambda: None)
    with pytest.raises(gt.DirtyTreeError):
        gt.run_ground_truth(gt.GROUND_TRUTH_RESULTS, parts=("noisy",), epochs=2, seeds=(0,), progress=False)


def test_dry_run_lists_units_without_computing(tmp_path, capsys):
    assert gt.main(["--dry-run", "--no-estimate", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "quantized-8: 8 units, 8 to compute" in out and "noise 0.3" in out
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_tiny_run_computes_and_resumes(tmp_path):
    kw = dict(parts=("quantized-4",), epochs=2, seeds=(0,), progress=False)
    gt.run_ground_truth(tmp_path, **kw)  # any other directory: no clean-tree requirement
    sweep = gt.ground_truth_sweeps(epochs=2, seeds=(0,), parts=("quantized-4",))["quantized-4"][0]
    assert pending_units(sweep, tmp_path) == []
    gt.run_ground_truth(tmp_path, **kw)  # nothing left to do


@pytest.mark.slow
def test_estimate_seconds_is_positive_for_a_noisy_unit():
    unit = gt.ground_truth_units(epochs=20, seeds=(0, 1), parts=("noisy",))[0]
    (cost,) = gt.estimate_seconds([unit], probe_networks=1, train_epochs=1)
    assert cost > 0

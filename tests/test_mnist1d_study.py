"""The MNIST-1D study's definition (ibtools.mnist1d_study): the paper's eight activations, the
L2 sweep and the single network on MNIST-1D, every unit ensemble-invariant on nested schedules
with EBAB, adaptive KDE and the exact MI; stored results only from a clean tree; a dry run that
lists the units with a cost estimate; a cheap study computed elsewhere and resumed."""

from __future__ import annotations

import numpy as np
import pytest

from ibtools import mnist1d_study as m1
from ibtools.activations import PAPER_ACTIVATIONS
from ibtools.rerun import EXACT, DirtyTreeError
from ibtools.settings import AKDE, EBAB
from ibtools.study import L2_STRENGTHS, MNIST1D_EPOCHS, MNIST1D_HIDDEN


def test_units_cover_activations_l2_and_the_single_network_once():
    units = m1.mnist1d_units()
    n_l2 = len([v for v in L2_STRENGTHS if v])
    assert len(units) == 1 + len(PAPER_ACTIVATIONS) + n_l2
    assert len({u.key() for u in units}) == len(units)
    assert units[0].seeds == (0,) and units[0].activation == "relu"
    sweeps = units[1:]
    assert {u.activation for u in sweeps if u.l2 == 0} == set(PAPER_ACTIVATIONS)
    assert {u.l2 for u in sweeps if u.activation == "relu"} == set(L2_STRENGTHS)
    for u in units:
        assert u.task == "mnist1d" and u.hidden == MNIST1D_HIDDEN and u.epochs == MNIST1D_EPOCHS
        assert u.ensemble_invariant and u.nested_schedules
        assert u.estimators == (EBAB, AKDE, EXACT) and u.widths == (40, *MNIST1D_HIDDEN, 10)
        main = set(u.schedule().tolist())
        for spec in u.estimators:
            assert set(u.estimator_schedule(spec).tolist()) <= main
    assert all(len(u.seeds) == 50 for u in sweeps)
    # the l2 part's strength 0 is the activations part's ReLU unit (same key), stored once
    sw = m1.mnist1d_sweeps()
    relu0 = [u for u in sw["l2"].units() if u.l2 == 0][0]
    assert relu0.key() in {u.key() for u in sw["activations"].units()}


def test_bad_parts_and_l2s_are_errors():
    with pytest.raises(ValueError, match="unknown part"):
        m1.mnist1d_sweeps(parts=("everything",))
    with pytest.raises(ValueError, match="needs 0 and at least one nonzero"):
        m1.mnist1d_sweeps(parts=("l2",), l2s=(0.001, 0.01))
    with pytest.raises(ValueError, match="needs 0 and at least one nonzero"):
        m1.mnist1d_sweeps(parts=("l2",), l2s=(0.0,))


def test_stored_results_need_a_clean_tree(monkeypatch):
    import ibtools._version as version

    monkeypatch.setattr(version, "source_commit", lambda: "0123abc-dirty")
    with pytest.raises(DirtyTreeError, match="results/mnist1d .*clean, committed tree"):
        m1.run_mnist1d_study(m1.MNIST1D_RESULTS, parts=("l2",), epochs=2, seeds=(0,), progress=False)
    monkeypatch.setattr(version, "source_commit", lambda: None)
    with pytest.raises(DirtyTreeError):
        m1.run_mnist1d_study(m1.MNIST1D_RESULTS, parts=("single",), epochs=2, progress=False)


def test_cli_reports_a_dirty_tree_without_a_traceback(monkeypatch, capsys):
    import ibtools._version as version

    monkeypatch.setattr(version, "source_commit", lambda: "0123abc-dirty")
    assert m1.main(["--parts", "l2"]) == 2
    assert "clean, committed tree" in capsys.readouterr().err


def test_dry_run_lists_units_without_computing(capsys, tmp_path):
    assert m1.main(["--dry-run", "--no-estimate", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "14 units (14 to compute)" in out and "hidden 100-50-20-10-5, 4000 epochs" in out
    assert out.count("todo") == 14 and "prelu" in out
    assert not any(tmp_path.iterdir()), "a dry run writes nothing"


def test_estimate_probes_each_kind_of_unit_once():
    calls = []

    def probe(unit):
        calls.append(unit)
        return 10.0 * len(unit.seeds)

    units = m1.mnist1d_units()
    seconds = m1.estimate_seconds(units, probe=probe)
    assert len(seconds) == len(units)
    # one probe per activation (the L2 units reuse ReLU's) plus the single network
    assert len(calls) == len(PAPER_ACTIVATIONS) + 1
    assert seconds[0] == 10.0 and all(s == 500.0 for s in seconds[1:])


@pytest.mark.slow
def test_a_cheap_study_elsewhere_records_every_estimator_and_resumes(tmp_path):
    from ibtools.sweep import load_sweep

    kwargs = dict(epochs=4, seeds=(0, 1), activations=("tanh", "relu"), l2s=(0.0, 0.015),
                  task="mnist1d:num_samples=2000", hidden=(8, 4))
    m1.run_mnist1d_study(tmp_path, progress=False, **kwargs)
    files = sorted(p.name for p in tmp_path.glob("*.npz"))
    # single network + its network-wide-range re-run + tanh + relu + relu at L2 0.015
    assert len(files) == 5 and all(f.startswith("mnist1d-num-samples-2000_") for f in files)
    result = load_sweep(tmp_path)
    run = next(r for r in result.runs if len(r.seeds) == 2)
    exact = run.mi[EXACT.label][..., 0]
    assert np.isfinite(exact).all() and (exact <= np.log2(2000) + 1e-9).all()
    assert np.isfinite(run.mi[AKDE.label][..., 0]).any()
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")}
    m1.run_mnist1d_study(tmp_path, progress=False, **kwargs)  # resuming finds everything done
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")} == stamps


def test_dry_run_prints_the_probed_estimate_and_the_load(monkeypatch, capsys, tmp_path):
    import ibtools.training as training

    monkeypatch.setattr(training, "probe_seconds", lambda unit: 100.0 * len(unit.seeds))
    assert m1.main(["--dry-run", "--parts", "activations", "--seeds", "2", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "8 units (8 to compute)" in out and out.count("~    200 s") == 8
    assert "estimated: 1,600 s = 0.4 h of one thread" in out and "load average at the probe" in out


def test_cli_rejects_bad_counts(capsys):
    with pytest.raises(SystemExit):
        m1.main(["--dry-run", "--seeds", "0"])
    assert "--seeds and --epochs must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "tanh", "swish"])
def test_a_network_of_the_study_does_not_depend_on_its_ensemble(activation):
    """The study's units are stored with ``ensemble_invariant=True`` (checked on the 12-bit task
    in tests/test_invariance.py): on MNIST-1D too (40 inputs, 10 classes, 4000 training samples,
    the study's widths), seed 2 trained alone, third of three and second of seven gives the same
    bits in every recorded number (losses, accuracies, EBAB, adaptive KDE, exact MI)."""
    from ibtools.engine import train

    base = m1.mnist1d_base(epochs=4).replace(activation=activation)
    runs = {seeds: train(base.replace(seeds=seeds), progress=False) for seeds in ((2,), (5, 0, 2), (9, 2, 8, 1, 4, 6, 7))}
    ref = runs[(2,)]
    assert set(ref.mi) == {spec.label for spec in base.estimators}
    for seeds, run in runs.items():
        k = seeds.index(2)
        np.testing.assert_array_equal(run.epoch_loss[:, k], ref.epoch_loss[:, 0])
        for name in ref.history:
            np.testing.assert_array_equal(run.history[name][:, k], ref.history[name][:, 0], err_msg=name)
        for label in ref.mi:
            assert np.isfinite(ref.mi[label]).any(), label
            np.testing.assert_array_equal(run.mi[label][:, :, k], ref.mi[label][:, :, 0], err_msg=f"{label}, {seeds}")

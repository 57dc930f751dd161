"""``python -m ibtools paper --fused`` / ``run_paper_study(compiled=True)``: the study with both
compiled CPU paths. Checked without running it (the study takes tens of minutes): every run it
would compute trains with the fused kernel and computes KDE and adaptive KDE with the compiled
engine, every other setting as in the stored study; it refuses the stored study's directory;
and a tiny run of a compiled configuration records the labels it promises."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ibtools import cli, study
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.training import train


def _captured_runs(monkeypatch, tmp_path, compiled):
    """The configurations run_paper_study would compute, without computing them."""
    seen = []

    class _First:  # what _compute_run returns for the first single-network run
        def __init__(self, config):
            self.config = config
            self.layer_max = np.ones((2, 6))

    def fake_compute(config, cache, progress):
        seen.append(config)
        return _First(config)

    def fake_sweeps(sweeps, cache, **kwargs):
        keys, results = set(), []
        for sweep in sweeps:  # a unit two sweeps share runs once, as in run_sweeps
            for unit in sweep.units():
                if unit.key() not in keys:
                    keys.add(unit.key())
                    seen.append(unit)
            results.append(SimpleNamespace(runs=[_First(unit) for unit in sweep.units()]))
        return results

    monkeypatch.setattr(study, "_compute_run", fake_compute)
    monkeypatch.setattr(study, "run_sweeps", fake_sweeps)
    study.run_paper_study(tmp_path, compiled=compiled, progress=False)
    return seen


def test_the_compiled_study_is_the_stored_study_with_both_compiled_paths(monkeypatch, tmp_path):
    reference = _captured_runs(monkeypatch, tmp_path, compiled=False)
    compiled = _captured_runs(monkeypatch, tmp_path, compiled=True)
    assert len(compiled) == len(reference) == 6 + 13  # 6 single-network runs (2 with the global range), 13 units of 50 networks
    for ref, run in zip(reference, compiled):
        assert ref.backend == "torch" and run.backend == "fused"
        assert len(run.estimators) == len(ref.estimators)
        for r, c in zip(ref.estimators, run.estimators):
            if r.name in ("kde", "akde"):
                assert c.kwargs == {**r.kwargs, "engine": "fused"} and c.n_points == r.n_points
                assert c.label != r.label and "engine=fused" in c.label
            else:
                assert c == r
        # everything else is the stored study's
        assert run.replace(backend="torch", estimators=ref.estimators) == ref
        assert run.key() != ref.key()
    # the global-range runs re-run the single networks (after them), with their engines
    assert [c.estimators[0].name for c in compiled[-2:]] == ["max", "max"]
    assert [c.activation for c in compiled[-2:]] == ["relu", "tanh"] and compiled[-1].seeds == (0,)


def test_the_compiled_study_refuses_the_stored_directories(monkeypatch, tmp_path):
    """The stored study's directory, however named (a relative path, a symbolic link), anything
    inside it or the repository's results/, and a directory that contains it are refused before
    any work; a directory beside them is taken."""
    fail = lambda *a, **k: pytest.fail("the study ran")  # noqa: E731
    monkeypatch.setattr(study, "run_sweeps", fail)
    monkeypatch.setattr(study, "_compute_run", fail)
    stored = tmp_path / "store" / "paper"
    stored.mkdir(parents=True)
    monkeypatch.setattr(study, "PAPER_RESULTS", stored)
    (tmp_path / "link").symlink_to(stored)
    monkeypatch.chdir(tmp_path / "store")
    repo_results = study.Path(study.__file__).resolve().parent.parent / "results"
    for cache in (stored, "paper", "paper/sub", tmp_path / "link", tmp_path / "link" / "sub", tmp_path / "store",
                  repo_results, repo_results / "paper", repo_results / "scratch" / "x"):
        with pytest.raises(ValueError, match="cache of its own"):
            study.run_paper_study(cache, compiled=True, progress=False)
    ran = []
    monkeypatch.setattr(study, "run_sweeps", lambda sweeps, cache, **k: ran.append(cache) or [])
    study.run_paper_study(tmp_path / "beside", parts=("l2",), compiled=True, progress=False)
    assert ran == [tmp_path / "beside"]


def test_the_command_line_needs_a_cache_for_fused(monkeypatch, capsys):
    monkeypatch.setattr(study, "run_paper_study", lambda *a, **k: pytest.fail("the study ran"))
    assert cli.main(["paper", "--fused"]) == 2
    err = capsys.readouterr().err
    assert "--fused" in err and "--cache" in err and "Traceback" not in err


def test_the_command_line_passes_fused_on(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(study, "run_paper_study", lambda cache, **k: calls.append((cache, k)))
    assert cli.main(["paper", "--fused", "--cache", str(tmp_path), "--parts", "l2", "--no-progress"]) == 0
    assert calls == [(tmp_path, dict(parts=("l2",), executor=None, progress=False, compiled=True))]


def test_a_compiled_configuration_records_the_compiled_labels():
    config = study.compiled_engines(TrainConfig(activation="tanh", seeds=(0, 1), epochs=3, n_log_points=3,
                                                estimators=(study.settings.EBAB,
                                                            EstimatorSpec.make("akde", alpha=0.01),
                                                            EstimatorSpec.make("kde", noise_var=1e-3))))
    table = train(config, progress=False).table()
    assert set(table.estimator) == {"ebab(n_bins=30)", "akde(alpha=0.01,engine=fused)",
                                    "kde(engine=fused,noise_var=0.001)"}
    assert table.i_xt.notna().all()


def test_comparison_names_the_commits_that_computed_each_study():
    """scripts/compare_compiled_study.py: every run's commit once (short, ``-dirty`` kept, the
    global-range run included), unknown commits left out."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "compare_compiled_study.py"
    spec = importlib.util.spec_from_file_location("compare_compiled_study", path)
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script
    spec.loader.exec_module(script)

    def run(commit):
        return SimpleNamespace(meta={"git_commit": commit} if commit is not None else {})

    act = SimpleNamespace(runs=[run("a" * 40), run("b" * 40 + "-dirty")])
    l2 = SimpleNamespace(runs=[run("a" * 40), run(None)])
    assert script.commits((act, l2, run("a" * 40), run("c" * 40))) == "commits aaaaaaa, bbbbbbb-dirty, ccccccc"
    assert script.commits((SimpleNamespace(runs=[run("d" * 40)]), SimpleNamespace(runs=[]), run(None), run(""))) \
        == "commit ddddddd"
    assert script.commits((SimpleNamespace(runs=[]), SimpleNamespace(runs=[]), run(None), run(None))) \
        == "an unknown commit"

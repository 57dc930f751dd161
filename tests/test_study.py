"""The study definition and how chapters obtain results."""

import os
import subprocess
import sys

import pytest

from ibtools import study
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.sweep import SweepConfig, run_sweep


def test_study_shape():
    acts, l2 = study.activation_sweep(), study.l2_sweep()
    assert len(acts.units()) == 8 and len(l2.units()) == 6
    assert all(u.epochs == 8000 and len(u.seeds) == 50 for u in acts.units() + l2.units())
    relu = [u for u in acts.units() if u.activation == "relu"][0]
    assert relu.key() == l2.units()[0].key()  # ReLU without L2 is one unit, shared by both sweeps
    assert len(relu.schedule()) == 274
    assert study.estimator_label("ebab") == "ebab(n_bins=30)"
    with pytest.raises(ValueError, match="unknown study estimator 'ksg'"):
        study.estimator_label("ksg")
    with pytest.raises(ValueError, match="unknown study estimator 'ebab_10bins'"):
        study.estimator_label("ebab_10bins", sensitivity=False)


def test_obtain_reads_committed_results_and_never_writes_there(tmp_path):
    tiny = SweepConfig(TrainConfig(epochs=6, estimators=(EstimatorSpec("ebab"),)), seeds=(0, 1), seeds_per_unit=2)
    committed, scratch = tmp_path / "committed", tmp_path / "scratch"
    committed.mkdir()
    first = study.obtain(tiny, committed, scratch, progress=False)  # nothing committed: computed in scratch
    assert list(committed.iterdir()) == [] and list(scratch.glob("*.json"))
    run_sweep(tiny, committed, progress=False)  # now "commit" it
    stamps = {p: p.stat().st_mtime_ns for p in committed.iterdir()}
    again = study.obtain(tiny, committed, tmp_path / "unused", progress=False)
    assert not (tmp_path / "unused").exists()
    assert {p: p.stat().st_mtime_ns for p in committed.iterdir()} == stamps
    assert again.table().equals(first.table())


def test_results_location_follows_the_environment(tmp_path):
    code = "from ibtools.study import PAPER_RESULTS; print(PAPER_RESULTS)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "IBTOOLS_RESULTS": str(tmp_path)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path)

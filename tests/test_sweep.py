"""Sweeps: caching, resume after a killed process, corrupt-cache detection, command line."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.sweep import ResultCache, SweepConfig, load_sweep, run_sweep, work_summary

BASE = TrainConfig(epochs=40, estimators=(EstimatorSpec("ebab"),), n_log_points=30)
SWEEP = SweepConfig(BASE, activations=("tanh", "relu"), l2s=(0.0, 0.01), seeds=(0, 1, 2, 3), seeds_per_unit=2)
CLI_ARGS = ["sweep", "--activations", "tanh", "relu", "--l2", "0", "0.01", "--seeds", "0-3", "--seeds-per-unit", "2",
            "--epochs", "40", "--n-log-points", "30", "--no-estimate", "--no-progress", "--threads", "1"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_units_and_work():
    units = SWEEP.units()
    assert len(units) == 8 and {u.seeds for u in units} == {(0, 1), (2, 3)}
    w = work_summary(units)
    assert w["networks"] == 16 and w["network_epochs"] == 640
    with pytest.raises(ValueError, match="unknown activation"):
        SweepConfig(BASE, activations=("tanh", "gelu"))
    with pytest.raises(ValueError, match="distinct"):
        SweepConfig(BASE, l2s=(0.0, 0.0))
    with pytest.raises(ValueError, match="seeds_per_unit"):
        SweepConfig(BASE, seeds_per_unit=0)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    return root, run_sweep(SWEEP, root, progress=False)


def test_finished_units_are_not_recomputed(clean, monkeypatch):
    root, first = clean
    stamps = {p: p.stat().st_mtime_ns for p in root.glob("*.npz")}
    trained = []  # every unit the sweep would train (none: all are finished)

    def counting_train(config, *args, **kwargs):
        trained.append(config)
        raise AssertionError(f"finished unit recomputed: {config.activation} l2={config.l2} seeds {config.seeds}")

    monkeypatch.setattr("ibtools.sweep.train", counting_train)
    messages = []
    again = run_sweep(SWEEP, root, progress=False, log=messages.append)
    assert trained == []
    assert any("8 already finished" in m and "to do: 0 networks" in m for m in messages), messages
    assert {p: p.stat().st_mtime_ns for p in root.glob("*.npz")} == stamps
    assert again.table().equals(first.table())
    assert len(load_sweep(root).runs) == 8


def test_missing_and_stored_units(clean, tmp_path):
    from ibtools.sweep import missing_units, stored_units

    root, _ = clean
    assert missing_units(SWEEP, root) == []
    assert stored_units(SWEEP, root)[0]
    for f in root.glob("*"):
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    gone = sorted(tmp_path.glob("*.npz"))[:2]
    gone[0].unlink()
    gone[1].with_suffix(".json").unlink()  # a result without its sidecar is not stored either
    missing = missing_units(SWEEP, tmp_path)
    assert sorted(missing) == sorted(p.stem for p in gone)
    ok, names = stored_units(SWEEP, tmp_path)
    assert not ok and len(names.split(", ")) == 8


def test_corrupt_unit_is_detected_and_recomputed(clean, tmp_path):
    root, first = clean
    work = tmp_path / "cache"
    work.mkdir()
    for p in root.iterdir():
        if p.is_file():
            (work / p.name).write_bytes(p.read_bytes())
    victim = sorted(work.glob("*.npz"))[3]
    victim.write_bytes(victim.read_bytes()[:-100])  # truncated, as by a crash of another tool
    with pytest.warns(RuntimeWarning, match="unusable.*recomputed"):
        result = run_sweep(SWEEP, work, progress=False)
    assert result.table().equals(first.table())
    assert any((work / "quarantine").iterdir())


def test_stale_unit_is_not_trusted(clean, tmp_path):
    root, _ = clean
    cache = ResultCache(root)
    unit = SWEEP.units()[0]
    stale = tmp_path / "stale"
    stale.mkdir()
    # a result stored under this unit's name but computed for another configuration
    other = run_sweep(SweepConfig(BASE.replace(epochs=20), activations=("tanh",), seeds=(0, 1), seeds_per_unit=2),
                      tmp_path / "other", progress=False).runs[0]
    other.save(stale / cache.name(unit))
    with pytest.warns(RuntimeWarning, match="another configuration"):
        assert ResultCache(stale).load(unit) is None


def _cli(args, **kw):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "ibtools", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def test_sweep_killed_mid_run_resumes_without_losing_or_redoing_work(clean, tmp_path):
    root, first = clean
    cache = tmp_path / "killed"
    proc = _cli(CLI_ARGS + ["--cache", str(cache), "--checkpoint-every", "0.2"])
    deadline = time.time() + 240
    while time.time() < deadline and len(list(cache.glob("*.json"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait()
    finished = {p.name: (_digest(p), p.stat().st_mtime_ns) for p in cache.glob("*.npz")}
    assert 2 <= len(finished) < 8, "the kill should land in the middle of the sweep"
    # a half-written file can only be a hidden temporary; no visible result is partial
    assert all(p.name.startswith(".") for p in cache.glob("*.partial"))
    out = _cli(CLI_ARGS + ["--cache", str(cache)])
    stdout, stderr = out.communicate(timeout=600)
    assert out.returncode == 0, stderr
    assert f"{len(finished)} already finished" in stderr
    assert f"work: {8 - len(finished)} unit(s)" in stderr
    for name, (digest, mtime) in finished.items():  # finished units untouched
        assert _digest(cache / name) == digest and (cache / name).stat().st_mtime_ns == mtime
    assert load_sweep(cache, SWEEP.units()).table().equals(first.table())  # nothing lost, same numbers


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--activation", "gelu", "--out", "x"], "unknown activation 'gelu'"),
        (["run", "--epochs", "-5", "--out", "x"], "epochs must be an integer >= 1"),
        (["run", "--estimators", "ksg", "--out", "x"], "unknown estimator 'ksg'"),
        (["run", "--estimators", "kde:sigma=1", "--out", "x"], "has no parameter"),
        (["run", "--seeds", "9-2", "--out", "x"], "seeds must look like"),
        (["run", "--lr", "0", "--out", "x"], "lr must be > 0"),
        (["run"], "required: --out"),
        (["sweep", "--activations", "relu", "swish2", "--cache", "x"], "unknown activation 'swish2'"),
        (["sweep", "--seeds-per-unit", "0", "--cache", "x"], "--seeds-per-unit must be an integer >= 1"),
        (["sweep", "--workers", "2", "--scheduler", "tcp://x:1", "--cache", "x"], "not allowed with"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_errors(args, message, tmp_path):
    proc = _cli(args, cwd=tmp_path)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert message in stderr
    assert "Traceback" not in stderr


def test_cli_run_writes_results(tmp_path):
    proc = _cli(["run", "--epochs", "5", "--seeds", "0,2", "--out", str(tmp_path / "r"), "--no-progress"])
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "work: 1 unit(s), 2 networks, 10 network-epochs" in stderr and "estimated time here" in stderr
    from ibtools.results import load_run

    r = load_run(tmp_path / "r")
    assert r.config.seeds == (0, 2) and r.config.epochs == 5

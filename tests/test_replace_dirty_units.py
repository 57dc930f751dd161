"""scripts/replace_dirty_units.py: which units it calls dirty, what it copies, what it compares
and when it refuses to replace a stored unit."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("replace_dirty_units", ROOT / "scripts" / "replace_dirty_units.py")
rdu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rdu)


def _unit(folder: Path, name: str, commit: str, config=None, **arrays):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{name}.npz", **arrays)
    (folder / f"{name}.json").write_text(json.dumps({"config": config or {"activation": name},
                                                     "meta": {"git_commit": commit}}))


def test_prepare_copies_clean_units_only_and_compare_reports_each_difference(tmp_path, capsys):
    results, scratch = tmp_path / "results", tmp_path / "scratch"
    a = np.arange(6, dtype=np.float32)
    _unit(results, "clean", "abc1234", a=a)
    _unit(results, "dirty1", "def5678" + "0" * 33 + "-dirty", a=a, b=np.float16([1.5, 2.0, 0.1]),
          c=np.array([np.nan, np.nan, np.nan, 1.0, 2.0, 3.0]))
    _unit(results, "dirty2", "", a=a)
    assert rdu.dirty_units(results) == ["dirty1", "dirty2"]
    assert rdu.prepare(results, scratch) == ["dirty1", "dirty2"]
    assert sorted(p.name for p in scratch.iterdir()) == ["clean.json", "clean.npz"]

    # nothing recomputed yet: a problem, nothing replaced
    assert rdu.compare(results, scratch, replace=True) == 1
    assert json.loads((results / "dirty1.json").read_text())["meta"]["git_commit"].endswith("-dirty")

    changed = a.copy()
    changed[2] += 0.25
    _unit(scratch, "dirty1", "9999999" + "0" * 33, a=changed, b=np.float32([1.5, 2.0, 0.1]),
          c=np.array([np.nan, np.nan, 5.0, 1.0, 2.0, 3.5]))
    _unit(scratch, "dirty2", "8888888", a=a)
    assert rdu.compare(results, scratch, replace=False) == 0
    out = capsys.readouterr().out
    assert "a: 1 of 6 values differ, largest by 0.25" in out
    assert "b: dtype float16 -> float32, equal at float16" in out
    assert "c: 2 of 6 values differ, largest by 0.5, 1 NaN on one side only" in out  # NaN = NaN is no difference
    assert "dirty1: def5678-dirty -> 9999999: a: 1 of 6" in out
    assert "dirty2: unknown commit -> 8888888: bit for bit equal" in out
    assert rdu.dirty_units(results) == ["dirty1", "dirty2"]  # not replaced without --replace
    assert rdu.compare(results, scratch, replace=True) == 1  # dirty1 differs: kept until accepted
    assert "dirty1: differs from the stored unit; not replaced" in capsys.readouterr().out
    assert rdu.dirty_units(results) == ["dirty1"]  # dirty2 (bit for bit equal) was replaced
    assert rdu.compare(results, scratch, replace=True, accept_differences=True) == 0
    assert rdu.dirty_units(results) == []
    assert np.array_equal(np.load(results / "dirty1.npz")["a"], changed)


def test_compare_refuses_a_dirty_or_different_recomputation(tmp_path, capsys):
    results, scratch = tmp_path / "results", tmp_path / "scratch"
    _unit(results, "u", "abc-dirty", config={"activation": "relu"}, a=np.zeros(3))
    _unit(scratch, "u", "def-dirty", config={"activation": "relu"}, a=np.zeros(3))
    assert rdu.compare(results, scratch, replace=True) == 1
    assert "not from a clean commit either" in capsys.readouterr().out
    _unit(scratch, "u", "def", config={"activation": "tanh"}, a=np.zeros(3))
    assert rdu.compare(results, scratch, replace=True) == 1
    assert "another configuration" in capsys.readouterr().out
    assert rdu.dirty_units(results) == ["u"]
    shutil.rmtree(scratch)

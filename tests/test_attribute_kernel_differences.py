"""scripts/attribute_kernel_differences.py: its comparison and verdict, and that a revision's
estimates come from that revision's code (not from the working tree on sys.path)."""

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ibtools.estimators import get_estimator

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("attribute_kernel_differences",
                                               ROOT / "scripts" / "attribute_kernel_differences.py")
akd = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = akd  # dataclasses look their module up there
_spec.loader.exec_module(akd)


def test_compare_estimates_rounds_to_the_stored_dtype_and_skips_nan_entries():
    stored = np.float32([[1.0, np.nan], [2.5, 3.0]])
    got = np.array([[1.0 + 1e-12, 7.0], [2.5, 3.0]])  # equal once rounded to float32; 7.0 is not stored
    c = akd.compare_estimates(got, stored)
    assert (c.differ, c.compared, c.largest) == (0, 3, 0.0)
    c = akd.compare_estimates(np.array([[1.0, 0.0], [2.5, 3.25]]), stored)
    assert (c.differ, c.compared, c.largest) == (1, 3, 0.25)
    assert "1 of 3 differ" in str(c)
    # a NaN estimate where a number is stored is a difference
    assert akd.compare_estimates(np.array([[np.nan, 0.0], [2.5, 3.0]]), stored).differ == 1


def test_explained_needs_every_comparison_equal_something_compared_and_something_moved():
    same, off, empty = akd.Comparison(0, 5, 0.0), akd.Comparison(1, 5, 1e-6), akd.Comparison(0, 0, 0.0)
    assert akd.explained([same, same], [same, same], [off, same])
    assert not akd.explained([same, off], [same, same], [off, off])
    assert not akd.explained([same], [off], [off])
    assert not akd.explained([same], [empty], [off])
    assert not akd.explained([same], [same], [same])  # nothing moved: nothing to attribute
    assert not akd.explained([same], [], [off])  # a revision's comparisons missing
    assert not akd.explained([], [], [])


def test_unknown_revision_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown git revision"):
        akd.extract_revision("no-such-revision-xyz", tmp_path)


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def two_revisions(tmp_path_factory):
    """A scratch repository with two commits: the working tree's ibtools (HEAD~1), then the same with
    every estimate doubled (HEAD; doubling commutes with rounding to float32, as storing does)."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "ibtools", repo / "ibtools", ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q")
    _git(repo, "add", "ibtools")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "as is")
    init = repo / "ibtools" / "estimators" / "__init__.py"
    init.write_text(init.read_text() + "\n_orig = get_estimator\n"
                    "def get_estimator(name):\n"
                    "    fn = _orig(name)\n"
                    "    return lambda *a, **k: tuple(v * 2.0 for v in fn(*a, **k))\n")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "doubled")
    return repo


def test_each_revision_estimates_with_its_own_code(tmp_path, two_revisions):
    """Each revision's estimates must come out of that revision, although the working tree's
    ibtools is importable from the test process (a first version ran ``python -c`` in the
    repository and imported the working tree)."""
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(2, 64, 3)).astype(np.float32), rng.normal(size=(2, 64, 2)).astype(np.float32)]
    labels = rng.integers(0, 2, size=64)
    activity = tmp_path / "activity.npz"
    np.savez(activity, n_layers=2, labels=labels, **{f"layer_{i}": a for i, a in enumerate(layers)})
    specs = [("akde(alpha=0.1)", "akde", {"alpha": 0.1})]
    direct = np.array([[get_estimator("akde")(a[k], labels, alpha=0.1) for k in range(2)] for a in layers])

    first = akd.estimates_at_revision("HEAD~1", activity, specs, tmp_path / "a", repo=two_revisions)
    second = akd.estimates_at_revision("HEAD", activity, specs, tmp_path / "b", repo=two_revisions)
    assert np.array_equal(first["akde(alpha=0.1)"], direct)
    assert np.array_equal(second["akde(alpha=0.1)"], direct * 2.0)


def test_attribute_names_the_change_that_moved_a_unit_and_nothing_else(tmp_path, two_revisions, capsys):
    """A unit stored with the doubling estimators and recomputed with the others: explained by the
    change from HEAD (doubling) to HEAD~1; not by a revision against itself; not when nothing moved."""
    from ibtools.config import EstimatorSpec, TrainConfig
    from ibtools.training import train

    config = TrainConfig(activation="tanh", seeds=(0, 1), epochs=2,
                         estimators=(EstimatorSpec.make("ebab"), EstimatorSpec.make("akde", alpha=0.1)))
    run = train(config, progress=False)
    stored, recomputed = tmp_path / "stored", tmp_path / "recomputed"
    stored.mkdir()
    recomputed.mkdir()
    run.save(recomputed / "unit")
    # the stored unit: the same run, its kernel estimates as the doubling estimators give them
    k = [s.name for s in config.estimators].index("akde")
    with np.load(recomputed / "unit.npz") as f:
        arrays = {name: f[name] for name in f.files}
    arrays[f"mi_{k}"] = arrays[f"mi_{k}"] * np.float32(2.0)
    np.savez_compressed(stored / "unit.npz", **arrays)
    side = json.loads((recomputed / "unit.json").read_text())
    side["npz_sha256"] = hashlib.sha256((stored / "unit.npz").read_bytes()).hexdigest()
    (stored / "unit.json").write_text(json.dumps(side))

    assert akd.attribute("unit", stored, recomputed, "HEAD", "HEAD~1", 0, repo=two_revisions)
    assert "unit: explained by the change from HEAD to HEAD~1" in capsys.readouterr().out
    assert not akd.attribute("unit", stored, recomputed, "HEAD~1", "HEAD~1", 0, repo=two_revisions)
    assert not akd.attribute("unit", recomputed, recomputed, "HEAD", "HEAD~1", 0, repo=two_revisions)
    assert "nothing differs at epoch 0" in capsys.readouterr().out

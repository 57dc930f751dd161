"""Say which code change moved a stored unit's kernel estimates: recompute them on the same
activity with the estimators of two git revisions and compare each with the stored (dirty) unit
and with its clean recomputation.

``scripts/replace_dirty_units.py compare`` reports *that* a recomputed unit's adaptive-KDE or KDE
arrays differ from the stored dirty unit while its training (loss, EBAB) is the same. This script
checks *why*, at one recorded epoch (default 0)::

    python scripts/attribute_kernel_differences.py results/paper /work/wt/clean/scratch_paper \\
        --before 31431c6^ --after 31431c6 --units relu_l2-0_s0-49x50_ef8eaa86d242

For each unit it retrains the whole ensemble with the current code up to ``--epoch`` (recording
the raw activity there), checks that the training and test loss at that epoch equal the stored
unit's (else the activity is not the one the stored numbers were computed on, and the unit is
reported as not attributable), then computes every kernel estimator of the unit on that activity,
network by network, with the ``ibtools/estimators`` of each revision (``git archive`` into a
temporary folder, one subprocess per revision), and prints how many values differ from the stored
and the recomputed unit, and by how much (bits).

The difference is **explained** by the change between the two revisions when the stored and the
recomputed unit differ at that epoch and, for every kernel estimator recorded there, the
``--before`` estimates equal the stored unit bit for bit and the ``--after`` estimates equal the
recomputation bit for bit. Estimators not recorded at the epoch are named and left out. The exit
status is 0 only if every unit asked for is explained.

CPU time: a few seconds of training and about 20 s per revision for three aKDE settings of a
50-network unit of the 12-bit task (6 layers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ("akde", "kde")

# run in a subprocess whose PYTHONPATH holds one revision's ibtools: every kernel estimate of every
# (layer, network) of the activity file, saved under the estimator's label
_ESTIMATE = r"""
import json, sys
from pathlib import Path
import numpy as np
import ibtools
from ibtools.estimators import get_estimator
acts, specs, out, src = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], Path(sys.argv[4]).resolve()
if src not in Path(ibtools.__file__).resolve().parents:
    sys.exit(f"imported {ibtools.__file__}, not the ibtools extracted in {src}")
with np.load(acts) as f:
    layers = [f[f"layer_{i}"] for i in range(int(f["n_layers"]))]
    labels = f["labels"]
res = {}
for label, name, kwargs in specs:
    fn = get_estimator(name)
    m = np.full((len(layers), layers[0].shape[0], 2), np.nan)
    for i, layer in enumerate(layers):
        for k in range(layer.shape[0]):
            m[i, k] = fn(layer[k], labels, **kwargs)
    res[label] = m
np.savez(out, **res)
"""


@dataclass(frozen=True)
class Comparison:
    """How one revision's estimates of one estimator compare with a unit's stored values."""

    differ: int  # values that are not equal (float32, as stored)
    compared: int  # values that are numbers in the unit
    largest: float  # largest absolute difference, bits

    def __str__(self) -> str:
        if not self.differ:
            return f"equal ({self.compared} values)"
        return f"{self.differ} of {self.compared} differ, largest by {self.largest:.2g} bits"


def compare_estimates(got: np.ndarray, stored: np.ndarray) -> Comparison:
    """Compare estimates (float64, computed) with stored ones, after rounding to the stored dtype,
    on the entries that are numbers in ``stored``."""
    got = got.astype(stored.dtype).astype(np.float64)
    ref = stored.astype(np.float64)
    mask = np.isfinite(ref)
    diff = np.abs(got - ref)[mask]
    differ = int((~(diff == 0)).sum())  # a NaN estimate where a number is stored differs too
    largest = float(np.nanmax(diff)) if diff.size and np.isfinite(diff).any() else 0.0
    return Comparison(differ, int(mask.sum()), largest)


def explained(before_vs_stored: list[Comparison], after_vs_recomputed: list[Comparison],
              stored_vs_recomputed: list[Comparison]) -> bool:
    """The verdict, over the estimators compared (the three lists in the same order, one entry per
    estimator): something differs between the stored and the recomputed unit, and the old code
    gives the stored numbers and the new code the recomputed ones, bit for bit, with at least one
    value compared for every estimator."""
    n = len(stored_vs_recomputed)
    if not n or len(before_vs_stored) != n or len(after_vs_recomputed) != n:
        return False
    if not any(c.differ for c in stored_vs_recomputed):
        return False
    return all(c.differ == 0 and c.compared > 0 for c in list(before_vs_stored) + list(after_vs_recomputed))


def _is_revision(revision: str, repo: Path = ROOT) -> bool:
    ok = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
                        capture_output=True, text=True)
    return ok.returncode == 0


def extract_revision(revision: str, into: Path, repo: Path = ROOT) -> Path:
    """``ibtools`` as of ``revision``, extracted under ``into``; returns the folder to put on the
    ``PYTHONPATH``. Raises ValueError for a revision git does not know."""
    if not _is_revision(revision, repo):
        raise ValueError(f"unknown git revision {revision!r} in {repo}")
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "ibtools.tar"
    subprocess.run(["git", "-C", str(repo), "archive", "-o", str(archive), revision, "ibtools"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return into


def estimates_at_revision(revision: str, activity: Path, specs: list[tuple[str, str, dict]], workdir: Path,
                          repo: Path = ROOT) -> dict[str, np.ndarray]:
    """Every kernel estimate ``{label: (layer, network, 2) bits}`` of the saved activity, computed
    by the estimators of ``revision`` in a subprocess."""
    path = extract_revision(revision, workdir / "src", repo)
    out = (workdir / "estimates.npz").resolve()
    activity = Path(activity).resolve()
    env = dict(os.environ, PYTHONPATH=str(path))
    # run in the extracted folder: ``python -c`` puts the working directory first on sys.path
    run = subprocess.run([sys.executable, "-c", _ESTIMATE, str(activity), json.dumps(specs), str(out), str(path)],
                         env=env, cwd=path, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"the estimators of {revision} failed:\n{run.stderr[-2000:]}")
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def attribute(name: str, results: Path, scratch: Path, before: str, after: str, epoch: int,
              repo: Path = ROOT) -> bool:
    """Print the comparison for one unit; return whether the difference is explained."""
    from ibtools.config import TrainConfig
    from ibtools.results import load_run
    from ibtools.tasks import load_task
    from ibtools.training import train

    config = TrainConfig.from_dict(json.loads((results / f"{name}.json").read_text())["config"])
    stored = load_run(results / name, expected=config)
    recomputed = load_run(scratch / name, expected=config)
    kernels = [s for s in config.estimators if s.name in KERNEL]
    if not kernels:
        print(f"{name}: no kernel estimator; nothing to attribute")
        return False
    if epoch not in set(stored.epochs):
        print(f"{name}: epoch {epoch} is not a stored evaluation epoch")
        return False
    main = [s for s in config.estimators if s.name not in KERNEL][:1]
    again = train(config.replace(estimators=tuple(main), record_activations=(epoch,)), stop_at=epoch,
                  progress=False)
    i, j = list(stored.epochs).index(epoch), list(again.epochs).index(epoch)
    for key in ("train_loss", "test_loss"):
        if not np.array_equal(again.history[key][j], stored.history[key][i]):
            print(f"{name}: {key} at epoch {epoch} differs from the stored unit, so the activity is not the one "
                  "its numbers were computed on; not attributable")
            return False
    scheduled = [s for s in kernels if epoch in set(config.estimator_schedule(s).tolist())]
    for s in kernels:
        if s not in scheduled:
            print(f"{name}: {s.label} is not recorded at epoch {epoch}; not compared")
    if not scheduled:
        print(f"{name}: no kernel estimator is recorded at epoch {epoch}; nothing to attribute")
        return False
    specs = [(s.label, s.name, dict(s.kwargs)) for s in scheduled]
    moved = [compare_estimates(recomputed.mi[label][i].astype(np.float64), stored.mi[label][i])
             for label, _, _ in specs]
    for (label, _, _), c in zip(specs, moved):
        print(f"{name}: {label} at epoch {epoch}: recomputed unit against the stored one: {c}")
    if not any(c.differ for c in moved):
        print(f"{name}: NOT explained by the change from {before} to {after} (nothing differs at epoch {epoch}: "
              "nothing to attribute)")
        return False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        layers = again.activations[epoch]
        np.savez(tmp / "activity.npz", n_layers=len(layers), labels=load_task(config.task).y,
                 **{f"layer_{k}": np.asarray(a) for k, a in enumerate(layers)})
        old = estimates_at_revision(before, tmp / "activity.npz", specs, tmp / "before", repo)
        new = estimates_at_revision(after, tmp / "activity.npz", specs, tmp / "after", repo)
    first, second = [], []
    for label, _, _ in specs:
        want_old, want_new = stored.mi[label][i], recomputed.mi[label][i]
        for role, rev, est in (("before", before, old), ("after", after, new)):
            vs_old, vs_new = compare_estimates(est[label], want_old), compare_estimates(est[label], want_new)
            print(f"{name}: {label} at epoch {epoch}, estimators of {rev} ({role}): stored unit {vs_old}; "
                  f"recomputed unit {vs_new}")
            (first if role == "before" else second).append(vs_old if role == "before" else vs_new)
    ok = explained(first, second, moved)
    print(f"{name}: {'explained' if ok else 'NOT explained'} by the change from {before} to {after}")
    return ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, help="folder of the stored units")
    p.add_argument("scratch", type=Path, help="folder of their clean recomputations")
    p.add_argument("--before", required=True, help="git revision whose estimators made the stored numbers")
    p.add_argument("--after", required=True, help="git revision whose estimators make the recomputed ones")
    p.add_argument("--units", nargs="+", required=True, help="unit names (sidecar file names without .json)")
    p.add_argument("--epoch", type=int, default=0, help="recorded epoch to compare (default 0)")
    args = p.parse_args(argv)
    for folder in (args.results, args.scratch):
        if not folder.is_dir():
            p.error(f"{folder} is not a directory of stored units")
    missing = [u for u in args.units for f in (args.results, args.scratch) if not (f / f"{u}.json").exists()]
    if missing:
        p.error("no such unit in both folders: " + ", ".join(sorted(set(missing))))
    if args.epoch < 0:
        p.error(f"--epoch must be >= 0, got {args.epoch}")
    for rev in (args.before, args.after):
        if not _is_revision(rev):
            p.error(f"unknown git revision {rev!r} in {ROOT}")
    results = [attribute(u, args.results, args.scratch, args.before, args.after, args.epoch) for u in args.units]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Replace stored units whose sidecar says ``-dirty`` by the same units recomputed from a clean
commit, after comparing the two array by array.

Stored results must come from a clean, committed tree. A unit computed from a tree with
uncommitted changes cannot show which code made it, so it is recomputed (same configuration, so
same cache name) in a clean worktree, and kept only as evidence of what moved. Three steps::

    # 1. a clean worktree of the current commit, and a scratch cache holding the clean units
    git worktree add --detach /work/wt/clean HEAD
    python scripts/replace_dirty_units.py prepare results/paper /work/wt/clean/scratch_paper
    # 2. the study there, into the scratch cache: only the dirty units are missing, so only they
    #    are computed (two processes may share the cache; each unit is locked while computed)
    (cd /work/wt/clean && python -m ibtools paper --parts activations l2 --cache scratch_paper)
    # 3. compare and, with --replace, copy the recomputed units over the stored ones
    python scripts/replace_dirty_units.py compare results/paper /work/wt/clean/scratch_paper --replace

``compare`` prints, per unit, every array that differs and by how much (the largest absolute
difference, in the array's units: bits for estimates), and refuses to replace a unit whose
recomputation is itself dirty, missing, or of another configuration. Afterwards run
``tests/test_provenance.py`` on the replaced units and the claims' tests, and commit with the
printed summary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np


def _sidecar(path: Path) -> dict:
    return json.loads(path.read_text())


def dirty_units(results: Path) -> list[str]:
    """Names (without suffix) of the units in ``results`` whose sidecar's commit ends in ``-dirty``
    or is unknown."""
    names = []
    for side in sorted(results.glob("*.json")):
        commit = _sidecar(side).get("meta", {}).get("git_commit", "")
        if not commit or commit.endswith("-dirty"):
            names.append(side.stem)
    return names


def prepare(results: Path, scratch: Path) -> list[str]:
    """Copy every clean unit of ``results`` into ``scratch`` (so that a study run there computes
    only the dirty ones); return the dirty units' names."""
    dirty = set(dirty_units(results))
    scratch.mkdir(parents=True, exist_ok=True)
    for side in sorted(results.glob("*.json")):
        if side.stem in dirty:
            continue
        for path in (side, side.with_suffix(".npz")):
            if not (scratch / path.name).exists():
                shutil.copy2(path, scratch / path.name)
    return sorted(dirty)


def array_differences(stored: Path, recomputed: Path) -> dict[str, str]:
    """``{array name: what differs}`` between two result files (empty when bit for bit equal)."""
    out = {}
    with np.load(stored, allow_pickle=False) as a, np.load(recomputed, allow_pickle=False) as b:
        for name in sorted(set(a.files) | set(b.files)):
            if name not in a.files or name not in b.files:
                out[name] = "only in the " + ("recomputed" if name in b.files else "stored") + " unit"
                continue
            x, y = a[name], b[name]
            if x.shape != y.shape:
                out[name] = f"shape {x.shape} -> {y.shape}"
            elif x.dtype != y.dtype and np.array_equal(x.astype(y.dtype), y, equal_nan=True):
                out[name] = f"dtype {x.dtype} -> {y.dtype}, values equal after rounding the recomputed"
            elif not np.array_equal(x, y, equal_nan=True):
                if np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number):
                    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
                    d = d[np.isfinite(d)]
                    out[name] = (f"{int(np.sum(x != y))} of {x.size} values differ, largest by "
                                 f"{d.max() if d.size else float('nan'):.3g}")
                else:
                    out[name] = "values differ"
    return out


def compare(results: Path, scratch: Path, replace: bool) -> int:
    problems, lines = 0, []
    for name in dirty_units(results):
        new_side, new_npz = scratch / f"{name}.json", scratch / f"{name}.npz"
        if not (new_side.exists() and new_npz.exists()):
            print(f"{name}: not recomputed yet (no {new_side.name} with its .npz in {scratch})")
            problems += 1
            continue
        old, new = _sidecar(results / f"{name}.json"), _sidecar(new_side)
        commit = new.get("meta", {}).get("git_commit", "")
        if not commit or commit.endswith("-dirty"):
            print(f"{name}: the recomputation is not from a clean commit either ({commit!r}); not replaced")
            problems += 1
            continue
        if old.get("config") != new.get("config"):
            print(f"{name}: the recomputed unit has another configuration; not replaced")
            problems += 1
            continue
        diffs = array_differences(results / f"{name}.npz", new_npz)
        what = "bit for bit equal" if not diffs else "; ".join(f"{k}: {v}" for k, v in diffs.items())
        print(f"{name}: {old.get('meta', {}).get('git_commit', '')[:13] or 'unknown commit'} -> {commit[:7]}: {what}")
        lines.append(f"{name} ({what})")
        if replace:
            shutil.copy2(new_npz, results / new_npz.name)
            shutil.copy2(new_side, results / new_side.name)
    if lines:
        print("\nsummary for the commit message:\n" + "\n".join(f"- {line}" for line in lines))
    return 1 if problems else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="the dirty units of a results directory")
    s.add_argument("results", type=Path)
    s = sub.add_parser("prepare", help="copy the clean units into a scratch cache")
    s.add_argument("results", type=Path)
    s.add_argument("scratch", type=Path)
    s = sub.add_parser("compare", help="compare the recomputed units with the stored dirty ones")
    s.add_argument("results", type=Path)
    s.add_argument("scratch", type=Path)
    s.add_argument("--replace", action="store_true", help="copy the recomputed units over the stored ones")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        p.error(f"{args.results} is not a directory of stored units")
    if args.command == "list":
        print("\n".join(dirty_units(args.results)) or "no dirty units")
        return 0
    if args.command == "prepare":
        dirty = prepare(args.results, args.scratch)
        print(f"{len(dirty)} dirty unit(s) to recompute into {args.scratch}: " + (", ".join(dirty) or "none"))
        return 0
    return compare(args.results, args.scratch, args.replace)


if __name__ == "__main__":
    sys.exit(main())

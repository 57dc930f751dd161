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
    (cd /work/wt/clean && python -m ibtools paper --parts activations l2 --threads 1 --cache scratch_paper)
    # 3. compare and, with --replace, copy the recomputed units that are equal bit for bit over
    #    the stored ones (--accept-differences: the others too, once their differences are understood)
    python scripts/replace_dirty_units.py compare results/paper /work/wt/clean/scratch_paper --replace

``compare`` prints, per unit, every array that differs and how (how many values, NaN on both sides
counting as equal; how many are NaN on one side only; the largest difference between numbers, in
the array's units: bits for estimates), and refuses to replace a unit whose recomputation is
itself dirty, missing, or of another configuration.

Which code the replacement comes from: the clean worktree's commit, not the commit the dirty unit
was made on (that tree's uncommitted changes are what cannot be known). So a difference mixes
those changes with every code change since; the estimators' history in ``tests/test_provenance.py``
says which changes moved stored numbers, and by how much, and where only kernel estimates differ,
``scripts/attribute_kernel_differences.py`` checks on the retrained activity whether one code
change accounts for them bit for bit. Afterwards run
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
            elif x.dtype != y.dtype:
                # compare at the coarser of the two precisions (e.g. a loss stored as float16 before)
                coarse = x.dtype if x.dtype.itemsize <= y.dtype.itemsize else y.dtype
                xc, yc = x.astype(coarse), y.astype(coarse)
                same = np.array_equal(xc, yc, equal_nan=True)
                out[name] = (f"dtype {x.dtype} -> {y.dtype}, "
                             + (f"equal at {coarse}" if same else f"at {coarse}: {_describe_difference(xc, yc)}"))
            elif not np.array_equal(x, y, equal_nan=True):
                out[name] = _describe_difference(x, y)
    return out


def _describe_difference(x: np.ndarray, y: np.ndarray) -> str:
    """How two same-shape arrays differ: how many values (a NaN on both sides is equal), how many
    are NaN on one side only, and the largest difference between values that are numbers on
    both sides."""
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        return "values differ"
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    nan_x, nan_y = np.isnan(x64), np.isnan(y64)
    differ = ~((x64 == y64) | (nan_x & nan_y))
    one_nan = nan_x != nan_y
    both = differ & ~one_nan & np.isfinite(x64) & np.isfinite(y64)
    text = f"{int(differ.sum())} of {x.size} values differ"
    if both.any():
        text += f", largest by {np.abs(x64[both] - y64[both]).max():.3g}"
    if one_nan.any():
        text += f", {int(one_nan.sum())} NaN on one side only"
    return text


def _commit(sidecar: dict) -> str:
    c = sidecar.get("meta", {}).get("git_commit", "")
    return (c[:7] + ("-dirty" if c.endswith("-dirty") else "")) if c else "unknown commit"


def compare(results: Path, scratch: Path, replace: bool, accept_differences: bool = False) -> int:
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
        print(f"{name}: {_commit(old)} -> {_commit(new)}: {what}")
        lines.append(f"{name} ({what})")
        if replace and diffs and not accept_differences:
            print(f"{name}: differs from the stored unit; not replaced (look at the differences, then pass "
                  "--accept-differences to replace it all the same)")
            problems += 1
        elif replace:
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
    s.add_argument("--replace", action="store_true",
                   help="copy the recomputed units over the stored ones (only those equal bit for bit, unless "
                        "--accept-differences)")
    s.add_argument("--accept-differences", action="store_true",
                   help="with --replace: replace units whose arrays differ too")
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
    return compare(args.results, args.scratch, args.replace, args.accept_differences)


if __name__ == "__main__":
    sys.exit(main())

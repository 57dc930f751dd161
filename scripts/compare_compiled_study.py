"""The compiled study (``make paper-fused``) against the stored first study (``results/paper``):
how far the same networks end apart, and whether the claims' verdicts agree.

Both studies train the same networks from the same seeds on the same schedule; the compiled one
with the fused training kernel and the compiled KDE engine, whose arithmetic agrees with the
reference paths to float32 rounding, not bit for bit (``ibtools.study.compiled_engines``). Over
8000 epochs such differences can grow, so this says how much of the study's findings is
robust to them: per network, the final test accuracy and the last layer's final EBAB I(X;T);
per claim, the verdict of each study under the rule version that decides for the stored study
(every version where they differ), with EBAB and with adaptive KDE at the default constant. Rules,
thresholds and bootstrap seed are the summary chapter's; nothing is tuned here.

    python scripts/compare_compiled_study.py [--cache _scratch_results/paper_fused] [--out FILE.md]

Reads both directories; writes nothing but ``--out`` (default: standard output).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ibtools import settings, study
from ibtools.claims import for_study
from ibtools.result_cache import ResultCache
from ibtools.sweep import SweepConfig, SweepResult
from ibtools.verdicts import StudyData, study_claims

#: The summary chapter's bootstrap seed (``BOOTSTRAP_SEED`` in book/08_summary.ipynb).
BOOTSTRAP_SEED = 0


def _load(sweep: SweepConfig, cache: Path) -> SweepResult:
    store = ResultCache(cache)
    runs = []
    for unit in sweep.units():
        run = store.read(unit)
        if run is None:
            raise SystemExit(f"{store.path(unit)} is missing: finish the study first (make paper-fused resumes it)")
        runs.append(run)
    return SweepResult(runs)


def study_runs(cache: Path, compiled: bool) -> tuple:
    """The first study's runs in ``cache`` (activation sweep, L2 sweep, single network, global-range
    run), with or without :func:`ibtools.study.compiled_engines`."""
    engines = study.compiled_sweep if compiled else (lambda sweep: sweep)
    act = _load(engines(study.activation_sweep()), cache)
    l2 = _load(engines(study.l2_sweep()), cache)
    single = _load(engines(SweepConfig(study.single_network_config("relu"), seeds_per_unit=1)), cache).runs[0]
    ranged = _load(SweepConfig(study.global_range_config(single), seeds_per_unit=1), cache).runs[0]
    return act, l2, single, ranged


def commits(runs: tuple) -> str:
    """The git commits (short, ``-dirty`` kept) recorded in the sidecars of :func:`study_runs`' runs."""
    act, l2, single, ranged = runs
    found = {str(run.meta.get("git_commit") or "") for run in (*act.runs, *l2.runs, single, ranged)}
    short = sorted({c[:7] + ("-dirty" if c.endswith("-dirty") else "") for c in found if c})
    if not short:
        return "an unknown commit"
    return ("commits " if len(short) > 1 else "commit ") + ", ".join(short)


def _final(data: StudyData, label: str) -> pd.DataFrame:
    """Per network of the pool: final test accuracy, failure status, and the last layer's I(X;T)
    (bits) at the last recorded epoch."""
    status = data.status(label).set_index(["activation", "l2", "seed"])
    table = data.pool.table(label)
    end = table[(table.epoch == table.epoch.max()) & (table.layer == table.layer.max())]
    info = end.drop_duplicates(["activation", "l2", "seed"]).set_index(["activation", "l2", "seed"]).i_xt
    return pd.DataFrame({"test_acc": status.final_test_acc, "failed": status.failed, "i_xt_last": info})


def _claims_table(stored: StudyData, compiled: StudyData, label_stored: str, label_compiled: str,
                  without_failed: bool) -> tuple[list[str], int, int, int]:
    s_status = stored.status(label_stored) if without_failed else None
    c_status = compiled.status(label_compiled) if without_failed else None
    s_claims = for_study(study_claims(stored, label_stored, status=s_status, rng=BOOTSTRAP_SEED), "paper")
    c_claims = for_study(study_claims(compiled, label_compiled, status=c_status, rng=BOOTSTRAP_SEED), "paper")
    lines = ["| claim | rule | stored | compiled | measured (stored) | measured (compiled) |", "|---|---|---|---|---|---|"]
    same = other_differ = 0
    for s, c in zip(s_claims, c_claims):
        assert s.key == c.key
        same += s.verdict == c.verdict
        lines.append(f"| {s.key} | v{s.version} | {s.verdict} | {c.verdict} | {s.measured} | {c.measured} |")
        for v in sorted(s.by_version):  # every other version of the rule where the two studies differ
            if v != s.version and s.by_version[v][0] != c.by_version[v][0]:
                other_differ += 1
                lines.append(f"| {s.key} | v{v} (not current) | {s.by_version[v][0]} | {c.by_version[v][0]} | | |")
    return lines, same, len(s_claims), other_differ


def compare(stored: StudyData, compiled: StudyData, provenance: str = "") -> str:
    lines = ["# The compiled study against the stored first study", "",
             "Generated by `scripts/compare_compiled_study.py` from the stored study (`results/paper`) and the "
             "compiled study (`make paper-fused`, not stored: its numbers are another rounding of the same "
             "networks). The same 650 networks from the same seeds, the same schedules, rules and bootstrap "
             "seed; only the arithmetic of training and of the KDE estimators differs (float32 rounding).", ""]
    if provenance:
        lines += [provenance, ""]
    a, b = _final(stored, settings.EBAB.label), _final(compiled, settings.EBAB.label)
    both = a.merge(b, left_index=True, right_index=True, suffixes=("_stored", "_compiled"))
    d_acc = (both.test_acc_compiled - both.test_acc_stored).abs()
    d_info = (both.i_xt_last_compiled - both.i_xt_last_stored).abs()
    lines += [f"Networks compared: {len(both)} (the pool of both sweeps, each network once).", "",
              "| per network, at the last epoch | median | 90th percentile | largest |", "|---|---|---|---|",
              f"| test accuracy, absolute difference | {d_acc.median():.4f} | {d_acc.quantile(0.9):.4f} | {d_acc.max():.4f} |",
              f"| last layer's EBAB I(X;T), absolute difference (bits) | {d_info.median():.3f} | "
              f"{d_info.quantile(0.9):.3f} | {d_info.max():.3f} |", "",
              f"Mean final test accuracy: stored {both.test_acc_stored.mean():.4f}, compiled "
              f"{both.test_acc_compiled.mean():.4f}. Networks with the same final test accuracy in both: "
              f"{int((d_acc == 0).sum())} of {len(both)}. Failed networks (EBAB's failure criteria): stored "
              f"{int(both.failed_stored.sum())}, compiled {int(both.failed_compiled.sum())}, failed in both "
              f"{int((both.failed_stored & both.failed_compiled).sum())}.", ""]
    akde_compiled = study.compiled_engines(study.activation_sweep().base).estimators[1].label
    for name, (label_stored, label_compiled) in {
            "EBAB (30 bins)": (settings.EBAB.label, settings.EBAB.label),
            "adaptive KDE (alpha = 0.01)": (settings.AKDE.label, akde_compiled)}.items():
        for without_failed in (False, True):
            table, same, n, other = _claims_table(stored, compiled, label_stored, label_compiled, without_failed)
            which = "without the failed networks" if without_failed else "all networks"
            lines += [f"## {name}, {which}", "",
                      f"Verdicts equal for {same} of {n} claims under the rule versions that decide for the stored "
                      f"study; under the claims' other rule versions the two studies differ in {other} verdicts "
                      f"(a row each below, if any).", "", *table, ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("_scratch_results/paper_fused"),
                        help="the compiled study's directory (default: _scratch_results/paper_fused)")
    parser.add_argument("--stored", type=Path, default=study.PAPER_RESULTS, help="the stored study (default: results/paper)")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write (default: standard output)")
    args = parser.parse_args(argv)
    stored, compiled = study_runs(args.stored, compiled=False), study_runs(args.cache, compiled=True)
    provenance = (f"Computed by: the stored study at {commits(stored)}; the compiled study at {commits(compiled)} "
                  f"(the compiled paths' bits may change between versions).")
    text = compare(StudyData.from_sweeps(*stored), StudyData.from_sweeps(*compiled), provenance)
    if args.out is None:
        sys.stdout.write(text + "\n")
    else:
        args.out.write_text(text + "\n")
        print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The short findings of README.md and book/index.md, generated from the stored re-run.

Every number in those paragraphs comes from :func:`compute` (the stored re-run, ``results/rerun``, the claims and
failure modules); :func:`render` fills ``TEMPLATE`` with them. The paragraphs sit between
the markers ``<!-- findings:start -->`` and ``<!-- findings:end -->``; ``python -m
ibtools.findings`` rewrites them, and ``tests/test_findings.py`` fails when the text in a file
differs from what the data give, so the prose cannot go stale.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import exact_information_changes
from .results import atomic_write_bytes

__all__ = ["TEMPLATE", "START", "END", "compute", "render", "replace_block", "FILES", "exact_summary"]

START, END = "<!-- findings:start -->", "<!-- findings:end -->"
ROOT = Path(__file__).resolve().parent.parent
#: Files holding the findings block, with the link to the summary chapter each uses.
FILES = {ROOT / "README.md": "book/08_summary.ipynb", ROOT / "book" / "index.md": "08_summary"}

TEMPLATE = """Measured on the re-run of the study ({n_networks} networks with the paper code's initialization and
{n_tishby} with one initialization scale for all activations, whose tanh and abs networks are those of
the first arm; {epochs} epochs each, computed from a clean commit); details, decision rules and every rule version in the [reproduction summary]({summary}). These
numbers are generated from the stored results (`python -m ibtools.findings`) and checked against them
by the tests.

* With the paper's adaptive binning (EBAB, 30 bins) and the rules fixed before the re-run's data,
  {n_reproduced} of the {n_claims} claims are reproduced, {n_partly} partly and {n_not} not. In the last
  hidden layer {top_act} compresses most ({top_h5} bits beyond the noise floor of the score); {k_acts}
  activations have a layer that compresses beyond its noise floor after fitting (Holm-corrected); with
  adaptive KDE, the paper's second estimator, {k_acts_akde}. With one initialization scale for all
  activations, "tanh compresses most" is {r5b_tishby} ({tishby_top} {tishby_top_bits} bits,
  {tishby_runner} {tishby_runner_bits} bits, Mann-Whitney p = {tishby_p}).
* Hidden-layer compression of ReLU networks that trained is {l2_comp_0} bits without L2, {l2_comp_ref}
  bits at the paper code's λ = 0.015 and {l2_comp_max} bits at λ = {l2_max}. Failed networks are an
  outcome: {n_failed} of {n_networks} failed to train ({fail_max}); ReLU networks at λ = 0.015 fail at a
  rate of {fail_ref_pooled}, pooled with 150 more networks. Without the failed networks the last
  layer's within-condition correlation with test accuracy is {rho_kept} instead of {rho_all}, and that
  of the first hidden layer {h1_kept} instead of {h1_all}.
* {exact_sentence}"""


def exact_summary(exact: pd.DataFrame) -> str:
    """What the exact I(X;T) (bits) says, in one paragraph of plain text: where it never changes,
    and where the float32 network itself merges inputs.

    ``exact`` is its table over the hidden layers of the networks that trained (columns
    ``activation, seed, layer, i_xt``), e.g. ``drop_failed(result.table(EXACT.label), status)``
    without the output layer.
    """
    # one pooled condition per activation (whatever L2 strengths the rows come from), every row kept
    pooled = exact.assign(estimator="exact", l2=0.0, diverged=False)
    changes = exact_information_changes(pooled, "exact", tol=1e-6)
    still, moved = [], []
    for act, ch in changes.groupby("activation"):
        name = str(act).replace("_", " ")
        if not (ch.changed > 0).any():
            still.append(name)
            continue
        worst = ch.loc[ch.changed.idxmax()]
        moved.append(f"{name} (in {worst.changed:.0%} of the networks in layer h{int(worst.layer)}, down to "
                     f"{worst.lowest:.2f} bits)")
    text = "The exact I(X;T) of the float32 network (entropy of its distinct activity rows) "
    if still:
        const = exact[exact.activation.str.replace("_", " ").isin(still)].i_xt
        text += (f"never changes in the networks of {', '.join(still)} that trained: {const.min():.2f} bits in every "
                 "hidden layer at "
                 "every recorded epoch, so there what the estimators report as compression is the geometry of the "
                 "representation at their bin or kernel scale, not information lost. ")
    if moved:
        text += ("It does change in " + "; ".join(moved)
                 + ": there the float32 network itself maps inputs onto the same activity.")
    return text


def _exact_sentence(exact: pd.DataFrame) -> str:
    """:func:`exact_summary` wrapped as a bullet of the findings block."""
    return textwrap.fill(exact_summary(exact), width=104, subsequent_indent="  ")


def _rate(top) -> str:
    return f"{int(top.failed)} of {int(top.networks)} at λ = {top.l2:g}, 95 % CI {top.rate_low:.0%}–{top.rate_high:.0%}"


def compute(results_dir=None) -> dict:
    """The findings' numbers from the stored re-run (formatted strings).

    Raises FileNotFoundError when a unit of the re-run is missing from ``results_dir`` (default
    ``results/rerun``): nothing is computed then.
    """
    from .analysis import compression_scores
    from .claims import activation_claims, for_study, generalization_claim, layer_tests
    from .failures import classify_runs, drop_failed, failure_counts, rate_text
    from .rerun import EXACT, RERUN_RESULTS, rerun_status
    from .study import PAPER_EPOCHS, estimator_label, pooled_reference_failures
    from .studies import study_activations, study_l2, study_single
    from .verdicts import StudyData, pooled, study_claims
    from .activations import PAPER_ACTIVATIONS
    from .study import L2_STRENGTHS

    results_dir = Path(results_dir or RERUN_RESULTS)
    status_table = rerun_status(results_dir)
    if not status_table.finished.all():
        missing = ", ".join(status_table.loc[~status_table.finished, "unit"])
        raise FileNotFoundError(f"the re-run is not complete in {results_dir}: missing {missing}")
    where = dict(results_dir=results_dir, progress=False)
    seeds = range(50)
    act = study_activations("rerun", PAPER_ACTIVATIONS, PAPER_EPOCHS, seeds, **where)
    tishby = study_activations("rerun", PAPER_ACTIVATIONS, PAPER_EPOCHS, seeds, init="tishby", **where)
    l2 = study_l2("rerun", L2_STRENGTHS, "relu", PAPER_EPOCHS, seeds, **where)
    single = study_single("rerun", "relu", "estimators", PAPER_EPOCHS, **where)
    ranged = study_single("rerun", "relu", "ranged", PAPER_EPOCHS, **where)
    pool = pooled(act, l2)
    label, akde = estimator_label("ebab"), estimator_label("akde")
    status = classify_runs(pool.runs, label)
    act_t, l2_t = act.table(label), l2.table(label)
    pool_t, pool_h = pool.table(label), pool.history_table()

    every = for_study(study_claims(StudyData(act, l2, pool, single, ranged), label), "rerun")
    verdicts = pd.Series([c.verdict for c in every]).value_counts()
    _, res = generalization_claim(pool_t, pool_h, label)
    _, resk = generalization_claim(drop_failed(pool_t, status), drop_failed(pool_h, status), label)
    r5b = next(c for c in for_study(activation_claims(tishby.table(label), label), "rerun") if c.key == "R5b")
    tishby_scores = compression_scores(tishby.table(label), label)
    hidden_t = tishby_scores[tishby_scores.layer < tishby_scores.layer.max()]
    per_net = hidden_t.groupby(["activation", "seed"]).absolute.mean().groupby("activation").mean()

    scores = compression_scores(act_t, label)
    cells = layer_tests(scores)
    deepest = cells[cells.layer == cells.layer.max()].set_index("activation").excess
    per_act = cells.groupby("activation").compresses.any()
    per_act_akde = layer_tests(compression_scores(act.table(akde), akde)).groupby("activation").compresses.any()
    l2s = compression_scores(drop_failed(l2_t, status), label)
    hid = l2s[l2s.layer < l2s.layer.max()].groupby(["l2", "seed"]).absolute.mean().groupby("l2").mean()
    fc = failure_counts(status)
    top = fc[fc.activation == "relu"].sort_values("l2").iloc[-1]
    pooled = pooled_reference_failures(l2.runs, "relu", 0.015, PAPER_EPOCHS)

    exact = act.table(EXACT.label)
    exact = drop_failed(exact, status)
    exact = exact[exact.layer < exact.layer.max()]

    def rho(frame, layer):
        return f"{frame.loc[frame.layer == layer, 'spearman_rho'].iloc[0]:+.2f}"

    last = int(res.layer.max())
    return {
        "n_networks": str(len(status)),
        "n_tishby": str(len({(r.config.activation, s) for r in tishby.runs for s in r.config.seeds})),
        "epochs": str(PAPER_EPOCHS),
        "n_claims": str(len(every)),
        "n_reproduced": str(int(verdicts.get("reproduced", 0))),
        "n_partly": str(int(verdicts.get("partly reproduced", 0))),
        "n_not": str(int(verdicts.get("not reproduced", 0))),
        "top_act": str(deepest.idxmax()).replace("_", " "),
        "top_h5": f"{deepest.max():.2f}",
        "k_acts": f"{int(per_act.sum())} of {len(per_act)}",
        "k_acts_akde": f"{int(per_act_akde.sum())} of {len(per_act_akde)}",
        "r5b_tishby": r5b.verdict,
        "tishby_top": r5b.numbers["top"].replace("_", " "),
        "tishby_top_bits": f"{per_net[r5b.numbers['top']]:.2f}",
        "tishby_runner": r5b.numbers["runner"].replace("_", " "),
        "tishby_runner_bits": f"{per_net[r5b.numbers['runner']]:.2f}",
        "tishby_p": f"{r5b.numbers['p']:.2g}",
        "l2_comp_0": f"{hid.get(0.0, np.nan):.2f}",
        "l2_comp_ref": f"{hid.get(0.015, np.nan):.2f}",
        "l2_comp_max": f"{hid.iloc[-1]:.2f}",
        "l2_max": f"{hid.index[-1]:g}",
        "n_failed": str(int(status.failed.sum())),
        "fail_max": _rate(top),
        "fail_ref_pooled": rate_text(pooled.iloc[-1]) if pooled is not None else "not measured",
        "rho_all": rho(res, last),
        "rho_kept": rho(resk, last),
        "h1_all": rho(res, 1),
        "h1_kept": rho(resk, 1),
        "exact_sentence": _exact_sentence(exact),
    }


def render(values: dict, summary: str) -> str:
    """The findings paragraphs, with ``summary`` as the link to the summary chapter."""
    return TEMPLATE.format(summary=summary, **values)


def replace_block(text: str, block: str) -> str:
    """``text`` with the findings block between ``START`` and ``END`` replaced."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no findings block ({START} ... {END}) in the text")
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", text)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m ibtools.findings",
                                description="Regenerate the findings block of README.md and book/index.md from the "
                                            "stored re-run (results/rerun).")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a block differs from the data")
    args = p.parse_args(argv)
    values = compute()
    stale = []
    for path, link in FILES.items():
        text = path.read_text()
        new = replace_block(text, render(values, link))
        if args.check:
            if new != text:
                stale.append(str(path.relative_to(ROOT)))
            continue
        atomic_write_bytes(path, new.encode())
        print(f"wrote the findings block of {path.relative_to(ROOT)}")
    if stale:
        print(f"findings block out of date in {', '.join(stale)}: run python -m ibtools.findings", file=sys.stderr)
        return 1
    if args.check:
        print("findings blocks match the stored data")
    return 0


if __name__ == "__main__":
    sys.exit(main())

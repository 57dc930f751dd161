"""The paper's claims, each turned into a measurement and an explicit decision rule.

Every function takes results of the study (or of a smaller re-run with other parameters) and
returns a :class:`ClaimResult`: what was claimed, what we measured (numbers), the verdict, and the
rule that produced it. The reproduction chapters print these, so a chapter re-run with other parameters states
its own verdicts from its own numbers. The rules are ours (the paper gives no formal tests);
they are stated next to every verdict.

Verdicts: ``"reproduced"``, ``"partly reproduced"``, ``"not reproduced"``.

Each rule is versioned (:data:`RULES`): its thresholds are named parameters used both by the
decision and by the rule's displayed text; a rule changed after results existed is a new version,
and every version's verdict is reported (:attr:`ClaimResult.by_version`). Compound claims report
each part (:attr:`ClaimResult.parts`). Where a rule tests many cells it corrects for multiple
comparisons with Holm-Bonferroni (:data:`CORRECTION`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats

from .activations import get_activation
from .analysis import compression_scores, correlate, final_generalization, holm, mean_ci, mean_over_seeds, one_sided_t
from .settings import EBAB

__all__ = [
    "ClaimResult",
    "global_range_claim",
    "activation_claims",
    "initialization_claims",
    "l2_claims",
    "generalization_claim",
    "network_scores",
    "SIGNIFICANCE",
    "CORRECTION",
    "GLOBAL_RANGE_GAP_BITS",
    "STRONG_COMPRESSION_BITS",
    "MIN_EXCESS_BITS",
    "SPREAD_BITS",
    "SPREAD_PARTLY_BITS",
    "Rule",
    "RULES",
    "CURRENT",
    "RERUN_DATA_FROM",
    "MNIST1D_DATA_FROM",
    "MNIST1D_VERSIONS_COMMITTED",
    "STUDIES",
    "current_versions",
    "for_study",
    "written_after_data",
    "rule",
    "layer_tests",
    "claims_markdown",
    "versions_markdown",
]

REPRODUCED, PARTLY, NOT = "reproduced", "partly reproduced", "not reproduced"
#: Significance level of the tests behind the verdicts (family-wise, after Holm's correction where
#: a rule tests a family of cells).
SIGNIFICANCE = 0.05
#: The correction for multiple comparisons used wherever a rule tests many cells.
CORRECTION = "Holm-Bonferroni (family-wise error rate)"
#: Thresholds (bits) of the rules, named once: the rules' parameters below and the chapters that
#: quote them (a table column "losing > 1 bit", a sentence of the text) read them from here, so the
#: text cannot drift from the rule. A rule that needs another value gets a new version with its
#: own parameter; these values stay those of the versions that use them.
#:
#: R1: the early layers must read at least this much lower with the network-wide range.
GLOBAL_RANGE_GAP_BITS = 1.0
#: R3: a network "compresses strongly" when some hidden layer loses more than this from its peak
#: (peak - final); also the cut of the initializations chapter's per-layer share and of the
#: activations chapter's comparison of two scores.
STRONG_COMPRESSION_BITS = 1.0
#: R2 v2, R5a v2: a layer compresses beyond its noise floor only with at least this mean excess.
MIN_EXCESS_BITS = 0.1
#: R4: mean SD over initializations of final hidden-layer I(X;T) for "reproduced" / "partly".
SPREAD_BITS, SPREAD_PARTLY_BITS = 0.5, 0.25


# ----------------------------------------------------------------------------------------------
# Versioned decision rules


@dataclass(frozen=True)
class Rule:
    """One version of a claim's decision rule. Never edited once results exist: a changed rule is
    a new version, and every version's verdict is shown.

    Attributes
    ----------
    key : str
        The claim (``"R6b"``).
    version : int
    adopted : str
        When the version was adopted: commit and UTC time.
    adopted_at : str
        ISO time of adoption (compared with the stored units' creation times).
    data_seen : bool
        True if the version was written after the stored results it decides on existed (a
        post-hoc rule); such a version is shown for the record and is never the current one
        unless no other exists.
    template : str
        The rule's text, with ``{name}`` placeholders filled from ``params``: the same numbers the
        decision uses.
    params : tuple of (name, value)
        The rule's thresholds.
    decide : callable
        ``decide(measurement: dict, **params) -> (verdict, parts)`` with ``parts`` a tuple of
        ``(description, bool)``: each part of a compound claim, and whether it holds.
    """

    key: str
    version: int
    adopted: str
    adopted_at: str
    data_seen: bool
    template: str
    params: tuple = ()
    decide: Callable = field(default=None, compare=False, repr=False)

    @property
    def p(self) -> dict:
        return dict(self.params)

    def text(self) -> str:
        return self.template.format(**self.p)

    def __call__(self, measurement: dict):
        verdict, parts = self.decide(measurement, **self.p)
        return verdict, tuple((desc.format(**self.p), bool(ok)) for desc, ok in parts)


def _both(parts):
    held = sum(ok for _, ok in parts)
    return (REPRODUCED if held == len(parts) else PARTLY if held else NOT), parts


_V1 = ("9883101, 2026-11-25 15:04 UTC", "2026-11-25T15:04:23+0000")
_V1B = ("c66bcc3, 2026-11-25 15:14 UTC", "2026-11-25T15:14:03+0000")
_R6B_V2 = ("9eb4fc1, 2026-11-25 16:12 UTC", "2026-11-25T16:12:09+0000")
_NOW = ("branch verdicts, 2026-11-25 23:30 UTC, with the audit of the stored study; for the confirmatory re-run", "2026-11-25T23:30:00+0000")


def _r1(m, min_gap, early_layers):
    return _both((("the last hidden layer has the largest activity", m["dominated"]),
                  ("layers h1-h{early_layers} are >= {min_gap:g} bit lower with the network-wide range", m["gap"] >= min_gap)))


def _r2_v1(m, alpha):
    return _both((("some non-saturating activation compresses after fitting (hidden-layer mean, 95 % CI > 0)", m["nonsat_ci"] >= 1),
                  ("activations differ (Kruskal-Wallis p < {alpha:g})", m["kw_p"] < alpha)))


def _r2_v2(m, alpha, majority, min_bits):
    k, n = m["nonsat_k"], m["nonsat_n"]
    most = n > 0 and k / n >= majority
    differ = m["kw_p"] < alpha
    parts = ((f"most non-saturating activations compress beyond the noise floor ({k} of {n}; at least {{majority:.0%}})", most),
             ("activations differ (Kruskal-Wallis p < {alpha:g})", differ))
    verdict = REPRODUCED if most and differ else PARTLY if k >= 1 or differ else NOT
    return verdict, parts


def _r3(m, strong, share, ratio):
    a, b = m["share"] >= share, m["ratio"] < ratio
    verdict = REPRODUCED if a and b else PARTLY if m["share"] >= share / 2 or b else NOT
    return verdict, ((f"single networks compress a hidden layer by > {{strong:g}} bit ({m['share']:.0%}; needs >= {{share:.0%}})", a),
                     (f"the average curve keeps < {{ratio:.0%}} of that compression ({m['ratio']:.0%})", b))


def _r4(m, high, low):
    v = REPRODUCED if m["spread"] >= high else PARTLY if m["spread"] >= low else NOT
    return v, ((f"final hidden-layer I(X;T) spreads by >= {{high:g}} bit across initializations ({m['spread']:.2f})", m["spread"] >= high),)


def _r5a_v1(m):
    k, n = m["ci_k"], m["n"]
    return (REPRODUCED if k == n else PARTLY if k else NOT), ((f"{k} of {n} compress after fitting (hidden-layer mean, 95 % CI > 0)", k == n),)


def _r5a_v2(m, alpha, min_bits):
    k, n = m["floor_k"], m["n"]
    return (REPRODUCED if n and k == n else PARTLY if k else NOT), (
        (f"{k} of {n} have a hidden layer that compresses beyond the noise floor and after fitting", n > 0 and k == n),)


def _r5b(m, alpha):
    return _both((("tanh ranks first", m["top"] == "tanh"),
                  ("tanh differs from the runner-up (Mann-Whitney p < {alpha:g})", m["top"] == "tanh" and m["p"] < alpha)))


def _r5c(m, alpha):
    ok = m["p"] < alpha
    return (REPRODUCED if ok else NOT), (("softplus and centered softplus differ (Mann-Whitney p < {alpha:g})", ok),)


def _r6a(m, alpha):
    ok = m["rho"] > 0 and m["p"] < alpha
    return (REPRODUCED if ok else NOT), (("compression rises with L2 (Spearman rho > 0, p < {alpha:g})", ok),)


def _r6b_v1(m, factor):
    falls, halves = m["rho_all"] < 0, m["ratio_all"] < factor
    verdict = REPRODUCED if falls and halves else PARTLY if falls else NOT
    return verdict, (("the spread over all hidden layers falls with L2", falls),
                     ("the strongest L2 cuts it below {factor:.0%} of no L2", halves))


def _r6b_v2(m, factor):
    all_ok = m["rho_all"] < 0 and m["ratio_all"] < factor
    deep_ok = m["rho_deep"] < 0 and m["ratio_deep"] < factor
    verdict = REPRODUCED if all_ok else PARTLY if deep_ok else NOT
    return verdict, (("all hidden layers: spread falls and the strongest L2 cuts it below {factor:.0%}", all_ok),
                     ("without h1: spread falls and the strongest L2 cuts it below {factor:.0%}", deep_ok))


def _r6c(m, alpha):
    smaller = m["gap_l2"] < m["gap_0"]
    return _both((("the train-test gap is smaller with L2", smaller),
                  ("the difference is significant (Welch p < {alpha:g})", smaller and m["p"] < alpha)))


def _r7_v1(m, alpha):
    last_ok, none_hidden = m["last_ok_raw"], not m["hidden_raw"]
    verdict = REPRODUCED if last_ok and none_hidden else PARTLY if last_ok or none_hidden else NOT
    return verdict, (("the last layer correlates positively (p < {alpha:g}, uncorrected)", last_ok),
                     ("no hidden layer does (uncorrected)", none_hidden))


def _r7_v2(m, alpha):
    last_ok, none_hidden = m["last_ok_holm"], not m["hidden_holm"]
    verdict = REPRODUCED if last_ok and none_hidden else PARTLY if last_ok else NOT
    return verdict, (("the last layer correlates positively (Holm-adjusted p < {alpha:g} over the layers)", last_ok),
                     ("no hidden layer does (Holm-adjusted)", none_hidden))


A = (("alpha", SIGNIFICANCE),)
#: Every version of every claim's rule. The current version of a claim is the latest one adopted
#: before its data were seen, or, for the confirmatory re-run, the version in :data:`CURRENT`.
RULES: dict[str, tuple[Rule, ...]] = {
    "R1": (Rule("R1", 1, *_V1, False, "reproduced if the last hidden layer sets the maximum and layers h1-h{early_layers} are "
                "at least {min_gap:g} bit lower with the network-wide range than with EBAB; partly if one of the two holds",
                (("min_gap", GLOBAL_RANGE_GAP_BITS), ("early_layers", 3)), _r1),),
    "R2": (Rule("R2", 1, *_V1, False, "reproduced if some non-saturating activation has post-fit compression with 95 % CI "
                "above 0 and activations differ (Kruskal-Wallis p < {alpha:g}); partly if one of the two holds", A, _r2_v1),
           Rule("R2", 2, *_NOW, True, "reproduced if at least {majority:.0%} of the non-saturating activations have a hidden "
                "layer whose peak - final score exceeds its noise floor by >= {min_bits:g} bit and whose post-fit score is > 0 "
                "(one-sided t-tests, Holm over all activation x hidden-layer cells, p < {alpha:g}) and activations differ "
                "(Kruskal-Wallis p < {alpha:g}); partly if at least one qualifies or they differ",
                (("alpha", SIGNIFICANCE), ("majority", 0.5), ("min_bits", MIN_EXCESS_BITS)), _r2_v2)),
    "R3": (Rule("R3", 1, *_V1, False, "reproduced if >= {share:.0%} of networks compress a hidden layer by > {strong:g} bit "
                "(peak - final) and the average curve keeps < {ratio:.0%} of the mean single-network compression; partly "
                "if half that share compress or the average keeps < {ratio:.0%}",
                (("strong", STRONG_COMPRESSION_BITS), ("share", 0.5), ("ratio", 0.5)), _r3),),
    "R4": (Rule("R4", 1, *_V1, False, "reproduced if the mean standard deviation over initializations of final hidden-layer "
                "I(X;T) is >= {high:g} bit; partly if >= {low:g} bit", (("high", SPREAD_BITS), ("low", SPREAD_PARTLY_BITS)), _r4),),
    "R5a": (Rule("R5a", 1, *_V1, False, "reproduced if each of ELU, Swish and centered softplus has post-fit compression "
                 "(hidden-layer mean) with 95 % CI above 0; partly if some do", (), _r5a_v1),
            Rule("R5a", 2, *_NOW, True, "reproduced if each of ELU, Swish and centered softplus has a hidden layer whose "
                 "peak - final score exceeds its noise floor by >= {min_bits:g} bit and whose post-fit score is > 0 (one-sided "
                 "t-tests, Holm over all activation x hidden-layer cells, p < {alpha:g}); partly if some do",
                 (("alpha", SIGNIFICANCE), ("min_bits", MIN_EXCESS_BITS)), _r5a_v2)),
    "R5b": (Rule("R5b", 1, *_V1, False, "reproduced if tanh ranks first (hidden-layer mean peak - final) and differs from "
                 "the second (Mann-Whitney p < {alpha:g}); partly if it only ranks first", A, _r5b),),
    "R5c": (Rule("R5c", 1, *_V1, False, "reproduced if the two distributions differ (Mann-Whitney p < {alpha:g})", A, _r5c),),
    "R6a": (Rule("R6a", 1, *_V1, False, "reproduced if compression increases with L2 strength (Spearman rho > 0, "
                 "p < {alpha:g})", A, _r6a),),
    "R6b": (Rule("R6b", 1, *_V1, False, "reproduced if the spread over all hidden layers falls with L2 and the strongest "
                 "L2 cuts it below {factor:.0%} of no L2; partly if it only falls", (("factor", 0.5),), _r6b_v1),
            Rule("R6b", 2, *_R6B_V2, True, "reproduced if the spread over all hidden layers falls with L2 and the strongest "
                 "L2 cuts it below {factor:.0%}; partly if that holds only without the first hidden layer",
                 (("factor", 0.5),), _r6b_v2)),
    "R6c": (Rule("R6c", 1, *_V1, False, "reproduced if the train-test gap at the reference L2 is smaller than without L2 "
                 "(Welch p < {alpha:g})", A, _r6c),),
    "R7": (Rule("R7", 1, *_V1, False, "reproduced if the last layer correlates positively (p < {alpha:g}) and no hidden "
                "layer does; partly if one of the two holds", A, _r7_v1),
           Rule("R7", 2, *_NOW, True, "reproduced if the last layer correlates positively and no hidden layer does (Spearman, "
                "within conditions, Holm over the layers, p < {alpha:g}); partly if the last layer does and some hidden "
                "layer does too; not reproduced if the last layer does not", A, _r7_v2)),
}

#: The version that decides each claim's verdict in the book. Post-hoc versions (R6b v2) are
#: shown but do not decide; the version-2 rules written with the audit of the stored study are
#: post-hoc for the stored study too and become confirmatory only for the re-run, so the stored
#: study is judged by version 1 and every later version is shown beside it.
CURRENT = {key: 1 for key in RULES}

#: When the re-run's first result was computed (``created`` in the sidecar of its first unit,
#: ``results/rerun/relu_l2-0_s0_f7490649e490.json``). A rule version adopted before it was written
#: without any of the re-run's data, so for the re-run it is confirmatory.
RERUN_DATA_FROM = "2026-11-26T02:53:13+0000"

#: When the MNIST-1D study (:mod:`ibtools.mnist1d_study`) started computing its full-scale units:
#: the start of its first process, ``python -m ibtools.mnist1d_study`` from a clean worktree at
#: 86a4975, 2026-11-27 05:32:34 UTC. No full-scale MNIST-1D number existed before; the pilot
#: (``experiments/mnist1d_pilot.md``: three networks per width, tanh and ReLU) chose widths and
#: epochs from the estimators' ceilings and judged no claim. Its verdicts are decided, like the
#: re-run's, by the latest rule version adopted before this moment (fixed in the commit that
#: added this constant, before any unit of the study was finished).
MNIST1D_DATA_FROM = "2026-11-27T05:32:34+0000"

#: When the choice of the MNIST-1D study's deciding versions (:data:`MNIST1D_DATA_FROM` and
#: ``current_versions("mnist1d")``) was committed: d0a7984, 2026-11-27 05:44:16 UTC, after its
#: processes had started and before the first of its units was finished (the test suite checks
#: that every stored unit was created after this moment).
MNIST1D_VERSIONS_COMMITTED = "2026-11-27T05:44:16+0000"

#: Studies whose verdicts :func:`current_versions` knows how to choose.
STUDIES = ("paper", "rerun", "mnist1d")

_CONFIRMATORY_FROM = {"rerun": RERUN_DATA_FROM, "mnist1d": MNIST1D_DATA_FROM}


def _time(iso: str) -> datetime:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S%z")


def current_versions(study: str = "paper") -> dict[str, int]:
    """The rule version that decides each claim's verdict for ``study``.

    ``"paper"`` (the stored study): :data:`CURRENT`, version 1 throughout, since every later
    version was written after the stored study's results existed. ``"rerun"``: for each claim the
    latest version adopted before :data:`RERUN_DATA_FROM`, the confirmatory rule that the comment
    on :data:`CURRENT` announced (committed 2026-11-25 23:13 UTC in 7fc2c53, before the re-run
    started); this gives version 2 of R2, R5a, R6b and R7. Every other version stays in
    ``ClaimResult.by_version`` and is shown beside it. ``"mnist1d"`` (the MNIST-1D study): the same
    choice at :data:`MNIST1D_DATA_FROM` (today the same versions as the re-run's: no rule was
    adopted between the two).

    Raises
    ------
    ValueError
        For a study other than :data:`STUDIES`.
    """
    if study == "paper":
        return dict(CURRENT)
    if study in _CONFIRMATORY_FROM:
        start = _time(_CONFIRMATORY_FROM[study])
        return {key: max(r.version for r in rules if _time(r.adopted_at) < start) for key, rules in RULES.items()}
    raise ValueError(f"unknown study {study!r}; choose one of {STUDIES}")


def written_after_data(r: "Rule", study: str = "paper") -> bool:
    """Whether rule version ``r`` was written after the data of ``study`` existed (post hoc)."""
    if study == "paper":
        return r.data_seen
    if study in _CONFIRMATORY_FROM:
        return _time(r.adopted_at) >= _time(_CONFIRMATORY_FROM[study])
    raise ValueError(f"unknown study {study!r}; choose one of {STUDIES}")


def for_study(claims, study: str = "paper") -> list:
    """``claims`` (:class:`ClaimResult`) with the verdict, rule text, version and parts of the
    version that decides for ``study`` (:func:`current_versions`), taken from each claim's
    ``by_version``: nothing is recomputed."""
    versions = current_versions(study)
    out = []
    for c in claims:
        r = rule(c.key, versions[c.key])
        verdict, parts = c.by_version[r.version]
        out.append(replace(c, verdict=verdict, rule=r.text(), version=r.version, parts=parts))
    return out


def rule(key: str, version: int | None = None) -> Rule:
    """A claim's rule: ``version`` or the current one (:data:`CURRENT`)."""
    if key not in RULES:
        raise ValueError(f"unknown claim {key!r}; choose one of {list(RULES)}")
    version = CURRENT[key] if version is None else version
    for r in RULES[key]:
        if r.version == version:
            return r
    raise ValueError(f"claim {key} has no rule version {version}; versions: {[r.version for r in RULES[key]]}")


@dataclass(frozen=True)
class ClaimResult:
    """One claim of the paper and what our data say about it.

    ``verdict``, ``rule``, ``version`` and ``parts`` are those of the current rule version;
    ``by_version`` maps every version of the rule to ``(verdict, parts)``; ``numbers`` holds the
    measurement the rules decided on.
    """

    key: str
    claim: str
    measured: str
    verdict: str
    rule: str
    version: int = 1
    #: The parts of a compound claim under the current rule: ``(description, holds)`` pairs.
    parts: tuple = ()
    #: Every version of the rule -> ``(verdict, parts)`` under that version.
    by_version: dict = field(default_factory=dict, compare=False)
    numbers: dict = field(default_factory=dict, compare=False)

    def as_row(self) -> dict:
        return {"claim": self.claim, "measured": self.measured, "verdict": self.verdict, "rule": self.rule,
                "version": self.version}

    def parts_text(self) -> str:
        return "; ".join(f"{d}: {'yes' if ok else 'no'}" for d, ok in self.parts)


def _judge(key: str, claim: str, measured: str, m: dict) -> ClaimResult:
    by = {r.version: r(m) for r in RULES[key]}
    cur = rule(key)
    verdict, parts = by[cur.version]
    return ClaimResult(key, claim, measured, verdict, cur.text(), cur.version, parts, by, m)


def _fmt_ci(m, lo, hi, unit=" bits"):
    return f"{m:+.2f}{unit} [{lo:+.2f}, {hi:+.2f}]"


def network_scores(table: pd.DataFrame, estimator: str, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per network: compression scores averaged over its *hidden* layers, and of its last
    (softmax) layer. Columns ``activation, l2, seed, hidden_absolute, hidden_post_fit, last_absolute,
    last_post_fit``."""
    s = compression_scores(table, estimator) if scores is None else scores
    last = s["layer"] == s["layer"].max()
    hidden = s[~last].groupby(["activation", "l2", "seed"])[["absolute", "post_fit"]].mean()
    out = s[last].set_index(["activation", "l2", "seed"])[["absolute", "post_fit"]]
    return hidden.add_prefix("hidden_").join(out.add_prefix("last_")).reset_index()


# ----------------------------------------------------------------------------------------------
# R1: the network-wide binning range


def global_range_claim(single_run, ranged_run, ebab_label: str = EBAB.label, early_layers: int | None = None) -> ClaimResult:
    """R1: a network-wide range (dominated by the last ReLU layer) under-estimates the information
    of the early layers. Rule: reproduced if the layer with the largest activity is the last
    hidden layer and the first ``early_layers`` layers average at least
    :data:`GLOBAL_RANGE_GAP_BITS` less with the network-wide range than with EBAB; partly if only
    one of the two holds."""
    early_layers = rule("R1").p["early_layers"] if early_layers is None else early_layers
    peaks = np.nanmax(single_run.layer_max[:, :-1, 0], axis=0)
    deepest = int(np.argmax(peaks))
    ranged = np.nanmean(ranged_run.mi[ranged_run.estimator_labels[0]][:, :early_layers, 0, 0])
    adaptive = np.nanmean(single_run.mi[ebab_label][:, :early_layers, 0, 0])
    n_hidden = single_run.layer_max.shape[1] - 1
    dominated = deepest == n_hidden - 1
    m = {"dominated": bool(dominated), "gap": float(adaptive - ranged), "ranged": float(ranged), "adaptive": float(adaptive)}
    return _judge(
        "R1",
        "A network-wide binning range, set by the last ReLU layer, hides information (and compression) "
        "in the early layers (Fig. 1)",
        f"largest activity in layer h{deepest + 1} of {n_hidden} (peak {peaks[deepest]:.1f}); layers h1-h{early_layers} "
        f"average {ranged:.2f} bits with the network-wide range vs {adaptive:.2f} bits with EBAB",
        m,
    )


# ----------------------------------------------------------------------------------------------
# R3, R4: initializations


def initialization_claims(table: pd.DataFrame, estimator: str, strong: float | None = None) -> list[ClaimResult]:
    """R3 (single ReLU networks compress, the 50-network average shows no distinct phase) and R4
    (trajectories differ a lot between initializations), from one activation's networks."""
    strong = rule("R3").p["strong"] if strong is None else strong
    s = compression_scores(table, estimator)
    last = s["layer"].max()
    hidden = s[s["layer"] < last]
    n = hidden["seed"].nunique()
    any_strong = hidden.groupby("seed")["absolute"].max() > strong
    share = float(any_strong.mean())
    means = mean_over_seeds(table, estimator)
    mean_curve = means.assign(seed=-1, diverged=False)[["activation", "l2", "estimator", "seed", "epoch", "layer", "i_xt", "i_ty", "diverged"]]
    mean_scores = compression_scores(mean_curve, estimator)
    mean_hidden = mean_scores[mean_scores["layer"] < last]["absolute"]
    single_mean = hidden.groupby("layer")["absolute"].mean()
    ratio = float(mean_hidden.mean() / single_mean.mean()) if single_mean.mean() > 0 else np.nan
    sd = hidden.groupby("layer")["final"].std()
    spread = float(sd.mean())
    activation = table["activation"].iloc[0]
    return [
        _judge(
            "R3",
            f"Single {activation} networks compress, but averaged over initializations there is no distinct "
            "fitting or compression phase (Figs. 5-6)",
            f"{share:.0%} of {n} networks compress some hidden layer by > {strong:g} bit (peak - final); the mean "
            f"curve's compression is {ratio:.0%} of the mean single-network compression",
            {"share": share, "ratio": ratio if np.isfinite(ratio) else np.inf, "n": n},
        ),
        _judge(
            "R4",
            "Layers of different initializations follow vastly different trajectories (Fig. 5)",
            f"across {n} initializations the final I(X;T) of a hidden layer varies with a standard deviation of "
            f"{spread:.2f} bits on average (per layer: {', '.join(f'{v:.2f}' for v in sd.to_numpy())})",
            {"spread": spread, "per_layer": sd.to_numpy(), "n": n},
        ),
    ]


# ----------------------------------------------------------------------------------------------
# R2, R5: activation functions


def layer_tests(scores: pd.DataFrame, min_bits: float | None = None, alpha: float = SIGNIFICANCE) -> pd.DataFrame:
    """Per (activation, l2, layer) cell of hidden layers: does the layer compress beyond its noise floor?

    Two one-sided t-tests over the cell's networks, each Holm-corrected over all cells given:
    the excess of peak - final over the noise floor (``excess > 0``) and the post-fit score
    (``post_fit > 0``: information lost after fitting). A cell ``compresses`` when both adjusted
    p-values are below ``alpha`` and the mean excess is at least ``min_bits`` (default: the R2
    rule's). Columns: ``activation, l2, layer, n, absolute, floor, excess, excess_low,
    excess_high, post_fit, p_excess, p_excess_holm, p_post_fit, p_post_fit_holm, compresses``.
    """
    min_bits = rule("R2", 2).p["min_bits"] if min_bits is None else min_bits
    hidden = scores[scores["layer"] < scores["layer"].max()]
    rows = []
    for (activation, l2, layer), g in hidden.groupby(["activation", "l2", "layer"], sort=False):
        m_ex, p_ex, n = one_sided_t(g["excess"])
        _, p_pf, _ = one_sided_t(g["post_fit"])
        _, lo, hi = mean_ci(g["excess"])
        rows.append((activation, l2, layer, n, g["absolute"].mean(), g["floor"].mean(), m_ex, lo, hi,
                     g["post_fit"].mean(), p_ex, p_pf))
    out = pd.DataFrame(rows, columns=["activation", "l2", "layer", "n", "absolute", "floor", "excess", "excess_low",
                                      "excess_high", "post_fit", "p_excess", "p_post_fit"])
    out["p_excess_holm"] = holm(out["p_excess"].fillna(1.0).to_numpy()) if len(out) else []
    out["p_post_fit_holm"] = holm(out["p_post_fit"].fillna(1.0).to_numpy()) if len(out) else []
    out["compresses"] = (out["p_excess_holm"] < alpha) & (out["p_post_fit_holm"] < alpha) & (out["excess"] >= min_bits)
    return out


def activation_claims(table: pd.DataFrame, estimator: str) -> list[ClaimResult]:
    """R2 (saturation is not required; compression differs between activations) and R5 (ELU,
    Swish and centered softplus compress; tanh most; softplus and centered softplus differ)."""
    scores = compression_scores(table, estimator)
    ns = network_scores(table, estimator, scores)
    cells = layer_tests(scores)
    per_act = {}
    for activation, g in ns.groupby("activation", sort=False):
        per_act[activation] = {
            "absolute": mean_ci(g["hidden_absolute"]),
            "post_fit": mean_ci(g["hidden_post_fit"]),
            "values": g["hidden_absolute"].to_numpy(),
            "n": len(g),
            "layers": cells[(cells["activation"] == activation) & cells["compresses"]]["layer"].tolist(),
        }
    acts = list(per_act)
    compressing = [a for a in acts if per_act[a]["post_fit"][1] > 0]
    nonsat_all = [a for a in acts if not get_activation(a).double_saturating]
    nonsat = [a for a in compressing if a in nonsat_all]
    floor_ok = [a for a in nonsat_all if per_act[a]["layers"]]
    groups = [per_act[a]["values"] for a in acts]
    kw_p = float(stats.kruskal(*groups).pvalue) if len(groups) > 1 else np.nan

    def _layers(a):
        return ",".join(f"h{x}" for x in per_act[a]["layers"]) or "none"

    results = [_judge(
        "R2",
        "With adaptive estimators, saturation is not required for compression, and the amount of "
        "compression differs between activation functions (abstract)",
        f"non-saturating activations with a layer compressing beyond the noise floor (Holm over {len(cells)} cells): "
        f"{len(floor_ok)} of {len(nonsat_all)} ({'; '.join(f'{a}: {_layers(a)}' for a in nonsat_all) or 'none'}); "
        f"with hidden-layer-mean post-fit CI above 0: {len(nonsat)} of {len(nonsat_all)}; Kruskal-Wallis across "
        f"{len(acts)} activations on peak-final scores p = {kw_p:.2g}",
        {"nonsat_ci": len(nonsat), "nonsat_k": len(floor_ok), "nonsat_n": len(nonsat_all), "kw_p": kw_p,
         "qualifying": floor_ok},
    )]
    named = [a for a in ("elu", "swish", "centered_softplus") if a in per_act]
    if named:
        ok = [a for a in named if per_act[a]["post_fit"][1] > 0]
        results.append(_judge(
            "R5a",
            "ELU, Swish and centered softplus compress information despite being non-saturating (Fig. 7)",
            "; ".join(f"{a}: {_fmt_ci(*per_act[a]['post_fit'])}, layers beyond the floor: {_layers(a)}" for a in named)
            + " (post-fit, hidden-layer mean)",
            {"ci_k": len(ok), "floor_k": sum(bool(per_act[a]["layers"]) for a in named), "n": len(named)},
        ))
    if "tanh" in per_act and len(acts) > 1:
        ranking = sorted(acts, key=lambda a: -per_act[a]["absolute"][0])
        top = ranking[0]
        runner = ranking[1] if top == "tanh" else "tanh"
        p = float(stats.mannwhitneyu(per_act[top]["values"], per_act[runner]["values"]).pvalue)
        results.append(_judge(
            "R5b",
            "tanh compresses most strongly",
            "peak-final compression, hidden-layer mean: " + ", ".join(
                f"{a} {per_act[a]['absolute'][0]:.2f}" for a in ranking) + f" bits; {top} vs {runner}: Mann-Whitney p = {p:.2g}",
            {"top": top, "runner": runner, "p": p},
        ))
    if "softplus" in per_act and "centered_softplus" in per_act:
        p = float(stats.mannwhitneyu(per_act["softplus"]["values"], per_act["centered_softplus"]["values"]).pvalue)
        results.append(_judge(
            "R5c",
            "Softplus and centered softplus compress by different amounts",
            f"softplus {_fmt_ci(*per_act['softplus']['absolute'])}, centered softplus "
            f"{_fmt_ci(*per_act['centered_softplus']['absolute'])} (peak-final); Mann-Whitney p = {p:.2g}",
            {"p": p},
        ))
    return results


# ----------------------------------------------------------------------------------------------
# R6: L2 regularization


def l2_claims(table: pd.DataFrame, history: pd.DataFrame, estimator: str, reference: float = 0.015) -> list[ClaimResult]:
    """R6: L2 increases compression, clusters the layers late in training and prevents
    overfitting; from one activation's networks at several L2 strengths (0 among them)."""
    s = compression_scores(table, estimator)
    ns = network_scores(table, estimator, s)
    rho, p = stats.spearmanr(ns["l2"], ns["hidden_absolute"]) if ns["l2"].nunique() > 1 else (np.nan, np.nan)
    means = ns.groupby("l2")["hidden_absolute"].mean()
    # clustering: spread (sd over hidden layers) of final I(X;T), per network; also without the
    # first hidden layer, which stays close to the 12-bit ceiling at any strength
    hidden = s[s["layer"] < s["layer"].max()]
    spread = hidden.groupby(["l2", "seed"])["final"].std().groupby("l2").mean()
    deep = hidden[hidden["layer"] > 1].groupby(["l2", "seed"])["final"].std().groupby("l2").mean()

    def trend(series):
        if len(series) < 3:
            return np.nan, np.nan
        return stats.spearmanr(series.index, series.to_numpy())[0], float(series.iloc[-1] / series.iloc[0])

    rho_c, ratio_c = trend(spread)
    rho_d, ratio_d = trend(deep)
    gen = final_generalization(history)
    g0 = gen[gen["l2"] == 0]["gap"]
    strengths = sorted(gen["l2"].unique())
    ref = reference if reference in strengths else strengths[-1]
    g1 = gen[gen["l2"] == ref]["gap"]
    pt = float(stats.ttest_ind(g0, g1, equal_var=False).pvalue) if len(g0) > 1 and len(g1) > 1 else np.nan
    nan_false = {"rho_all": rho_c, "ratio_all": ratio_c, "rho_deep": rho_d, "ratio_deep": ratio_d}
    m6b = {k: (v if np.isfinite(v) else (np.inf if k.startswith("ratio") else 0.0)) for k, v in nan_false.items()}
    return [
        _judge(
            "R6a",
            "L2 regularization increases compression",
            "hidden-layer peak-final compression by L2 strength: " + ", ".join(f"{k:g}: {v:.2f}" for k, v in means.items())
            + f" bits; Spearman rho = {rho:+.2f} (p = {p:.2g}, N = {len(ns)})",
            {"rho": rho if np.isfinite(rho) else 0.0, "p": p if np.isfinite(p) else 1.0, "means": means.to_dict()},
        ),
        _judge(
            "R6b",
            "With L2, the layers' information converges to one point late in training",
            "spread (sd over layers) of final I(X;T), all hidden layers: " + ", ".join(f"{k:g}: {v:.2f}" for k, v in spread.items())
            + f" bits (Spearman rho {rho_c:+.2f}); without the first hidden layer: "
            + ", ".join(f"{k:g}: {v:.2f}" for k, v in deep.items()) + f" bits (rho {rho_d:+.2f})",
            m6b | {"spread": spread.to_dict(), "deep": deep.to_dict()},
        ),
        _judge(
            "R6c",
            "L2 prevents the overfitting seen without it",
            f"train-test accuracy gap at the end: {g0.mean():.3f} without L2, {g1.mean():.3f} at L2 = {ref:g} "
            f"(Welch p = {pt:.2g}); test accuracy {gen[gen['l2'] == 0]['test_acc'].mean():.3f} vs "
            f"{gen[gen['l2'] == ref]['test_acc'].mean():.3f}",
            {"gap_0": float(g0.mean()), "gap_l2": float(g1.mean()), "p": pt if np.isfinite(pt) else 1.0, "reference": ref,
             "test_0": float(gen[gen["l2"] == 0]["test_acc"].mean()), "test_l2": float(gen[gen["l2"] == ref]["test_acc"].mean())},
        ),
    ]


# ----------------------------------------------------------------------------------------------
# R7: compression and generalization


def generalization_claim(table: pd.DataFrame, history: pd.DataFrame, estimator: str, rng=0) -> tuple[ClaimResult, pd.DataFrame]:
    """R7: only the last layer's compression correlates (positively) with generalization.

    Correlates every layer's peak-final compression with final test accuracy across the pool of
    networks, after removing each condition's (activation, L2) mean from both, so that the
    correlation is *within* conditions and not driven by differences between them. Returns the
    claim and the per-layer statistics (with Holm-adjusted p-values over the layers).
    """
    alpha = rule("R7").p["alpha"]
    s = compression_scores(table, estimator)
    gen = final_generalization(history)
    data = s.merge(gen, on=["activation", "l2", "seed"])
    last = data["layer"].max()
    rows = []
    for layer, g in data.groupby("layer"):
        x = g["absolute"] - g.groupby(["activation", "l2"])["absolute"].transform("mean")
        y = g["test_acc"] - g.groupby(["activation", "l2"])["test_acc"].transform("mean")
        stats_ = correlate(x, y, rng=rng)
        rows.append({"layer": layer, **stats_})
    res = pd.DataFrame(rows)
    res["spearman_p_holm"] = holm(res["spearman_p"].fillna(1.0).to_numpy())
    pos = res["spearman_rho"] > 0
    raw = res[pos & (res["spearman_p"] < alpha)]["layer"].tolist()
    adj = res[pos & (res["spearman_p_holm"] < alpha)]["layer"].tolist()
    lr = res[res["layer"] == last].iloc[0]
    m = {"last_ok_raw": last in raw, "hidden_raw": [x for x in raw if x != last],
         "last_ok_holm": last in adj, "hidden_holm": [x for x in adj if x != last],
         "rho_last": float(lr.spearman_rho), "p_last": float(lr.spearman_p), "n": int(lr.n)}
    return _judge(
        "R7",
        "Only compression of the last (softmax) layer is positively correlated with generalization",
        f"within-condition Spearman rho with test accuracy: last layer {lr.spearman_rho:+.2f} "
        f"[{lr.spearman_low:+.2f}, {lr.spearman_high:+.2f}], p = {lr.spearman_p:.2g} (Holm {lr.spearman_p_holm:.2g}); "
        f"hidden layers with a significant positive correlation: {', '.join(f'h{x}' for x in m['hidden_raw']) or 'none'} "
        f"uncorrected, {', '.join(f'h{x}' for x in m['hidden_holm']) or 'none'} after Holm (N = {int(lr.n)})",
        m,
    ), res


def claims_markdown(claims, extra: dict | None = None, links: dict | None = None) -> str:
    """A Markdown table of claims (for ``IPython.display.Markdown``): key, claim, measurement,
    verdict in bold, each part of the claim, the decision rule with its version, and optional
    extra columns (``{"estimator": [...]}``) or links to where each claim is shown:
    ``{key: (label, target)}``, e.g. ``{"R2": ("Activation functions", "05_activations")}`` (a
    link labelled by the chapter's title, :func:`ibtools.chapters.chapter_title`). A bare
    ``{key: target}`` is labelled by the target itself."""
    extra = extra or {}
    head = ["", "claim", *extra, "what we measured", "verdict", "parts", "rule"] + (["shown in"] if links else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, c in enumerate(claims):
        cells = [c.key, c.claim, *(str(v[i]) for v in extra.values()), c.measured, f"**{c.verdict}**",
                 c.parts_text(), f"v{c.version}: {c.rule}"]
        if links:
            link = links.get(c.key)
            label, target = (link, link) if isinstance(link, str) else (link or ("", ""))
            cells.append(f"[{label}]({target})" if target else "")
        lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    return "\n".join(lines)


def versions_markdown(claims, study: str = "paper") -> str:
    """A Markdown table of every rule version of ``claims``: when it was adopted, whether it was
    written after the data of ``study`` existed (:func:`written_after_data`), its text and its
    verdict with its parts. "(current)" marks the version each claim's verdict comes from (pass
    the claims through :func:`for_study` for the re-run)."""
    lines = ["| claim | version | adopted | written after the data | verdict | parts | rule |", "|---|---|---|---|---|---|---|"]
    for c in claims:
        for r in RULES[c.key]:
            verdict, parts = c.by_version[r.version]
            mark = " (current)" if r.version == c.version else ""
            cells = [c.key, f"v{r.version}{mark}", r.adopted, "yes" if written_after_data(r, study) else "no", f"**{verdict}**",
                     "; ".join(f"{d}: {'yes' if ok else 'no'}" for d, ok in parts), r.text()]
            lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    return "\n".join(lines)

"""The paper's claims, each turned into a measurement and an explicit decision rule.

Every function takes results of the study (or of a smaller re-run with other parameters) and
returns a :class:`ClaimResult`: what was claimed, what we measured (numbers), the verdict, and the
rule that produced it. Chapters 3-8 print these, so a chapter re-run with other parameters states
its own verdicts from its own numbers. The rules are ours (the paper gives no formal tests);
they are stated next to every verdict.

Verdicts: ``"reproduced"``, ``"partly reproduced"``, ``"not reproduced"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .activations import get_activation
from .analysis import compression_scores, correlate, final_generalization, mean_ci, mean_over_seeds

__all__ = [
    "ClaimResult",
    "global_range_claim",
    "activation_claims",
    "initialization_claims",
    "l2_claims",
    "generalization_claim",
    "network_scores",
    "SIGNIFICANCE",
    "claims_markdown",
]

REPRODUCED, PARTLY, NOT = "reproduced", "partly reproduced", "not reproduced"
#: Significance level of the tests behind the verdicts.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class ClaimResult:
    """One claim of the paper and what our data say about it."""

    key: str
    claim: str
    measured: str
    verdict: str
    rule: str

    def as_row(self) -> dict:
        return {"claim": self.claim, "measured": self.measured, "verdict": self.verdict, "rule": self.rule}


def _fmt_ci(m, lo, hi, unit=" bits"):
    return f"{m:+.2f}{unit} [{lo:+.2f}, {hi:+.2f}]"


def network_scores(table: pd.DataFrame, estimator: str) -> pd.DataFrame:
    """Per network: compression scores averaged over its *hidden* layers, and of its last
    (softmax) layer. Columns ``activation, l2, seed, hidden_absolute, hidden_post_fit, last_absolute,
    last_post_fit``."""
    s = compression_scores(table, estimator)
    last = s["layer"] == s["layer"].max()
    hidden = s[~last].groupby(["activation", "l2", "seed"])[["absolute", "post_fit"]].mean()
    out = s[last].set_index(["activation", "l2", "seed"])[["absolute", "post_fit"]]
    return hidden.add_prefix("hidden_").join(out.add_prefix("last_")).reset_index()


# ----------------------------------------------------------------------------------------------
# R1: the network-wide binning range


def global_range_claim(single_run, ranged_run, ebab_label: str = "ebab(n_bins=30)", early_layers: int = 3) -> ClaimResult:
    """R1: a network-wide range (dominated by the last ReLU layer) under-estimates the information
    of the early layers. Rule: reproduced if the layer with the largest activity is the last
    hidden layer and the first ``early_layers`` layers average at least 1 bit less with the
    network-wide range than with EBAB; partly if only one of the two holds."""
    peaks = np.nanmax(single_run.layer_max[:, :-1, 0], axis=0)
    deepest = int(np.argmax(peaks))
    ranged = np.nanmean(ranged_run.mi[ranged_run.estimator_labels[0]][:, :early_layers, 0, 0])
    adaptive = np.nanmean(single_run.mi[ebab_label][:, :early_layers, 0, 0])
    n_hidden = single_run.layer_max.shape[1] - 1
    dominated = deepest == n_hidden - 1
    lower = adaptive - ranged >= 1.0
    verdict = REPRODUCED if dominated and lower else PARTLY if dominated or lower else NOT
    return ClaimResult(
        "R1",
        "A network-wide binning range, set by the last ReLU layer, hides information (and compression) "
        "in the early layers (Fig. 1)",
        f"largest activity in layer h{deepest + 1} of {n_hidden} (peak {peaks[deepest]:.1f}); layers h1-h{early_layers} "
        f"average {ranged:.2f} bits with the network-wide range vs {adaptive:.2f} bits with EBAB",
        verdict,
        "last hidden layer sets the maximum, and early layers >= 1 bit lower with the global range",
    )


# ----------------------------------------------------------------------------------------------
# R3, R4: initializations


def initialization_claims(table: pd.DataFrame, estimator: str, strong: float = 1.0) -> list[ClaimResult]:
    """R3 (single ReLU networks compress, the 50-network average shows no distinct phase) and R4
    (trajectories differ a lot between initializations), from one activation's networks."""
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
    r3 = REPRODUCED if share >= 0.5 and ratio < 0.5 else PARTLY if share >= 0.25 or ratio < 0.5 else NOT
    sd = hidden.groupby("layer")["final"].std()
    spread = float(sd.mean())
    r4 = REPRODUCED if spread >= 0.5 else PARTLY if spread >= 0.25 else NOT
    activation = table["activation"].iloc[0]
    return [
        ClaimResult(
            "R3",
            f"Single {activation} networks compress, but averaged over initializations there is no distinct "
            "fitting or compression phase (Figs. 5-6)",
            f"{share:.0%} of {n} networks compress some hidden layer by > {strong:g} bit (peak - final); the mean "
            f"curve's compression is {ratio:.0%} of the mean single-network compression",
            r3,
            f"reproduced if >= 50 % of networks compress a hidden layer by > {strong:g} bit and the average curve "
            "keeps < 50 % of it",
        ),
        ClaimResult(
            "R4",
            "Layers of different initializations follow vastly different trajectories (Fig. 5)",
            f"across {n} initializations the final I(X;T) of a hidden layer varies with a standard deviation of "
            f"{spread:.2f} bits on average (per layer: {', '.join(f'{v:.2f}' for v in sd.to_numpy())})",
            r4,
            "reproduced if the mean standard deviation of final hidden-layer I(X;T) is >= 0.5 bit",
        ),
    ]


# ----------------------------------------------------------------------------------------------
# R2, R5: activation functions


def activation_claims(table: pd.DataFrame, estimator: str) -> list[ClaimResult]:
    """R2 (saturation is not required; compression differs between activations) and R5 (ELU,
    Swish and centered softplus compress; tanh most; softplus and centered softplus differ)."""
    ns = network_scores(table, estimator)
    per_act = {}
    for activation, g in ns.groupby("activation"):
        per_act[activation] = {
            "absolute": mean_ci(g["hidden_absolute"]),
            "post_fit": mean_ci(g["hidden_post_fit"]),
            "values": g["hidden_absolute"].to_numpy(),
            "n": len(g),
        }
    acts = list(per_act)
    compressing = [a for a in acts if per_act[a]["post_fit"][1] > 0]
    nonsat = [a for a in compressing if not get_activation(a).double_saturating]
    groups = [per_act[a]["values"] for a in acts]
    kw_p = float(stats.kruskal(*groups).pvalue) if len(groups) > 1 else np.nan
    r2 = REPRODUCED if nonsat and kw_p < SIGNIFICANCE else PARTLY if nonsat or kw_p < SIGNIFICANCE else NOT
    results = [ClaimResult(
        "R2",
        "With adaptive estimators, saturation is not required for compression, and the amount of "
        "compression differs between activation functions (abstract)",
        f"post-fitting compression of hidden layers with 95 % CI above 0 for: {', '.join(compressing) or 'none'}; "
        f"of these non-saturating: {', '.join(nonsat) or 'none'}; Kruskal-Wallis across {len(acts)} activations "
        f"on peak-final scores p = {kw_p:.2g}",
        r2,
        "reproduced if some non-saturating activation has post-fit compression with CI > 0 and activations "
        f"differ (Kruskal-Wallis p < {SIGNIFICANCE})",
    )]
    named = [a for a in ("elu", "swish", "centered_softplus") if a in per_act]
    if named:
        ok = [a for a in named if per_act[a]["post_fit"][1] > 0]
        r5a = REPRODUCED if len(ok) == len(named) else PARTLY if ok else NOT
        results.append(ClaimResult(
            "R5a",
            "ELU, Swish and centered softplus compress information despite being non-saturating (Fig. 7)",
            "; ".join(f"{a}: {_fmt_ci(*per_act[a]['post_fit'])}" for a in named) + " (post-fit, hidden-layer mean)",
            r5a,
            "reproduced if each has post-fit compression with 95 % CI above 0",
        ))
    if "tanh" in per_act and len(acts) > 1:
        ranking = sorted(acts, key=lambda a: -per_act[a]["absolute"][0])
        top = ranking[0]
        runner = ranking[1] if top == "tanh" else "tanh"
        p = float(stats.mannwhitneyu(per_act[top]["values"], per_act[runner]["values"]).pvalue)
        r5b = REPRODUCED if top == "tanh" and p < SIGNIFICANCE else PARTLY if top == "tanh" else NOT
        results.append(ClaimResult(
            "R5b",
            "tanh compresses most strongly",
            "peak-final compression, hidden-layer mean: " + ", ".join(
                f"{a} {per_act[a]['absolute'][0]:.2f}" for a in ranking) + f" bits; {top} vs {runner}: Mann-Whitney p = {p:.2g}",
            r5b,
            f"reproduced if tanh ranks first and differs from the second (p < {SIGNIFICANCE})",
        ))
    if "softplus" in per_act and "centered_softplus" in per_act:
        p = float(stats.mannwhitneyu(per_act["softplus"]["values"], per_act["centered_softplus"]["values"]).pvalue)
        results.append(ClaimResult(
            "R5c",
            "Softplus and centered softplus compress by different amounts",
            f"softplus {_fmt_ci(*per_act['softplus']['absolute'])}, centered softplus "
            f"{_fmt_ci(*per_act['centered_softplus']['absolute'])} (peak-final); Mann-Whitney p = {p:.2g}",
            REPRODUCED if p < SIGNIFICANCE else NOT,
            f"reproduced if the two distributions differ (p < {SIGNIFICANCE})",
        ))
    return results


# ----------------------------------------------------------------------------------------------
# R6: L2 regularization


def l2_claims(table: pd.DataFrame, history: pd.DataFrame, estimator: str, reference: float = 0.015) -> list[ClaimResult]:
    """R6: L2 increases compression, clusters the layers late in training and prevents
    overfitting; from one activation's networks at several L2 strengths (0 among them)."""
    ns = network_scores(table, estimator)
    rho, p = stats.spearmanr(ns["l2"], ns["hidden_absolute"])
    means = ns.groupby("l2")["hidden_absolute"].mean()
    more = rho > 0 and p < SIGNIFICANCE
    # clustering: spread (sd over hidden layers) of final I(X;T), per network; also without the
    # first hidden layer, which stays close to the 12-bit ceiling at any strength
    s = compression_scores(table, estimator)
    hidden = s[s["layer"] < s["layer"].max()]
    spread = hidden.groupby(["l2", "seed"])["final"].std().groupby("l2").mean()
    deep = hidden[hidden["layer"] > 1].groupby(["l2", "seed"])["final"].std().groupby("l2").mean()

    def converges(series):
        if len(series) < 3:
            return False, np.nan
        rho = stats.spearmanr(series.index, series.to_numpy())[0]
        return bool(rho < 0 and series.iloc[-1] < 0.5 * series.iloc[0]), rho

    all_ok, rho_c = converges(spread)
    deep_ok, rho_d = converges(deep)
    gen = final_generalization(history)
    g0 = gen[gen["l2"] == 0]["gap"]
    strengths = sorted(gen["l2"].unique())
    ref = reference if reference in strengths else strengths[-1]
    g1 = gen[gen["l2"] == ref]["gap"]
    pt = float(stats.ttest_ind(g0, g1, equal_var=False).pvalue) if len(g0) > 1 and len(g1) > 1 else np.nan
    less_gap = g1.mean() < g0.mean() and pt < SIGNIFICANCE
    return [
        ClaimResult(
            "R6a",
            "L2 regularization increases compression",
            "hidden-layer peak-final compression by L2 strength: " + ", ".join(f"{k:g}: {v:.2f}" for k, v in means.items())
            + f" bits; Spearman rho = {rho:+.2f} (p = {p:.2g}, N = {len(ns)})",
            REPRODUCED if more else NOT,
            f"reproduced if compression increases with L2 strength (Spearman rho > 0, p < {SIGNIFICANCE})",
        ),
        ClaimResult(
            "R6b",
            "With L2, the layers' information converges to one point late in training",
            "spread (sd over layers) of final I(X;T), all hidden layers: " + ", ".join(f"{k:g}: {v:.2f}" for k, v in spread.items())
            + f" bits (Spearman rho {rho_c:+.2f}); without the first hidden layer: "
            + ", ".join(f"{k:g}: {v:.2f}" for k, v in deep.items()) + f" bits (rho {rho_d:+.2f})",
            REPRODUCED if all_ok else PARTLY if deep_ok else NOT,
            "reproduced if the spread over all hidden layers falls with L2 and the strongest L2 halves it; "
            "partly if that holds only without the first hidden layer",
        ),
        ClaimResult(
            "R6c",
            "L2 prevents the overfitting seen without it",
            f"train-test accuracy gap at the end: {g0.mean():.3f} without L2, {g1.mean():.3f} at L2 = {ref:g} "
            f"(Welch p = {pt:.2g}); test accuracy {gen[gen['l2'] == 0]['test_acc'].mean():.3f} vs "
            f"{gen[gen['l2'] == ref]['test_acc'].mean():.3f}",
            REPRODUCED if less_gap else NOT,
            f"reproduced if the gap at L2 = {ref:g} is smaller than without L2 (p < {SIGNIFICANCE})",
        ),
    ]


# ----------------------------------------------------------------------------------------------
# R7: compression and generalization


def generalization_claim(table: pd.DataFrame, history: pd.DataFrame, estimator: str, rng=0) -> tuple[ClaimResult, pd.DataFrame]:
    """R7: only the last layer's compression correlates (positively) with generalization.

    Correlates every layer's peak-final compression with final test accuracy across the pool of
    networks, after removing each condition's (activation, L2) mean from both, so that the
    correlation is *within* conditions and not driven by differences between them. Returns the
    claim and the per-layer statistics.
    """
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
    sig = res[(res["spearman_p"] < SIGNIFICANCE) & (res["spearman_rho"] > 0)]["layer"].tolist()
    last_ok = last in sig
    hidden_sig = [layer for layer in sig if layer != last]
    verdict = REPRODUCED if last_ok and not hidden_sig else PARTLY if last_ok or not hidden_sig else NOT
    lr = res[res["layer"] == last].iloc[0]
    return ClaimResult(
        "R7",
        "Only compression of the last (softmax) layer is positively correlated with generalization",
        f"within-condition Spearman rho with test accuracy: last layer {lr.spearman_rho:+.2f} "
        f"[{lr.spearman_low:+.2f}, {lr.spearman_high:+.2f}], p = {lr.spearman_p:.2g}; hidden layers with a significant "
        f"positive correlation: {', '.join(f'h{x}' for x in hidden_sig) or 'none'} (N = {int(lr.n)})",
        verdict,
        f"reproduced if the last layer correlates positively (p < {SIGNIFICANCE}) and no hidden layer does",
    ), res


def claims_markdown(claims, extra: dict | None = None, links: dict | None = None) -> str:
    """A Markdown table of claims (for ``IPython.display.Markdown``): key, claim, measurement,
    verdict in bold, the decision rule, and optional extra columns (``{"estimator": [...]}``) or
    links (``{key: "chapter"}``)."""
    extra = extra or {}
    head = ["", "claim", *extra, "what we measured", "verdict", "rule"] + (["figures"] if links else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, c in enumerate(claims):
        cells = [c.key, c.claim, *(str(v[i]) for v in extra.values()), c.measured, f"**{c.verdict}**", c.rule]
        if links:
            target = links.get(c.key, "")
            cells.append(f"[{target}]({target})" if target else "")
        lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    return "\n".join(lines)

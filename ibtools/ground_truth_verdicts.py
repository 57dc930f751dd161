"""Verdicts on the paper's claims under each ground truth (issue 11).

The claims and their decision rules are those of :mod:`ibtools.claims` (the same functions,
rule versions and thresholds as the main study); this module only feeds them the ground-truth
studies' networks (:mod:`ibtools.ground_truth_study`) with a ground-truth "estimator":

* ``exact`` on the **quantized** networks: I(X;T) by counting distinct rows, exact;
* ``mixture`` on the **noisy** networks: the Monte Carlo I(X;T) of the noise-injected layers
  (standard error below 0.05 bits; with one draw of the earlier noise it over-states deeper
  layers, see :func:`ibtools.estimators.mixture_information`).

and, for comparison on the same networks, any estimator recorded there (EBAB, adaptive KDE).

Not every claim can be tested on these studies: R1 (network-wide binning range) needs the single
networks of the main study, R6a-c (L2) an L2 sweep, R2 and R5 several activations (the noisy study
has tanh only), and R7 (compression of the softmax output) an estimate for the softmax output,
which has no noise of its own in a noisy network (``mixture`` leaves it NaN). Such cells read
:data:`NOT_TESTABLE` rather than a verdict.
"""

from __future__ import annotations

import pandas as pd

from .claims import RULES, activation_claims, generalization_claim, initialization_claims
from .verdicts import verdict_frame

__all__ = ["NOT_TESTABLE", "CLAIM_KEYS", "ground_truth_claims", "ground_truth_verdicts"]

#: What a cell says when the claim cannot be decided from the networks given.
NOT_TESTABLE = "not testable"
#: Every claim of the paper (the keys of :data:`ibtools.claims.RULES`), in order.
CLAIM_KEYS = tuple(sorted(RULES))


def _with_output_placeholder(table: pd.DataFrame, estimator: str, last: int) -> tuple[pd.DataFrame, bool]:
    """The table, and whether the estimator has values for the softmax output.

    The rules of R3 and R4 take the largest layer index as the softmax output and judge the
    layers below it. An estimator with no value there (``mixture`` on noisy networks) would make
    the last *hidden* layer look like the output, so its rows for the output layer get a constant
    placeholder (0 bits at every epoch: no compression) that those rules then leave out; no
    claim about the output is judged from it (R7 is not testable then)."""
    sub = table[table["estimator"] == estimator]
    at_last = sub[sub["layer"] == last]
    if len(at_last) and at_last["i_xt"].notna().any():
        return table, True
    recorded = sub[(sub["layer"] == last - 1) & sub["i_xt"].notna()]
    filler = recorded.assign(layer=last, i_xt=0.0, i_ty=0.0)
    kept = table[~((table["estimator"] == estimator) & (table["layer"] == last))]
    return pd.concat([kept, filler], ignore_index=True), False


def ground_truth_claims(table: pd.DataFrame, history: pd.DataFrame, estimator: str, *, output_layer: int | None = None,
                        rng=0) -> list:
    """Every claim that the networks of ``table`` can decide, judged on estimator ``estimator``.

    Parameters
    ----------
    table : DataFrame
        Information-plane table of a ground-truth sweep (``SweepResult.table()``), one or more
        activations, at one L2 strength.
    history : DataFrame
        Its training history (``SweepResult.history_table()``), for R7.
    estimator : str
        The label to judge on, e.g. ``"exact"`` (quantized networks), a ``mixture`` label (noisy
        networks) or ``EBAB.label`` for the estimator on the same networks.
    output_layer : int, optional
        Index of the softmax output layer in ``table`` (default: the largest layer index of any
        estimator in ``table``; give it when ``table`` holds only an estimator without output
        values, such as ``mixture``).
    rng : int
        Seed of R7's bootstrap confidence intervals.

    Returns
    -------
    list of ClaimResult
        R2, R5a-c (activation claims) when the table has several activations; R3, R4 on the ReLU
        networks, or on the only activation; R7 when the estimator has values for the softmax
        output. Rules and versions are those of :mod:`ibtools.claims`.
    """
    last = int(table["layer"].max()) if output_layer is None else int(output_layer)
    table = table[table["estimator"] == estimator]
    if table.empty:
        raise ValueError(f"no values of estimator {estimator!r} in the table")
    scored, has_output = _with_output_placeholder(table, estimator, last)
    activations = list(dict.fromkeys(scored["activation"]))
    out = []
    if len(activations) > 1:
        out += activation_claims(scored, estimator)
    one = "relu" if "relu" in activations else activations[0]
    out += initialization_claims(scored[scored["activation"] == one], estimator)
    if has_output:
        out.append(generalization_claim(table, history, estimator, rng=rng)[0])
    return sorted(out, key=lambda c: c.key)


def ground_truth_verdicts(columns: dict, keys=CLAIM_KEYS) -> pd.DataFrame:
    """Rows claims, columns ground truths (or estimators on the same networks), cells verdicts.

    ``columns`` maps a column name to a list of :class:`~ibtools.claims.ClaimResult` (from
    :func:`ground_truth_claims`); claims missing from a column read :data:`NOT_TESTABLE`. Built
    with :func:`ibtools.verdicts.verdict_frame`, so it plots with
    :func:`ibtools.plotting.plot_verdicts` like the main study's verdict table.
    """
    frame = verdict_frame(columns, skip=())
    frame = frame.reindex(index=list(keys), columns=list(columns))
    return frame.where(frame.notna(), NOT_TESTABLE)

"""The summary chapter's ground-truth columns: each claim's verdict under exact MI of quantized
networks and under the Monte Carlo MI of noise-injected networks (issue 11).

Each column is decided by its study's own rule, fixed before that study's stored numbers were
read (:data:`ibtools.quantized_study.RULE_TEXT`, :data:`ibtools.noisy_study.RULE_TEXT`), on the
networks of that rule only: the 8-bit networks of every activation asked for, and the tanh
networks with noise of std 0.1. A column whose deciding units are not all stored (and not
computed) reads :data:`NOT_STORED` in every row rather than a verdict drawn from part of the
networks. The chapters on quantized and on noisy networks give every other column (4 bits,
without failed networks, the estimators on the same networks, other noise levels).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .activations import PAPER_ACTIVATIONS
from .ground_truth_study import GROUND_TRUTH_RESULTS, NOISE_STD, QUANTIZED_ESTIMATORS, ground_truth_sweeps
from .ground_truth_verdicts import CLAIM_KEYS, NOT_TESTABLE, ground_truth_verdicts
from .study import PAPER_EPOCHS, PAPER_SEEDS
from .sweep import SweepConfig, missing_units
from .validation import check_int

__all__ = ["QUANTIZED_COLUMN", "NOISY_COLUMN", "NOT_STORED", "GroundTruthColumns", "ground_truth_columns"]

#: Name of the summary column judged on the exact MI of the 8-bit networks.
QUANTIZED_COLUMN = "holds under exact MI of quantized nets"
#: Name of the summary column judged on the Monte Carlo MI of the noise-injected networks.
NOISY_COLUMN = "holds for noise-injected nets"
#: What every cell of a column says when its deciding units are not stored.
NOT_STORED = "not stored"


@dataclass(frozen=True)
class GroundTruthColumns:
    """What :func:`ground_truth_columns` returns.

    Attributes
    ----------
    verdicts : DataFrame
        Rows the claim keys (:data:`ibtools.ground_truth_verdicts.CLAIM_KEYS`), columns
        :data:`QUANTIZED_COLUMN` and :data:`NOISY_COLUMN`; cells a verdict, ``"not testable"``
        or :data:`NOT_STORED`.
    networks : DataFrame
        Per column: ``networks`` judged, of them ``failed``, and the ``units`` missing (0 when the
        column was decided).
    missing : DataFrame
        The units a column needs but that are not stored: ``column, unit``.
    """

    verdicts: pd.DataFrame
    networks: pd.DataFrame
    missing: pd.DataFrame


def _missing(sweeps, root) -> list[str]:
    return [name for sweep in sweeps for name in missing_units(sweep, root)]


def ground_truth_columns(activations=PAPER_ACTIVATIONS, *, epochs=None, seeds=None, compute_missing: bool = False,
                         results_dir=None, scratch_dir=None, rng=0, progress: bool = False) -> GroundTruthColumns:
    """Each claim's verdict under the two ground truths, by the rules of the chapters.

    Parameters
    ----------
    activations : sequence of str
        Activations of the quantized column (the noisy networks are tanh only).
    epochs, seeds : optional
        Training epochs and seeds of the networks (default: the stored study's 8000 and 0-49).
    compute_missing : bool
        False: read the stored units (``results_dir``, default ``results/ground_truth``); a column
        whose units are not all stored reads :data:`NOT_STORED`. True: compute the missing units
        in ``scratch_dir`` (what a cheap setting does); computed noisy units record the one-draw
        Monte Carlo estimate only (the K > 1 estimates cost K² times more and decide nothing here).
    rng : int
        Seed of the bootstrap confidence intervals.

    Raises
    ------
    ValueError
        For an unknown activation or impossible epochs.
    """
    from . import noisy_study as N
    from . import quantized_study as Q

    activations = tuple(activations)
    unknown = [a for a in activations if a not in PAPER_ACTIVATIONS]
    if unknown or not activations:
        raise ValueError(f"activations must be among {', '.join(PAPER_ACTIVATIONS)} (at least one), got {list(activations)}")
    epochs = PAPER_EPOCHS if epochs is None else check_int(epochs, "epochs", minimum=1)
    seeds = PAPER_SEEDS if seeds is None else tuple(seeds)
    root = GROUND_TRUTH_RESULTS if results_dir is None else results_dir
    columns, counts, missing = {}, [], []

    def judge(column, sweeps, read, claims_of):
        """Decide one column: its claims on the data ``read()`` returns, or None when a unit of
        ``sweeps`` is not stored (and not to be computed)."""
        absent = [] if compute_missing else _missing(sweeps, root)
        if absent:
            columns[column] = None
            missing.extend({"column": column, "unit": name} for name in absent)
            counts.append({"column": column, "networks": 0, "failed": 0, "units missing": len(absent)})
            return
        data = read()
        columns[column] = claims_of(data)
        counts.append({"column": column, "networks": len(data.status), "failed": int(data.status["failed"].sum()),
                       "units missing": 0})

    where = dict(epochs=epochs, seeds=seeds, compute_missing=compute_missing, results_dir=results_dir,
                 scratch_dir=scratch_dir, progress=progress)
    # The quantized column: the deciding quantization, every activation asked for.
    judge(QUANTIZED_COLUMN,
          [SweepConfig(Q.quantized_base(Q.RULE_BITS, epochs, QUANTIZED_ESTIMATORS), activations=(a,), seeds=seeds,
                       seeds_per_unit=50) for a in activations],
          lambda: Q.quantized_data((Q.RULE_BITS,), activations, **where),
          lambda data: Q.quantized_claims(data, rng=rng)[Q.RULE_COLUMN])
    # The noisy column: the deciding noise level (computed without the K > 1 estimates).
    judge(NOISY_COLUMN, ground_truth_sweeps(epochs=epochs, seeds=seeds, parts=("noisy",))["noisy"],
          lambda: N.noisy_data((NOISE_STD,), deep_draws=() if compute_missing else None, **where),
          lambda data: N.noisy_claims(data, estimators=(), rng=rng)[N.RULE_COLUMN])
    decided = {k: v for k, v in columns.items() if v is not None}
    frame = ground_truth_verdicts(decided) if decided else pd.DataFrame(index=list(CLAIM_KEYS))
    frame = frame.reindex(columns=list(columns))
    for name, value in columns.items():
        if value is None:
            frame[name] = NOT_STORED
    frame = frame.where(frame.notna(), NOT_TESTABLE)
    return GroundTruthColumns(frame, pd.DataFrame(counts).set_index("column"),
                              pd.DataFrame(missing, columns=["column", "unit"]))

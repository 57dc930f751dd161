"""Every claim of the paper, judged on the whole study under each condition a reviewer asks for:
with and without failed networks, per estimator setting on the epochs every compared setting
shares (equal terms), and under every version of each rule.

Used by the summary chapter; the claim measurements themselves live in :mod:`ibtools.claims`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import numpy as np

from .analysis import restrict_epochs
from .claims import (activation_claims, for_study, generalization_claim, global_range_claim, initialization_claims,
                     l2_claims)
from .failures import classify_runs, drop_failed
from .study import estimator_label
from .sweep import SweepResult

__all__ = ["StudyData", "EQUAL_TERMS_BLOCKS", "study_claims", "equal_terms", "common_recorded_epochs", "verdict_frame",
           "units_created_before", "IXT_CLAIMS", "ARM_CLAIMS", "RERUN_SETTINGS", "EXACT_NAME", "NETWORK_SETS", "arm_claims",
           "rerun_verdicts", "rerun_verdict_table", "rerun_verdict_frame", "rerun_study_data", "pooled"]

#: Settings compared with each other on the epochs all of them share. The stored schedules are not
#: nested, so each block has its own common epochs: the three EBAB bin counts share 32 epochs, the
#: main EBAB and adaptive KDE 12, the main EBAB and the two other KDE constants 6.
EQUAL_TERMS_BLOCKS = (
    ("EBAB bins", ("ebab", "ebab_10bins", "ebab_100bins")),
    ("adaptive KDE", ("ebab", "akde")),
    ("KDE constant", ("ebab", "akde_small_alpha", "akde_large_alpha")),
)


def pooled(*sweeps) -> SweepResult:
    """The runs of ``sweeps`` with each unit once (a unit two sweeps share, such as ReLU without L2
    in the activation and the L2 sweep, counts once), in the order first seen."""
    return SweepResult(list({r.config.key(): r for sweep in sweeps for r in sweep.runs}.values()))


@dataclass
class StudyData:
    """The runs one summary judges: the activation sweep, the L2 sweep, their pool (each network
    once) and the single ReLU network with its network-wide-range re-run."""

    activations: object
    l2: object
    pool: object
    relu_single: object
    relu_ranged: object

    @classmethod
    def from_sweeps(cls, activations, l2, single=None, ranged=None) -> "StudyData":
        """The data of an activation sweep and an L2 sweep, their pool made by :func:`pooled`."""
        return cls(activations, l2, pooled(activations, l2), single, ranged)

    def status(self, estimator: str | None = None) -> pd.DataFrame:
        """Failure status of every network of the pool (:func:`ibtools.failures.classify_runs`)."""
        return classify_runs(self.pool.runs, estimator)


def _prep(table, epochs, status):
    if epochs is not None:
        table = restrict_epochs(table, epochs)
    if status is not None:
        table = drop_failed(table, status)
    return table


def study_claims(data: StudyData, label: str, *, epochs=None, status: pd.DataFrame | None = None, rng=0) -> list:
    """Every claim with estimator ``label``; on ``epochs`` only (None: every recorded epoch) and
    without the failed networks of ``status`` (None: all networks). Sorted by key."""
    act = _prep(data.activations.table(label), epochs, status)
    l2t = _prep(data.l2.table(label), epochs, status)
    l2h = _prep(data.l2.history_table(), None, status)
    pool_t = _prep(data.pool.table(label), epochs, status)
    pool_h = _prep(data.pool.history_table(), None, status)
    relu = act[act.activation == "relu"] if "relu" in set(act.activation) else l2t[l2t.l2 == 0]
    out = [global_range_claim(data.relu_single, data.relu_ranged)]
    out += activation_claims(act, label)
    out += initialization_claims(relu, label)
    out += l2_claims(l2t, l2h, label)
    out.append(generalization_claim(pool_t, pool_h, label, rng=rng)[0])
    return sorted(out, key=lambda c: (c.key[:2], c.key))


def equal_terms(data: StudyData, blocks=EQUAL_TERMS_BLOCKS, *, status=None, rng=0) -> dict:
    """Claims of every setting of every block, scored on the block's common epochs.

    Returns ``{column: (claims, n_common_epochs)}`` with columns named ``"<setting> @<n>"``;
    the main EBAB appears once per block, on that block's epochs."""
    out = {}
    for _, names in blocks:
        labels = [estimator_label(n) for n in names]
        epochs = common_recorded_epochs(data.pool.runs, labels)
        for name, label in zip(names, labels):
            out[f"{name} @{len(epochs)}"] = (study_claims(data, label, epochs=epochs, status=status, rng=rng), len(epochs))
    return out


def common_recorded_epochs(runs, labels) -> np.ndarray:
    """Epochs at which every estimator of ``labels`` was recorded in every run of ``runs``."""
    common = None
    for run in runs:
        for label in labels:
            mi = run.mi[label][..., 0]
            got = set(run.epochs[~np.all(np.isnan(mi), axis=(1, 2))].tolist())
            common = got if common is None else common & got
    return np.array(sorted(common or ()), dtype=int)


def verdict_frame(columns: dict, skip=("R1",)) -> pd.DataFrame:
    """Rows claims, columns settings, cells verdicts (for :func:`ibtools.plotting.plot_verdicts`)
    from ``{column: claims}``."""
    return pd.DataFrame({col: {c.key: c.verdict for c in claims if c.key not in skip} for col, claims in columns.items()})


def units_created_before(results_dir, iso_time: str) -> tuple[int, int]:
    """``(created before, all)``: stored units whose provenance sidecar records a creation time
    before ``iso_time`` (``YYYY-mm-ddTHH:MM:SS+0000``), to tell whether a rule was written before
    the data it judges existed."""
    times = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            created = json.loads(path.read_text()).get("meta", {}).get("created")
        except (OSError, ValueError):
            continue
        if created:
            times.append(created)
    return sum(t < iso_time for t in times), len(times)


# ----------------------------------------------------------------------------------------------
# The re-run (results/rerun): every estimator on nested schedules, two initialization arms, and
# the exact I(X;T) of the float32 network as a ground-truth column


#: Claims about I(X;T) (or compression of it): the only claims the exact I(X;T) column judges.
#: R1 is about a binning range and R6c about accuracy, neither about an estimate of I(X;T).
IXT_CLAIMS = ("R2", "R3", "R4", "R5a", "R5b", "R5c", "R6a", "R6b", "R7")
#: Claims judged on the activation sweep alone: the only ones the second initialization arm
#: (``init="tishby"``, one scale for all activations; no L2 sweep, no single networks) has data for.
ARM_CLAIMS = ("R2", "R3", "R4", "R5a", "R5b", "R5c")
#: Short names of the settings compared in the re-run (:data:`ibtools.study.ESTIMATOR_NAMES`),
#: main EBAB first.
RERUN_SETTINGS = ("ebab", "akde", "ebab_10bins", "ebab_100bins", "akde_small_alpha", "akde_large_alpha")
#: Name of the exact I(X;T) column.
EXACT_NAME = "exact"
#: The two network sets of every verdict.
NETWORK_SETS = ("all networks", "without failed")


def arm_claims(data: StudyData, label: str, *, epochs=None, status: pd.DataFrame | None = None, rng=0) -> list:
    """Like :func:`study_claims`, for data that may lack parts: ``data.l2`` None skips the L2
    claims (R6) and the pool claim (R7); ``data.relu_single`` None skips R1. Used for the second
    initialization arm, which has the activation sweep only. Sorted by key."""
    if data.l2 is not None and data.relu_single is not None:
        return study_claims(data, label, epochs=epochs, status=status, rng=rng)
    act = _prep(data.activations.table(label), epochs, status)
    out = []
    if data.relu_single is not None:
        out.append(global_range_claim(data.relu_single, data.relu_ranged))
    out += activation_claims(act, label)
    if data.l2 is not None:
        l2t = _prep(data.l2.table(label), epochs, status)
        relu = act[act.activation == "relu"] if "relu" in set(act.activation) else l2t[l2t.l2 == 0]
        out += initialization_claims(relu, label)
        out += l2_claims(l2t, _prep(data.l2.history_table(), None, status), label)
        pool_t = _prep(data.pool.table(label), epochs, status)
        out.append(generalization_claim(pool_t, _prep(data.pool.history_table(), None, status), label, rng=rng)[0])
    elif "relu" in set(act.activation):
        out += initialization_claims(act[act.activation == "relu"], label)
    return sorted(out, key=lambda c: (c.key[:2], c.key))


def _label(name) -> str:
    if hasattr(name, "label"):  # an EstimatorSpec
        return name.label
    if name == EXACT_NAME:
        from .rerun import EXACT

        return EXACT.label
    return estimator_label(name)


def rerun_verdicts(arms: dict, settings=RERUN_SETTINGS, *, exact: bool = True, status_estimator: str = "ebab",
                   rng=0) -> dict:
    """Every claim of the re-run under every condition a reviewer asks for.

    For each initialization arm, each network set (all networks; without the failed ones, by
    :func:`ibtools.failures.classify_runs` on that arm's own networks) and each estimator
    setting, the claims are judged on the **same epochs for every setting**: the epochs at which
    every compared setting was recorded in every network of the arm. Each verdict is that of the
    rule version that decides for the re-run (:func:`ibtools.claims.current_versions`:
    the latest version adopted before the re-run's first unit; the others stay in
    ``by_version``). The re-run records every
    setting on nested schedules, so these are the epochs of the sparsest schedule (all of them
    also lie on every denser schedule); with the stored study's non-nested schedules use
    :func:`equal_terms` instead.

    With ``exact=True`` the exact I(X;T) and I(T;Y) of the float32 network (entropy of its
    distinct rows over the 4096 inputs, ``ibtools.rerun.EXACT``, no estimator) is one more
    column, a ground truth for the claims about I(X;T) (:data:`IXT_CLAIMS`) only. For a float32
    network whose 4096 inputs are distinct, every layer's exact I(X;T) sits at or near
    log2 4096 = 12 bits at every epoch (rows coincide only when units die or saturate to the same
    float), so a claim of compression judged against it mostly fails: that is a result about the
    quantity the estimators approximate, not a defect of the column.

    Parameters
    ----------
    arms : dict
        ``{arm name: StudyData}``, e.g. ``{"paper": ..., "tishby": ...}``. An arm without an L2
        sweep or single networks (``None``) is judged on :data:`ARM_CLAIMS` only.
    settings : sequence of str or EstimatorSpec
        Short names of the settings compared (:data:`RERUN_SETTINGS`), or specs (their label then
        names the column); every one must be recorded in every network.
    status_estimator : str
        Short name of the setting whose I(X;T) the failure criteria read.

    Returns
    -------
    dict
        ``{(arm, network set, setting): (claims, n_epochs)}``; setting is a short name or
        :data:`EXACT_NAME`; claims a list of :class:`ibtools.claims.ClaimResult`.

    Raises
    ------
    ValueError
        When the compared settings share no epoch, or an arm has no networks.
    """
    labels = [_label(n) for n in list(settings) + ([EXACT_NAME] if exact else [])]
    names = [n.label if hasattr(n, "label") else n for n in settings] + ([EXACT_NAME] if exact else [])
    if not names:
        raise ValueError("rerun_verdicts needs at least one setting")
    out = {}
    for arm, data in arms.items():
        if not data.pool.runs:
            raise ValueError(f"arm {arm!r} has no networks")
        epochs = common_recorded_epochs(data.pool.runs, labels)
        if epochs.size == 0:
            raise ValueError(f"the settings {names} share no recorded epoch in arm {arm!r}")
        status = data.status(_label(status_estimator))
        for net_set, st in zip(NETWORK_SETS, (None, status)):
            for name, label in zip(names, labels):
                claims = for_study(arm_claims(data, label, epochs=epochs, status=st, rng=rng), "rerun")
                if name == EXACT_NAME:
                    claims = [c for c in claims if c.key in IXT_CLAIMS]
                out[(arm, net_set, name)] = (claims, len(epochs))
    return out


def rerun_verdict_table(results: dict, skip=("R1",)) -> pd.DataFrame:
    """Rows claims, columns ``(arm, network set, setting)`` (a MultiIndex), cells verdicts, from
    :func:`rerun_verdicts`. A claim an arm or the exact column does not judge is NaN."""
    cols = {key: {c.key: c.verdict for c in claims if c.key not in skip} for key, (claims, _) in results.items()}
    frame = pd.DataFrame(cols)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["arm", "networks", "setting"])
    order = sorted(frame.index, key=lambda k: (k[:2], k))
    return frame.loc[order]


def rerun_verdict_frame(results: dict, networks: str = "all networks", skip=("R1",)) -> pd.DataFrame:
    """One network set of :func:`rerun_verdicts` as a flat frame for
    :func:`ibtools.plotting.plot_verdicts`: columns ``"<arm> · <setting> @<n epochs>"``."""
    if networks not in NETWORK_SETS:
        raise ValueError(f"networks must be one of {NETWORK_SETS}, got {networks!r}")
    cols = {f"{arm} · {name} @{n}": claims for (arm, net, name), (claims, n) in results.items() if net == networks}
    frame = verdict_frame(cols, skip)
    return frame.loc[sorted(frame.index, key=lambda k: (k[:2], k))]


def rerun_study_data(activations=None, l2s=None, *, epochs=None, seeds=None, arms=None, estimators=None,
                     measures=None, single: bool = True, results_dir=None, scratch_dir=None, progress: bool = True) -> dict:
    """``{arm: StudyData}`` of the re-run, read through :mod:`ibtools.rerun`'s loaders (stored
    units when the parameters match the stored study exactly, computed in ``scratch_dir``
    otherwise). The paper arm has everything (activation sweep, L2 sweep, their pool, the single
    ReLU network and its network-wide-range re-run); every other arm (``"tishby"``) has its
    activation sweep only (``l2``, ``relu_single`` and ``relu_ranged`` None). Defaults: the
    full re-run (:data:`ibtools.rerun.INIT_ARMS`, the paper's activations and L2 strengths,
    50 seeds, 8000 epochs, :data:`ibtools.rerun.RERUN_ESTIMATORS`). ``single=False`` leaves the
    single networks out (R1 is then not judged; a cheaper study for trials and tests)."""
    from .activations import PAPER_ACTIVATIONS
    from .rerun import INIT_ARMS, RERUN_ESTIMATORS, RERUN_MEASURES, rerun_activations, rerun_l2, rerun_single
    from .study import L2_STRENGTHS, PAPER_EPOCHS, PAPER_SEEDS

    kw = {"epochs": PAPER_EPOCHS if epochs is None else epochs, "seeds": PAPER_SEEDS if seeds is None else seeds,
          "estimators": RERUN_ESTIMATORS if estimators is None else tuple(estimators),
          "measures": RERUN_MEASURES if measures is None else tuple(measures), "results_dir": results_dir,
          "scratch_dir": scratch_dir, "progress": progress}
    activations = PAPER_ACTIVATIONS if activations is None else tuple(activations)
    out = {}
    for arm in (INIT_ARMS if arms is None else arms):
        act = rerun_activations(arm, activations, **kw)
        if arm != "paper":
            out[arm] = StudyData(act, None, act, None, None)
            continue
        l2 = rerun_l2(L2_STRENGTHS if l2s is None else l2s, **kw)
        single_kw = {k: kw[k] for k in ("epochs", "results_dir", "scratch_dir", "progress")}
        if not single:
            out[arm] = StudyData.from_sweeps(act, l2)
            continue
        out[arm] = StudyData.from_sweeps(act, l2, rerun_single("relu", "estimators", **single_kw),
                                         rerun_single("relu", "ranged", **single_kw))
    return out

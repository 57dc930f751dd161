"""The noisy-networks chapter's data, checks and verdicts (issue 11, part 3).

A network with Gaussian noise of std sigma added to every hidden layer, in training and in
evaluation (after Goldfeld et al., 2019), has a finite, meaningful I(X;T): given the input, each
layer is a Gaussian mixture, and :func:`ibtools.estimators.mixture_information` estimates its
I(X;T) by Monte Carlo with a standard error (below 0.05 bits by default). The stored units are
defined in :mod:`ibtools.ground_truth_study` (tanh, sigma = 0.1, 50 seeds; sigma = 0.05 and 0.3
on 10 seeds). This module reads them with one name per role, whatever the noise level:

========================  ===================================================================
role                      what it is
========================  ===================================================================
``mixture``               Monte Carlo I(X;T), one draw of the earlier layers' noise (K = 1)
``mixture K=2``, ``K=4``  the same with K draws (fewer epochs); K = 1 over-states deep layers
``lower``, ``upper``      Kolchinsky-Tracey bounds on the same clean means (bracket ``mixture``)
``ebab``, ``akde``        EBAB with 30 bins and adaptive KDE on the noisy activity
========================  ===================================================================

and gives :func:`bracket_check` (does the Monte Carlo value lie between the bounds?),
:func:`mixture_standard_errors` (recompute stored values with their standard errors) and the
claims under the rule below; the estimator comparisons are
:func:`ibtools.quantized_study.estimator_errors` and
:func:`~ibtools.quantized_study.compression_agreement` with ``condition="noise_std"`` and
``reference="mixture"``.

**Verdict rule, version 1** (:data:`RULE_VERSION`; adopted: :data:`RULE_ADOPTED`; in words:
:data:`RULE_TEXT`). The summary column "holds for noise-injected nets" (:data:`RULE_COLUMN`)
gives, for each claim, the verdict of the claim's own rule in :mod:`ibtools.claims` (its default
version) applied by :func:`ibtools.ground_truth_verdicts.ground_truth_claims` to the one-draw
Monte Carlo I(X;T) and I(T;Y) (``mixture``) of the sigma = :data:`RULE_NOISE` tanh networks, all
networks. Beside it, never in its place: the same without failed networks, with K = 4 draws, at
the other noise levels, and for EBAB and adaptive KDE on the same networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .estimators import mixture_information
from .failures import classify_runs
from .ground_truth_study import (GROUND_TRUTH_RESULTS, NOISE_STD, NOISY_SEEDS_PER_UNIT, SENSITIVITY_SEEDS,
                                 SENSITIVITY_STDS, ground_truth_sweeps, noisy_base)
from .ground_truth_verdicts import ground_truth_claims, ground_truth_verdicts
from .settings import AKDE, EBAB
from .study import PAPER_EPOCHS, PAPER_SEEDS, obtain
from .sweep import SweepConfig, UnitsRead, stored_units
from .validation import check_int

__all__ = ["RULE_VERSION", "RULE_ADOPTED", "RULE_NOISE", "RULE_COLUMN", "RULE_TEXT", "BRACKET_TOL_BITS", "ROLES",
           "role_of", "NoisyData", "noisy_data", "bracket_check", "mixture_standard_errors", "noisy_claims",
           "noisy_verdicts", "plot_noise_levels"]

#: Version of the verdict rule of the module docstring.
RULE_VERSION = 1
#: When version 1 was fixed.
RULE_ADOPTED = ("commit 3726e0e, 2026-11-26, before any noisy unit of the full study was computed",)
#: The noise level whose networks decide the summary column.
RULE_NOISE = NOISE_STD
#: Name of the deciding column (in :func:`noisy_verdicts`).
RULE_COLUMN = f"mixture, σ = {RULE_NOISE:g}"
#: The verdict rule in words (what the chapter shows).
RULE_TEXT = (f"For each claim, the summary column \"holds for noise-injected nets\" ({RULE_COLUMN}) gives the verdict "
             "of the claim's own rule (ibtools.claims, its default version) applied to the one-draw Monte Carlo "
             f"I(X;T) and I(T;Y) of the σ = {RULE_NOISE:g} tanh networks, all networks. Beside it, never in its "
             "place: the same without failed networks, with K = 4 draws of the earlier noise, at the other noise "
             "levels, and for EBAB and adaptive KDE on the same networks. Claims that one activation and a "
             "softmax output without noise cannot decide are \"not testable\".")
#: A Monte Carlo value "lies between the bounds" when it is within this many bits of the bracket:
#: three standard errors at the estimator's default target (0.05 bits).
BRACKET_TOL_BITS = 0.15
#: The roles, in the order the chapter shows them.
ROLES = ("mixture", "mixture K=2", "mixture K=4", "lower", "upper", "ebab", "akde")


def role_of(spec) -> str | None:
    """The role (:data:`ROLES`) of an estimator spec of a noisy unit, or None for another one."""
    if spec.name == "mixture":
        k = int(spec.kwargs.get("draws", 1))
        return "mixture" if k == 1 else f"mixture K={k}"
    if spec.name == "mixture_bounds":
        return spec.kwargs["bound"]
    if spec == EBAB:
        return "ebab"
    if spec == AKDE:
        return "akde"
    return None


@dataclass
class NoisyData(UnitsRead):
    """The noisy units read or computed by :func:`noisy_data`.

    Attributes
    ----------
    table : DataFrame
        Information-plane table of every network, with ``noise_std`` and with ``estimator`` holding
        the role (:data:`ROLES`) instead of the label.
    history, status : DataFrame
        Training history and :func:`ibtools.failures.classify_runs` (by EBAB), with ``noise_std``.
    runs : dict
        ``{noise_std: SweepResult}``.
    missing : DataFrame
        Units asked for but not read: ``noise_std, unit``.
    layer_names : tuple of str
        Names of the layers (the last is the softmax output, which has no noise of its own).
    """

    table: pd.DataFrame
    history: pd.DataFrame
    status: pd.DataFrame
    runs: dict
    missing: pd.DataFrame
    layer_names: tuple

    @property
    def noise_stds(self) -> tuple:
        """The noise levels read, in the order asked for."""
        return tuple(self.runs)




def noisy_data(noise_stds=(NOISE_STD,) + tuple(SENSITIVITY_STDS), *, epochs=None, seeds=None, sensitivity_seeds=None,
               deep_draws=None, compute_missing: bool = False, results_dir=None, scratch_dir=None,
               progress: bool = True) -> NoisyData:
    """The noisy networks of the ground-truth study, unit by unit.

    Parameters
    ----------
    noise_stds : sequence of float
        Noise levels to read: :data:`ibtools.ground_truth_study.NOISE_STD` (the main unit) and
        any of :data:`~ibtools.ground_truth_study.SENSITIVITY_STDS`.
    epochs, seeds, sensitivity_seeds : optional
        Training epochs, seeds of the main unit and of the sensitivity units (default: the stored
        study's 8000, 0-49 and 0-9).
    deep_draws : sequence of int, optional
        The K > 1 of the ``mixture K=..`` estimates (default: the stored study's, 2 and 4 for the
        main unit and 4 for the sensitivity units). Each K costs about K² times a one-draw
        estimate, so a cheap setting passes ``()``.
    compute_missing : bool
        False: read only stored units (``results_dir``, default ``results/ground_truth``) and list
        the others; True: compute those in ``scratch_dir``.

    Raises
    ------
    ValueError
        For a noise level the study does not define, or when no unit could be read.
    """
    allowed = (NOISE_STD,) + tuple(SENSITIVITY_STDS)
    noise_stds = [float(s) for s in noise_stds]
    bad = [s for s in noise_stds if s not in allowed]
    if bad or not noise_stds:
        raise ValueError(f"noise levels must be among the study's {allowed}, got {noise_stds}")
    epochs = PAPER_EPOCHS if epochs is None else check_int(epochs, "epochs", minimum=1)
    seeds = PAPER_SEEDS if seeds is None else tuple(seeds)
    sens = SENSITIVITY_SEEDS if sensitivity_seeds is None else tuple(sensitivity_seeds)
    if deep_draws is None:
        sweeps = ground_truth_sweeps(epochs=epochs, seeds=seeds, sensitivity_seeds=sens,
                                     parts=("noisy", "noisy-sensitivity"))
        by_std = {float(sw.base.noise_std): sw for part in sweeps.values() for sw in part}
    else:
        draws = tuple(check_int(k, "deep_draws", minimum=2) for k in deep_draws)
        by_std = {s: SweepConfig(noisy_base(s, epochs, deep_draws=draws), seeds=seeds if s == NOISE_STD else sens,
                                 seeds_per_unit=NOISY_SEEDS_PER_UNIT) for s in allowed}
    root = Path(results_dir) if results_dir is not None else GROUND_TRUTH_RESULTS
    runs, missing = {}, []
    for s in noise_stds:
        sweep = by_std[s]
        stored, name = stored_units(sweep, root)
        if not (stored or compute_missing):
            missing.append({"noise_std": s, "unit": name})
            continue
        runs[s] = obtain(sweep, root, scratch_dir, progress)
    missing = pd.DataFrame(missing, columns=["noise_std", "unit"])
    if not runs:
        raise ValueError(f"none of the {len(noise_stds)} noisy units asked for is stored in {root} (for these epochs "
                         "and seeds); compute them (python -m ibtools.ground_truth_study --parts noisy "
                         "noisy-sensitivity) or set compute_missing=True to compute them in the scratch directory")
    tables, histories, status = [], [], []
    for s, res in runs.items():
        roles = {spec.label: role_of(spec) for spec in res.runs[0].config.estimators}
        t = res.table()
        t = t[t["estimator"].map(roles).notna()].assign(estimator=lambda d: d["estimator"].map(roles))
        tables.append(t.assign(noise_std=s))
        histories.append(res.history_table().assign(noise_std=s))
        status.append(classify_runs(res.runs, EBAB.label).assign(noise_std=s))
    first = next(iter(runs.values())).runs[0]
    return NoisyData(pd.concat(tables, ignore_index=True), pd.concat(histories, ignore_index=True),
                     pd.concat(status, ignore_index=True), runs, missing, tuple(first.layer_names))


def bracket_check(table: pd.DataFrame, tol: float = BRACKET_TOL_BITS, estimator: str = "mixture") -> pd.DataFrame:
    """Does the Monte Carlo I(X;T) lie between the Kolchinsky-Tracey bounds on the same means?

    Per noise level and layer, over every network-epoch where all three were recorded:
    ``points``, ``inside`` (share with lower - tol <= value <= upper + tol), ``strictly_inside``
    (tol = 0), ``below_lower`` and ``above_upper`` (largest excursions, bits, 0 if none) and the
    mean ``gap`` upper - lower (bits). Raises ValueError if the table lacks the bounds."""
    if tol < 0:
        raise ValueError(f"tol must be >= 0 bits, got {tol!r}")
    keys = ["noise_std", "activation", "seed", "layer", "epoch"]
    parts = {}
    for role in (estimator, "lower", "upper"):
        sub = table[table["estimator"] == role]
        if sub.empty:
            raise ValueError(f"no {role!r} values in the table (roles present: {sorted(table['estimator'].unique())})")
        parts[role] = sub.set_index(keys)["i_xt"]
    both = pd.concat(parts, axis=1, join="inner").dropna().reset_index()
    v, lo, hi = both[estimator], both["lower"], both["upper"]
    both["inside"] = (v >= lo - tol) & (v <= hi + tol)
    both["strict"] = (v >= lo) & (v <= hi)
    both["below"] = (lo - v).clip(lower=0)
    both["above"] = (v - hi).clip(lower=0)
    both["gap"] = hi - lo
    g = both.groupby(["noise_std", "layer"])
    return pd.DataFrame({"points": g.size(), "inside": g["inside"].mean(), "strictly_inside": g["strict"].mean(),
                         "below_lower": g["below"].max(), "above_upper": g["above"].max(),
                         "gap": g["gap"].mean()}).reset_index()


def mixture_standard_errors(data: NoisyData, noise_std: float, seeds, epoch: int) -> pd.DataFrame:
    """Retrain networks of a stored noisy unit to ``epoch`` and recompute the one-draw Monte Carlo
    I(X;T), I(T;Y) of every hidden layer with their standard errors, beside the stored values.

    The networks are retrained alone (the units are ensemble-invariant), the Monte Carlo draws
    are seeded as the recorder seeds them (:func:`ibtools.engine.mixture_seed`), so ``i_xt``
    must equal the stored value (``stored_i_xt``) exactly: the column ``same`` says whether it did.

    Returns
    -------
    DataFrame
        ``seed, layer, i_xt, se_xt, i_ty, se_ty, n_draws, stored_i_xt, same`` (bits).

    Raises
    ------
    ValueError
        For a noise level not read, a seed not in its unit, or an epoch at which ``mixture`` was
        not recorded (the message lists the recorded ones).
    """
    import torch

    from .engine import mixture_seed
    from .trainer import EnsembleTrainer

    if noise_std not in data.runs:
        raise ValueError(f"noise level {noise_std} was not read (read: {data.noise_stds})")
    units = data.runs[noise_std].runs
    config = units[0].config
    stored_seeds = sorted(int(s) for u in units for s in u.config.seeds)
    seeds = [int(s) for s in seeds]
    absent = [s for s in seeds if s not in stored_seeds]
    if absent:
        raise ValueError(f"seeds {absent} are not stored at noise level {noise_std} (its seeds: "
                         f"{stored_seeds[0]}-{stored_seeds[-1]})")
    tab = data.table[(data.table["noise_std"] == noise_std) & (data.table["estimator"] == "mixture")]
    recorded = sorted(set(tab.loc[tab["i_xt"].notna(), "epoch"].astype(int)))
    epoch = int(epoch)
    if epoch not in recorded:
        raise ValueError(f"mixture was not recorded at epoch {epoch}; recorded at {recorded}")
    spec = next(s for s in config.estimators if role_of(s) == "mixture")
    params = {k: v for k, v in spec.kwargs.items() if k not in ("seed", "draws")}
    base = int(spec.kwargs.get("seed", 0))
    trainer = EnsembleTrainer(config.replace(seeds=tuple(seeds)))
    for _ in range(epoch):
        trainer.train_epoch()
    with torch.no_grad():
        means = trainer.evaluate_noisy_means(0)[0]
    labels = trainer.y_all
    rows = []
    stored = tab.set_index(["seed", "layer", "epoch"])["i_xt"]
    for layer in range(len(means)):
        for k, seed in enumerate(seeds):
            r = mixture_information(means[layer][k], labels, seed=mixture_seed(base, seed, layer), **params)
            want = float(stored.loc[(seed, layer + 1, epoch)])
            rows.append({"seed": seed, "layer": layer + 1, "i_xt": r.i_xt, "se_xt": r.se_xt, "i_ty": r.i_ty,
                         "se_ty": r.se_ty, "n_draws": r.n_draws, "stored_i_xt": want,
                         "same": bool(np.float32(r.i_xt) == np.float32(want))})
    return pd.DataFrame(rows)


def _subset(frame: pd.DataFrame, noise_std: float, keep=None) -> pd.DataFrame:
    out = frame[frame["noise_std"] == noise_std].drop(columns="noise_std")
    if keep is not None:
        out = out.merge(keep, on=["activation", "seed"])
    return out


def noisy_claims(data: NoisyData, estimators=("ebab", "akde"), *, rng=0) -> dict:
    """Every claim the noisy networks can decide, per column of :func:`noisy_verdicts`:
    :data:`RULE_COLUMN` (decides), the same without failed networks, ``"mixture K=4, σ = ..."``,
    ``"mixture, σ = ..."`` at the other noise levels read, and ``"{role}, σ = ..."`` for each
    role in ``estimators``. Values are lists of :class:`ibtools.claims.ClaimResult`.

    Raises
    ------
    ValueError
        When the deciding noise level was not read.
    """
    if RULE_NOISE not in data.runs:
        raise ValueError(f"the verdicts are decided at σ = {RULE_NOISE:g}, which was not read (read: {data.noise_stds})")
    out = {}
    t, h = _subset(data.table, RULE_NOISE), _subset(data.history, RULE_NOISE)
    last = int(t["layer"].max())
    out[RULE_COLUMN] = ground_truth_claims(t, h, "mixture", output_layer=last, rng=rng)
    st = data.status[(data.status["noise_std"] == RULE_NOISE) & ~data.status["failed"]][["activation", "seed"]]
    out[f"{RULE_COLUMN}, without failed"] = ground_truth_claims(_subset(data.table, RULE_NOISE, st),
                                                                _subset(data.history, RULE_NOISE, st), "mixture",
                                                                output_layer=last, rng=rng)
    if (t["estimator"] == "mixture K=4").any():
        out[f"mixture K=4, σ = {RULE_NOISE:g}"] = ground_truth_claims(t, h, "mixture K=4", output_layer=last, rng=rng)
    for s in data.noise_stds:
        if s != RULE_NOISE:
            out[f"mixture, σ = {s:g}"] = ground_truth_claims(_subset(data.table, s), _subset(data.history, s),
                                                             "mixture", output_layer=last, rng=rng)
    for role in estimators:
        out[f"{role}, σ = {RULE_NOISE:g}"] = ground_truth_claims(t, h, role, rng=rng)
    return out


def noisy_verdicts(claims: dict) -> pd.DataFrame:
    """Rows claims, columns those of :func:`noisy_claims`, cells verdicts ("not testable" where
    the networks cannot decide a claim)."""
    return ground_truth_verdicts(claims)


def plot_noise_levels(table: pd.DataFrame, layer: int, *, role: str = "mixture", ax=None):
    """Mean ``role`` I(X;T) over networks (95 % band) against epoch in one layer, one line per
    noise level read (the sensitivity to sigma). Returns the axes."""
    from .analysis import mean_over_seeds

    ax = ax or plt.gca()
    sub = table[table["estimator"] == role]
    if sub.empty:
        raise ValueError(f"no {role!r} values in the table")
    for k, s in enumerate(sorted(pd.unique(sub["noise_std"]))):
        m = mean_over_seeds(sub[sub["noise_std"] == s], role)
        m = m[(m["layer"] == layer) & (m["epoch"] > 0) & m["i_xt"].notna()]
        n = int(m["n"].max()) if len(m) else 0
        ax.plot(m["epoch"], m["i_xt"], marker=".", color=f"C{k}", label=f"σ = {s:g} ({n} networks)")
        ax.fill_between(m["epoch"], m["i_xt_low"], m["i_xt_high"], color=f"C{k}", alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("I(X;T) (bits)")
    return ax

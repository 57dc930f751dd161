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
from .claims import (activation_claims, generalization_claim, global_range_claim, initialization_claims, l2_claims)
from .failures import classify_runs, drop_failed
from .study import estimator_label

__all__ = ["StudyData", "EQUAL_TERMS_BLOCKS", "study_claims", "equal_terms", "common_recorded_epochs", "verdict_frame", "units_created_before"]

#: Settings compared with each other on the epochs all of them share. The stored schedules are not
#: nested, so each block has its own common epochs: the three EBAB bin counts share 32 epochs, the
#: main EBAB and adaptive KDE 12, the main EBAB and the two other KDE constants 6.
EQUAL_TERMS_BLOCKS = (
    ("EBAB bins", ("ebab", "ebab_10bins", "ebab_100bins")),
    ("adaptive KDE", ("ebab", "akde")),
    ("KDE constant", ("ebab", "akde_small_alpha", "akde_large_alpha")),
)


@dataclass
class StudyData:
    """The runs one summary judges: the activation sweep, the L2 sweep, their pool (each network
    once) and the single ReLU network with its network-wide-range re-run."""

    activations: object
    l2: object
    pool: object
    relu_single: object
    relu_ranged: object

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

"""The book's estimator settings, each defined once.

Every setting the study records, and every setting a chapter, script or test looks up in a result
table, is one :class:`~ibtools.config.EstimatorSpec` here. Its ``.label`` is the name its numbers
carry in result tables and in the stored results (``results/paper/*.json``): use
``settings.EBAB.label``, never a hand-written ``"ebab(n_bins=30)"``.

Why one place: a label is the setting's identity. ``EstimatorSpec("ebab")`` and
``EstimatorSpec.make("ebab", n_bins=30)`` compute the same numbers (30 bins is EBAB's default), but
they are two settings to the result tables and to the result cache (labels ``"ebab"`` and
``"ebab(n_bins=30)"``, different keys). The study records the explicit form, so a chapter that asked
for ``"ebab"`` would not find the stored numbers. The labels below are those of the stored results;
``tests/test_settings.py`` checks both that and that no module, chapter or script spells them
out by hand.

>>> from ibtools.settings import EBAB
>>> EBAB.label
'ebab(n_bins=30)'
"""

from __future__ import annotations

from .config import EstimatorSpec
from .estimators import AKDE_ALPHA

__all__ = [
    "N_BINS",
    "EBAB",
    "AKDE",
    "EBAB_10_BINS",
    "EBAB_100_BINS",
    "AKDE_SMALL_ALPHA",
    "AKDE_LARGE_ALPHA",
    "FIXED_UNIT_RANGE",
    "FIXED_BIN_SIZE",
    "OWN_RANGE",
    "NETWORK_RANGE",
    "KDE_FIXED_NOISE",
    "AKDE_EVERY_EPOCH",
]

#: Bins of the binning estimators of the study (the paper's 30).
N_BINS = 30

# -- the study's main estimators: recorded for every network ---------------------------------------
#: EBAB with 30 bins, at every recorded epoch: the book's main estimator.
EBAB = EstimatorSpec.make("ebab", n_bins=N_BINS)
#: Adaptive KDE (upper bound) at 25 log-spaced epochs (it costs ~100x more per evaluation).
AKDE = EstimatorSpec.make("akde", alpha=AKDE_ALPHA, n_points=25)

# -- sensitivity of each verdict to the estimator's constant -------------------------------------------
#: EBAB with 10 bins at 100 log-spaced epochs.
EBAB_10_BINS = EstimatorSpec.make("ebab", n_bins=10, n_points=100)
#: EBAB with 100 bins at 100 log-spaced epochs.
EBAB_100_BINS = EstimatorSpec.make("ebab", n_bins=100, n_points=100)
#: Adaptive KDE with a 10x smaller constant, at 10 epochs.
AKDE_SMALL_ALPHA = EstimatorSpec.make("akde", alpha=AKDE_ALPHA / 10, n_points=10)
#: Adaptive KDE with a 10x larger constant, at 10 epochs.
AKDE_LARGE_ALPHA = EstimatorSpec.make("akde", alpha=AKDE_ALPHA * 10, n_points=10)

# -- the estimator comparison on single networks (chapters 2 and 3) -----------------------------------
#: Equal-width bins with fixed edges on [-1, 1] (the tanh range of Shwartz-Ziv & Tishby).
FIXED_UNIT_RANGE = EstimatorSpec.make("fixed", lo=-1.0, hi=1.0, n_edges=N_BINS)
#: Bins of fixed width 0.07.
FIXED_BIN_SIZE = EstimatorSpec.make("binsize", bin_size=0.07)
#: Equal-width bins from 0 to the layer's own largest activity.
OWN_RANGE = EstimatorSpec.make("max", n_bins=N_BINS)
#: Equal-width bins from 0 to the largest activity of any layer of the network so far (the range
#: the paper criticizes, as recorded during training).
NETWORK_RANGE = EstimatorSpec.make("max", n_bins=N_BINS, max_value="network")
#: KDE upper bound with a fixed noise variance of 1e-3.
KDE_FIXED_NOISE = EstimatorSpec.make("kde", noise_var=1e-3)
#: Adaptive KDE at every recorded epoch (same label as :data:`AKDE`: the same numbers).
AKDE_EVERY_EPOCH = EstimatorSpec.make("akde", alpha=AKDE_ALPHA)

"""Mutual-information estimators for the information plane of a deterministic network.

Every estimator is called as ``f(activity, labels, **params)``: ``activity`` is one layer's
activity for all inputs, shape (n_samples, n_units), as a numpy array or a torch tensor on any
device, and ``labels`` an integer array of length n_samples. It returns an
:class:`InformationEstimate` ``(i_xt, i_ty)`` in **bits**, for a network evaluated once on every
distinct input (so I(X;T) = H(T) for the discretized estimators). A stack of networks,
(n_networks, n_samples, n_units), gives arrays of shape (n_networks,) instead of floats.

============== ============================ ==============================================
name           function                     what it measures
============== ============================ ==============================================
fixed          :func:`fixed_binning`        equal-width bins on a fixed range (Tishby)
binsize        :func:`binsize_binning`      bins of fixed width, unbounded (Saxe et al.)
max            :func:`max_binning`          equal-width bins up to the layer's (or a given) maximum
ebab           :func:`ebab`                 entropy-based adaptive binning (Chelombiev et al.)
kde            :func:`kde`                  Kolchinsky-Tracey bounds, fixed noise variance
akde           :func:`akde`                 the same with noise variance scaled to the layer's maximum
                                            (both: ``engine="fused"`` for a compiled CPU pass)
exact          :func:`exact`                exact I of the deterministic layer: its distinct rows
mixture        :func:`mixture`              Monte Carlo I of a noise-injected layer (clean means in;
                                            ``draws=K`` for deeper layers)
mixture_bounds :func:`mixture_bounds`       Kolchinsky-Tracey bounds of the same layer (clean means in)
============== ============================ ==============================================
"""

from ._core import InformationEstimate
from .binning import (
    NETWORK_MAX,
    binsize_binning,
    ebab,
    ebab_bin_indices,
    ebab_edges,
    fixed_binning,
    information_from_bins,
    max_binning,
)
from .exact import exact
from .kde import AKDE_ALPHA, ENGINES, akde, akde_noise_var, kde
from .mixture import CLEAN_MEANS_ESTIMATORS, MixtureEstimate, gaussian_entropy_bits, mixture, mixture_bounds, mixture_information
from .registry import (
    ESTIMATORS,
    check_params,
    check_values,
    estimator_names,
    get_estimator,
    register_estimator,
    resolve_params,
)

__all__ = [
    "InformationEstimate",
    "information_from_bins",
    "fixed_binning",
    "binsize_binning",
    "max_binning",
    "ebab",
    "ebab_bin_indices",
    "ebab_edges",
    "kde",
    "akde",
    "akde_noise_var",
    "AKDE_ALPHA",
    "ENGINES",
    "exact",
    "mixture",
    "mixture_information",
    "mixture_bounds",
    "CLEAN_MEANS_ESTIMATORS",
    "MixtureEstimate",
    "gaussian_entropy_bits",
    "ESTIMATORS",
    "get_estimator",
    "register_estimator",
    "check_params",
    "check_values",
    "estimator_names",
    "resolve_params",
    "NETWORK_MAX",
]

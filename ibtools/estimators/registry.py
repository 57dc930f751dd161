"""Estimators by name, so that configs, chapters and the command line can choose them."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping

from .binning import NETWORK_MAX, binsize_binning, ebab, fixed_binning, max_binning
from .exact import exact
from .kde import akde, kde
from .mixture import mixture, mixture_bounds

__all__ = ["ESTIMATORS", "get_estimator", "register_estimator", "check_params", "check_values", "estimator_names",
           "resolve_params"]

#: name -> function called as ``f(activity, labels, **params)`` returning ``(i_xt, i_ty)`` in bits.
ESTIMATORS: dict[str, Callable] = {
    "fixed": fixed_binning,
    "binsize": binsize_binning,
    "max": max_binning,
    "ebab": ebab,
    "kde": kde,
    "akde": akde,
    "exact": exact,
    "mixture": mixture,
    "mixture_bounds": mixture_bounds,
}


def estimator_names() -> tuple[str, ...]:
    """Names of all registered estimators."""
    return tuple(ESTIMATORS)


def get_estimator(name: str) -> Callable:
    """The estimator registered under ``name``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown estimator {name!r}; valid estimators are: {', '.join(ESTIMATORS)}") from None


def register_estimator(name: str, fn: Callable, *, overwrite: bool = False) -> Callable:
    """Register ``fn`` under ``name``.

    ``fn`` must accept ``(activity, labels, **params)`` and return an
    :class:`~ibtools.estimators.InformationEstimate` (or any pair ``(i_xt, i_ty)``) in bits; it
    should accept a stack of networks ``(S, N, d)`` and then return arrays of shape (S,).
    """
    if not callable(fn):
        raise TypeError(f"estimator {name!r} must be callable, got {type(fn).__name__}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"estimator names must be identifiers, got {name!r}")
    if name in ESTIMATORS and not overwrite:
        raise ValueError(f"estimator {name!r} is already registered (pass overwrite=True to replace it)")
    ESTIMATORS[name] = fn
    return fn


def check_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check that ``params`` fit estimator ``name``'s signature (names only, values are checked
    when the estimator runs). Returns them as a plain dict.

    Raises
    ------
    ValueError
        For an unknown estimator, an unknown parameter (the message lists the accepted ones) or a
        missing required parameter.
    """
    fn = get_estimator(name)
    sig = inspect.signature(fn)
    accepted = [p for p in list(sig.parameters.values())[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    names = {p.name for p in accepted}
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    params = dict(params)
    unknown = sorted(set(params) - names)
    if unknown and not takes_kwargs:
        raise ValueError(
            f"estimator {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(sorted(names)) or 'no parameters'}"
        )
    missing = [p.name for p in accepted if p.default is p.empty and p.name not in params]
    if missing:
        raise ValueError(f"estimator {name!r} needs parameter(s): {', '.join(missing)}")
    return params


def resolve_params(name: str, params: Mapping[str, Any], network_max=None) -> dict[str, Any]:
    """The keyword arguments to call estimator ``name`` with, from an estimator setting's ``params``.

    Every parameter is passed as it is, except the network-wide range of ``"max"``:
    ``max_value="network"`` (``ibtools.estimators.NETWORK_MAX``) becomes ``network_max``, the
    largest absolute activity of any layer of each network seen so far in training (shape
    (n_networks,), what :class:`ibtools.engine.Recorder` keeps), or None, the layer's own maximum,
    when no training history is given (a probe of the values or of the time).

    Parameters
    ----------
    name : str
        Registry name of the estimator.
    params : mapping
        Its parameters as stored in the setting (``EstimatorSpec.kwargs``); not modified.
    network_max : float or array of shape (n_networks,), optional
        The networks' maxima so far, for ``max_value="network"``.

    Returns
    -------
    dict
        A new dict of keyword arguments.
    """
    params = dict(params)
    if name == "max" and isinstance(params.get("max_value"), str) and params["max_value"] == NETWORK_MAX:
        params["max_value"] = network_max
    return params


def check_values(name: str, params: Mapping[str, Any]) -> None:
    """Check the *values* of ``params`` before any work starts, by running estimator ``name`` once
    on a small fixed probe layer (64 rows, 2 units, two classes; about a millisecond). An
    estimator whose input shape depends on its parameters carries a ``probe_input(activity,
    params)`` attribute that reshapes the probe layer (``mixture`` with ``draws > 1``).

    :func:`check_params` checks only the names; an impossible value (``alpha=-1``, ``n_bins=0``)
    would otherwise surface only at the first recorded epoch of a long run. A value resolved from
    the network (``max_value="network"``, see :func:`resolve_params`) is probed as the layer's
    own range.

    Raises
    ------
    ValueError
        Naming the estimator and what its own check said was wrong with the value.
    """
    params = resolve_params(name, params)
    try:
        items = tuple(sorted(params.items()))
        hash(items)
    except TypeError:  # unhashable values: check without the cache
        _probe(name, tuple(sorted(params.items())))
        return
    _probe_cached(name, items)


@functools.lru_cache(maxsize=256)
def _probe_cached(name: str, items: tuple) -> None:
    _probe(name, items)


def _probe(name: str, items: tuple) -> None:
    import numpy as np

    activity = np.linspace(-1.0, 1.0, 128, dtype=np.float32).reshape(64, 2)
    labels = np.arange(64) % 2
    fn = get_estimator(name)
    adapt = getattr(fn, "probe_input", None)  # an estimator whose input shape depends on its parameters
    try:
        if adapt is not None:
            activity = adapt(activity, dict(items))
        fn(activity, labels, **dict(items))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"estimator {name!r} cannot use {dict(items)}: {exc}") from None

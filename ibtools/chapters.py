"""Helpers for the book's chapters: one setup call, and parameter errors shown as one clear line.

A chapter re-run with papermill and a bad parameter (an unknown activation, negative epochs, an
unknown estimator) should stop in its first cells with a message that says what is wrong and
what is allowed, not with a traceback from deep inside the package.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["ParameterError", "setup", "checking_parameters", "positive_int", "positive_number", "as_list"]


class ParameterError(ValueError):
    """A chapter parameter is invalid; the message says which and what is allowed."""


def _short_handler(shell, etype, value, tb, tb_offset=None):
    # an error output with one line instead of a traceback (nbclient/papermill still stop)
    shell._showtraceback(etype, value, [f"\033[0;31m{etype.__name__}\033[0m: {value}"])


def setup(threads: int | None = None):
    """Apply the book's figure style, show :class:`ParameterError` as one line in notebooks,
    and set torch's CPU threads. Returns nothing; call it once in a chapter's setup cell."""
    from .engine import set_threads
    from .plotting import use_style

    use_style()
    set_threads(threads)
    try:
        shell = get_ipython()  # noqa: F821 - defined inside IPython only
    except NameError:
        return
    shell.set_custom_exc((ParameterError,), _short_handler)


@contextlib.contextmanager
def checking_parameters():
    """Turn any ``ValueError`` raised while building a chapter's configuration from its
    parameters into a :class:`ParameterError` with the same message."""
    try:
        yield
    except ParameterError:
        raise
    except ValueError as exc:
        raise ParameterError(f"bad chapter parameter: {exc}") from None


def positive_int(value, name: str) -> int:
    """Check a count-like chapter parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(f"bad chapter parameter: {name} must be a positive integer, got {value!r}")
    return int(value)


def positive_number(value, name: str) -> float:
    """Check a positive, finite real chapter parameter (a constant such as the adaptive-KDE
    ``ALPHA``); booleans, strings, NaN, infinities, zero and negatives are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"bad chapter parameter: {name} must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ParameterError(f"bad chapter parameter: {name} must be a positive, finite number, got {value!r}")
    return float(value)


def as_list(value, name: str, cast=str) -> list:
    """A list parameter given as a list, or as a comma-separated string (what ``papermill -p``
    passes): ``"tanh,relu"`` -> ``["tanh", "relu"]``. Each item goes through ``cast``."""
    if isinstance(value, str):
        items = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        items = [v.strip("'\"") for v in items]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ParameterError(f"bad chapter parameter: {name} must be a list or a comma-separated string, got {value!r}")
    if not items:
        raise ParameterError(f"bad chapter parameter: {name} must not be empty")
    try:
        return [cast(v) for v in items]
    except (TypeError, ValueError):
        raise ParameterError(f"bad chapter parameter: {name} holds {value!r}, which are not all {cast.__name__}") from None

"""The package's one integer check, so that every count-like argument (a width, a seed, a number
of bins or workers, a chapter parameter) is refused with the same clear message.

>>> from ibtools.validation import check_int
>>> check_int(3, "epochs", 1)
3

``check_int(0, "epochs", 1)`` raises ``ValueError: epochs must be an integer >= 1, got 0``;
with a ``maximum`` the message gives the range (``stop_at must be None or an integer from 0 to
30, got 31``). :func:`parse_int` is the same check for text (a command-line option, an
environment variable, a ``key=value`` option) and quotes the text in its message: ``--threads
must be an integer >= 1, got '-3'``. :func:`as_generator` takes a seed or a NumPy Generator.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_int", "parse_int", "as_generator"]


def _is_int(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (a bool is not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _allowed(minimum: int, maximum: int | None) -> str:
    return f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"


def check_int(value, name: str, minimum: int = 0, maximum: int | None = None, *, none_ok: bool = False,
              error: type[Exception] = ValueError) -> int | None:
    """``value`` as a Python ``int`` if it is an integer (Python or NumPy; not a bool, a float or a
    string) and at least ``minimum`` (and at most ``maximum``, if given).

    Parameters
    ----------
    value
        What the caller was given.
    name : str
        How the message names it (``"epochs"``, ``"every hidden width"``, ``"--threads"``).
    minimum : int
        The smallest allowed value (1 for counts, 0 for seeds and epochs).
    maximum : int, optional
        The largest allowed value (default: no limit).
    none_ok : bool
        Whether None is allowed too (then returned as None; the message says so).
    error : exception class
        Raised on bad input (default ``ValueError``; chapters pass their ``ParameterError``).

    Raises
    ------
    ValueError
        ``"{name} must be an integer >= {minimum}, got {value!r}"``, or ``"... must be an integer
        from {minimum} to {maximum}, ..."`` with a ``maximum``, or ``"... must be None or an
        integer ..."`` with ``none_ok`` (or the class given as ``error``, with the same message).
    """
    if none_ok and value is None:
        return None
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        either = "None or " if none_ok else ""
        raise error(f"{name} must be {either}{_allowed(minimum, maximum)}, got {value!r}")
    return int(value)


def parse_int(text: str, name: str, minimum: int = 0, *, error: type[Exception] = ValueError) -> int:
    """``text`` read as a base-10 integer that is at least ``minimum``: :func:`check_int` for
    strings (a command-line option, an environment variable, a ``key=value`` option).

    Parameters
    ----------
    text : str
        The text given, e.g. ``"12"`` (surrounding whitespace is allowed, as by ``int``).
    name : str
        How the message names it (``"--threads"``, ``"task option num_samples"``).
    minimum : int
        The smallest allowed value.
    error : exception class
        Raised on bad input (default ``ValueError``; the command line passes
        ``argparse.ArgumentTypeError`` so that argparse prints a one-line usage error).

    Raises
    ------
    ValueError
        ``"{name} must be an integer >= {minimum}, got {text!r}"`` when ``text`` is not an integer
        or is below ``minimum`` (or the class given as ``error``, with the same message).
    """
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {text!r}")
    return value


def as_generator(seed, name: str = "seed", *, error: type[Exception] = ValueError) -> np.random.Generator:
    """A NumPy Generator from ``seed``: a Generator is returned as it is, an integer >= 0 (Python
    or NumPy) seeds ``np.random.default_rng``.

    Raises
    ------
    ValueError
        ``"{name} must be a numpy Generator or a non-negative integer seed, got {seed!r}"`` for
        anything else
        (a bool, a float, a negative integer, None; or the class given as ``error``).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if not _is_int(seed) or seed < 0:
        raise error(f"{name} must be a numpy Generator or a non-negative integer seed, got {seed!r}")
    return np.random.default_rng(int(seed))

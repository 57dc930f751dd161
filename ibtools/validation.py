"""The package's one integer check, so that every count-like argument (a width, a seed, a number
of bins or workers, a chapter parameter) is refused with the same clear message.

>>> from ibtools.validation import check_int
>>> check_int(3, "epochs", 1)
3

``check_int(0, "epochs", 1)`` raises ``ValueError: epochs must be an integer >= 1, got 0``.
:func:`parse_int` is the same check for text (a command-line option, an environment variable, a
``key=value`` option) and quotes the text in its message: ``--threads must be an integer >= 1, got '-3'``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_int", "parse_int"]


def check_int(value, name: str, minimum: int = 0, *, error: type[Exception] = ValueError) -> int:
    """``value`` as a Python ``int`` if it is an integer (Python or NumPy; not a bool, a float or a
    string) and at least ``minimum``.

    Parameters
    ----------
    value
        What the caller was given.
    name : str
        How the message names it (``"epochs"``, ``"every hidden width"``, ``"--threads"``).
    minimum : int
        The smallest allowed value (1 for counts, 0 for seeds and epochs).
    error : exception class
        Raised on bad input (default ``ValueError``; chapters pass their ``ParameterError``).

    Raises
    ------
    ValueError
        ``"{name} must be an integer >= {minimum}, got {value!r}"`` (or the class given as
        ``error``, with the same message).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}")
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

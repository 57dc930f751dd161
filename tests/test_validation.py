"""The shared integer check, and the modules that use it."""

import numpy as np
import pytest

from ibtools.chapters import ParameterError, positive_int
from ibtools.networks import MLP
from ibtools.tables import readable
from ibtools.validation import check_int


@pytest.mark.parametrize("value, minimum, expected", [(3, 1, 3), (np.int64(0), 0, 0), (np.uint8(7), 1, 7)])
def test_check_int_accepts_integers(value, minimum, expected):
    out = check_int(value, "n", minimum)
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value", [True, 2.0, "3", None, 0, -1, np.float64(1.0)])
def test_check_int_refuses_with_one_message(value):
    with pytest.raises(ValueError, match=rf"^n must be an integer >= 1, got {value!r}$".replace("(", r"\(").replace(")", r"\)")):
        check_int(value, "n", 1)


def test_users_of_the_check_say_the_same():
    with pytest.raises(ParameterError, match="bad chapter parameter: SEEDS must be an integer >= 1, got 0"):
        positive_int(0, "SEEDS")
    with pytest.raises(ValueError, match=r"every width \(widths \(12, 0, 2\)\) must be an integer >= 1, got 0"):
        MLP(widths=(12, 0, 2))
    import pandas as pd

    with pytest.raises(ValueError, match="precision must be an integer >= 0, got -1"):
        readable(pd.DataFrame({"a": [1.0]}), precision=-1)


@pytest.mark.parametrize("text, expected", [("3", 3), (" 12 ", 12), ("0", 0)])
def test_parse_int_reads_text(text, expected):
    from ibtools.validation import parse_int

    assert parse_int(text, "--n", 0) == expected


@pytest.mark.parametrize("text", ["-1", "2.0", "two", ""])
def test_parse_int_refuses_with_the_same_message(text):
    import argparse

    from ibtools.validation import parse_int

    with pytest.raises(argparse.ArgumentTypeError, match=rf"^--n must be an integer >= 0, got {text!r}$"):
        parse_int(text, "--n", 0, error=argparse.ArgumentTypeError)

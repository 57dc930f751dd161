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


# -- ranges and None: one check for every integer argument ---------------------------------------

@pytest.mark.parametrize("value, expected", [(0, 0), (np.int64(16), 16), (None, None)])
def test_check_int_with_a_range_and_none(value, expected):
    out = check_int(value, "bits", 0, 16, none_ok=True)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("value", [17, -1, 2.0, True, "3", np.float32(3.0)])
def test_check_int_with_a_range_says_the_range(value):
    want = rf"^bits must be None or an integer from 0 to 16, got {value!r}$".replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=want):
        check_int(value, "bits", 0, 16, none_ok=True)
    with pytest.raises(ValueError, match=r"^bits must be an integer from 0 to 16, got None$"):
        check_int(None, "bits", 0, 16)


def test_as_generator_takes_a_seed_or_a_generator():
    from ibtools.validation import as_generator

    g = np.random.default_rng(5)
    assert as_generator(g) is g
    assert as_generator(np.int32(5)).random() == np.random.default_rng(5).random()
    for bad in (-1, 1.0, True, None, "5"):
        with pytest.raises(ValueError, match=r"^seed must be a numpy Generator or a non-negative integer seed, got "):
            as_generator(bad)


# -- the callers that had their own checks ------------------------------------------------------

def test_stop_at_accepts_numpy_integers_and_refuses_the_rest():
    # before: ``isinstance(stop_at, int)`` refused np.int64, e.g. an epoch read from an array
    from ibtools.config import TrainConfig
    from ibtools.training import train

    config = TrainConfig(seeds=(0,), epochs=3, record_activations=())
    numpy_stop = train(config, stop_at=np.int64(1), progress=False)
    python_stop = train(config, stop_at=1, progress=False)
    assert numpy_stop.mi.keys() == python_stop.mi.keys()
    for label in numpy_stop.mi:
        np.testing.assert_array_equal(numpy_stop.mi[label], python_stop.mi[label])
    np.testing.assert_array_equal(numpy_stop.epoch_loss, python_stop.epoch_loss)
    for bad in (4, -1, 1.0, True, "1"):
        with pytest.raises(ValueError, match=r"stop_at must be None or an integer from 0 to 3, got "):
            train(config, stop_at=bad, progress=False)


def test_quantize_bits_keep_their_message_and_take_numpy_integers():
    import torch

    from ibtools.config import TrainConfig
    from ibtools.perturb import quantize

    assert TrainConfig(quantize_bits=np.int64(8)).quantize_bits == 8
    with pytest.raises(ValueError, match=r"^quantize_bits must be None or an integer from 1 to 16, got 17$"):
        TrainConfig(quantize_bits=17)
    a = torch.linspace(-1, 1, 11)
    assert torch.equal(quantize(a, -1.0, 1.0, np.int8(2)), quantize(a, -1.0, 1.0, 2))
    for bad in (None, 2.0, 0, 17):
        with pytest.raises(ValueError, match=r"^bits must be an integer from 1 to 16, got "):
            quantize(a, -1.0, 1.0, bad)


def test_the_seeds_of_the_mixture_and_of_the_battery():
    from ibtools.estimators.mixture import mixture_information
    from ibtools.mi_battery import default_tasks

    means, labels = np.random.default_rng(0).normal(size=(8, 2)), np.arange(8) % 2
    a = mixture_information(means, labels, 0.5, n_samples=4, target_se=None, seed=np.int64(3))
    b = mixture_information(means, labels, 0.5, n_samples=4, target_se=None, seed=3)
    assert a == b
    with pytest.raises(ValueError, match=r"^seed must be a numpy Generator or a non-negative integer seed, got True$"):
        mixture_information(means, labels, 0.5, n_samples=4, target_se=None, seed=True)
    task = next(t for t in default_tasks() if t.name == "gaussian 2-d")
    with pytest.raises(TypeError, match=r"^rng must be a numpy Generator or a non-negative integer seed, got -1$"):
        task.draw(100, -1)


def test_wilson_interval_refuses_fractional_counts_instead_of_truncating():
    from ibtools.analysis import wilson_interval

    assert wilson_interval(np.int64(4), np.int64(50)) == wilson_interval(4, 50)
    with pytest.raises(ValueError, match=r"^k \(events\) must be an integer >= 0, got 2.5$"):
        wilson_interval(2.5, 10)  # before: counted as 2 events
    with pytest.raises(ValueError, match=r"^n \(trials\) must be an integer >= 1, got 0$"):
        wilson_interval(0, 0)


def test_dask_threads_per_worker_is_checked_before_a_cluster_starts():
    pytest.importorskip("distributed")
    from ibtools.distributed import DaskExecutor

    with pytest.raises(ValueError, match=r"^threads_per_worker must be an integer >= 1, got 1.5$"):
        DaskExecutor(n_workers=1, threads_per_worker=1.5)  # before: int(1.5) = 1 thread, silently

"""Where code lives: names that moved still import from their old place, and the network-wide
range of the ``"max"`` estimator (``max_value="network"``) is resolved by the estimator layer
(:func:`ibtools.estimators.resolve_params`) with the numbers the Recorder keeps."""

from __future__ import annotations

import numpy as np
import pytest

from ibtools import engine, training
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.estimators import NETWORK_MAX, check_values, max_binning, resolve_params
from ibtools.tasks import load_task


@pytest.mark.parametrize("name", ["train", "probe_seconds", "CHECKPOINT_FORMAT"])
def test_names_moved_to_training_still_import_from_engine(name):
    assert getattr(engine, name) is getattr(training, name)
    namespace = {}
    exec(f"from ibtools.engine import {name}", namespace)
    assert namespace[name] is getattr(training, name)


def test_engine_keeps_the_recorder_and_the_thread_settings_and_refuses_unknown_names():
    from ibtools.engine import THREADS_ENV, Recorder, default_threads, mixture_seed, set_threads  # noqa: F401

    assert training.Recorder is Recorder
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        engine.no_such_name  # noqa: B018


def test_internal_callers_use_the_training_module():
    from ibtools import sweep

    assert sweep.train is training.train


@pytest.mark.parametrize("name, module", [("SweepConfig", "sweep_grid"), ("work_summary", "sweep_grid"),
                                          ("ResultCache", "result_cache"), ("UnitLock", "unit_lock")])
def test_names_moved_out_of_sweep_still_import_from_it(name, module):
    import importlib

    from ibtools import sweep

    home = importlib.import_module(f"ibtools.{module}")
    assert getattr(sweep, name) is getattr(home, name)
    assert getattr(home, name).__module__ == home.__name__
    namespace = {}
    exec(f"from ibtools.sweep import {name}", namespace)
    assert namespace[name] is getattr(home, name)


def test_stored_units_keep_their_cache_names():
    """Stored results are found by :meth:`ResultCache.name`; a change to it orphans them."""
    from pathlib import Path

    from ibtools.result_cache import ResultCache
    from ibtools.study import activation_sweep, l2_sweep

    paper = Path(__file__).resolve().parents[1] / "results" / "paper"
    cache = ResultCache(paper)
    assert cache.name(activation_sweep().units()[0]) == "tanh_l2-0_s0-49x50_f1604c06cd6f"
    names = [cache.name(u) for sweep in (activation_sweep(), l2_sweep()) for u in sweep.units()]
    stored = {p.stem for p in paper.glob("*.json")}
    assert set(names) <= stored, sorted(set(names) - stored)


def test_resolve_params_replaces_only_the_network_wide_range():
    stored = {"max_value": NETWORK_MAX, "n_bins": 30}
    peaks = np.array([1.5, 2.0])
    assert resolve_params("max", stored, network_max=peaks)["max_value"] is peaks
    assert resolve_params("max", stored) == {"max_value": None, "n_bins": 30}  # a probe: the layer's own range
    assert stored == {"max_value": NETWORK_MAX, "n_bins": 30}  # not modified
    assert resolve_params("max", {"max_value": 3.0}, network_max=peaks) == {"max_value": 3.0}
    assert resolve_params("ebab", {"n_bins": 30}, network_max=peaks) == {"n_bins": 30}


def test_the_network_wide_range_is_a_valid_setting_but_not_a_number():
    check_values("max", {"max_value": "network", "n_bins": 30})  # probed as the layer's own range
    with pytest.raises(ValueError, match="must be a number"):
        check_values("max", {"max_value": "everywhere"})
    spec = EstimatorSpec.make("max", max_value="network")
    assert spec.params == (("max_value", "network"),) and spec.label == "max(max_value=network)"  # the stored key
    layer = np.linspace(0, 1, 64, dtype=np.float32).reshape(32, 2)
    with pytest.raises(ValueError, match="needs the network's maxima over training"):
        max_binning(layer, np.arange(32) % 2, max_value="network")


def test_recorded_network_wide_range_is_max_binning_at_the_running_network_maximum():
    epochs, last = 6, 5  # the schedule of 12 log-spaced points in 6 epochs: 0, 1, ..., 5
    config = TrainConfig(seeds=(0, 3), epochs=epochs, n_log_points=12, record_activations=(last,),
                         estimators=(EstimatorSpec.make("max", max_value="network"), EstimatorSpec("max")))
    run = training.train(config, progress=False)
    assert list(run.epochs) == list(range(last + 1))
    running = np.nanmax(run.layer_max, axis=(0, 1))  # (seeds,): over every recorded epoch and layer
    labels = load_task(config.task).y
    network = run.mi["max(max_value=network)"][last]  # (layers, seeds, 2) at the last epoch
    own = run.mi["max"][last]
    for layer, act in enumerate(run.activations[last]):
        want = max_binning(act, labels, max_value=running)
        np.testing.assert_array_equal(network[layer, :, 0], np.float32(want.i_xt))
        np.testing.assert_array_equal(network[layer, :, 1], np.float32(want.i_ty))
        mine = max_binning(act, labels)
        np.testing.assert_array_equal(own[layer, :, 0], np.float32(mine.i_xt))
    assert not np.array_equal(network[:, :, 0], own[:, :, 0])  # the two ranges differ somewhere

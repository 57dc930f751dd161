"""Nested recording schedules (ibtools.schedules, TrainConfig.nested_schedules)."""

from __future__ import annotations

import numpy as np
import pytest

from ibtools.config import EstimatorSpec, TrainConfig, log_schedule
from ibtools.engine import train
from ibtools.schedules import nested_order, nested_schedule, nested_schedules


def test_every_size_is_nested_in_every_larger_one_and_in_the_main_schedule():
    main = log_schedule(8000, 400)
    previous = set()
    for n in range(2, main.size + 1):
        s = nested_schedule(main, n)
        assert len(s) == n and len(set(s.tolist())) == n
        assert set(s.tolist()) <= set(main.tolist())
        assert previous <= set(s.tolist())
        assert s[0] == 0 and s[-1] == 7999
        previous = set(s.tolist())
    assert np.array_equal(nested_schedule(main, 10_000), main)
    assert sorted(nested_order(main).tolist()) == list(range(main.size))


def test_sparse_schedules_spread_over_log_time():
    main = log_schedule(8000, 400)
    s = nested_schedule(main, 10)
    gaps = np.diff(np.log1p(s))
    # farthest-point sampling: no gap more than twice the even spacing of log(8000)/9... in log time
    assert gaps.max() <= 2 * np.log1p(7999) / 9
    # the stored study's own log schedules are not nested in the main one (why this exists)
    assert not set(log_schedule(8000, 100).tolist()) <= set(main.tolist())
    sch = nested_schedules(8000)
    assert set(sch[10].tolist()) <= set(sch[25].tolist()) <= set(sch[100].tolist()) <= set(sch[400].tolist())


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True, "10"])
def test_bad_sizes_are_errors(bad):
    with pytest.raises(ValueError, match="n_points"):
        nested_schedule([0, 1, 2, 3], bad)


def test_empty_or_negative_main_schedule_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        nested_schedule([], 3)
    with pytest.raises(ValueError, match=">= 0"):
        nested_schedule([-1, 0, 4], 2)


def test_config_field_default_keeps_keys_and_validates():
    plain = TrainConfig()
    assert "nested_schedules" not in plain.to_dict()
    nested = plain.replace(nested_schedules=True)
    assert nested.key() != plain.key() and nested.to_dict()["nested_schedules"] is True
    assert TrainConfig.from_dict(nested.to_dict()) == nested
    with pytest.raises(ValueError, match="nested_schedules"):
        TrainConfig(nested_schedules="yes")


def test_estimator_schedules_of_a_nested_config_share_the_main_epochs():
    specs = (EstimatorSpec.make("ebab", n_bins=30), EstimatorSpec.make("ebab", n_bins=10, n_points=20),
             EstimatorSpec.make("fixed", n_points=8))
    c = TrainConfig(epochs=300, n_log_points=60, estimators=specs, nested_schedules=True)
    main = set(c.schedule().tolist())
    s20, s8 = (set(c.estimator_schedule(s).tolist()) for s in specs[1:])
    assert s8 <= s20 <= main and len(s20) == 20 and len(s8) == 8
    old = c.replace(nested_schedules=False)
    assert set(old.estimator_schedule(specs[1]).tolist()) == set(log_schedule(300, 20).tolist())


def test_a_run_records_sparse_settings_exactly_on_their_nested_epochs():
    specs = (EstimatorSpec.make("ebab", n_bins=30), EstimatorSpec.make("ebab", n_bins=10, n_points=6))
    c = TrainConfig(epochs=40, n_log_points=20, estimators=specs, nested_schedules=True, seeds=(0, 1))
    run = train(c, progress=False)
    sparse = run.mi[specs[1].label][..., 0]  # (epochs, layers, networks)
    recorded = {int(e) for e, row in zip(run.epochs, sparse) if np.isfinite(row).all()}
    assert recorded == set(c.estimator_schedule(specs[1]).tolist())
    assert set(run.epochs.tolist()) == set(c.schedule().tolist())

"""Configurations: validation, schedule, identity."""

import numpy as np
import pytest

from ibtools.config import EstimatorSpec, TrainConfig, log_schedule


def test_paper_schedule_has_274_epochs():
    e = TrainConfig().schedule()
    assert len(e) == 274 and e[0] == 0 and e[-1] == 7999
    assert np.array_equal(e[:44], np.arange(44)) and np.all(np.diff(e) > 0)


def test_sparser_schedules():
    assert len(log_schedule(8000, 25)) == 24
    c = TrainConfig(epochs=100, estimators=(EstimatorSpec("ebab"), EstimatorSpec.make("akde", n_points=5)))
    assert set(c.estimator_schedule(c.estimators[1])) <= set(c.evaluation_epochs())
    assert len(c.estimator_schedule(c.estimators[1])) <= 5


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("activation", "gelu", "unknown activation 'gelu'"),
        ("hidden", (), "at least one hidden"),
        ("hidden", (10, 0), "hidden width"),
        ("epochs", 0, "epochs must be an integer >= 1"),
        ("epochs", -5, "epochs must be an integer >= 1"),
        ("epochs", 10.5, "epochs must be an integer"),
        ("lr", 0, "lr must be > 0"),
        ("lr", float("nan"), "lr must be finite"),
        ("batch_size", 0, "batch_size"),
        ("l2", -0.1, "l2 must be >= 0"),
        ("split", "random", "unknown split"),
        ("train_fraction", 1.0, "train_fraction"),
        ("seeds", (), "at least one seed"),
        ("seeds", (1, 1), "distinct"),
        ("seeds", (-1,), "seed must be an integer >= 0"),
        ("init", "glorot", "unknown init"),
        ("record_activations", (10**6,), "record_activations"),
        ("record_activations", "some", "record_activations"),
        ("device", "tpu", "device must be one of"),
        ("shuffle_batches", "yes", "shuffle_batches"),
        ("estimators", ("ebab",), "EstimatorSpec"),
        ("estimators", (EstimatorSpec("ebab"), EstimatorSpec("ebab")), "distinct"),
    ],
)
def test_every_field_is_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_estimator_specs():
    s = EstimatorSpec.parse("akde:alpha=0.02,n_points=40,bound=lower")
    assert s.name == "akde" and s.kwargs == {"alpha": 0.02, "bound": "lower"} and s.n_points == 40
    assert s.label == "akde(alpha=0.02,bound=lower)"
    assert EstimatorSpec("ebab").label == "ebab"
    with pytest.raises(ValueError, match="unknown estimator 'ksg'"):
        EstimatorSpec("ksg")
    with pytest.raises(ValueError, match="has no parameter.*sigma.*accepts: bound, chunk_size, engine, noise_var"):
        EstimatorSpec.make("kde", sigma=1.0)
    with pytest.raises(ValueError, match="needs parameter.*noise_var"):
        EstimatorSpec("kde")
    with pytest.raises(ValueError, match="key=value"):
        EstimatorSpec.parse("ebab:30")
    assert EstimatorSpec.make("max", max_value="network").kwargs == {"max_value": "network"}


def test_identity_roundtrip_and_device_independence():
    c = TrainConfig(activation="tanh", seeds=(1, 2), estimators=(EstimatorSpec.make("akde", alpha=0.1, n_points=9),))
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert c.key() == TrainConfig.from_dict(c.to_dict()).key()
    assert c.replace(device="cuda").key() == c.key()
    assert c.replace(l2=0.01).key() != c.key()
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({**c.to_dict(), "momentum": 0.9})

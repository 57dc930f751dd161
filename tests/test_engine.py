"""Training runs: recording, reproducibility, divergence, checkpoints and resume, save/load."""

import json
import warnings

import numpy as np
import pytest
import torch

from ibtools import estimators as E
from ibtools.activations import ACTIVATIONS, ActivationSpec, register_activation
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.engine import Recorder, train
from ibtools.results import CorruptResultError, load_run, result_paths
from ibtools.trainer import EnsembleTrainer

SMALL = TrainConfig(
    activation="relu",
    seeds=(3, 1, 4),
    epochs=30,
    estimators=(EstimatorSpec("ebab"), EstimatorSpec.make("akde", n_points=4), EstimatorSpec.make("max", max_value="network")),
    record_activations=(0, 29),
)


@pytest.fixture(scope="module")
def small_run():
    return train(SMALL, progress=False)


def test_recorded_values_are_the_estimators_on_the_recorded_activity(small_run, task):
    r = small_run
    for epoch in (0, 29):
        i = list(r.epochs).index(epoch)
        for layer, act in enumerate(r.activations[epoch]):
            assert act.shape == (3, 4096, SMALL.widths[layer + 1])
            for k in range(3):
                assert r.mi["ebab"][i, layer, k] == pytest.approx(tuple(E.ebab(act[k], task.y)), abs=1e-6)
    assert np.allclose(r.activations[0][-1].sum(-1), 1, atol=1e-5)  # softmax output


def test_schedules_and_table(small_run):
    r = small_run
    assert np.array_equal(r.epochs, SMALL.evaluation_epochs())
    akde_epochs = r.epochs[~np.isnan(r.mi["akde"][:, 0, 0, 0])]
    assert set(akde_epochs) == set(SMALL.estimator_schedule(SMALL.estimators[1]))
    df = r.table()
    assert list(df.columns) == ["activation", "l2", "seed", "epoch", "layer", "layer_name", "estimator", "i_xt", "i_ty", "diverged"]
    assert set(df.seed) == {1, 3, 4} and set(df.layer_name) == {"h1", "h2", "h3", "h4", "h5", "softmax"}
    assert len(df[df.estimator == "ebab"]) == len(SMALL.schedule()) * 6 * 3
    assert len(df[df.estimator == "akde"]) == len(akde_epochs) * 6 * 3
    h = r.history_table()
    assert h[["train_acc", "test_acc"]].stack().between(0, 1).all() and np.isfinite(h.train_loss).all()
    assert r.epoch_loss.shape == (30, 3) and (np.diff(r.epoch_loss[:, 0]) < 0.05).all()


def test_history_matches_a_direct_evaluation(small_run, task):
    # accuracy at epoch 29 recomputed from the stored softmax outputs
    from ibtools.data import make_split

    r = small_run
    i = list(r.epochs).index(29)
    split = make_split(task, "unshuffled")
    pred = r.activations[29][-1].argmax(-1)
    assert np.allclose(r.history["test_acc"][i], (pred[:, split.test] == task.y[split.test]).mean(1), atol=1e-6)


def test_same_config_same_numbers(small_run):
    again = train(SMALL, progress=False)
    for label in small_run.mi:
        assert np.array_equal(small_run.mi[label], again.mi[label], equal_nan=True)
    assert np.array_equal(small_run.epoch_loss, again.epoch_loss)


def test_save_load_round_trip(small_run, tmp_path):
    path = tmp_path / "runs" / "relu_l2-0.01"  # a dot in the name must not be taken for a suffix
    small_run.save(path)
    assert result_paths(path)[0].name == "relu_l2-0.01.npz"
    back = load_run(path, expected=SMALL)
    for label in small_run.mi:
        assert np.array_equal(back.mi[label], small_run.mi[label], equal_nan=True)
    for name in small_run.history:
        assert np.array_equal(back.history[name], small_run.history[name], equal_nan=True)
    assert np.array_equal(back.epoch_loss, small_run.epoch_loss)
    assert all(np.array_equal(a, b) for a, b in zip(back.activations[29], small_run.activations[29]))
    assert back.config == SMALL and back.meta["git_commit"] == small_run.meta["git_commit"]
    assert back.table().equals(small_run.table())
    sidecar = json.loads(result_paths(path)[1].read_text())
    assert {"torch", "numpy", "git_commit", "wall_time_s"} <= set(sidecar["meta"])


def test_corrupt_and_stale_results_are_refused(small_run, tmp_path):
    path = tmp_path / "run"
    small_run.save(path)
    npz, sidecar = result_paths(path)
    with pytest.raises(CorruptResultError, match="another configuration"):
        load_run(path, expected=SMALL.replace(l2=0.5))
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    with pytest.raises(CorruptResultError, match="checksum"):
        load_run(path)
    npz.unlink()
    with pytest.raises(CorruptResultError, match="missing"):
        load_run(path)
    sidecar.write_text("{ truncated")
    with pytest.raises(CorruptResultError, match="unreadable"):
        load_run(path)
    sidecar.unlink()
    with pytest.raises(FileNotFoundError):
        load_run(path)


class Stop(KeyboardInterrupt):
    pass


def test_interrupted_run_resumes_to_identical_numbers(small_run, tmp_path):
    ckpt = tmp_path / "run.ckpt"

    def interrupt(epoch):
        if epoch == 17:
            raise Stop

    with pytest.raises(Stop):
        train(SMALL, checkpoint=ckpt, on_epoch=interrupt, progress=False)
    assert ckpt.exists()
    seen = []
    resumed = train(SMALL, checkpoint=ckpt, on_epoch=seen.append, progress=False)
    assert seen[0] == 18  # finished epochs are not redone
    assert not ckpt.exists()
    for label in small_run.mi:
        assert np.array_equal(resumed.mi[label], small_run.mi[label], equal_nan=True)
    assert np.array_equal(resumed.epoch_loss, small_run.epoch_loss)


def test_checkpoint_of_another_config_is_ignored(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    cfg = SMALL.replace(epochs=5, estimators=(EstimatorSpec("ebab"),), record_activations=())
    with pytest.raises(Stop):
        train(cfg, checkpoint=ckpt, on_epoch=lambda e: (_ for _ in ()).throw(Stop) if e == 2 else None, progress=False)
    with pytest.warns(UserWarning, match="another configuration"):
        r = train(cfg.replace(l2=0.1), checkpoint=ckpt, progress=False)
    assert r.epoch_loss.shape[0] == 5


def test_stop_at_recomputes_the_beginning(small_run):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopping early is not divergence
        part = train(SMALL, stop_at=12, progress=False)
    assert not part.diverged_seeds()
    upto = small_run.epochs <= 12
    assert np.array_equal(part.mi["ebab"][upto], small_run.mi["ebab"][upto], equal_nan=True)
    assert np.isnan(part.mi["ebab"][~upto]).all()


def test_divergence_of_one_network_is_reported_not_averaged():
    cfg = SMALL.replace(epochs=4, estimators=(EstimatorSpec("ebab"),), record_activations=())
    trainer = EnsembleTrainer(cfg)
    rec = Recorder(cfg, trainer)
    rec.record(0)
    with torch.no_grad():
        trainer.model.weights[1][1].fill_(float("inf"))  # network 1 blows up
    rec.record(1)
    assert list(rec.diverged) == [-1, 1, -1]
    assert np.isnan(rec.mi["ebab"][1, :, 1]).all() and np.isfinite(rec.mi["ebab"][1, :, [0, 2]]).all()


def test_diverged_training_warns_and_flags_rows():
    register_activation(ActivationSpec("exp_test", torch.exp, 1.0, False, derivative=lambda z, a: a), overwrite=True)
    try:
        cfg = TrainConfig(activation="exp_test", seeds=(0, 1), epochs=6, lr=50.0, init="he")
        with pytest.warns(RuntimeWarning, match="networks diverged"):
            r = train(cfg, progress=False)
        assert r.diverged_seeds()
        table = r.table()
        assert table[table.diverged].i_xt.isna().all()
    finally:
        ACTIVATIONS.pop("exp_test")


def test_bad_stop_at():
    with pytest.raises(ValueError, match="stop_at"):
        train(SMALL, stop_at=31, progress=False)

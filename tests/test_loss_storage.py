"""Training losses are stored as float32: a huge but finite loss is not a divergence."""

import zipfile

import numpy as np

from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.engine import train
from ibtools.results import load_run
from ibtools.study import PAPER_RESULTS


def test_huge_finite_loss_is_kept_and_not_flagged_as_diverged(tmp_path):
    # ReLU at lr 100: losses ~1e13 after the first epoch, finite in float32; float16 storage
    # made them inf (> 65504), flagged every network diverged at epoch 0 and dropped its rows
    config = TrainConfig(activation="relu", lr=100.0, epochs=3, seeds=(0, 1),
                         estimators=(EstimatorSpec("ebab"),), n_log_points=3)
    run = train(config, progress=False)
    assert np.isfinite(run.epoch_loss).all() and run.epoch_loss.max() > 65504
    assert (run.diverged == -1).all()
    assert np.isfinite(run.mi["ebab"]).all()
    back = load_run(run.save(tmp_path / "huge"))
    assert back.epoch_loss.dtype == np.float32
    assert np.array_equal(back.epoch_loss, run.epoch_loss)


def test_results_stored_with_float16_losses_still_load():
    stored = sorted(PAPER_RESULTS.rglob("*.npz"))
    assert stored, f"no stored results under {PAPER_RESULTS}"
    path = next(p for p in stored if "quarantine" not in p.parts)
    with zipfile.ZipFile(path) as z, z.open("epoch_loss.npy") as f:
        raw = np.lib.format.read_array(f)
    run = load_run(path)
    assert run.epoch_loss.dtype == np.float32
    np.testing.assert_array_equal(run.epoch_loss, raw.astype(np.float32))

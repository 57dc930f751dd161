"""Ground truths recorded online (issue 11): ``exact`` on quantized networks and ``mixture`` on
noise-injected ones, through the Recorder, checkpoints and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ibtools import cli
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.engine import mixture_seed, train
from ibtools.estimators import exact, get_estimator, kde
from ibtools.trainer import EnsembleTrainer

ROOT = Path(__file__).resolve().parents[1]
EBAB = EstimatorSpec.make("ebab", n_bins=30)
EXACT = EstimatorSpec("exact")
SIGMA = 0.1
MIX = EstimatorSpec.make("mixture", noise_std=SIGMA, n_samples=2)


def _quantized(seeds=(0, 1), **kw):
    kw = {"epochs": 20, "n_log_points": 6, **kw}
    return TrainConfig(activation="tanh", hidden=(10, 7, 5), quantize_bits=4, seeds=seeds,
                       estimators=(EXACT, EBAB), **kw)


def _noisy(seeds=(0, 1), **kw):
    kw = {"epochs": 4, "n_log_points": 2, **kw}
    return TrainConfig(activation="tanh", hidden=(6, 4), noise_std=SIGMA, seeds=seeds,
                       estimators=(MIX, EBAB), **kw)


class _Stop(KeyboardInterrupt):
    pass


def _interrupted_then_resumed(cfg, tmp_path, at):
    ckpt = tmp_path / "run.ckpt"

    def stop(epoch):
        if epoch == at:
            raise _Stop

    with pytest.raises(_Stop):
        train(cfg, checkpoint=ckpt, checkpoint_every=0.0, on_epoch=stop, progress=False)
    assert ckpt.exists()
    return train(cfg, checkpoint=ckpt, progress=False)


# -- configuration -----------------------------------------------------------------------------

def test_mixture_spec_must_match_the_network_noise():
    with pytest.raises(ValueError, match="noise_std"):
        TrainConfig(estimators=(MIX,))  # no noise at all
    with pytest.raises(ValueError, match=r"noise_std \(0.1\) must equal the config's noise_std \(0.2"):
        TrainConfig(activation="tanh", noise_std=0.2, estimators=(MIX,))
    assert TrainConfig(activation="tanh", noise_std=SIGMA, estimators=(MIX,)).estimators == (MIX,)


# -- exact MI of quantized networks ----------------------------------------------------------

def test_quantized_run_records_exact_mi_of_what_evaluate_returns():
    result = train(_quantized(record_activations="all"), progress=False)
    y = EnsembleTrainer(_quantized()).y_all.numpy()
    ex, eb = result.mi["exact"], result.mi[EBAB.label]
    assert np.isfinite(ex).all() and np.isfinite(eb).all()
    for i, epoch in enumerate(result.epochs):
        for layer, a in enumerate(result.activations[int(epoch)]):
            again = exact(a, y)
            np.testing.assert_array_equal(ex[i, layer, :, 0], np.float32(again.i_xt))
            np.testing.assert_array_equal(ex[i, layer, :, 1], np.float32(again.i_ty))
    # 4-bit tanh layers take at most 16 values per unit: the counting is over few states
    assert ex[:, 0, :, 0].max() <= 12.0 and ex[:, -2, :, 0].min() < 12.0
    # Exact >= EBAB on every layer, both quantities. EBAB assigns every row to a cell of its
    # bins, a function of the row: equal rows share a cell, so its partition of the inputs is
    # a coarsening of the distinct-row partition, and I(X;T) = H(T) >= H(bin(T)) (entropy of a
    # function of T), I(T;Y) >= I(bin(T);Y) (data processing). Float32 storage: 1e-5 bits.
    assert (ex[..., 0] >= eb[..., 0] - 1e-5).all()
    assert (ex[..., 1] >= eb[..., 1] - 1e-5).all()
    assert (ex[..., 0] - eb[..., 0]).max() > 0.1  # and binning does merge rows here


def test_quantized_checkpoint_resume_equals_uninterrupted(tmp_path):
    cfg = _quantized(epochs=12, n_log_points=5)
    whole = train(cfg, progress=False)
    resumed = _interrupted_then_resumed(cfg, tmp_path, at=7)
    assert np.array_equal(resumed.epoch_loss, whole.epoch_loss)
    for label in whole.mi:
        assert np.array_equal(resumed.mi[label], whole.mi[label], equal_nan=True)


# -- Monte Carlo mixture of noisy networks ---------------------------------------------------

@pytest.mark.slow
def test_noisy_run_records_mixture_of_the_clean_means_within_the_kde_bounds():
    cfg = _noisy()
    result = train(cfg, progress=False)
    mix = result.mi[MIX.label]
    last = len(result.epochs) - 1
    assert np.isnan(mix[:, -1]).all()  # the softmax output has no noise: NaN, as documented
    assert np.isfinite(mix[:, :-1]).all()

    # the same networks, trained again to the last recorded epoch (training is deterministic)
    tr = EnsembleTrainer(cfg)
    while tr.epoch < int(result.epochs[last]):
        tr.train_epoch()
    means, noisy = tr.evaluate_noisy_means(0)
    y = tr.y_all.numpy()
    fn = get_estimator("mixture")
    info = __import__("ibtools.estimators.mixture", fromlist=["mixture_information"]).mixture_information
    for layer, m in enumerate(means):
        for k, seed in enumerate(cfg.seeds):
            s = mixture_seed(0, seed, layer)
            again = fn(m[k], y, noise_std=SIGMA, n_samples=2, seed=s)
            assert mix[last, layer, k, 0] == np.float32(again.i_xt)
            assert mix[last, layer, k, 1] == np.float32(again.i_ty)
            # not the noisy activity: that would be another (larger) number
            other = fn(noisy[layer][k], y, noise_std=SIGMA, n_samples=2, seed=s)
            assert abs(other.i_xt - again.i_xt) > 1e-3
            # between the Kolchinsky-Tracey bounds of the same means, within 3 standard errors
            full = info(m[k], y, noise_std=SIGMA, n_samples=2, seed=s)
            lo = kde(m[k], y, noise_var=SIGMA**2, bound="lower").i_xt
            up = kde(m[k], y, noise_var=SIGMA**2, bound="upper").i_xt
            assert lo - 3 * full.se_xt - 1e-3 <= full.i_xt <= up + 3 * full.se_xt + 1e-3, (layer, k, lo, full, up)
            assert full.se_xt < 0.05


@pytest.mark.slow
def test_noisy_checkpoint_resume_equals_uninterrupted(tmp_path):
    cfg = _noisy(epochs=6, n_log_points=3)
    whole = train(cfg, progress=False)
    resumed = _interrupted_then_resumed(cfg, tmp_path, at=3)
    assert np.array_equal(resumed.epoch_loss, whole.epoch_loss)
    for label in whole.mi:
        assert np.array_equal(resumed.mi[label], whole.mi[label], equal_nan=True)


@pytest.mark.slow
def test_a_network_ground_truth_does_not_depend_on_its_ensemble():
    for make in (_quantized, _noisy):
        kw = dict(epochs=6, n_log_points=3, ensemble_invariant=True)
        alone = train(make(seeds=(3,), **kw), progress=False)
        shared = train(make(seeds=(7, 3, 1), **kw), progress=False)
        for label, values in alone.mi.items():
            assert np.array_equal(values[:, :, 0], shared.mi[label][:, :, 1], equal_nan=True), label
    # the Monte Carlo draws differ between networks and layers, not between epochs
    assert len({mixture_seed(0, 3, 0), mixture_seed(0, 7, 0), mixture_seed(0, 3, 1), mixture_seed(1, 3, 0)}) == 4


# -- command line ------------------------------------------------------------------------------

def test_cli_options_reach_the_config():
    p = cli.build_parser()
    args = p.parse_args(["sweep", "--cache", "c", "--quantize-bits", "8", "--measures", "within_between", "nc1"])
    cfg = cli._config_from(args)
    assert cfg.quantize_bits == 8 and cfg.noise_std == 0 and cfg.measures == ("within_between", "nc1")
    args = p.parse_args(["run", "--out", "o", "--activation", "tanh", "--noise-std", "0.1",
                         "--estimators", "mixture:noise_std=0.1"])
    cfg = cli._config_from(args, activation="tanh")
    assert cfg.noise_std == 0.1 and cfg.estimators[0].name == "mixture"
    d = cli._config_from(p.parse_args(["run", "--out", "o"]))
    assert d == TrainConfig() and d.key() == TrainConfig().key()
    text = p._subparsers._group_actions[0].choices["sweep"].format_help()
    for option in ("--quantize-bits", "--noise-std", "--measures"):
        assert text.count(f"  {option} ") == 1
    assert text.count("default: none") >= 2 and "(default: 0 = none)" in " ".join(text.split())


@pytest.mark.parametrize("argv, message", [
    (["--quantize-bits", "0"], "--quantize-bits must be an integer >= 1"),
    (["--quantize-bits", "17"], "quantize_bits must be None or an integer from 1 to 16"),
    (["--noise-std", "-1"], "--noise-std must be a finite number >= 0"),
    (["--estimators", "mixture:noise_std=0.1"], "needs a noisy network"),
    (["--measures", "nope"], "unknown geometric measure"),
])
def test_cli_rejects_bad_ground_truth_options(tmp_path, capsys, argv, message):
    try:
        code = cli.main(["run", "--out", str(tmp_path / "r"), "--no-estimate", "--dry-run", *argv])
    except SystemExit as exc:  # argparse's own check of the option's type
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_cli_sweep_round_trip_and_resume(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IBTOOLS_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ibtools", "sweep", "--activations", "tanh", "--epochs", "10", "--n-log-points", "4",
           "--seeds", "0-1", "--seeds-per-unit", "2", "--hidden", "6", "4", "--quantize-bits", "8",
           "--estimators", "exact", "ebab:n_bins=30", "--cache", str(tmp_path / "c"), "--no-progress", "--no-estimate"]
    first = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    from ibtools.sweep import load_sweep

    runs = load_sweep(tmp_path / "c").runs
    assert len(runs) == 1 and runs[0].config.quantize_bits == 8
    assert set(runs[0].mi) == {"exact", "ebab(n_bins=30)"} and np.isfinite(runs[0].mi["exact"]).all()
    stored = sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "c").rglob("*") if p.is_file())
    second = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "0 unit(s)" in second.stderr  # nothing left to do
    assert sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "c").rglob("*") if p.is_file()) == stored

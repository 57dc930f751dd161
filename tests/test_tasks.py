"""The task registry: names, shapes, splits, H(Y), checksums, determinism, no network, no side
effects on global random state; tasks through TrainConfig, the trainer, the estimators and the CLI."""

import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ibtools import data, tasks
from ibtools import estimators as E
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.data import make_split
from ibtools.tasks import ChecksumMismatchError, load_task

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"tishby": (4096, 12, 2), "mnist1d": (5000, 40, 10), "digits": (1797, 64, 10)}
SMALL_MNIST1D = "mnist1d:num_samples=2000"  # cheaper to generate (about 1.5 s) than the default


@pytest.fixture
def fresh():
    """An empty generation cache before and after the test (a planted checksum must not leak)."""
    tasks._arrays.cache_clear()
    yield
    tasks._arrays.cache_clear()


def test_registry_names_and_reexports():
    assert tasks.task_names() == ("tishby", "mnist1d", "digits")
    assert data.task_names() == tasks.task_names() and data.load_task is tasks.load_task
    from ibtools.data import DEFAULT_TASK  # noqa: F401  (importable from ibtools.data)

    assert tasks.DEFAULT_TASK == "tishby" == TrainConfig().task
    assert data.tishby_task().X is load_task("tishby").X  # the old entry point, same cached arrays


@pytest.mark.parametrize("name", list(SHAPES))
def test_shapes_dtypes_labels_entropy_checksum(name):
    task = load_task(name)
    n, d, c = SHAPES[name]
    info = tasks.task_info(name)
    assert (info.n_features, info.n_classes) == (d, c)
    assert task.X.shape == (n, d) and task.y.shape == (n,)
    assert task.X.dtype == np.float32 and task.y.dtype == np.int64
    assert not task.X.flags.writeable and not task.y.flags.writeable
    assert np.isfinite(task.X).all()
    assert task.y.min() == 0 and task.y.max() == c - 1 and task.n_classes == c
    assert task.name == name
    counts = np.bincount(task.y, minlength=c)
    assert counts.sum() == n and (counts > 0).all()
    p = counts / n
    assert task.label_entropy() == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-12)
    assert task.label_entropy() <= np.log2(c) + 1e-12
    assert task.checksum == tasks.array_checksum(task.X, task.y)
    assert task.checksum == info.checksums(info.defaults)
    # every input distinct, so I(X;T) has the ceiling log2 N
    assert len(np.unique(task.X, axis=0)) == n


def test_known_label_counts():
    assert np.array_equal(np.bincount(load_task("mnist1d").y), np.full(10, 500))
    assert load_task("mnist1d").label_entropy() == pytest.approx(np.log2(10), abs=1e-12)
    assert np.bincount(load_task("tishby").y).tolist() == [1978, 2118]
    x = load_task("digits").X
    assert x.min() == 0.0 and x.max() == 1.0  # pixels 0..16 scaled by 1/16


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("kind", data.SPLIT_KINDS)
def test_splits_disjoint_and_covering(name, kind):
    task = load_task(name)
    split = make_split(task, kind, 0.8, seed=3)
    again = task.split(kind, 0.8, seed=3)
    assert np.array_equal(again.train, split.train) and np.array_equal(again.test, split.test)
    assert np.intersect1d(split.train, split.test).size == 0
    assert np.array_equal(np.sort(np.concatenate([split.train, split.test])), np.arange(task.n_samples))
    assert split.train.size == round(0.8 * task.n_samples)
    if kind == "stratified":  # every class in both parts, in proportion to within one sample
        counts = np.bincount(task.y)
        train_counts = np.bincount(task.y[split.train], minlength=counts.size)
        assert np.all(np.abs(train_counts - 0.8 * counts) < 1.0)


def test_unshuffled_split_is_mnist1ds_own_split(fresh):
    from mnist1d.data import get_dataset_args, make_dataset

    task = load_task(SMALL_MNIST1D)
    args = get_dataset_args()
    args.num_samples = 2000
    state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
        random.setstate(py_state)
    split = make_split(task, "unshuffled", 0.8)
    assert np.array_equal(task.X[split.train], d["x"].astype(np.float32))
    assert np.array_equal(task.y[split.train], d["y"])
    assert np.array_equal(task.X[split.test], d["x_test"].astype(np.float32))
    assert np.array_equal(task.y[split.test], d["y_test"])


def test_planted_wrong_checksum_is_a_clear_error(fresh, monkeypatch):
    bad = dataclasses.replace(tasks.TASKS["digits"], checksums=lambda opts: "0123456789abcdef")
    monkeypatch.setitem(tasks.TASKS, "digits", bad)
    with pytest.raises(ChecksumMismatchError, match=r"'digits'.*checksum f4dcc828fcebfd40.*0123456789abcdef is recorded.*version"):
        load_task("digits")
    monkeypatch.setitem(tasks.MNIST1D_CHECKSUMS, 2000, "ffffffffffffffff")
    with pytest.raises(ChecksumMismatchError, match="another version of mnist1d"):
        load_task(SMALL_MNIST1D)


def test_checksum_sees_data_changes_but_not_float_noise():
    task = load_task("digits")
    X = task.X.copy()
    assert tasks.array_checksum(X, task.y) == task.checksum
    noisy = X + np.float32(1e-7) * (X > 0.5)  # below the 2**-16 quantum used by the checksum
    assert tasks.array_checksum(noisy, task.y) == task.checksum
    X[5, 3] += 0.01
    assert tasks.array_checksum(X, task.y) != task.checksum
    y = task.y.copy()
    y[0] = (y[0] + 1) % 10
    assert tasks.array_checksum(task.X, y) != task.checksum


def test_generation_is_deterministic(fresh):
    first = load_task(SMALL_MNIST1D)
    digits = load_task("digits")
    tasks._arrays.cache_clear()
    again = load_task(SMALL_MNIST1D)
    assert again.X is not first.X  # regenerated, not the cached arrays
    assert np.array_equal(again.X, first.X) and np.array_equal(again.y, first.y)
    assert np.array_equal(load_task("digits").X, digits.X)
    assert load_task(SMALL_MNIST1D).X is again.X  # cached within the process


def test_unknown_names_and_options_are_clear_errors():
    with pytest.raises(ValueError, match="unknown task 'mnist'; valid tasks are: tishby, mnist1d, digits"):
        load_task("mnist")
    with pytest.raises(ValueError, match="valid tasks are: tishby, mnist1d, digits"):
        TrainConfig(task="cifar10")
    with pytest.raises(ValueError, match="has no option 'size'.*num_samples"):
        load_task("mnist1d:size=3")
    with pytest.raises(ValueError, match="has no option 'num_samples'.*none"):
        load_task("digits:num_samples=3")
    with pytest.raises(ValueError, match="task option num_samples must be an integer >= 1, got '-5'"):
        load_task("mnist1d:num_samples=-5")
    with pytest.raises(ValueError, match="key=value"):
        load_task("mnist1d:5000")
    with pytest.raises(ValueError, match="no recorded checksum.*2000, 5000, 10000"):
        load_task("mnist1d:num_samples=3000")
    with pytest.raises(ValueError, match="string"):
        TrainConfig(task=None)


def test_canonical_names():
    assert tasks.canonical_task("mnist1d:num_samples=5000") == "mnist1d"
    assert tasks.canonical_task(" mnist1d : num_samples=10000 ") == "mnist1d:num_samples=10000"
    assert TrainConfig(task="mnist1d:num_samples=5000").task == "mnist1d"


def test_no_network_access_is_attempted(fresh, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("network access attempted")

    for name in ("socket", "create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    mnist = load_task("mnist1d")  # fresh: the cache was cleared
    digits = load_task("digits")
    assert mnist.X.shape == (5000, 40) and digits.X.shape == (1797, 64)
    assert attempts == []
    assert not list(Path.cwd().glob("mnist1d_data*.pkl"))  # get_dataset's download cache: never written


def test_global_random_state_is_untouched(fresh):
    np.random.seed(2024)
    random.seed(7)
    np_before, py_before = np.random.get_state(), random.getstate()
    load_task(SMALL_MNIST1D)  # the generator seeds both global states (to 42)
    np_after = np.random.get_state()
    assert np_after[0] == np_before[0] and np.array_equal(np_after[1], np_before[1]) and np_after[2:] == np_before[2:]
    assert random.getstate() == py_before
    expected = np.random.RandomState(2024).rand()
    assert np.random.rand() == expected


def test_config_task_widths_and_keys():
    default = TrainConfig()
    assert "task" not in default.to_dict() and default.widths == (12, 10, 7, 5, 4, 3, 2)
    m = TrainConfig(task="mnist1d", hidden=(20, 10))
    assert m.widths == (40, 20, 10, 10) and m.n_layers == 3
    assert TrainConfig(task="digits", hidden=(8,)).widths == (64, 8, 10)
    assert m.to_dict()["task"] == "mnist1d" and TrainConfig.from_dict(m.to_dict()) == m
    assert m.key() != m.replace(task="digits").key() != m.replace(task="tishby").key()
    assert m.replace(task="mnist1d:num_samples=10000").key() != m.key()
    # explicitly naming the default task is the same config, with the same key
    assert TrainConfig(task="tishby").key() == default.key() == TrainConfig.from_dict(default.to_dict()).key()


def test_stored_results_keep_their_keys():
    sidecars = sorted((ROOT / "results" / "paper").glob("*.json"))
    assert sidecars, "the stored study is part of the repository"
    for path in sidecars[:5]:
        stored = json.loads(path.read_text())
        config = TrainConfig.from_dict(stored["config"])
        assert config.task == "tishby"
        assert config.key() == stored["config_key"], path.name


def test_trainer_uses_the_configs_task():
    from ibtools.trainer import EnsembleTrainer

    c = TrainConfig(task="digits", hidden=(8, 4), seeds=(0, 1), epochs=2)
    tr = EnsembleTrainer(c)
    assert tr.dataset.name == "digits" and tr.X_all.shape == (1797, 64) and tr.split.train.size == 1438
    tr.train_epoch()
    acts, logits = tr.evaluate()
    assert [a.shape for a in acts] == [(2, 1797, 8), (2, 1797, 4), (2, 1797, 10)] and logits.shape == (2, 1797, 10)
    # the dataset= override still works, and a data set that does not fit the widths is refused
    assert EnsembleTrainer(c, dataset=load_task("digits")).dataset.name == "digits"
    with pytest.raises(ValueError, match="12 features and 2 classes.*expects widths \\(64, 8, 4, 10\\)"):
        EnsembleTrainer(c, dataset=load_task("tishby"))


def test_estimators_with_ten_classes_and_continuous_inputs():
    task = load_task("mnist1d")
    ceiling = np.log2(task.n_samples)
    h_y = task.label_entropy()
    # the inputs themselves (injective): I(X;T) at the ceiling log2 N, I(T;Y) = H(Y)
    est = E.ebab(task.X, task.y)
    assert est.i_xt == pytest.approx(ceiling, abs=1e-9) and est.i_ty == pytest.approx(h_y, abs=1e-9)
    # the labels, one-hot (a 10-unit layer that keeps only the class): both equal H(Y) = log2 10
    onehot = np.eye(10, dtype=np.float32)[task.y]
    est = E.ebab(onehot, task.y)
    assert est.i_xt == pytest.approx(np.log2(10), abs=1e-9) and est.i_ty == pytest.approx(np.log2(10), abs=1e-9)
    upper = E.akde(onehot, task.y)
    assert upper.i_ty <= np.log2(10) + 1e-6 and upper.i_xt <= ceiling + 1e-6


def test_train_records_mnist1d_within_the_ceiling():
    from ibtools.engine import train

    c = TrainConfig(task="mnist1d", hidden=(16, 4), activation="tanh", seeds=(0, 1), epochs=3, n_log_points=3,
                    estimators=(EstimatorSpec.make("ebab", n_bins=30), EstimatorSpec.make("akde", n_points=2)))
    r = train(c, progress=False)
    ceiling = np.log2(5000)
    for label, mi in r.mi.items():
        values = mi[np.isfinite(mi)]
        assert values.size and values.min() >= -1e-6, label
        assert mi[..., 0][np.isfinite(mi[..., 0])].max() <= ceiling + 1e-6, label
        assert mi[..., 1][np.isfinite(mi[..., 1])].max() <= np.log2(10) + 1e-6, label
    assert r.meta["data"] == "mnist1d" and r.meta["data_checksum"] == load_task("mnist1d").checksum
    assert np.isfinite(r.history["test_acc"]).all()


# -- the command line ------------------------------------------------------------------------

CLI_ARGS = ["sweep", "--task", "mnist1d", "--hidden", "8", "4", "--activations", "tanh", "relu", "--seeds", "0-1",
            "--seeds-per-unit", "1", "--epochs", "40", "--n-log-points", "20", "--estimators", "ebab",
            "--no-estimate", "--no-progress", "--threads", "1"]


def _cli(args, **kw):
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "ibtools", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def test_cli_help_lists_the_tasks():
    out = subprocess.run([sys.executable, "-m", "ibtools", "sweep", "--help"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 0 and "tishby, mnist1d, digits" in " ".join(out.stdout.split())


def test_cli_unknown_task_is_one_line(tmp_path):
    proc = _cli(["run", "--task", "mnist", "--out", str(tmp_path / "x")])
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "unknown task 'mnist'; valid tasks are: tishby, mnist1d, digits" in stderr
    assert "Traceback" not in stderr


@pytest.mark.slow  # three processes generate MNIST-1D and train: about 30 s on an idle machine
def test_cli_mnist1d_sweep_killed_mid_run_resumes(tmp_path):
    from ibtools.engine import train
    from ibtools.sweep import ResultCache, SweepConfig, load_sweep

    cache = tmp_path / "sweep"
    proc = _cli(CLI_ARGS + ["--cache", str(cache), "--checkpoint-every", "0.2"])
    deadline = time.time() + 300
    while time.time() < deadline and not list(cache.glob("*.json")) and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    assert 1 <= len(finished) < 4, "the kill should land in the middle of the sweep"
    assert all(name.startswith("mnist1d_") for name in finished)  # unit names carry the task
    out = _cli(CLI_ARGS + ["--cache", str(cache)])
    _, stderr = out.communicate(timeout=600)
    assert out.returncode == 0, stderr
    assert f"{len(finished)} already finished" in stderr
    for name, mtime in finished.items():  # finished units untouched
        assert (cache / name).stat().st_mtime_ns == mtime
    base = TrainConfig(task="mnist1d", hidden=(8, 4), epochs=40, n_log_points=20, estimators=(EstimatorSpec("ebab"),))
    sweep = SweepConfig(base, activations=("tanh", "relu"), seeds=(0, 1), seeds_per_unit=1)
    runs = load_sweep(cache, sweep.units()).runs
    assert [r.config.task for r in runs] == ["mnist1d"] * 4
    assert ResultCache(cache).name(sweep.units()[0]).startswith("mnist1d_tanh_l2-0_s0_")
    # the last unit (the one most likely interrupted and resumed) has an uninterrupted run's numbers
    direct = train(sweep.units()[-1], progress=False)
    assert direct.table().equals(runs[-1].table())


def test_cli_task_option_reaches_the_config():
    from ibtools import cli

    parser = cli.build_parser()
    args = parser.parse_args(["sweep", "--task", "mnist1d:num_samples=5000", "--cache", "x"])
    assert cli._config_from(args).task == "mnist1d"  # canonical
    assert cli._config_from(parser.parse_args(["run", "--out", "x"])).task == "tishby"
    assert cli._config_from(parser.parse_args(["run", "--task", "digits", "--out", "x"])).widths == (64, 10, 7, 5, 4, 3, 10)

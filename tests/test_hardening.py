"""Hostile-but-fair use (issue 15): no code runs from a planted file, edited or crafted results are
refused or quarantined, stored results stay read-only, filesystem problems are caught before
training (or warned about during it), shared caches do each unit once, bad options get one line."""

import errno
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from ibtools import cli, results, study, training
from ibtools import sweep as sweep_module
from ibtools.chapters import ParameterError, positive_number
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.training import train
from ibtools.results import CorruptResultError, load_run, result_paths
from ibtools.sweep import ResultCache, SweepConfig, run_sweep, run_sweeps

TINY = TrainConfig(epochs=4, seeds=(0, 1), estimators=(EstimatorSpec("ebab"),), n_log_points=4)
TINY_ARGS = ["--epochs", "4", "--seeds", "0,1", "--n-log-points", "4", "--no-estimate", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_run():
    return train(TINY, progress=False)


def _same(a, b):
    return all(np.array_equal(a.mi[k], b.mi[k], equal_nan=True) for k in a.mi) and np.array_equal(a.epoch_loss, b.epoch_loss)


class Evil:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


# -- 1. planted checkpoints ------------------------------------------------------------------------

def _plant(kind: str, path: Path, marker: Path) -> None:
    if kind == "pickle":  # a bare pickle
        path.write_bytes(pickle.dumps({"config_key": TINY.key(), "x": Evil(marker)}))
    elif kind == "torch":  # the previous checkpoint format, with this configuration's key
        torch.save({"config_key": TINY.key(), "trainer": Evil(marker)}, path)
    else:  # an .npz whose header is a pickled object array
        with open(path, "wb") as fh:
            np.savez(fh, header=np.array([Evil(marker)], dtype=object))


@pytest.mark.parametrize("kind", ["pickle", "torch", "npz"])
def test_planted_checkpoint_runs_no_code(kind, tiny_run, tmp_path):
    live, marker = tmp_path / "live.ckpt", tmp_path / "marker"
    _plant(kind, live, tmp_path / "proof")
    # the plant is live: the old loader (torch.load with weights_only=False) runs its code
    try:
        if kind != "npz":
            torch.load(live, weights_only=False)
        else:
            np.load(live, allow_pickle=True)["header"]
    except Exception:  # a bare pickle has run its code before torch finds no magic number
        pass
    assert (tmp_path / "proof").exists()

    ckpt = tmp_path / "run.ckpt"
    _plant(kind, ckpt, marker)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        r = train(TINY, checkpoint=ckpt, progress=False)
    assert not marker.exists(), "code from the planted checkpoint ran"
    assert any(f"ignoring checkpoint {ckpt}" in str(w.message) for w in seen)
    assert _same(r, tiny_run)  # trained from the start, same numbers


def test_planted_checkpoint_on_the_command_line(tmp_path, capsys):
    out, marker = tmp_path / "x", tmp_path / "marker"
    _plant("torch", tmp_path / "x.ckpt", marker)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code = cli.main(["run", *TINY_ARGS, "--out", str(out)])
    assert not marker.exists(), "code from the planted checkpoint ran"
    assert code == 0 and load_run(out).config == TINY
    assert any("pickled checkpoints are never loaded" in str(w.message) for w in seen)


def test_checkpoint_with_this_key_but_wrong_shapes_is_ignored(tiny_run, tmp_path):
    ckpt = tmp_path / "run.ckpt"

    class Stop(KeyboardInterrupt):
        pass

    def stop(epoch):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(TINY, checkpoint=ckpt, on_epoch=stop, progress=False)
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes())
    assert header["config_key"] == TINY.key() and header["format"] == training.CHECKPOINT_FORMAT
    big = max((k for k in arrays if k != "header"), key=lambda k: arrays[k].size)
    arrays[big] = np.zeros(arrays[big].size + 1, arrays[big].dtype)  # crafted: right key, wrong shape
    with open(ckpt, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.warns(UserWarning, match="inconsistent"):
        r = train(TINY, checkpoint=ckpt, progress=False)
    assert _same(r, tiny_run)


# -- 9. filesystem problems -------------------------------------------------------------------------

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_at_a_checkpoint_warns_and_training_goes_on(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "atomic_write_bytes", _enospc)
    with pytest.warns(RuntimeWarning, match="could not write checkpoint .*No space left on device"):
        r = train(TINY, checkpoint=tmp_path / "run.ckpt", checkpoint_every=0, progress=False)
    assert _same(r, tiny_run)


def test_full_disk_at_the_final_write_is_an_error_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(results.os, "fsync", _enospc)  # every atomic write fails after writing its data
    out = tmp_path / "out" / "r"
    with pytest.warns(RuntimeWarning, match="could not write checkpoint"):
        code = cli.main(["run", *TINY_ARGS, "--checkpoint-every", "0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "could not save results to" in err and "No space left on device" in err
    assert "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []  # no result, no partial file


def _never_train(*args, **kwargs):
    raise AssertionError("training started although the output cannot be written")


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_unwritable_output_is_refused_before_training(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training, "train", _never_train)
    monkeypatch.setattr(sweep_module, "train", _never_train)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    target = ["--out", str(a_file / "r")] if command == "run" else ["--cache", str(a_file)]
    assert cli.main([command, *TINY_ARGS, *target]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_read_only_output_directory_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training, "train", _never_train)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert cli.main(["run", *TINY_ARGS, "--out", str(ro / "r")]) == 2
    finally:
        ro.chmod(0o700)
    assert "cannot write in --out directory" in capsys.readouterr().err


# -- 3. edited sidecars, 11. crafted npz ------------------------------------------------------------

def test_edited_sidecar_is_refused(tiny_run, tmp_path):
    path = tmp_path / "relu"
    tiny_run.save(path)
    npz, sidecar = result_paths(path)
    original = json.loads(sidecar.read_text())

    edited = json.loads(json.dumps(original))
    edited["config"]["activation"] = "elu"  # ReLU's numbers labelled ELU
    sidecar.write_text(json.dumps(edited))
    with pytest.raises(CorruptResultError, match=r"relu\.json: its config hashes to .* config_key"):
        load_run(path)

    edited["config_key"] = TrainConfig.from_dict(edited["config"]).key()  # the key edited too
    sidecar.write_text(json.dumps(edited))
    with pytest.raises(CorruptResultError, match=r"relu\.npz: it holds the results of config_key"):
        load_run(path)

    relabelled = json.loads(json.dumps(original))
    relabelled["estimators"] = ["akde(alpha=0.01)"]
    sidecar.write_text(json.dumps(relabelled))
    with pytest.raises(CorruptResultError, match="estimator labels"):
        load_run(path)

    sidecar.write_text(json.dumps(original))
    assert _same(load_run(path), tiny_run)


def test_result_under_another_units_name_is_skipped(tiny_run, tmp_path):
    cache = ResultCache(tmp_path)
    tiny_run.save(cache.path(TINY.replace(activation="elu")))  # ReLU's result filed under ELU's name
    with pytest.warns(RuntimeWarning, match="not of its file name"):
        assert cache.finished() == []
    tiny_run.save(tmp_path / "my_run")  # a name that claims no unit: loaded under its own config
    with pytest.warns(RuntimeWarning, match="not of its file name"):
        assert [r.config for r in cache.finished()] == [TINY]


def _craft(npz: Path, sidecar: Path, **changes) -> None:
    """Rewrite a stored unit's arrays and give the sidecar the new checksum (a consistent forgery
    of the checksum, inconsistent content)."""
    import hashlib
    import io

    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    npz.write_bytes(buffer.getvalue())
    meta = json.loads(sidecar.read_text())
    meta["npz_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    sidecar.write_text(json.dumps(meta))


@pytest.mark.parametrize("changes", [{"mi_0": None}, {"history_train_acc": np.zeros(3, np.float32)},
                                     {"epochs": np.array([object()], dtype=object)}],
                         ids=["missing", "wrong-shape", "pickled"])
def test_crafted_npz_with_matching_checksum_is_quarantined_and_recomputed(changes, tiny_run, tmp_path):
    sweep = SweepConfig(TINY, seeds_per_unit=2)
    cache = ResultCache(tmp_path)
    tiny_run.save(cache.path(TINY))
    _craft(*result_paths(cache.path(TINY)), **changes)
    with pytest.raises(CorruptResultError, match="not a valid result file|missing|shape"):
        load_run(cache.path(TINY))
    with pytest.warns(RuntimeWarning, match="unusable.*recomputed"):
        again = run_sweep(sweep, tmp_path, progress=False)
    assert _same(again.runs[0], tiny_run)
    assert len(list((tmp_path / "quarantine").iterdir())) == 2


# -- 10. stored results are read-only ---------------------------------------------------------------

def test_corrupt_stored_result_is_an_error_not_a_recompute(tiny_run, tmp_path, monkeypatch):
    committed, scratch = tmp_path / "committed", tmp_path / "scratch"
    cache = ResultCache(committed)
    tiny_run.save(cache.path(TINY))
    npz, sidecar = result_paths(cache.path(TINY))
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    before = {p.name: p.read_bytes() for p in committed.iterdir()}
    monkeypatch.setattr(sweep_module, "train", _never_train)
    with pytest.raises(study.StoredResultError) as info:
        study.obtain(SweepConfig(TINY, seeds_per_unit=2), committed, scratch, progress=False)
    message = str(info.value)
    assert cache.name(TINY) in message and "checksum" in message
    assert f"git checkout -- {npz} {sidecar}" in message and "python -m ibtools paper" in message
    assert {p.name: p.read_bytes() for p in committed.iterdir()} == before  # nothing moved or written
    assert not scratch.exists()


# -- 11. shared caches: one process per unit --------------------------------------------------------

def test_concurrent_sweeps_on_one_cache_do_each_unit_once(tmp_path, monkeypatch):
    sweep = SweepConfig(TINY, activations=("tanh", "relu"), seeds=(0, 1, 2, 3), seeds_per_unit=2)
    trained, guard = Counter(), threading.Lock()
    real_train = sweep_module.train
    start = threading.Barrier(2)

    def slow_counting_train(config, **kwargs):
        with guard:
            trained[config.key()] += 1
        time.sleep(0.3)  # keeps a unit in progress while the other sweep looks at it
        return real_train(config, **kwargs)

    monkeypatch.setattr(sweep_module, "train", slow_counting_train)
    outcomes = {}

    def worker(name):
        start.wait()
        outcomes[name] = run_sweep(sweep, tmp_path, progress=False)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(trained.values()) == [1] * len(sweep.units()), trained
    assert outcomes["a"].table().equals(outcomes["b"].table())
    assert list((tmp_path / "locks").iterdir()) == []  # released and removed


def test_run_sweeps_goes_on_to_the_next_sweep_while_a_unit_is_locked(tmp_path, monkeypatch):
    """With several sweeps (a study's parts) in one pass, a unit that another process holds does
    not keep this process idle: it trains the next sweep's units first, then waits for the locked
    one. A unit that two sweeps share is trained once and appears in both results."""
    first = SweepConfig(TINY, activations=("tanh",), seeds=(0, 1), seeds_per_unit=2)
    second = SweepConfig(TINY, activations=("tanh", "relu"), seeds=(0, 1), seeds_per_unit=2)  # shares tanh
    held, other = first.units()[0], second.units()[1]
    trained, order = Counter(), []
    real_train = sweep_module.train

    def recording_train(config, **kwargs):
        trained[config.key()] += 1
        order.append(config.activation)
        return real_train(config, **kwargs)

    monkeypatch.setattr(sweep_module, "train", recording_train)
    lock = ResultCache(tmp_path).lock(held)  # "another process" computing the shared tanh unit
    assert lock is not None
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(r=run_sweeps([first, second], tmp_path, progress=False)))
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while trained[other.key()] == 0 and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.05)
        assert order == ["relu"], f"while tanh was locked, the pass trained {order} (expected the next sweep's relu)"
    finally:
        lock.release()
    worker.join(timeout=300)
    assert not worker.is_alive()
    assert order == ["relu", "tanh"] and sorted(trained.values()) == [1, 1]
    res_first, res_second = outcome["r"]
    assert [r.config for r in res_first.runs] == [held]
    assert [r.config for r in res_second.runs] == second.units()
    assert res_second.runs[0] is res_first.runs[0]  # the shared unit, trained and loaded once
    assert list((tmp_path / "locks").iterdir()) == []


def test_unit_lock_is_exclusive_and_never_stale(tmp_path):
    cache = ResultCache(tmp_path)
    lock_file = tmp_path / "locks" / (cache.name(TINY) + ".lock")
    lock_file.parent.mkdir()
    lock_file.write_text("pid 99999999 on a machine that crashed\n")  # left behind: not a lock
    lock = cache.lock(TINY)
    assert lock is not None and cache.lock(TINY) is None
    lock.release()
    # a process holding the lock that is killed lets go of it
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert cache.lock(TINY) is None
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    again = cache.lock(TINY, wait=True)
    assert again is not None
    again.release()


# -- 11. command-line values ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--threads", "-3", "--out", "x"], "--threads must be an integer >= 1, got '-3'"),
        (["run", "--threads", "0", "--out", "x"], "--threads must be an integer >= 1, got '0'"),
        (["run", "--checkpoint-every", "-1", "--out", "x"], "--checkpoint-every must be a finite number >= 0"),
        (["run", "--checkpoint-every", "nan", "--out", "x"], "--checkpoint-every must be a finite number >= 0"),
        (["run", "--batch-size", "0", "--out", "x"], "--batch-size must be an integer >= 1"),
        (["run", "--hidden", "10", "0", "--out", "x"], "every --hidden width must be an integer >= 1"),
        (["run", "--seeds", "0-99999999", "--out", "x"], "more than 10000 networks"),
        (["run", "--seeds", "0-5000,6000-12000", "--out", "x"], "more than 10000 networks"),
        (["sweep", "--workers", "0", "--cache", "x"], "--workers must be an integer >= 1"),
        (["sweep", "--seeds-per-unit", "-2", "--cache", "x"], "--seeds-per-unit must be an integer >= 1"),
        (["paper", "--threads", "0"], "--threads must be an integer >= 1"),
    ],
)
def test_bad_numbers_get_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err


def test_unreachable_scheduler_fails_fast_with_one_line(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = cli.main(["sweep", *TINY_ARGS, "--cache", str(tmp_path), "--scheduler", f"tcp://127.0.0.1:{port}",
                     "--connect-timeout", "1"])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot reach a Dask scheduler at tcp://127.0.0.1:{port} within 1 s" in err
    assert "Traceback" not in err


# -- 11. chapter 2's ALPHA --------------------------------------------------------------------------

def test_positive_number():
    assert positive_number(0.01, "ALPHA") == 0.01 and positive_number(np.float32(2), "ALPHA") == 2.0
    for bad in (0, -0.1, float("nan"), float("inf"), True, "0.01", None):
        with pytest.raises(ParameterError, match="ALPHA must be a positive"):
            positive_number(bad, "ALPHA")


def test_chapter_2_checks_alpha_up_front(tmp_path):
    pm = pytest.importorskip("papermill")
    import nbformat

    path = Path(__file__).resolve().parents[1] / "book" / "02_estimators.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(path), str(tmp_path / "out.ipynb"), parameters={"ALPHA": -0.5},
                            kernel_name="python3", cwd=str(path.parent), progress_bar=False, log_output=False)
    assert info.value.ename == "ParameterError" and "ALPHA must be a positive" in info.value.evalue
    code = [c for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells if c.cell_type == "code"]
    failed = next(i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.get("outputs", [])))
    assert failed <= 3, "stops in its parameter check, before any training or estimate"


# -- estimator parameter values are checked before any work ------------------------------------


@pytest.mark.parametrize("spec, says", [
    ("akde:alpha=-1", "alpha must be"),
    ("ebab:n_bins=0", "n_bins must be"),
    ("kde:noise_var=0", "noise_var must be"),
    ("binsize:bin_size=-0.5", "bin_size must be"),
])
def test_impossible_estimator_values_fail_at_parse_time(spec, says, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--estimators", spec, "--epochs", "5", "--dry-run", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not out.exists()


def test_estimator_spec_checks_values_and_accepts_good_ones():
    with pytest.raises(ValueError, match="alpha must be"):
        EstimatorSpec.make("akde", alpha=float("nan"))
    # good values, and the network-wide range of "max", still pass
    EstimatorSpec.make("akde", alpha=0.01, n_points=30)
    EstimatorSpec.make("max", max_value="network")
    EstimatorSpec.make("kde", noise_var=0.1)


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    out = capsys.readouterr().out
    assert "(default: 8000)" in out
    assert not any(line.count("default") > 1 for line in out.splitlines()), out


def test_ensemble_invariant_option_reaches_the_config(tmp_path):
    args = cli.build_parser().parse_args(["run", "--ensemble-invariant", "--out", str(tmp_path / "r")])
    assert cli._config_from(args).ensemble_invariant is True
    args = cli.build_parser().parse_args(["run", "--out", str(tmp_path / "r")])
    assert cli._config_from(args).ensemble_invariant is False

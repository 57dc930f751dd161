"""Sweeps on a local Dask cluster (loopback only): same numbers as in-process, a killed worker
loses and duplicates nothing, a failing unit does not stop the others."""

import os
import signal
import threading
import time
from collections import Counter

import pytest
import torch

distributed = pytest.importorskip("distributed")

from ibtools import sweep as sweep_module  # noqa: E402
from ibtools.config import EstimatorSpec, TrainConfig  # noqa: E402
from ibtools.distributed import DaskExecutor, SweepFailed  # noqa: E402
from ibtools.sweep import ResultCache, SweepConfig, run_sweep  # noqa: E402

BASE = TrainConfig(epochs=150, estimators=(EstimatorSpec("ebab"),), n_log_points=25)
SWEEP = SweepConfig(BASE, activations=("tanh", "relu", "elu"), l2s=(0.0, 0.01), seeds=(0, 1), seeds_per_unit=2)


@pytest.fixture(scope="module")
def executor():
    with DaskExecutor(n_workers=2, threads_per_worker=1) as ex:
        yield ex


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    return run_sweep(SWEEP, tmp_path_factory.mktemp("inproc"), progress=False)


@pytest.fixture
def store_calls(monkeypatch):
    calls = Counter()
    original = ResultCache.store

    def counting(self, result):
        calls[self.name(result.config)] += 1
        return original(self, result)

    monkeypatch.setattr(sweep_module.ResultCache, "store", counting)
    return calls


def test_local_cluster_gives_the_in_process_numbers(executor, in_process, tmp_path, store_calls):
    result = run_sweep(SWEEP, tmp_path, progress=False, executor=executor)
    assert result.table().equals(in_process.table())
    assert result.history_table().equals(in_process.history_table())
    assert sorted(store_calls.values()) == [1] * len(SWEEP.units())
    # a second run finds everything and submits nothing
    store_calls.clear()
    again = run_sweep(SWEEP, tmp_path, progress=False, executor=executor)
    assert not store_calls and again.table().equals(in_process.table())


def test_killed_worker_loses_and_duplicates_nothing(in_process, tmp_path, store_calls):
    cache = tmp_path / "cache"
    with DaskExecutor(n_workers=2, threads_per_worker=1) as ex:
        pids = ex.client.run(os.getpid)
        killed = []

        def kill_one_worker_after_first_unit():
            deadline = time.time() + 300
            while time.time() < deadline and not list(cache.glob("*.json")):
                time.sleep(0.05)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)  # the nanny restarts it; its unit goes elsewhere
            killed.append(victim)

        killer = threading.Thread(target=kill_one_worker_after_first_unit)
        killer.start()
        result = run_sweep(SWEEP, cache, progress=False, executor=ex)
        killer.join()
    assert killed, "the worker was killed during the sweep"
    assert len(store_calls) == len(SWEEP.units()) and set(store_calls.values()) == {1}
    assert len(list(cache.glob("*.json"))) == len(SWEEP.units())
    assert result.table().equals(in_process.table())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to make one unit fail")
def test_failing_unit_is_reported_and_the_others_are_stored(executor, tmp_path):
    units = SWEEP.units()[:3]
    units[1] = units[1].replace(device="cuda")  # fails on the worker: no CUDA device there
    cache = ResultCache(tmp_path)
    done = {}
    with pytest.raises(SweepFailed, match="relu|tanh|elu") as info:
        executor.run(units, [0, 1, 2], cache, done, progress=False, log=lambda m: None)
    assert len(info.value.failures) == 1 and info.value.failures[0].config == units[1]
    assert "no CUDA device" in str(info.value)
    assert sorted(done) == [0, 2] and cache.load(units[0]) is not None and cache.load(units[2]) is not None


def _listening(process):
    try:
        return [c.laddr for c in process.net_connections(kind="inet") if c.status == "LISTEN"]
    except Exception:  # a process that ended meanwhile
        return []


def test_local_cluster_listens_on_loopback_only(executor):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    addresses = [a for p in [me, *me.children(recursive=True)] for a in _listening(p)]
    # scheduler, dashboard, and each of the two workers (and their nannies)
    assert len(addresses) >= 4, addresses
    assert {a.ip for a in addresses} <= {"127.0.0.1", "::1"}, addresses
    assert executor.client.dashboard_link.startswith("http://127.0.0.1:")


def test_unreachable_scheduler_fails_fast():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"cannot reach a Dask scheduler at tcp://127.0.0.1:{port} within 1 s"):
        DaskExecutor(address=f"tcp://127.0.0.1:{port}", connect_timeout=1)


def test_executor_arguments():
    with pytest.raises(ValueError, match="exactly one of"):
        DaskExecutor(n_workers=2, address="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="n_workers must be an integer >= 1"):
        DaskExecutor(n_workers=0)

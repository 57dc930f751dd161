"""The recording speed-ups give exactly the numbers of the code they replace.

EBAB now takes its edges, bins, row codes and ``c ln c`` sums from compiled loops
(``ibtools/estimators/_kernels.py``), ``prepare`` checks finiteness from the exponent bits, and
the Recorder's layer maxima come from one compiled min/max pass. Each is compared here with a
frozen copy of the previous implementation (``benchmarks/legacy_estimators``) or with the torch
reduction it replaces, and must agree bit for bit (``np.array_equal`` / ``torch.equal``), not
within a tolerance.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ibtools import estimators as E
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.engine import Recorder, _abs_max
from ibtools.estimators import _kernels
from ibtools.trainer import EnsembleTrainer

_LEGACY_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "legacy_estimators"


def _legacy():
    """The frozen package, imported under a private name (its modules use relative imports)."""
    name = "_legacy_estimators_for_tests"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _LEGACY_DIR / "__init__.py",
                                                      submodule_search_locations=[str(_LEGACY_DIR)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _same(a, b):
    return np.array_equal(np.asarray(a[0]), np.asarray(b[0])) and np.array_equal(np.asarray(a[1]), np.asarray(b[1]))


def _stack(task, rng, width, kind, S=3):
    z = np.stack([task.X @ rng.normal(size=(12, width)) for _ in range(S)]).astype(np.float32)
    if kind == "tanh":
        return np.tanh(z * 0.5)
    if kind == "relu":
        return np.maximum(z - 1.0, 0.0)  # exact zeros: dead units, repeated rows
    if kind == "softplus":
        return np.log1p(np.exp(z)).astype(np.float32)
    if kind == "rounded":  # heavy ties, negative values and both signed zeros
        a = np.round(z, 1)
        a[a == 0] = -0.0
        a[:, ::7] = 0.0
        return a.astype(np.float32)
    if kind == "saturated":  # most values exactly at +-1
        return np.clip(z, -1.0, 1.0)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["tanh", "relu", "softplus", "rounded", "saturated"])
@pytest.mark.parametrize("width", [1, 2, 3, 5, 7, 10, 12])
def test_ebab_is_bit_identical_to_the_previous_code(task, rng, kind, width):
    legacy = _legacy()
    a = _stack(task, rng, width, kind)
    for kwargs in ({}, {"n_bins": 1}, {"n_bins": 10}, {"n_bins": 100}, {"low": float(a.min())}, {"low": float(a.min()) - 0.5}):
        new, old = E.ebab(a, task.y, **kwargs), legacy.ebab(a, task.y, **kwargs)
        assert _same(new, old), (kind, width, kwargs)
        assert _same(E.ebab(a[1], task.y, **kwargs), legacy.ebab(a[1], task.y, **kwargs))  # one network


@pytest.mark.parametrize("n_classes", [2, 3, 5, 10])
def test_ebab_is_bit_identical_with_more_classes(task, rng, n_classes):
    legacy = _legacy()
    y = rng.integers(0, n_classes, size=task.y.shape[0]) * 7 + 3  # any integer labels
    for kind in ("tanh", "relu", "rounded"):
        a = _stack(task, rng, 4, kind)
        assert _same(E.ebab(a, y), legacy.ebab(a, y))


def test_ebab_is_bit_identical_for_other_dtypes(task, rng):
    legacy = _legacy()
    a = _stack(task, rng, 5, "tanh")
    for b in (a.astype(np.float64), a.astype(np.float16), np.round(a * 50).astype(np.int32),
              (a > 0).astype(bool), torch.from_numpy(a)):
        assert _same(E.ebab(b, task.y), legacy.ebab(b, task.y))


def test_ebab_wide_layers_take_the_general_path(task, rng):
    """K**d * classes beyond int64 (100 bins, 12 units) goes through row_codes, still identical."""
    legacy = _legacy()
    a = _stack(task, rng, 12, "tanh")
    assert 102.0**12 * 2 >= 2.0**62
    assert _same(E.ebab(a, task.y, n_bins=100), legacy.ebab(a, task.y, n_bins=100))


def test_ebab_small_and_constant_inputs(rng):
    legacy = _legacy()
    y = np.array([0, 1, 0, 1, 1])
    for a in (np.zeros((5, 3), np.float32), np.ones((2, 5, 1), np.float32), np.array([[1.0], [2.0], [1.0], [3.0], [2.0]], np.float32),
              rng.normal(size=(4, 5, 2)).astype(np.float32)):
        for kwargs in ({}, {"n_bins": 1}, {"n_bins": 30}):
            assert _same(E.ebab(a, y, **kwargs), legacy.ebab(a, y, **kwargs))


def test_ebab_low_above_the_minimum_is_the_same_error(task, rng):
    a = _stack(task, rng, 3, "tanh")
    with pytest.raises(ValueError, match="goes below low=0.5"):
        E.ebab(a, task.y, low=0.5)


def test_all_finite_kernel():
    for dtype in (np.float32, np.float64):
        info = np.finfo(dtype)
        a = np.array([0.0, -0.0, info.max, -info.max, info.tiny, info.tiny / 4, 1.0], dtype=dtype)
        assert _kernels.all_finite(a)
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b[3] = bad
            assert not _kernels.all_finite(b)
        assert not _kernels.all_finite(np.full((2, 3), np.nan, dtype=dtype)[:, ::2])  # non-contiguous


def test_layer_maxima_match_torch_aminmax():
    g = torch.Generator().manual_seed(0)
    for shape in ((50, 4096, 3), (3, 7, 2), (1, 1, 1)):
        a = torch.randn(*shape, generator=g)
        for b in (a, a.relu(), torch.zeros(shape), -a.abs()):
            low, high = torch.aminmax(b.reshape(b.shape[0], -1), dim=1)
            assert torch.equal(_abs_max(b), torch.maximum(high, low.neg()))
        for bad in (float("nan"), float("inf"), -float("inf")):
            b = a.clone()
            b.view(-1)[-1] = bad
            low, high = torch.aminmax(b.reshape(b.shape[0], -1), dim=1)
            assert np.array_equal(_abs_max(b).numpy(), torch.maximum(high, low.neg()).numpy(), equal_nan=True)


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "softplus", "swish"])
def test_recorded_epoch_is_bit_identical_to_the_previous_code(activation):
    """Recorder.record against the previous code's arithmetic: the same evaluation, torch's
    aminmax for the layer maxima, the frozen EBAB for every layer (the default and the paper's
    low edge)."""
    legacy = _legacy()
    specs = (EstimatorSpec("ebab"), EstimatorSpec.make("ebab", low=-1.000001))
    config = TrainConfig(activation=activation, seeds=(0, 1, 2, 3, 4), epochs=20, estimators=specs, record_activations=())
    trainer = EnsembleTrainer(config)
    recorder = Recorder(config, trainer)
    for epoch in recorder.epochs[:3]:
        while trainer.epoch < epoch:
            trainer.train_epoch()
        recorder.record(int(epoch))
        acts, _ = trainer.evaluate()
        i = recorder.index[epoch]
        for layer, a in enumerate(acts):
            low, high = torch.aminmax(a.reshape(a.shape[0], -1), dim=1)
            assert np.array_equal(recorder.layer_max[i, layer], torch.maximum(high, low.neg()).numpy())
            for spec in specs:
                ref = legacy.ebab(a, trainer.y_all, **spec.kwargs)
                assert np.array_equal(recorder.mi[spec.label][i, layer, :, 0], np.float32(ref[0]))
                assert np.array_equal(recorder.mi[spec.label][i, layer, :, 1], np.float32(ref[1]))

"""engine="fused" of kde/akde (ibtools.estimators.kde_fused): agreement with the torch path within
the stated bound, closed forms, the padding and odd-row edges of the kernel, determinism,
independence of the stack, the fallbacks to the torch path, and clear errors."""

import math

import numpy as np
import pytest
import torch

from ibtools.config import EstimatorSpec
from ibtools.estimators import akde, kde

U = 2.0 ** -24


def _bound_bits(d: int) -> float:
    """The documented bound: 80 (d + 4) u / ln 2 bits, plus 1e-5 bits for float32 summation in a
    different order than the torch path's matrix products."""
    return 80 * (d + 4) * U / math.log(2) + 1e-5


def _layer(rng, n, d, kind):
    z = rng.normal(size=(n, d))
    a = {"tanh": np.tanh(z), "relu": np.maximum(z, 0), "uniform": rng.uniform(-3, 3, size=(n, d))}[kind]
    return a.astype(np.float32)


@pytest.mark.parametrize("d", [1, 3, 10, 30])
@pytest.mark.parametrize("kind", ["tanh", "relu", "uniform"])
def test_fused_agrees_with_the_torch_path_within_the_stated_bound(d, kind):
    rng = np.random.default_rng(d * 31 + len(kind))
    a = _layer(rng, 1000, d, kind)
    for n_classes in (2, 10):
        y = rng.integers(0, n_classes, size=1000)
        for bound in ("upper", "lower"):
            for alpha in (0.1, 0.01, 0.001):
                ref = akde(a, y, alpha=alpha, bound=bound)
                got = akde(a, y, alpha=alpha, bound=bound, engine="fused")
                assert np.allclose(tuple(got), tuple(ref), rtol=0, atol=_bound_bits(d)), (n_classes, bound, alpha)
            ref = kde(a, y, noise_var=0.05, bound=bound)
            got = kde(a, y, noise_var=0.05, bound=bound, engine="fused")
            assert np.allclose(tuple(got), tuple(ref), rtol=0, atol=_bound_bits(d))


@pytest.mark.parametrize("m", [2, 3, 7, 8, 9, 16, 17])
def test_separated_clusters_give_log2_of_their_number(m):
    """m far-apart points, each repeated: every kernel sum is the point's own count, so
    I(X;T) = log2 m exactly, and with one class per cluster (alternating), I(T;Y) = H(Y). Covers
    odd row counts (a last row paired with itself) and the padding of the last 8-column block."""
    reps = 6
    a = np.repeat(np.arange(m, dtype=np.float32)[:, None] * 10.0, reps, axis=0)
    y = np.repeat(np.arange(m) % 2, reps)
    p1 = (m // 2) / m
    h_y = -(p1 * math.log2(p1) + (1 - p1) * math.log2(1 - p1))
    got = kde(a, y, noise_var=1e-3, engine="fused")
    assert got.i_xt == pytest.approx(math.log2(m), abs=1e-6)
    assert got.i_ty == pytest.approx(h_y, abs=1e-6)
    # and the same in two dimensions, against the torch path
    b = np.concatenate([a, -a], axis=1)
    assert tuple(kde(b, y, noise_var=1e-3, engine="fused")) == pytest.approx(tuple(kde(b, y, noise_var=1e-3)), abs=1e-6)


def test_one_cluster_gives_zero_and_estimates_stay_in_range():
    y = np.arange(64) % 2
    assert tuple(akde(np.ones((64, 3), np.float32), y, engine="fused")) == (0.0, 0.0)
    rng = np.random.default_rng(3)
    for scale in (1e-20, 1.0, 1e20):
        a = (rng.normal(size=(300, 4)) * scale).astype(np.float32)
        yy = rng.integers(0, 3, size=300)
        i_xt, i_ty = akde(a, yy, engine="fused")
        assert 0.0 <= i_xt <= math.log2(300) + 1e-9 and i_ty <= i_xt + 1e-9
        ref = akde(a, yy)
        assert abs(i_xt - ref.i_xt) <= _bound_bits(4)  # akde is scale-aware; both paths agree at any magnitude


def test_a_stack_gives_each_network_its_own_call_bit_for_bit_and_runs_repeat():
    rng = np.random.default_rng(5)
    stack = np.stack([_layer(rng, 500, 5, k) for k in ("tanh", "relu", "uniform")])
    y = rng.integers(0, 2, size=500)
    together = akde(stack, y, engine="fused")
    for k in range(3):
        alone = akde(stack[k], y, engine="fused")
        assert together.i_xt[k] == alone.i_xt and together.i_ty[k] == alone.i_ty
    again = akde(stack, y, engine="fused")
    assert np.array_equal(together.i_xt, again.i_xt) and np.array_equal(together.i_ty, again.i_ty)
    reordered = akde(stack[::-1].copy(), y, engine="fused")
    assert np.array_equal(reordered.i_xt[::-1], together.i_xt)


def test_activity_the_kernel_does_not_take_goes_to_the_torch_path():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=400)
    a64 = rng.normal(size=(400, 3))  # float64: rounding rows to float32 would lose near differences
    assert tuple(akde(a64, y, engine="fused")) == tuple(akde(a64, y))
    # a noise variance far below float32's reach next to the activity's scale
    a = rng.normal(size=(400, 3)).astype(np.float32)
    assert tuple(kde(a, y, noise_var=1e-40, engine="fused")) == tuple(kde(a, y, noise_var=1e-40))


def test_bad_engine_is_a_clear_error_and_the_engine_is_part_of_the_label():
    a = np.linspace(0, 1, 64, dtype=np.float32).reshape(32, 2)
    y = np.arange(32) % 2
    with pytest.raises(ValueError, match=r"engine must be one of \('torch', 'fused'\), got 'numba'"):
        akde(a, y, engine="numba")
    with pytest.raises(ValueError, match="engine must be one of"):
        kde(a, y, noise_var=0.1, engine=None)
    spec = EstimatorSpec.parse("akde:alpha=0.01,engine=fused")
    assert spec.label == "akde(alpha=0.01,engine=fused)"
    with pytest.raises(ValueError, match="engine must be one of"):
        EstimatorSpec.parse("akde:alpha=0.01,engine=fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_activity_goes_to_the_torch_path():
    rng = np.random.default_rng(9)
    a = torch.from_numpy(rng.normal(size=(300, 3)).astype(np.float32)).cuda()
    y = rng.integers(0, 2, size=300)
    assert tuple(akde(a, y, engine="fused")) == tuple(akde(a, y))

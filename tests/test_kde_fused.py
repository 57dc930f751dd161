"""engine="fused" of kde/akde (ibtools.estimators.kde_fused): the kernel sums against float64
arithmetic within a per-entry error bound, the estimates against float64 arithmetic within the
documented bound and against the torch path, closed forms, the padding and odd-row edges of the
kernel, determinism, independence of the stack, when it hands over to the torch path, and clear
errors."""

import math
import sys

import numpy as np
import pytest
import torch

from ibtools.config import EstimatorSpec
from ibtools.estimators import akde, kde
from ibtools.estimators.kde_fused import fused_kernel_sums

U = 2.0 ** -24
#: the torch path's documented accuracy: within ~1.5e-4 bits of exact arithmetic (kde's notes)
TORCH_PATH_BITS = 1.5e-4


def _bound_bits(d: int) -> float:
    """The documented bound on an I(X;T) estimate of the fused engine against exact arithmetic:
    (80 (d + 4) + 75) u / ln 2 bits (exponents, then float32 partial sums of at most 64 terms and
    an 8-lane reduction); I(T;Y), a difference of two such estimates, gets twice this."""
    return (80 * (d + 4) + 75) * U / math.log(2)


def _exact_sums(x, weights, g):
    """Kernel sums in float64 from the differences, exponents clamped at -80 as in both engines,
    with each entry's error bound for the fused kernel: per term (d + 4) u |exponent| + 3 u
    (differences, squares and sums, the float32 scale and product; the exponential), and 72 u of
    the sum (float32 partial sums of at most 64 terms and 8 lanes)."""
    x64 = x.astype(np.float64)
    e = -g * ((x64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)
    k = np.exp(np.maximum(e, -80.0))
    d = x.shape[1]
    exact = weights.astype(np.float64) @ k
    bound = weights.astype(np.float64) @ (k * ((d + 4) * U * np.abs(e) + 3 * U)) + 72 * U * exact
    return exact, bound


@pytest.mark.parametrize("d", [1, 2, 7, 30])
def test_kernel_sums_are_within_their_error_bound_of_float64(d):
    rng = np.random.default_rng(100 + d)
    for m in (1, 5, 6, 8, 9, 100, 301, 302):  # every remainder of m modulo 4 and 8
        for c1 in (1, 3, 11):
            for g in (0.5, 5.0, 50.0):
                x = rng.uniform(-1, 1, size=(m, d)).astype(np.float32)
                x[rng.random(m) < 0.2, 0] = 0.25  # rows equal in some units
                w = rng.integers(0, 4, size=(c1, m)).astype(np.float32)
                got = fused_kernel_sums(x, w, g)
                exact, bound = _exact_sums(x, w, g)
                assert got.dtype == np.float64 and got.shape == (c1, m)
                assert np.all(np.abs(got - exact) <= bound), (m, c1, g, np.max(np.abs(got - exact) - bound))


@pytest.mark.parametrize("m", [1023, 1025, 1026, 2300])
def test_kernel_sums_over_several_column_tiles_with_the_overall_row_derived(m):
    """Layers wider than one tile of columns (1024), some rows not a multiple of four; the first
    weight row is the sum of the class rows, as the estimators give it, so the kernel computes the
    class rows and adds them up: the same per-entry bound as a row computed directly."""
    rng = np.random.default_rng(m)
    x = rng.uniform(-1, 1, size=(m, 3)).astype(np.float32)
    x[rng.random(m) < 0.3, 1] = 0.5
    classes = rng.integers(0, 4, size=(4, m)).astype(np.float32)
    w = np.concatenate([classes.sum(0, keepdims=True), classes])
    got = fused_kernel_sums(x, w, 8.0)
    exact, bound = _exact_sums(x, w, 8.0)
    assert np.all(np.abs(got - exact) <= bound), np.max(np.abs(got - exact) - bound)
    np.testing.assert_array_equal(got[0], got[1:].sum(0))
    # not derived when the first row is not the sum (here one count off): computed directly
    w[0, m // 2] += 1
    got = fused_kernel_sums(x, w, 8.0)
    exact, bound = _exact_sums(x, w, 8.0)
    assert np.all(np.abs(got - exact) <= bound)
    assert got[0, m // 2] > got[1:, m // 2].sum() + 0.5


def test_kernel_sums_clamp_at_minus_80_and_sum_heavy_and_light_terms_accurately():
    """A light row next to a very heavy one at exponent -25 (e^-25 of 1e6 weighs 0.014), and a
    third at exponent -100 (clamped to -80: 1e6 e^-80 ~ 2e-29); then the summation case where
    float32 sums of thousands of terms drop the light terms after a heavy one."""
    x = np.array([[0.0], [1.0], [2.0]], np.float32)
    w = np.array([[1.0, 1e6, 1e6]], np.float32)
    g = 25.0  # exponents -25 (rows 0-1, 1-2) and -100 (rows 0-2)
    got = fused_kernel_sums(x, w, g)[0]
    want = np.array([1 + 1e6 * math.exp(-25) + 1e6 * math.exp(-80),
                     1e6 + math.exp(-25) + 1e6 * math.exp(-25),
                     1e6 + 1e6 * math.exp(-25) + math.exp(-80)])
    assert np.allclose(got, want, rtol=1e-6, atol=0)
    # a heavy row H; b rows far from it (each of their terms in a row near H is below half a
    # float32 ulp of H's weight); v rows near H, whose kernel sums start with H's weight and then
    # receive the b light terms: a float32 running sum drops them all (relative error ~1e-4)
    heavy, b, v = 2100.0, 2000, 200
    far = math.sqrt(-2 * math.log(0.97 * float(np.spacing(np.float32(heavy))) / 2))  # K = 0.97 half-ulp
    x = np.concatenate([[[0.0, 0.0]],
                        np.stack([np.arange(1, b + 1) * 1e-6, np.full(b, far)], 1),
                        np.stack([(b + np.arange(1, v + 1)) * 1e-6, np.zeros(v)], 1)]).astype(np.float32)
    w = np.concatenate([[heavy], np.ones(b + v)]).astype(np.float32)[None]
    got = fused_kernel_sums(x, w, 0.5)
    exact, bound = _exact_sums(x, w, 0.5)
    assert np.all(np.abs(got - exact) <= bound), np.max(np.abs(got - exact) / exact)
    # the same along a row (the rows' partial sums, not the columns'): a few near rows first, then
    # the heavy row and the far ones after it, all in the near rows' upper triangle
    v = 8
    x = np.concatenate([np.stack([np.arange(1, v + 1) * 1e-6, np.zeros(v)], 1), [[0.0, 0.0]],
                        np.stack([np.arange(1, b + 1) * 1e-6, np.full(b, far)], 1)]).astype(np.float32)
    w = np.concatenate([np.ones(v), [heavy], np.ones(b)]).astype(np.float32)[None]
    got = fused_kernel_sums(x, w, 0.5)
    exact, bound = _exact_sums(x, w, 0.5)
    assert np.all(np.abs(got - exact) <= bound), np.max(np.abs(got - exact) / exact)


def _exact_information(a, y, k_var):
    """I(X;T) and I(T;Y) in bits in float64 (the estimators' formula, differences formed directly)."""
    rows, ids = np.unique(a.astype(np.float64), axis=0, return_inverse=True)
    ids = ids.ravel()
    classes = np.unique(y)
    weights = np.zeros((len(classes) + 1, len(rows)))
    np.add.at(weights[0], ids, 1.0)
    for c, label in enumerate(classes):
        np.add.at(weights[c + 1], ids[y == label], 1.0)
    e = -((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1) / k_var
    mass = weights @ np.exp(np.maximum(e, -80.0))
    totals = weights.sum(1)
    info = np.log(totals) - np.where(weights > 0, weights * np.log(np.where(weights > 0, mass, 1.0)), 0).sum(1) / totals
    return info[0] / math.log(2), (info[0] - (totals[1:] / len(a) * info[1:]).sum()) / math.log(2)


def _layer(rng, n, d, kind):
    z = rng.normal(size=(n, d))
    a = {"tanh": np.tanh(z), "relu": np.maximum(z, 0), "uniform": rng.uniform(-3, 3, size=(n, d))}[kind]
    return a.astype(np.float32)


@pytest.mark.parametrize("d", [1, 3, 10, 30])
@pytest.mark.parametrize("kind", ["tanh", "relu", "uniform"])
def test_fused_estimates_are_within_the_documented_bound_of_exact_arithmetic(d, kind):
    rng = np.random.default_rng(d * 31 + len(kind))
    a = _layer(rng, 700, d, kind)
    for n_classes in (2, 10):
        y = rng.integers(0, n_classes, size=700)
        for bound in ("upper", "lower"):
            for alpha in (0.1, 0.01, 0.001):
                k_var = (2.0 if bound == "upper" else 8.0) * alpha * float(np.abs(a).max())
                got = akde(a, y, alpha=alpha, bound=bound, engine="fused")
                want = _exact_information(a, y, k_var)
                assert abs(got.i_xt - want[0]) <= _bound_bits(d), (n_classes, bound, alpha)
                assert abs(got.i_ty - want[1]) <= 2 * _bound_bits(d), (n_classes, bound, alpha)
                # and the torch path, within the two engines' bounds
                ref = akde(a, y, alpha=alpha, bound=bound)
                assert np.allclose(tuple(got), tuple(ref), rtol=0, atol=2 * _bound_bits(d) + TORCH_PATH_BITS)
            got = kde(a, y, noise_var=0.05, bound=bound, engine="fused")
            want = _exact_information(a, y, (2.0 if bound == "upper" else 8.0) * 0.05)
            assert abs(got.i_xt - want[0]) <= _bound_bits(d)


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


def _spy(monkeypatch):
    """Count the calls of the compiled kernel (kde imports it from its module at each use)."""
    module = sys.modules["ibtools.estimators.kde_fused"]
    calls = []
    real = module.fused_kernel_sums
    monkeypatch.setattr(module, "fused_kernel_sums", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_activity_the_kernel_does_not_take_goes_to_the_torch_path(monkeypatch):
    calls = _spy(monkeypatch)
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=400)
    a = rng.normal(size=(400, 3)).astype(np.float32)
    akde(a, y, engine="fused")
    assert len(calls) == 1  # float32 on the CPU: the kernel
    cases = {
        "float64 activity (rounding rows to float32 would lose near differences)": (a.astype(np.float64), {}),
        "a noise variance below float32's reach next to the activity (g > 1e30)": (a, {"noise_var": 1e-40}),
        "subnormal activity (its scale 2**-e is beyond float32)": (a * np.float32(1e-39), {"noise_var": 1e-90}),
        "activity of magnitude 2**121": (a * np.float32(2.0 ** 121), {"noise_var": 1e72}),
    }
    for what, (act, kw) in cases.items():
        calls.clear()
        with pytest.warns(UserWarning, match="engine='fused' needs .* went to the torch path"):
            got = kde(act, y, engine="fused", **kw) if kw else akde(act, y, engine="fused")
        assert not calls, what
        want = kde(act, y, **kw) if kw else akde(act, y)
        assert tuple(got) == tuple(want), what


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
    with pytest.warns(UserWarning, match="went to the torch path"):
        got = akde(a, y, engine="fused")
    assert tuple(got) == tuple(akde(a, y))

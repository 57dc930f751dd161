"""Numerical safety: no estimator returns NaN, an out-of-range value or upper < lower for any
finite input, whatever the magnitude of activity and noise variance; integer and unsigned input
is handled exactly; and tests that catch specific wrong implementations (each names the
mutation it catches)."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from ibtools import estimators as E

N = 256
LABELS = np.arange(N) % 2
H_Y = 1.0  # bits, two balanced classes
SLACK = 1e-9  # bits: float rounding allowed at the ends of the ranges


def _layer(seed=0, d=3):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(N, d))
    a[: N // 4] = 0.0  # a block of identical rows, as dead ReLU units make
    return a


def _assert_valid(est, n_rows=N):
    h_x = math.log2(n_rows)
    assert np.isfinite(est.i_xt) and np.isfinite(est.i_ty), est
    assert -SLACK <= est.i_xt <= h_x + SLACK, est
    assert -1e-6 <= est.i_ty <= H_Y + SLACK, est


MAGNITUDES = [1e-40, 1e-30, 1e-20, 1e-9, 1e-3, 1.0, 1e3, 1e9, 1e18, 1e30]
VARIANCES = [1e-300, 1e-45, 1e-39, 1e-38, 1e-20, 1e-9, 1e-3, 1.0, 1e3, 1e30, 1e60]


@pytest.mark.parametrize("magnitude", MAGNITUDES)
def test_kde_is_finite_in_range_and_ordered_for_any_magnitude(magnitude):
    a = _layer() * magnitude
    for var in VARIANCES:
        up = E.kde(a, LABELS, var, "upper")
        lo = E.kde(a, LABELS, var, "lower")
        _assert_valid(up)
        _assert_valid(lo)
        assert lo.i_xt <= up.i_xt + SLACK, (magnitude, var, up, lo)


@pytest.mark.parametrize("magnitude", MAGNITUDES)
def test_kde_depends_on_distances_over_variance_only(magnitude):
    # I(X;T) of T = h(X) + N(0, var): scaling h by c and var by c^2 changes nothing. Reference:
    # the same layer at unit scale (where float32 products are accurate) and var = 0.01.
    a = _layer(1)
    for bound in E.kde.__globals__["BOUNDS"]:
        ref = E.kde(a, LABELS, 0.01, bound)
        got = E.kde(a * magnitude, LABELS, 0.01 * magnitude**2, bound) if magnitude**2 * 0.01 > 0 else None
        if got is None or not np.isfinite(0.01 * magnitude**2):
            continue
        assert tuple(got) == pytest.approx(tuple(ref), abs=1e-5), (magnitude, bound)


@pytest.mark.parametrize("magnitude", MAGNITUDES + [1e-45, 3e38])
def test_akde_is_finite_in_range_and_ordered_for_any_magnitude(magnitude):
    a = np.maximum(_layer(2), 0) * magnitude  # ReLU-like, maximum ~ 3 * magnitude
    for dtype in (np.float64, np.float32):
        with np.errstate(over="ignore"):
            x = a.astype(dtype)
        if not np.isfinite(x).all() or x.max() == 0:
            continue
        up, lo = E.akde(x, LABELS, bound="upper"), E.akde(x, LABELS, bound="lower")
        _assert_valid(up)
        _assert_valid(lo)
        assert lo.i_xt <= up.i_xt + SLACK


def test_akde_of_a_tiny_layer_is_not_nan():
    # the case: a layer whose maximum is <= ~1e-37 (noise variance <= 1e-39) gave NaN
    a = np.abs(_layer(3)).astype(np.float32) * np.float32(1e-38)
    got = E.akde(a, LABELS)
    _assert_valid(got)
    # aKDE is not scale invariant (variance ~ max, distances^2 ~ max^2): a tiny layer is one
    # cluster at its own noise level, so I(X;T) is close to 0 there
    assert got.i_xt < 1e-3


#: noise standard deviations (activity units) for the noisy-layer estimators
NOISE_STDS = [1e-30, 1e-20, 1e-9, 1e-3, 1.0, 1e3, 1e20]


def _exact_layer(magnitude, dtype):
    """_layer(4) scaled, whose last row differs from the one before it by one unit in the last
    place (in ``dtype``): distinct rows that only an exact comparison tells apart."""
    with np.errstate(under="ignore", over="ignore"):
        x = (_layer(4) * magnitude).astype(dtype)
    x[-1] = np.nextafter(x[-2], dtype(np.inf))
    return x


@pytest.mark.parametrize("magnitude", MAGNITUDES + [1e-300, 1e300])
def test_exact_is_finite_in_range_and_scale_free_for_any_magnitude(magnitude):
    # exact counts distinct rows: scaling a float64 layer by 10**k (every value stays a normal
    # float64, up to 1e300) keeps its partition, so the numbers are those of the unit-scale layer;
    # in float32 (subnormal at 1e-40) rows may only merge, never split, and rows one ulp apart
    # stay apart
    ref = E.exact(_exact_layer(1.0, np.float64), LABELS)
    assert 6.0 < ref.i_xt < math.log2(N)  # the block of zero rows and N - N/4 distinct ones
    got = E.exact(_exact_layer(magnitude, np.float64), LABELS)
    _assert_valid(got)
    assert tuple(got) == pytest.approx(tuple(ref), abs=1e-12)
    if 1e-40 <= magnitude <= 1e30:
        x = _exact_layer(magnitude, np.float32)
        got32 = E.exact(x, LABELS)
        _assert_valid(got32)
        assert got32.i_xt <= ref.i_xt + SLACK and got32.i_ty <= got32.i_xt + SLACK
        assert E.exact(x[-2:], LABELS[-2:]).i_xt == 1.0  # the two rows one float32 ulp apart


@pytest.mark.parametrize("magnitude", MAGNITUDES)
def test_mixture_is_finite_in_range_and_between_its_bounds_for_any_magnitude(magnitude):
    # Monte Carlo I(X;T) of T = S + N(0, std^2): finite, in [0, log2 N], I(T;Y) in [0, H(Y)], with a
    # finite standard error; the Kolchinsky-Tracey bounds on the same mixture are ordered and
    # bracket the estimate up to 5 standard errors plus the documented float error (3.4e-4 bits)
    from ibtools.estimators.mixture import mixture_bounds, mixture_information

    a = _layer(5) * magnitude
    with np.errstate(under="ignore"):
        layers = (a, a.astype(np.float32))
    for std in NOISE_STDS:
        for x in layers:
            r = mixture_information(x, LABELS, std, n_samples=4, target_se=None, seed=0)
            _assert_valid(r)
            assert np.isfinite([r.se_xt, r.se_ty]).all() and r.se_xt >= 0, (magnitude, std, r)
            lo, up = mixture_bounds(x, LABELS, std, "lower"), mixture_bounds(x, LABELS, std, "upper")
            _assert_valid(lo)
            _assert_valid(up)
            assert lo.i_xt <= up.i_xt + SLACK, (magnitude, std, lo, up)
            slack = 5 * r.se_xt + 1e-3
            assert lo.i_xt - slack <= r.i_xt <= up.i_xt + slack, (magnitude, std, x.dtype, lo, r, up)
            _assert_valid(E.mixture(x, LABELS, std, n_samples=2, target_se=None))


@pytest.mark.parametrize("magnitude", MAGNITUDES)
def test_mixture_depends_on_activity_over_noise_only(magnitude):
    # the estimator works in units of the noise (u = S / std): scaling both by the same factor
    # changes nothing but rounding, with the same seed (reference: unit scale, std = 1, where
    # the value is far from both ends)
    from ibtools.estimators.mixture import mixture_information

    a = _layer(6)
    ref = mixture_information(a, LABELS, 1.0, n_samples=4, target_se=None, seed=0)
    assert 0.5 < ref.i_xt < math.log2(N) - 1
    got = mixture_information(a * magnitude, LABELS, magnitude, n_samples=4, target_se=None, seed=0)
    assert (got.i_xt, got.i_ty) == pytest.approx((ref.i_xt, ref.i_ty), abs=1e-6), magnitude


def _reference_bits(a, y, var, factor):
    """Kolchinsky-Tracey bound from float64 differences (cdist on the centred rows)."""
    def info(h):
        d = cdist(h, h, "sqeuclidean")
        return -np.mean(logsumexp(-d / (factor * var), axis=1) - np.log(len(h)))

    i_xt = info(a)
    return i_xt / math.log(2), (i_xt - sum((y == c).mean() * info(a[y == c]) for c in np.unique(y))) / math.log(2)


def test_close_rows_far_apart_keep_their_distances():
    # rows ~1e-4 apart within clusters a distance ~1 apart, at variance 1e-9: float32 squared
    # distances (|u|^2 - 2 u.v + |v|^2 with |u|^2 ~ 1) lost 0.37 bits on such layers
    rng = np.random.default_rng(4)
    a = rng.integers(0, 2, size=(N, 3)) + 3e-5 * rng.normal(size=(N, 3))
    ref = _reference_bits(a, LABELS, 1e-9, 2.0)  # cdist: differences formed directly, float64
    assert 1.0 < ref[0] < math.log2(N) - 0.5  # the test sits where distances matter
    assert tuple(E.kde(a, LABELS, 1e-9)) == pytest.approx(ref, abs=1e-4)
    assert tuple(E.kde(a.astype(np.float32), LABELS, 1e-9)) == pytest.approx(
        _reference_bits(a.astype(np.float32).astype(np.float64), LABELS, 1e-9, 2.0), abs=1e-4)


def test_kde_with_huge_activity_and_usual_variance():
    # >= 1e18 with variance 1e-3 gave NaN: every row is its own cluster there
    a = _layer(5) * 1e18
    distinct = len(np.unique(a, axis=0))
    assert E.kde(a, LABELS, 1e-3).i_xt == pytest.approx(math.log2(N) - (N // 4) * math.log2(N // 4) / N, abs=1e-9)
    assert distinct == N - N // 4 + 1


# ---- integer, unsigned and string input --------------------------------------------------------


def test_integer_activity_above_2_to_the_24_keeps_distinct_values():
    # float32 merged distinct integers >= 2**24 (EBAB 8.81 instead of 10 bits)
    y = np.arange(1024) % 2
    a = np.stack([np.arange(1024), (np.arange(1024) * 37) % 1024], 1)
    for offset in (0, 2**25, 2**40, 2**52):
        assert tuple(E.ebab(a + offset, y)) == pytest.approx(tuple(E.ebab(a, y)), abs=1e-12)
        assert E.binsize_binning(a + offset, y, bin_size=1.0).i_xt == pytest.approx(10.0, abs=1e-12)
    with pytest.raises(ValueError, match="above 2\\*\\*53"):
        E.ebab(a + 2**60, y)


@pytest.mark.parametrize("magnitude", [1e17, 6e17, 1e18, 1e30, 1e300])
def test_binsize_has_no_integer_overflow(magnitude):
    # floor(a / bin_size) overflowed int64 at magnitudes >= ~6e17 (0.011 bits instead of 10)
    y = np.arange(1024) % 2
    a = (np.arange(1024, dtype=np.float64) * magnitude).reshape(-1, 1)
    assert E.binsize_binning(a, y).i_xt == pytest.approx(10.0, abs=1e-12)


def test_binsize_that_overflows_float64_is_refused():
    a = np.array([[1e300], [-1e300]] * 4)
    with pytest.raises(ValueError, match="overflows"):
        E.binsize_binning(a, np.arange(8) % 2, bin_size=1e-300)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_unsigned_activity_and_labels(dtype):
    y = np.arange(1024) % 2
    a = np.stack([np.arange(1024) % 200, (np.arange(1024) * 7) % 255], 1)
    for est in (E.ebab, E.fixed_binning, E.binsize_binning, E.max_binning, E.akde, lambda x, l: E.kde(x, l, 0.5)):
        assert tuple(est(a.astype(dtype), y.astype(dtype))) == pytest.approx(tuple(est(a, y)), abs=1e-9)
    assert tuple(E.information_from_bins(a.astype(dtype), y.astype(dtype))) == pytest.approx(tuple(E.information_from_bins(a, y)), abs=1e-12)


def test_unsigned_labels_beyond_int64_and_huge_bins():
    y = np.array([0, 2**64 - 1] * 512, dtype=np.uint64)
    bins = (np.arange(1024, dtype=np.uint64) * np.uint64(2**54)).reshape(-1, 1)  # up to ~1.8e19
    assert E.information_from_bins(bins, y) == pytest.approx((10.0, 1.0), abs=1e-12)
    signed = np.stack([np.arange(1024) * 2**53, -np.arange(1024) * 2**53], 1)  # spans > 2**63
    assert E.information_from_bins(signed, y).i_xt == pytest.approx(10.0, abs=1e-12)


@pytest.mark.parametrize("labels", [np.array(["cat", "dog"] * 4), np.array([b"a", b"b"] * 4)])
def test_string_labels_are_a_value_error(labels):
    with pytest.raises(ValueError, match="labels must be integer class indices"):
        E.ebab(np.arange(8.0).reshape(-1, 1), labels)


# ---- tests that catch specific wrong implementations -------------------------------------------


def test_fixed_binning_puts_hi_in_the_last_bin():
    # mutation caught: giving the value `hi` a bin of its own (0.99 and 1.0 then read 1 bit)
    a = np.array([[0.99], [1.0]] * 8)
    assert E.fixed_binning(a, np.arange(16) % 2).i_xt == 0.0
    assert E.fixed_binning(a * 3, np.arange(16) % 2, lo=-3, hi=3).i_xt == 0.0


def test_akde_uses_the_largest_magnitude_not_the_largest_value():
    # mutation caught: noise variance from max(activity) instead of max(|activity|); a -ReLU
    # layer (all values <= 0) then read 6.25 instead of 5.12 bits
    rng = np.random.default_rng(6)
    relu = np.maximum(rng.normal(size=(N, 4)), 0.0)
    for bound in ("upper", "lower"):
        # same distances, same noise: equal up to float32 summation order (rows sort differently)
        assert tuple(E.akde(-relu, LABELS, bound=bound)) == pytest.approx(tuple(E.akde(relu, LABELS, bound=bound)), abs=1e-6)
    assert float(E.akde_noise_var(-E.kde.__globals__["torch"].as_tensor(relu)[None], 0.01)[0]) == pytest.approx(0.01 * relu.max())


def test_binsize_floors_negative_values():
    # mutation caught: trunc instead of floor puts -0.03 and +0.03 into one bin (0 instead of 1 bit)
    a = np.array([[-0.03], [0.03]] * 8)
    assert E.binsize_binning(a, np.arange(16) % 2, bin_size=0.07) == pytest.approx((1.0, 1.0), abs=1e-12)

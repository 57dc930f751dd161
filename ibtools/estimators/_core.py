"""Input validation and the plug-in entropy machinery shared by all estimators.

Everything here works on torch tensors with a leading *member* axis: ``(S, N, d)`` activity for
``S`` networks, ``N`` inputs and ``d`` units. A single layer ``(N, d)`` is the case ``S = 1``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch

LN2 = math.log(2.0)


class InformationEstimate(NamedTuple):
    """A point of the information plane, in bits.

    ``i_xt`` is I(X;T) and ``i_ty`` is I(T;Y). Both are floats for one layer, or numpy arrays of
    shape (S,) when the estimator was given a stack of ``S`` networks.
    """

    i_xt: float | np.ndarray
    i_ty: float | np.ndarray


class Prepared(NamedTuple):
    activity: torch.Tensor  # (S, N, d), floating
    labels: torch.Tensor  # (N,), int64 in 0..C-1, on activity's device
    n_classes: int
    batched: bool  # True when the caller passed (S, N, d)


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in _TORCH_UNSIGNED_WIDE:  # little torch support: go through numpy
            x = x.cpu().numpy()
        else:
            return x
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{what} could not be converted to an array: {exc}") from None
    if arr.dtype == object:
        raise ValueError(f"{what} must be a numeric array, got an array of Python objects")
    if arr.dtype.kind in "USVMm":
        kind = f"dtype {arr.dtype} ({_KIND_NAMES[arr.dtype.kind]})"
        if what == "labels":
            raise ValueError(f"labels must be integer class indices 0..C-1 (map class names to integers first), got {kind}")
        raise ValueError(f"{what} must be a numeric array, got {kind}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        # torch has only partial support for uint16/32/64; values up to 2**63 - 1 fit int64 exactly
        if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            if what == "labels":
                arr = np.unique(arr, return_inverse=True)[1].reshape(arr.shape)
            else:
                raise ValueError(
                    f"{what} holds integers above 2**53 (largest {int(arr.max())}) that no floating-point type "
                    "represents exactly; subtract an offset or convert it to float yourself"
                )
        else:
            arr = arr.astype(np.int64)
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr)


_KIND_NAMES = {"U": "strings", "S": "bytes", "V": "raw records", "M": "dates", "m": "time spans"}
_TORCH_UNSIGNED_WIDE = tuple(getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n))
_FLOAT32_EXACT = 2**24  # every integer of magnitude <= 2**24 is a float32
_FLOAT64_EXACT = 2**53


def _integer_activity_to_float(act: torch.Tensor) -> torch.Tensor:
    """Integer (or bool) activity as floats that hold every value exactly: float32 when the
    magnitudes allow it (<= 2**24), else float64 (<= 2**53), else a ValueError."""
    if act.dtype == torch.bool or act.numel() == 0:
        return act.to(torch.float32)
    wide = act.to(torch.int64)
    peak = max(abs(int(wide.max())), abs(int(wide.min())))  # Python ints: |int64 min| fits
    if peak <= _FLOAT32_EXACT:
        return act.to(torch.float32)
    if peak <= _FLOAT64_EXACT:
        return act.to(torch.float64)
    raise ValueError(
        f"activity holds integers of magnitude up to {peak}, above 2**53 = {_FLOAT64_EXACT}: no "
        "floating-point type represents them exactly, so distinct values would merge; subtract "
        "an offset or convert it to float yourself"
    )


def prepare(activity, labels) -> Prepared:
    """Check ``activity`` and ``labels`` and bring them to the estimators' common form.

    Raises
    ------
    ValueError
        With a message naming the problem: wrong number of dimensions, empty input, non-numeric,
        NaN or infinite activity, integer activity too large for floating point (> 2**53),
        labels of the wrong length, non-integer (e.g. string) labels, a single class.

    Notes
    -----
    Integer activity (signed or unsigned) becomes float32 when every value is exact there
    (magnitudes <= 2**24) and float64 otherwise, so distinct integers never merge. Labels may be
    any integers (unsigned included); only their distinct values matter.
    """
    act = _as_tensor(activity, "activity")
    if not (act.is_floating_point() or act.dtype in _INT_DTYPES or act.dtype == torch.bool):
        raise ValueError(f"activity must be a real-valued numeric array, got dtype {act.dtype}")
    if act.dim() not in (2, 3):
        raise ValueError(
            f"activity must have shape (n_samples, n_units), or (n_networks, n_samples, n_units) "
            f"for a stack of networks; got {act.dim()} dimension(s) with shape {tuple(act.shape)}"
        )
    batched = act.dim() == 3
    if not batched:
        act = act.unsqueeze(0)
    S, N, d = act.shape
    if S == 0 or N == 0 or d == 0:
        raise ValueError(f"activity is empty (shape {tuple(act.shape[int(not batched):])}); need at least one sample and one unit")
    if not act.is_floating_point():
        act = _integer_activity_to_float(act)
    elif act.dtype in (torch.float16, torch.bfloat16):
        act = act.to(torch.float32)
    if not _all_finite(act):
        finite = torch.isfinite(act)
        bad = (~finite).reshape(S, -1).sum(1)
        n_nan = int(torch.isnan(act).sum())
        n_inf = int((~finite).sum()) - n_nan
        where = ""
        if batched:
            members = torch.nonzero(bad).flatten().tolist()
            where = f" in network(s) {members[:10]}{'...' if len(members) > 10 else ''} of the stack"
        raise ValueError(
            f"activity contains {n_nan} NaN and {n_inf} infinite value(s){where}; "
            "estimators need finite activity (did training diverge?)"
        )

    lab = _as_tensor(labels, "labels")
    if lab.dim() != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {tuple(lab.shape)}")
    if lab.shape[0] != N:
        raise ValueError(f"labels has length {lab.shape[0]} but activity has {N} samples; they must match")
    if lab.is_floating_point():
        if not bool(torch.isfinite(lab).all()) or not bool((lab == torch.round(lab)).all()):
            raise ValueError("labels must be integer class indices; got non-integer values")
    elif lab.dtype not in _INT_DTYPES and lab.dtype != torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {lab.dtype}")
    classes, inverse = torch.unique(lab.cpu(), return_inverse=True)
    if classes.numel() < 2:
        raise ValueError(
            f"labels hold a single class ({classes.tolist()}); I(T;Y) needs at least two classes"
        )
    return Prepared(act, inverse.to(act.device), int(classes.numel()), batched)


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _all_finite(act: torch.Tensor) -> bool:
    """Whether every value of the floating tensor ``act`` is finite: a compiled pass over the
    exponent bits for contiguous CPU float32/float64 tensors (no boolean temporary), else torch."""
    if act.device.type == "cpu" and act.dtype in (torch.float32, torch.float64) and act.is_contiguous():
        from ._kernels import all_finite

        return all_finite(act.numpy())
    return bool(torch.isfinite(act).all())


def check_positive_float(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return v


def finish(prepared: Prepared, i_xt, i_ty) -> InformationEstimate:
    """Package per-member results (S,) as floats or arrays according to the caller's input."""
    i_xt = np.asarray(i_xt, dtype=np.float64)
    i_ty = np.asarray(i_ty, dtype=np.float64)
    if prepared.batched:
        return InformationEstimate(i_xt, i_ty)
    return InformationEstimate(float(i_xt[0]), float(i_ty[0]))


# ----------------------------------------------------------------------------------------------
# discrete plug-in entropies over integer codes, batched over members (numpy: its SIMD sorts are
# several times faster than torch's on the CPU, and these arrays are small enough to move)


def sort_with_order(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row of ``values`` (S, n); return sort keys (same order as the values, equal
    keys for equal values) and the original position of every sorted element.

    float32 rows are sorted as packed 64-bit integers (order-preserving bits of the value in the
    high half, the position in the low half), which makes an argsort out of numpy's fast SIMD
    integer sort; other dtypes use ``argsort``. -0.0 and +0.0 count as one value.
    """
    S, n = values.shape
    if values.dtype == np.float32 and n < 2**32:
        bits = (values + np.float32(0.0)).view(np.int32)  # + 0.0 turns -0.0 into +0.0
        # flipping the magnitude bits of negative floats makes signed-integer order = float order
        key = np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits).astype(np.int64)
        key <<= 32
        key |= np.arange(n, dtype=np.int64)
        key.sort(axis=1)
        order = key & np.int64(0xFFFFFFFF)
        key >>= 32
        return key, order
    if values.dtype.kind == "f":
        values = values + values.dtype.type(0.0)
    order = np.argsort(values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), order


def sorted_dense_rank(sorted_keys: np.ndarray) -> np.ndarray:
    """Dense rank (S, n) of each element of row-sorted keys: 0 for the smallest value, +1 at
    every change of value."""
    S, n = sorted_keys.shape
    new = np.empty((S, n), dtype=np.int64)
    new[:, 0] = 0
    np.not_equal(sorted_keys[:, 1:], sorted_keys[:, :-1], out=new[:, 1:])
    return np.cumsum(new, axis=1, out=new)


def unsort(sorted_values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Put row-sorted ``sorted_values`` back at their original positions ``order``."""
    S, n = order.shape
    out = np.empty(S * n, dtype=sorted_values.dtype)
    out[(order + (np.arange(S, dtype=np.int64) * n)[:, None]).ravel()] = sorted_values.ravel()
    return out.reshape(S, n)


def value_ranks(values: np.ndarray) -> np.ndarray:
    """Dense rank (0 = smallest) of every value within its row of ``values`` (S, n)."""
    keys, order = sort_with_order(values)
    return unsort(sorted_dense_rank(keys), order)


def dense_rank(codes: np.ndarray) -> np.ndarray:
    """Replace the values of each row of ``codes`` (S, N) by their dense rank 0, 1, 2, ..."""
    return value_ranks(codes)


_CODE_LIMIT = 2**62


def row_codes(bins: np.ndarray) -> np.ndarray:
    """One int64 code per row of integer bins (S, N, d) such that equal rows get equal codes.

    Uses a mixed-radix number per row; whenever the next digit could overflow int64 the partial
    codes are first compressed to dense ranks (< N), so any width and bin range is handled
    without Python loops over rows.
    """
    S, N, d = bins.shape
    code = np.zeros((S, N), dtype=np.int64)
    for j in range(d):
        column = bins[:, :, j]
        low = column.min(axis=1, keepdims=True)
        radix = column.max(axis=1).astype(np.int64) - low[:, 0] + 1  # (S,)
        if float(code.max() + 1) * float(radix.max()) >= _CODE_LIMIT:
            code = dense_rank(code)
        code *= radix[:, None]
        code += column - low  # < radix: no intermediate overflow
    return code


def safe_int_bins(bins: np.ndarray) -> np.ndarray:
    """Integer bins (S, N, d) of any integer dtype as int64 bins that :func:`row_codes` can
    combine without overflow: unchanged when every column spans less than 2**62, else replaced
    by per-column dense ranks (equal bins stay equal, distinct stay distinct)."""
    S, N, d = bins.shape
    if bins.dtype.kind == "b":
        return bins.astype(np.int64)
    if bins.dtype.kind in "iu" and bins.dtype.itemsize < 8:
        return bins.astype(np.int64)
    span = bins.max(axis=1).astype(object) - bins.min(axis=1).astype(object)  # exact Python ints
    if bins.dtype == np.int64 and max(int(v) for v in span.ravel()) < _CODE_LIMIT:
        return bins
    columns = np.ascontiguousarray(bins.transpose(0, 2, 1)).reshape(S * d, N)
    return value_ranks(columns).reshape(S, d, N).transpose(0, 2, 1)


def _sum_c_log_c(sorted_codes: np.ndarray) -> np.ndarray:
    """Per row of sorted codes (S, N): sum over distinct values of count * ln(count)."""
    S, N = sorted_codes.shape
    new = np.empty((S, N), dtype=bool)
    new[:, 0] = True
    np.not_equal(sorted_codes[:, 1:], sorted_codes[:, :-1], out=new[:, 1:])
    starts = np.flatnonzero(new.ravel())
    counts = np.diff(np.append(starts, S * N))
    return np.bincount(starts // N, weights=_c_log_c_table(N)[counts], minlength=S)


@functools.lru_cache(maxsize=8)
def _c_log_c_table(n: int) -> np.ndarray:
    """``c * ln(c)`` for the integers c = 0..n (0 for c = 0), read-only; each entry is the same
    float64 that ``c * np.log(c)`` gives for that count, looked up instead of recomputed."""
    c = np.arange(n + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        table = c * np.log(c)
    table[0] = 0.0
    table.flags.writeable = False
    return table


def plugin_information(codes: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """I(X;T) = H(T) and I(T;Y) = H(T) + H(Y) - H(T,Y) from integer row codes, in bits.

    Assumes a deterministic map evaluated once on each distinct input (so H(T|X) = 0) and the
    plug-in (empirical) distribution over the N inputs. Returns two (S,) float64 arrays.
    """
    S, N = codes.shape
    if codes.min() < 0 or float(codes.max() + 1) * n_classes >= _CODE_LIMIT:
        codes = dense_rank(codes)
    joint = np.sort(codes * n_classes + labels[None, :], axis=1)
    # floor division keeps rows sorted
    return information_from_sums(_sum_c_log_c(joint), _sum_c_log_c(joint // n_classes), labels, n_classes)


def information_from_sums(sum_joint: np.ndarray, sum_t: np.ndarray, labels: np.ndarray, n_classes: int):
    """I(X;T) and I(T;Y) in bits from the per-member sums of ``c ln c`` over the groups of equal
    (T, Y) (``sum_joint``) and equal T (``sum_t``), each (S,) float64; see
    :func:`plugin_information`."""
    N = labels.shape[0]
    log_n = np.log(N)
    h_ty = log_n - sum_joint / N
    h_t = log_n - sum_t / N
    p_y = np.bincount(labels, minlength=n_classes) / N
    p_y = p_y[p_y > 0]
    h_y = -(p_y * np.log(p_y)).sum()
    # 0 <= I(T;Y) <= min(H(T), H(Y)) hold exactly; clipping removes rounding of ~1e-16
    i_ty = np.clip(h_t + h_y - h_ty, 0.0, np.minimum(h_t, h_y))
    return h_t / LN2, i_ty / LN2

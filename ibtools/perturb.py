"""Quantized and noise-injected hidden layers: networks whose I(X;T) is exact or finite.

In a deterministic float32 network with distinct inputs, I(X;T) is the entropy of the inputs
(12 bits on the Tishby task) whatever the weights, so binning and KDE estimates measure the
geometry of the representation rather than information (Goldfeld et al., ICML 2019; Lorenzen,
Igel & Nielsen, ICLR 2022). This module changes the networks so that the information has a
meaningful ground truth:

* **Quantized networks** (after Lorenzen et al. 2022; ``TrainConfig(quantize_bits=b)``): every
  hidden layer's activity is rounded to one of ``2**b`` evenly spaced levels during training and
  evaluation, so the recorded activity takes finitely many values and I(X;T) (bits) is exactly
  the plug-in entropy of the distinct rows over the inputs. Gradients are straight-through: the
  backward pass uses the activation's derivative at the unquantized value (see :func:`quantize`).
* **Noise-injected networks** (after Goldfeld et al. 2019; ``TrainConfig(noise_std=s)``):
  Gaussian noise N(0, s²) is added to every hidden unit after the activation, during training
  and evaluation, so T_l = f(W_l T_{l-1} + b_l) + Z_l and I(X;T_l) is finite.

:class:`Perturber` holds what the training engine (:class:`ibtools.trainer.EnsembleTrainer`)
needs for both: the quantization ranges (part of the trainer's state, saved in checkpoints) and
each network's noise, drawn from a generator of its own.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .validation import check_int

__all__ = [
    "MAX_QUANTIZE_BITS",
    "NATURAL_RANGES",
    "RANGE_DECAY",
    "check_quantize_bits",
    "check_noise_std",
    "natural_range",
    "quantize",
    "quantize_levels",
    "noise_seed",
    "Perturber",
]

#: Largest accepted ``quantize_bits``: 65536 levels, far finer than float32 activity needs for
#: the ranges seen here; beyond it levels start to coincide in float32.
MAX_QUANTIZE_BITS = 16

#: Fixed quantization ranges of the bounded activations: the range of the function itself, so
#: the grid is the same for every network, layer and epoch and needs no state. Every other
#: activation gets a tracked range (see :class:`Perturber`).
NATURAL_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "softsign": (-1.0, 1.0)}

#: Decay per training step of the exponential moving average of a layer's minibatch minimum and
#: maximum that sets the quantization range of unbounded activations (the value of TensorFlow's
#: moving-average quantizer, which Lorenzen et al. use for ReLU). With 13 steps per epoch its time
#: constant is about 77 epochs. Changing it changes results without changing a config's key.
RANGE_DECAY = 0.999

#: Distinguishes the noise streams from every other use of a network's seed.
_NOISE_TAG = 0x6E6F6973  # "nois"
#: Purposes of a noise draw: a training step, or an evaluation on all inputs.
TRAIN, EVAL = 0, 1


def check_quantize_bits(value) -> int | None:
    """Validate ``TrainConfig.quantize_bits``: None (no quantization) or an integer in [1, 16].

    Raises
    ------
    ValueError
        For anything else (booleans, floats, out-of-range integers).
    """
    return check_int(value, "quantize_bits", 1, MAX_QUANTIZE_BITS, none_ok=True)


def check_noise_std(value) -> float:
    """Validate ``TrainConfig.noise_std``: a finite number >= 0 (0 = no noise).

    Raises
    ------
    ValueError
        For a non-number, a negative, NaN or infinite value.
    """
    if isinstance(value, bool):
        raise ValueError(f"noise_std must be a finite number >= 0, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"noise_std must be a finite number >= 0, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {value!r}")
    return v


def natural_range(activation: str) -> tuple[float, float] | None:
    """The fixed quantization range of a bounded activation, or None (the range is tracked)."""
    return NATURAL_RANGES.get(activation)


def _check_bits(bits) -> int:
    return check_int(bits, "bits", 1, MAX_QUANTIZE_BITS)


def quantize(a: torch.Tensor, lo, hi, bits: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Round ``a`` to the nearest of ``2**bits`` evenly spaced levels from ``lo`` to ``hi``.

    ``q = lo + k * step`` with ``step = (hi - lo) / (2**bits - 1)`` and
    ``k = round((clamp(a, lo, hi) - lo) / step)`` (ties to even), so values outside the range
    saturate at its ends. Where ``hi == lo`` every value becomes ``lo`` (a single level).
    The result takes at most ``2**bits`` distinct values for each pair (lo, hi).

    Only correctly rounded float operations are used (clamp, subtract, divide, round, multiply,
    add), so the result for an element does not depend on where it sits in the tensor: an
    ensemble's quantized activity is the same, bit for bit, as each network's alone.

    As used in training, the quantizer is straight-through: the trainer's backward pass treats
    ``q`` as ``a`` (d q / d a := 1 everywhere, saturated values included), i.e. the gradient of
    ``a + (quantize(a) - a).detach()``, the usual straight-through estimator.

    Parameters
    ----------
    a : torch.Tensor
        Floating-point activity.
    lo, hi : float or torch.Tensor
        Range, broadcastable against ``a`` (e.g. shape (S, 1, 1) for per-network ranges of an
        (S, width, n) layer); ``lo <= hi``, both finite.
    bits : int
        1 to 16; ``2**bits`` levels.
    out : torch.Tensor, optional
        Where to write the result (may be ``a`` itself); a new tensor otherwise.

    Returns
    -------
    torch.Tensor
        The quantized activity, same shape and dtype as ``a``.

    Raises
    ------
    ValueError
        For ``bits`` outside 1..16, a non-floating ``a``, or a float range with ``lo > hi`` or a
        non-finite end.
    TypeError
        If ``a`` is not a tensor.
    """
    bits = _check_bits(bits)
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"a must be a torch.Tensor, got {type(a).__name__}")
    if not a.is_floating_point():
        raise ValueError(f"a must be a floating-point tensor, got {a.dtype}")
    if not isinstance(lo, torch.Tensor) or not isinstance(hi, torch.Tensor):
        flo, fhi = float(lo), float(hi)
        if not (math.isfinite(flo) and math.isfinite(fhi)) or flo > fhi:
            raise ValueError(f"the range must be finite with lo <= hi, got lo={lo!r}, hi={hi!r}")
    lo = torch.as_tensor(lo, dtype=a.dtype, device=a.device)
    hi = torch.as_tensor(hi, dtype=a.dtype, device=a.device)
    step = (hi - lo) / (2**bits - 1)
    safe = torch.where(step > 0, step, torch.ones_like(step))
    if out is None:
        out = torch.empty_like(a)
    torch.clamp(a, min=lo, max=hi, out=out)
    return out.sub_(lo).div_(safe).round_().mul_(step).add_(lo)


def quantize_levels(lo: float, hi: float, bits: int, dtype=torch.float32) -> torch.Tensor:
    """The levels of :func:`quantize` on [lo, hi], ``lo + k * step`` for k = 0 .. 2**bits - 1,
    computed as :func:`quantize` computes them, sorted and without repeats (fewer than
    ``2**bits`` where neighbours coincide in ``dtype``, or one where ``lo == hi``)."""
    bits = _check_bits(bits)
    flo, fhi = float(lo), float(hi)
    if not (math.isfinite(flo) and math.isfinite(fhi)) or flo > fhi:
        raise ValueError(f"the range must be finite with lo <= hi, got lo={lo!r}, hi={hi!r}")
    lo_t, hi_t = torch.tensor(flo, dtype=dtype), torch.tensor(fhi, dtype=dtype)
    step = (hi_t - lo_t) / (2**bits - 1)
    return torch.unique(torch.arange(2**bits, dtype=dtype).mul_(step).add_(lo_t))


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One step of the SplitMix64 finalizer (Steele, Lea & Flood 2014): a bijection of 64-bit
    integers whose outputs for nearby inputs look unrelated."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def noise_seed(seed: int, epoch: int, purpose: int, index: int) -> int:
    """Seed (a 64-bit integer) of one network's noise generator for one pass.

    A function of the network's own seed, the epoch, the purpose (0 = training step ``index`` of
    the run, 1 = evaluation draw ``index``) and nothing else, so a network's noise does not
    depend on the other networks of its ensemble, and a resumed run draws what an uninterrupted
    one does. The key's parts are folded in one by one through the SplitMix64 finalizer (a few
    microseconds; :class:`numpy.random.SeedSequence` took about 5 times longer, a sizeable part of a
    noisy training epoch).
    """
    h = _NOISE_TAG
    for part in (seed, epoch, purpose, index):
        h = _splitmix64(h ^ (int(part) & _MASK64))
    return h


class Perturber:
    """Quantization or noise of the hidden layers of one ensemble, as the trainer applies it.

    Parameters
    ----------
    activation : str
        The hidden activation; tanh, sigmoid and softsign are quantized on their natural range
        (:data:`NATURAL_RANGES`), every other one on a tracked range.
    hidden : sequence of int
        Hidden-layer widths.
    seeds : sequence of int
        One per network.
    quantize_bits : int or None
    noise_std : float
    device : torch.device

    Notes
    -----
    **Quantization range.** Bounded activations use their own range: the grid is then a constant,
    the same for all networks and epochs, and saturated units sit exactly on the end levels.
    (Lorenzen et al. use the minibatch's min and max for tanh; a fixed range makes a sample's
    quantized value independent of the other samples of its minibatch, and evaluation equal to
    training.) An unbounded activation (ReLU, ELU, softplus, ...) has no natural range, so each
    layer of each network gets ``[lo, hi]`` = an exponential moving average (decay
    :data:`RANGE_DECAY` per step) of the minimum and maximum of that layer's unquantized
    activity over the real samples of each training minibatch (padding excluded), as in
    TensorFlow's moving-average quantizer used by Lorenzen et al. for ReLU. It is initialized by
    the minibatch of the first training step, computed at construction from the initial
    parameters (so it exists for the evaluation of epoch 0, and evaluating or not does not
    change training); updated in every training step before that step's quantization; frozen
    during evaluation, where activity outside it saturates. It is a function
    of the network's own parameters, data and seed only, and part of :meth:`state_dict`.
    The range is per layer, shared by its units. Zero is a level only when ``lo`` is 0 (as for
    ReLU, whose minibatch minimum is 0) or by chance. Only hidden layers are quantized; the
    softmax output is not.

    **Noise.** Each network's noise for a pass is drawn on the CPU by its own
    :class:`torch.Generator` seeded with :func:`noise_seed`, sample by sample (a sample's
    ``sum(hidden)`` values in one row, layers in order), so it does not depend on padding or on
    the device; then scaled by ``noise_std``.
    """

    def __init__(self, activation: str, hidden: Sequence[int], seeds: Sequence[int],
                 quantize_bits: int | None, noise_std: float, device: torch.device):
        self.bits = check_quantize_bits(quantize_bits)
        self.noise_std = check_noise_std(noise_std)
        if self.bits is not None and self.noise_std > 0:
            raise ValueError("quantize_bits and noise_std cannot both be set (see TrainConfig)")
        self.hidden = tuple(int(w) for w in hidden)
        self.seeds = tuple(int(s) for s in seeds)
        self.device = device
        S = len(self.seeds)
        self.offsets = np.concatenate([[0], np.cumsum(self.hidden)]).astype(int).tolist()
        fixed = natural_range(activation)
        self.tracked = self.bits is not None and fixed is None
        self.ranges: torch.Tensor | None = None
        if self.bits is not None:
            lo, hi = fixed if fixed is not None else (math.nan, math.nan)
            r = torch.empty(len(self.hidden), S, 2, dtype=torch.float32, device=device)
            r[..., 0], r[..., 1] = lo, hi
            self.ranges = r  # (layer, network, [lo, hi]); NaN until initialized when tracked
        self._noise: dict[int, torch.Tensor] = {}
        self._host: dict[int, torch.Tensor] = {}
        self._gen = torch.Generator()
        self._ema = torch.empty(S, 2, dtype=torch.float32, device=device)
        self.initializing = False

    @property
    def quantizing(self) -> bool:
        return self.bits is not None

    @property
    def noisy(self) -> bool:
        return self.noise_std > 0

    # -- noise ------------------------------------------------------------------------------------

    def draw(self, epoch: int, purpose: int, index: int, n_real: int, n: int) -> None:
        """Draw every network's noise for one pass over ``n_real`` samples (tensors of ``n``
        samples, the rest padding, whose noise is 0). Layer ``i``'s share is :meth:`noise`."""
        if not self.noisy:
            return
        S, width = len(self.seeds), self.offsets[-1]
        buf = self._noise.get(n)
        if buf is None:
            buf = self._noise[n] = torch.zeros(S, width, n, dtype=torch.float32, device=self.device)
        host = self._host.get(n_real)
        if host is None:
            host = self._host[n_real] = torch.empty(S, n_real, width, dtype=torch.float32)
        for k, seed in enumerate(self.seeds):
            self._gen.manual_seed(noise_seed(seed, epoch, purpose, index))
            torch.randn(n_real, width, generator=self._gen, out=host[k])
        host.mul_(self.noise_std)
        buf[:, :, :n_real].copy_(host.transpose(1, 2))
        self._current = buf

    def noise(self, i: int) -> torch.Tensor:
        """Hidden layer ``i``'s noise of the last :meth:`draw`, (S, width_i, n)."""
        return self._current[:, self.offsets[i]:self.offsets[i + 1]]

    # -- quantization -----------------------------------------------------------------------------

    def _update_range(self, i: int, a: torch.Tensor, n_real: int) -> None:
        real = a[:, :, :n_real]
        # amin and amax (exact, NaN propagates): 10x faster than aminmax here (torch 2.13, CPU)
        batch = torch.stack((torch.amin(real, dim=(1, 2)), torch.amax(real, dim=(1, 2))), dim=1)
        r = self.ranges[i]
        if self.initializing:
            r.copy_(batch)
        else:  # r * d + batch * (1 - d) with separate, correctly rounded multiply and add (no FMA)
            r.mul_(RANGE_DECAY).add_(torch.mul(batch, 1.0 - RANGE_DECAY, out=self._ema))

    def apply(self, i: int, a: torch.Tensor, out: torch.Tensor, training: bool, n_real: int | None = None) -> None:
        """Write hidden layer ``i``'s perturbed activity ``a`` (S, width, n) into ``out`` (may
        be ``a``). In training, a tracked quantization range is first updated from the real
        samples (the first ``n_real``)."""
        if self.quantizing:
            if training and self.tracked:
                self._update_range(i, a, a.shape[-1] if n_real is None else n_real)
            r = self.ranges[i]
            quantize(a, r[:, 0, None, None], r[:, 1, None, None], self.bits, out=out)
        elif self.noisy:
            torch.add(a, self.noise(i), out=out)
        elif out is not a:
            out.copy_(a)

    # -- state ------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """What a checkpoint must hold: the tracked ranges (empty when there are none)."""
        return {"quant_range": self.ranges.cpu().clone()} if self.tracked else {}

    def load_state_dict(self, state: dict) -> None:
        if self.tracked:
            self.ranges.copy_(torch.as_tensor(state["quant_range"]).to(self.device))

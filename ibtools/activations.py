"""Activation functions by name, with the facts the rest of the package needs about each.

The registry holds every activation the paper uses (tanh, ReLU, absolute value, PReLU, ELU,
softplus, centered softplus, Swish) plus sigmoid, softsign and linear. Add your own with
:func:`register_activation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "ActivationSpec",
    "ACTIVATIONS",
    "PAPER_ACTIVATIONS",
    "get_activation",
    "register_activation",
    "activation_names",
    "thread_invariant_elementwise",
    "in_pieces",
    "Workspace",
]

LOG2 = math.log(2.0)


@dataclass(frozen=True)
class ActivationSpec:
    """One activation function.

    Attributes
    ----------
    name : str
        Registry key.
    fn : callable
        ``fn(x)`` for parameter-free activations, ``fn(x, slope)`` when ``learnable_slope``.
    paper_gain : float
        Gain of the paper code's initialization, std = ``paper_gain / sqrt(fan_in)`` (2 for the
        ReLU family, 1 for tanh and absolute value, 1 for the extras).
    double_saturating : bool
        True when the function saturates on both sides (tanh, sigmoid, softsign); the
        information-bottleneck debate is about whether compression needs this.
    learnable_slope : bool
        True for PReLU: each layer of each network has one trainable negative-side slope.
    description : str
        One line for tables and legends.
    derivative : callable, optional
        ``derivative(z, a)`` = f'(z) given the pre-activation ``z`` and the output ``a = f(z)``
        (``derivative(z, a, slope)`` for PReLU). With it the training engine runs its fast
        hand-written backward pass; without it (e.g. a user's activation) it falls back to
        autograd, which gives the same numbers more slowly.
    forward_out : callable, optional
        ``forward_out(z, out, work)`` (``forward_out(z, out, work, slope)`` for PReLU) writes
        ``fn(z)`` into the preallocated ``out`` (which may be ``z`` itself) without allocating;
        ``work`` is a :class:`Workspace` of scratch tensors shaped like ``z``. Must give exactly the
        bits of ``fn``. Without it the trainer copies ``fn(z)`` into its buffer.
    backward_ : callable, optional
        ``backward_(g, z, a, work)`` (``..., slope)`` for PReLU) multiplies ``g`` in place by
        f'(z), giving exactly the bits of ``g.mul_(derivative(z, a))``. Without it the trainer
        does just that.
    backward_uses_input : bool
        False when ``backward_`` reads only the output ``a`` (never ``z``): the trainer then
        computes the activation in place, over ``z``'s buffer.
    """

    name: str
    fn: Callable
    paper_gain: float
    double_saturating: bool
    learnable_slope: bool = False
    description: str = ""
    derivative: Callable | None = None
    forward_out: Callable | None = None
    backward_: Callable | None = None
    backward_uses_input: bool = True


#: Elements per piece in :func:`thread_invariant_elementwise`: at most torch's parallel grain size
#: (32768), so each piece runs on one thread, and a multiple of 64, so pieces start where a
#: vectorized loop would be anyway.
_PIECE = 32768


def thread_invariant_elementwise(f: Callable) -> Callable:
    """Make an elementwise function give the same bits whatever ``torch.get_num_threads()`` is,
    by running it on pieces small enough for one thread each.

    With several threads, torch splits a large elementwise operation into one range per thread,
    and the elements at the end of each range take the scalar instead of the vectorized code
    path. For ``exp``, ``log1p`` or ``sigmoid`` the two paths differ in the last bit, so ELU,
    softplus or Swish networks trained with 1 and with 2 threads would drift apart (by up to
    0.07 bits of I(X;T) after 300 epochs, measured). The wrapper applies ``f`` to consecutive
    pieces of the flattened tensors, each small enough to run on one thread and starting at a
    multiple of 64 elements, which reproduces the single-threaded result on the contiguous
    tensor exactly (the trainer's tensors are contiguous). One thread,
    small tensors and tensors that need autograd go straight to ``f``.

    ``f`` takes one or more tensors of the same shape and returns one of that shape.

    This is one of two guards of thread invariance, for *large* tensors: the activations of an
    ensemble of any size keep every thread. The other, the trainer's
    ``EnsembleTrainer._one_thread_for_small_ensembles``, is for matrix products of *small*
    ensembles, which it runs on one thread (their rounding in MKL depends on the thread count,
    and splitting them is no cure). :func:`in_pieces` is this wrapper for ``op(..., out=...)``.
    (``thread_invariant``, this function's former name, still works.)
    """

    def wrapped(x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        if (x.numel() <= _PIECE or torch.get_num_threads() == 1
                or (torch.is_grad_enabled() and any(t.requires_grad for t in (x, *rest)))):
            return f(x, *rest)
        flats = [t.contiguous().view(-1) for t in (x, *rest)]
        out = torch.empty_like(flats[0])
        for start in range(0, out.numel(), _PIECE):
            piece = slice(start, start + _PIECE)
            out[piece] = f(*(t[piece] for t in flats))
        return out.view(x.shape)

    wrapped.__name__ = getattr(f, "__name__", "elementwise")
    wrapped.__doc__ = getattr(f, "__doc__", None)
    return wrapped


#: The former name of :func:`thread_invariant_elementwise` (kept so that old imports work).
thread_invariant = thread_invariant_elementwise


class Workspace:
    """Scratch tensors for :attr:`ActivationSpec.forward_out` and :attr:`ActivationSpec.backward_`,
    shaped like the layer's activity: two float tensors ``tmp`` and ``tmp2`` and a bool ``mask``."""

    __slots__ = ("tmp", "tmp2", "mask")

    def __init__(self, like: torch.Tensor):
        self.tmp = torch.empty_like(like)
        self.tmp2 = torch.empty_like(like)
        self.mask = torch.empty_like(like, dtype=torch.bool)


def in_pieces(op: Callable) -> Callable:
    """``op(*inputs, out=...)`` applied as :func:`thread_invariant_elementwise` applies a function: on
    consecutive pieces of at most 32768 elements when torch runs several threads (so the bits do
    not depend on the number of threads), in one call otherwise. Returns ``run(out, *inputs)``;
    all tensors contiguous and of one shape."""

    def run(out: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        n = out.numel()
        if n <= _PIECE or torch.get_num_threads() == 1:
            op(*inputs, out=out)
            return out
        flat_out = out.view(-1)
        flats = [t.view(-1) for t in inputs]
        for start in range(0, n, _PIECE):
            piece = slice(start, start + _PIECE)
            op(*(t[piece] for t in flats), out=flat_out[piece])
        return out

    return run


_tanh_out = in_pieces(torch.tanh)
_sigmoid_out = in_pieces(torch.sigmoid)
_elu_out = in_pieces(lambda x, out: torch._C._nn.elu(x, 1.0, 1, 1, out=out))
_softplus_out = in_pieces(lambda x, out: torch._C._nn.softplus(x, 1, 20, out=out))
_silu_out = in_pieces(lambda x, out: torch._C._nn.silu(x, out=out))


def _one_minus(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out = 1 - x`` (bitwise as ``1 - x``: IEEE subtraction is addition of the negation)."""
    return torch.neg(x, out=out).add_(1)


def _tanh_backward(g, z, a, work):
    torch.mul(a, a, out=work.tmp)
    g.mul_(_one_minus(work.tmp, work.tmp))


def _relu_forward(z, out, work):
    if out is not z:
        out.copy_(z)
    out.relu_()


def _relu_backward(g, z, a, work):  # relu(z) > 0 exactly when z > 0
    torch.ops.aten.threshold_backward.grad_input(g, a, 0, grad_input=g)


def _abs_backward(g, z, a, work):
    g.mul_(torch.sign(z, out=work.tmp))


def _prelu_forward(z, out, work, slope):
    torch.gt(z, 0, out=work.mask)
    torch.mul(z, slope, out=work.tmp)
    torch.where(work.mask, z, work.tmp, out=out)


def _prelu_backward(g, z, a, work, slope):
    torch.gt(z, 0, out=work.mask)
    torch.mul(g, slope, out=work.tmp)
    torch.where(work.mask, g, work.tmp, out=g)


def _elu_backward(g, z, a, work):  # elu(z) > 0 exactly when z > 0
    torch.gt(a, 0, out=work.mask)
    torch.add(a, 1, out=work.tmp).masked_fill_(work.mask, 1.0)
    g.mul_(work.tmp)


def _sigmoid_of_input_backward(g, z, a, work):  # softplus' = sigmoid
    g.mul_(_sigmoid_out(work.tmp, z))


def _centered_softplus_forward(z, out, work):
    _softplus_out(out, z).sub_(LOG2)


def _swish_backward(g, z, a, work):  # sig + a (1 - sig)
    sig = _sigmoid_out(work.tmp, z)
    d = _one_minus(work.tmp2, sig).mul_(a).add_(sig)
    g.mul_(d)


def _sigmoid_backward(g, z, a, work):
    g.mul_(_one_minus(work.tmp, a).mul_(a))


def _prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, slope * x)


def _centered_softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x) - LOG2


ACTIVATIONS: dict[str, ActivationSpec] = {}


def register_activation(spec: ActivationSpec, *, overwrite: bool = False) -> ActivationSpec:
    """Add an activation to the registry so configs, chapters and the command line can use it.

    Raises
    ------
    ValueError
        If the name is taken and ``overwrite`` is False.
    """
    if not isinstance(spec, ActivationSpec):
        raise TypeError(f"expected an ActivationSpec, got {type(spec).__name__}")
    if spec.name in ACTIVATIONS and not overwrite:
        raise ValueError(f"activation {spec.name!r} is already registered (pass overwrite=True to replace it)")
    ACTIVATIONS[spec.name] = spec
    return spec


def _swish_derivative(z, a):
    sig = torch.sigmoid(z)
    return sig + a * (1 - sig)


for _spec in (
    ActivationSpec("tanh", thread_invariant_elementwise(torch.tanh), 1.0, True, description="hyperbolic tangent, saturates at -1 and +1",
                   derivative=lambda z, a: 1 - a * a,
                   forward_out=lambda z, out, work: _tanh_out(out, z), backward_=_tanh_backward, backward_uses_input=False),
    ActivationSpec("relu", torch.relu, 2.0, False, description="max(0, x)",
                   derivative=lambda z, a: (z > 0).to(z.dtype),
                   forward_out=_relu_forward, backward_=_relu_backward, backward_uses_input=False),
    ActivationSpec("abs", torch.abs, 1.0, False, description="absolute value |x|",
                   derivative=lambda z, a: torch.sign(z),
                   forward_out=lambda z, out, work: torch.abs(z, out=out), backward_=_abs_backward),
    ActivationSpec("prelu", _prelu, 2.0, False, True, "x for x > 0, a x otherwise (a trained, starts at 0.25)",
                   derivative=lambda z, a, slope: torch.where(z > 0, torch.ones_like(z), slope.expand_as(z)),
                   forward_out=_prelu_forward, backward_=_prelu_backward),
    ActivationSpec("elu", thread_invariant_elementwise(F.elu), 2.0, False, description="x for x > 0, exp(x) - 1 otherwise",
                   derivative=lambda z, a: torch.where(z > 0, torch.ones_like(z), a + 1),
                   forward_out=lambda z, out, work: _elu_out(out, z), backward_=_elu_backward, backward_uses_input=False),
    ActivationSpec("softplus", thread_invariant_elementwise(F.softplus), 2.0, False, description="log(1 + exp(x))",
                   derivative=thread_invariant_elementwise(lambda z, a: torch.sigmoid(z)),
                   forward_out=lambda z, out, work: _softplus_out(out, z), backward_=_sigmoid_of_input_backward),
    ActivationSpec("centered_softplus", thread_invariant_elementwise(_centered_softplus), 2.0, False,
                   description="softplus(x) - log 2, zero at 0", derivative=thread_invariant_elementwise(lambda z, a: torch.sigmoid(z)),
                   forward_out=_centered_softplus_forward, backward_=_sigmoid_of_input_backward),
    ActivationSpec("swish", thread_invariant_elementwise(F.silu), 2.0, False, description="x * sigmoid(x)",
                   derivative=thread_invariant_elementwise(_swish_derivative),
                   forward_out=lambda z, out, work: _silu_out(out, z), backward_=_swish_backward),
    ActivationSpec("sigmoid", thread_invariant_elementwise(torch.sigmoid), 1.0, True, description="logistic 1 / (1 + exp(-x))",
                   derivative=lambda z, a: a * (1 - a),
                   forward_out=lambda z, out, work: _sigmoid_out(out, z), backward_=_sigmoid_backward, backward_uses_input=False),
    ActivationSpec("softsign", F.softsign, 1.0, True, description="x / (1 + |x|)",
                   derivative=lambda z, a: 1 / (1 + z.abs()) ** 2),
    ActivationSpec("linear", lambda x: x, 1.0, False, description="identity",
                   derivative=lambda z, a: torch.ones_like(z)),
):
    register_activation(_spec)

#: The eight activations of the paper, in the order its figures use.
PAPER_ACTIVATIONS = ("tanh", "relu", "abs", "prelu", "elu", "softplus", "centered_softplus", "swish")

PRELU_INITIAL_SLOPE = 0.25


def activation_names() -> tuple[str, ...]:
    """Names of all registered activations."""
    return tuple(ACTIVATIONS)


def get_activation(name: str) -> ActivationSpec:
    """Look an activation up by name.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; valid activations are: {', '.join(ACTIVATIONS)}"
        ) from None

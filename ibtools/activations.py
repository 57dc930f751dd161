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
    "thread_invariant",
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
    """

    name: str
    fn: Callable
    paper_gain: float
    double_saturating: bool
    learnable_slope: bool = False
    description: str = ""
    derivative: Callable | None = None


#: Elements per piece in :func:`thread_invariant`: at most torch's parallel grain size (32768), so
#: each piece runs on one thread, and a multiple of 64, so pieces start where a vectorized loop
#: would be anyway.
_PIECE = 32768


def thread_invariant(f: Callable) -> Callable:
    """Make an elementwise function give the same bits whatever ``torch.get_num_threads()`` is.

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
    ActivationSpec("tanh", thread_invariant(torch.tanh), 1.0, True, description="hyperbolic tangent, saturates at -1 and +1",
                   derivative=lambda z, a: 1 - a * a),
    ActivationSpec("relu", torch.relu, 2.0, False, description="max(0, x)",
                   derivative=lambda z, a: (z > 0).to(z.dtype)),
    ActivationSpec("abs", torch.abs, 1.0, False, description="absolute value |x|",
                   derivative=lambda z, a: torch.sign(z)),
    ActivationSpec("prelu", _prelu, 2.0, False, True, "x for x > 0, a x otherwise (a trained, starts at 0.25)",
                   derivative=lambda z, a, slope: torch.where(z > 0, torch.ones_like(z), slope.expand_as(z))),
    ActivationSpec("elu", thread_invariant(F.elu), 2.0, False, description="x for x > 0, exp(x) - 1 otherwise",
                   derivative=lambda z, a: torch.where(z > 0, torch.ones_like(z), a + 1)),
    ActivationSpec("softplus", thread_invariant(F.softplus), 2.0, False, description="log(1 + exp(x))",
                   derivative=thread_invariant(lambda z, a: torch.sigmoid(z))),
    ActivationSpec("centered_softplus", thread_invariant(_centered_softplus), 2.0, False,
                   description="softplus(x) - log 2, zero at 0", derivative=thread_invariant(lambda z, a: torch.sigmoid(z))),
    ActivationSpec("swish", thread_invariant(F.silu), 2.0, False, description="x * sigmoid(x)",
                   derivative=thread_invariant(_swish_derivative)),
    ActivationSpec("sigmoid", thread_invariant(torch.sigmoid), 1.0, True, description="logistic 1 / (1 + exp(-x))",
                   derivative=lambda z, a: a * (1 - a)),
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

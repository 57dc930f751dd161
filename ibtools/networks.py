"""Fully connected networks: one network (:class:`MLP`) or a stack of independent ones
(:class:`EnsembleMLP`) trained together as a single batched model.

Both build their initial weights with :func:`initial_parameters`, so network ``k`` of an ensemble
built from seeds ``(s_0, ..., s_k, ...)`` starts from exactly the weights of ``MLP(seed=s_k)``.
Layer activities are returned for every hidden layer and for the softmax output, which the
information-plane analysis treats as the last layer.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .activations import PRELU_INITIAL_SLOPE, get_activation
from .validation import check_int

__all__ = [
    "DEFAULT_WIDTHS",
    "INIT_SCHEMES",
    "check_widths",
    "initial_parameters",
    "truncated_normal_",
    "MLP",
    "EnsembleMLP",
]

#: Input 12, hidden 10-7-5-4-3, output 2 (softmax), as in the paper.
DEFAULT_WIDTHS = (12, 10, 7, 5, 4, 3, 2)

#: Initialization schemes. ``paper``: truncated normal (cut at 2 std), std = gain / sqrt(fan_in)
#: with the paper code's gain (2 for the ReLU family, 1 for tanh and abs); ``tishby``: the same
#: with gain 1 for every activation (Shwartz-Ziv & Tishby's code); ``he``: normal with std
#: sqrt(2 / fan_in); ``xavier``: uniform on +-sqrt(6 / (fan_in + fan_out)). Biases start at 0.
INIT_SCHEMES = ("paper", "tishby", "he", "xavier")


def truncated_normal_(w: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Fill ``w`` in place with normal draws of mean 0 and standard deviation ``std``, truncated
    to [-2 std, 2 std] by rejection: draw all, then redraw those outside until none is.

    This is the algorithm of ``torch.nn.init.trunc_normal_`` in torch 2.13 (the version the
    stored results were computed with), written out here so that the initial weights, and so
    every stored number, do not depend on the installed torch: torch 2.11 implements
    ``trunc_normal_`` by inverting the normal CDF instead, which gives other draws from the same
    seed (found on a GPU machine with torch 2.11: every network of a stored unit started
    elsewhere). Only ``Tensor.normal_`` with a CPU generator is used, whose stream
    ``tests/test_networks.py`` pins by checksum.
    """
    lo = w.new_tensor(-2 * std, device="cpu").item()  # the bounds as the tensor's dtype holds them
    hi = w.new_tensor(2 * std, device="cpu").item()
    with torch.no_grad():
        result = w.normal_(0.0, std, generator=generator)
        while True:
            outside = (result < lo) | (result > hi)
            if not outside.any():
                break
            result = torch.where(outside, torch.empty_like(result).normal_(0.0, std, generator=generator), result)
        if result is not w:
            w.copy_(result)
    return w


def check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    """Validate layer widths (input first, output last) and return them as a tuple."""
    try:
        widths = tuple(widths)
    except TypeError:
        raise ValueError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    if len(widths) < 2:
        raise ValueError(f"widths needs at least an input and an output width, got {widths}")
    widths = tuple(check_int(w, f"every width (widths {widths})", 1) for w in widths)
    if widths[-1] < 2:
        raise ValueError(f"the softmax output needs at least 2 units, got widths {widths}")
    return widths


def initial_parameters(
    widths: Sequence[int] = DEFAULT_WIDTHS,
    activation: str = "tanh",
    init: str = "paper",
    seed: int = 0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Initial weights and biases of one network, drawn on the CPU from ``seed``.

    Returns
    -------
    list of (W, b)
        One pair per layer; ``W`` has shape (fan_in, fan_out) (inputs multiply from the left,
        ``x @ W + b``), float32.
    """
    widths = check_widths(widths)
    spec = get_activation(activation)
    if init not in INIT_SCHEMES:
        raise ValueError(f"unknown init {init!r}; choose one of {INIT_SCHEMES}")
    generator = torch.Generator().manual_seed(int(seed))
    params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        W = torch.empty(fan_in, fan_out, dtype=torch.float32)
        if init in ("paper", "tishby"):
            gain = spec.paper_gain if init == "paper" else 1.0
            std = gain / math.sqrt(fan_in)
            truncated_normal_(W, std, generator)
        elif init == "he":
            W.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
        else:  # xavier
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            W.uniform_(-bound, bound, generator=generator)
        params.append((W, torch.zeros(fan_out, dtype=torch.float32)))
    return params


def _check_input(x: torch.Tensor, n_inputs: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != n_inputs:
        raise ValueError(f"inputs have shape {tuple(x.shape)}; expected (n_samples, {n_inputs})")


class MLP(nn.Module):
    """One fully connected network with a softmax output.

    Parameters
    ----------
    widths : sequence of int
        Input width, hidden widths, output width (default 12-10-7-5-4-3-2).
    activation : str
        Hidden-layer activation, a name from :data:`ibtools.activations.ACTIVATIONS`.
    init : str
        One of :data:`INIT_SCHEMES`.
    seed : int
        Seed of the initial weights.
    """

    def __init__(self, widths=DEFAULT_WIDTHS, activation: str = "tanh", init: str = "paper", seed: int = 0):
        super().__init__()
        self.widths = check_widths(widths)
        self.spec = get_activation(activation)
        self.linears = nn.ModuleList()
        for W, b in initial_parameters(self.widths, activation, init, seed):
            layer = nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                layer.weight.copy_(W.T)
                layer.bias.copy_(b)
            self.linears.append(layer)
        n_hidden = len(self.widths) - 2
        self.slopes = nn.ParameterList(
            [nn.Parameter(torch.tensor(PRELU_INITIAL_SLOPE)) for _ in range(n_hidden)]
            if self.spec.learnable_slope
            else []
        )

    def _act(self, h: torch.Tensor, i: int) -> torch.Tensor:
        return self.spec.fn(h, self.slopes[i]) if self.spec.learnable_slope else self.spec.fn(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (n_samples, n_outputs)."""
        return self.layer_activities(x, softmax=False)[-1]

    def layer_activities(self, x: torch.Tensor, softmax: bool = True) -> list[torch.Tensor]:
        """Activity of every hidden layer, then the output (softmax probabilities by default).

        Returns
        -------
        list of torch.Tensor
            ``len(widths) - 1`` tensors of shape (n_samples, width).
        """
        _check_input(x, self.widths[0])
        out = []
        h = x
        for i, layer in enumerate(self.linears):
            h = layer(h)
            if i < len(self.linears) - 1:
                h = self._act(h, i)
            out.append(h)
        if softmax:
            out[-1] = torch.softmax(out[-1], dim=-1)
        return out


class EnsembleMLP(nn.Module):
    """``S`` independent networks of identical shape, evaluated and trained as one model.

    Weights are stacked along a leading member axis, so every layer is one batched matrix
    product for all networks. Member ``k`` is initialized exactly like ``MLP(seed=seeds[k])``;
    because the training loss is the sum of the members' losses, gradients (and Adam's
    per-element updates) never mix members.

    Internally activity is kept as (S, width, n_samples), samples last: with layers this narrow,
    batched matrix products in that layout run several times faster on a CPU than with samples
    in the middle.

    Parameters
    ----------
    widths, activation, init
        As for :class:`MLP`.
    seeds : sequence of int
        One seed per member.
    """

    def __init__(self, widths=DEFAULT_WIDTHS, activation: str = "tanh", init: str = "paper", seeds=(0,)):
        super().__init__()
        self.widths = check_widths(widths)
        self.spec = get_activation(activation)
        self.seeds = tuple(int(s) for s in seeds)
        if not self.seeds:
            raise ValueError("an ensemble needs at least one seed")
        per_member = [initial_parameters(self.widths, activation, init, s) for s in self.seeds]
        S, n_layers = len(self.seeds), len(self.widths) - 1
        # All parameters live in one flat tensor (so an optimizer step is a handful of
        # operations on one tensor, whatever the number of layers); layers are views of it:
        # weights (S, fan_out, fan_in), biases (S, fan_out, 1), PReLU slopes (S, 1, 1).
        pieces, self._layout = [], []
        for i in range(n_layers):
            pieces.append(torch.stack([m[i][0].T for m in per_member]))
            pieces.append(torch.stack([m[i][1][:, None] for m in per_member]))
        if self.spec.learnable_slope:
            pieces += [torch.full((S, 1, 1), PRELU_INITIAL_SLOPE) for _ in range(n_layers - 1)]
        offset = 0
        for piece in pieces:
            self._layout.append((offset, tuple(piece.shape)))
            offset += piece.numel()
        self.flat = nn.Parameter(torch.cat([p.reshape(-1) for p in pieces]))

    def _views(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Weights, biases and slopes as views of :attr:`flat` (one split: its backward is a
        single concatenation)."""
        sizes = [math.prod(shape) for _, shape in self._layout]
        parts = [p.view(shape) for p, (_, shape) in zip(torch.split(self.flat, sizes), self._layout)]
        n = 2 * (len(self.widths) - 1)
        return parts[0:n:2], parts[1:n:2], parts[n:]

    @property
    def weights(self) -> list[torch.Tensor]:
        """Weight of every layer, (S, fan_out, fan_in), as views of :attr:`flat`."""
        return self._views()[0]

    @property
    def biases(self) -> list[torch.Tensor]:
        """Bias of every layer, (S, fan_out, 1), as views of :attr:`flat`."""
        return self._views()[1]

    @property
    def slopes(self) -> list[torch.Tensor]:
        """PReLU slope of every hidden layer, (S, 1, 1); empty for other activations."""
        return self._views()[2]

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    def hidden_weights(self) -> list[torch.Tensor]:
        """Weight tensors of the hidden layers (the ones an L2 penalty applies to)."""
        return list(self.weights)[:-1]

    def forward_t(self, x_t: torch.Tensor) -> list[torch.Tensor]:
        """Activity of every layer in the internal layout (S, width, n_samples); the last entry
        holds the logits. ``x_t`` holds the inputs as columns, (n_in, n_samples), shared by all
        members (pass a contiguous tensor for speed)."""
        if not isinstance(x_t, torch.Tensor) or x_t.dim() != 2 or x_t.shape[0] != self.widths[0]:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"inputs have shape {shape}; forward_t expects ({self.widths[0]}, n_samples)")
        weights, biases, slopes = self._views()
        out = []
        h = None
        n_layers = len(weights)
        for i, (W, b) in enumerate(zip(weights, biases)):
            if i == 0:
                S, fan_out, fan_in = W.shape
                h = torch.addmm(b.reshape(S * fan_out, 1), W.reshape(S * fan_out, fan_in), x_t).view(S, fan_out, -1)
            else:
                h = torch.baddbmm(b, W, h)
            if i < n_layers - 1:
                h = self.spec.fn(h, slopes[i]) if self.spec.learnable_slope else self.spec.fn(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (S, n_samples, n_outputs), for inputs ``x`` (n_samples, n_in) shared by
        all members."""
        _check_input(x, self.widths[0])
        return self.forward_t(x.T.contiguous())[-1].transpose(1, 2)

    def layer_activities(self, x: torch.Tensor, softmax: bool = True) -> list[torch.Tensor]:
        """Activity of every hidden layer, then the output, each of shape (S, n_samples, width)."""
        _check_input(x, self.widths[0])
        out = self.forward_t(x.T.contiguous())
        if softmax:
            out[-1] = torch.softmax(out[-1], dim=1)
        return [h.transpose(1, 2) for h in out]

    def member(self, k: int) -> MLP:
        """A standalone :class:`MLP` holding a copy of member ``k``'s current parameters."""
        net = MLP(self.widths, self.spec.name, seed=self.seeds[k])
        with torch.no_grad():
            for layer, W, b in zip(net.linears, self.weights, self.biases):
                layer.weight.copy_(W[k])
                layer.bias.copy_(b[k, :, 0])
            for mine, theirs in zip(net.slopes, self.slopes):
                mine.copy_(theirs[k].reshape(()))
        return net.to(self.flat.device)

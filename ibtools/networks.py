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

__all__ = [
    "DEFAULT_WIDTHS",
    "INIT_SCHEMES",
    "check_widths",
    "initial_parameters",
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


def check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    """Validate layer widths (input first, output last) and return them as a tuple."""
    try:
        widths = tuple(widths)
    except TypeError:
        raise ValueError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    if len(widths) < 2:
        raise ValueError(f"widths needs at least an input and an output width, got {widths}")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"every width must be a positive integer, got {widths}")
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
            nn.init.trunc_normal_(W, 0.0, std, -2 * std, 2 * std, generator=generator)
        elif init == "he":
            W.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
        else:  # xavier
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            W.uniform_(-bound, bound, generator=generator)
        params.append((W, torch.zeros(fan_out, dtype=torch.float32)))
    return params


def _check_input(x: torch.Tensor, n_inputs: int, n_members: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(x).__name__}")
    ok_2d = x.dim() == 2 and x.shape[1] == n_inputs
    ok_3d = n_members is not None and x.dim() == 3 and x.shape[0] == n_members and x.shape[2] == n_inputs
    if not (ok_2d or ok_3d):
        allowed = f"(n_samples, {n_inputs})"
        if n_members is not None:
            allowed += f" or ({n_members}, n_samples, {n_inputs})"
        raise ValueError(f"inputs have shape {tuple(x.shape)}; expected {allowed}")


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
        n_layers = len(self.widths) - 1
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([m[i][0] for m in per_member])) for i in range(n_layers)]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([m[i][1] for m in per_member])) for i in range(n_layers)]
        )
        S = len(self.seeds)
        self.slopes = nn.ParameterList(
            [nn.Parameter(torch.full((S, 1, 1), PRELU_INITIAL_SLOPE)) for _ in range(n_layers - 1)]
            if self.spec.learnable_slope
            else []
        )

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (S, n_samples, n_outputs). ``x`` is (n_samples, n_in), shared by all
        members, or (S, n_samples, n_in), one batch per member."""
        return self.layer_activities(x, softmax=False)[-1]

    def layer_activities(self, x: torch.Tensor, softmax: bool = True) -> list[torch.Tensor]:
        """Activity of every hidden layer, then the output, each of shape (S, n_samples, width)."""
        _check_input(x, self.widths[0], self.n_members)
        out = []
        n_layers = len(self.weights)
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            if i == 0 and x.dim() == 2:
                h = torch.matmul(x, W) + b[:, None, :]
            else:
                h = torch.baddbmm(b[:, None, :], x if i == 0 else h, W)
            if i < n_layers - 1:
                h = self.spec.fn(h, self.slopes[i]) if self.spec.learnable_slope else self.spec.fn(h)
            out.append(h)
        if softmax:
            out[-1] = torch.softmax(out[-1], dim=-1)
        return out

    def member(self, k: int) -> MLP:
        """A standalone :class:`MLP` holding a copy of member ``k``'s current parameters."""
        net = MLP(self.widths, self.spec.name, seed=self.seeds[k])
        with torch.no_grad():
            for layer, W, b in zip(net.linears, self.weights, self.biases):
                layer.weight.copy_(W[k].T)
                layer.bias.copy_(b[k])
            for mine, theirs in zip(net.slopes, self.slopes):
                mine.copy_(theirs[k].reshape(()))
        return net.to(self.weights[0].device)

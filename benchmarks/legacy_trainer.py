"""The training engine as it was when the stored study (results/paper) was computed: the
reference for bit-identity (tests/test_invariance.py, benchmarks/check_identity.py) and the
"previous engine" of the benchmarks. Do not edit.

Training many networks at once: an :class:`EnsembleMLP`, a hand-written backward pass and one
Adam update over a single flat parameter tensor.

With layers of 2-10 units, training one small network at a time is dominated by per-operation
overhead. Here every operation serves all ``S`` networks, and the backward pass and Adam update
are written out by hand so that a training step is about thirty tensor operations whatever the
number of networks. Each network still sees exactly the arithmetic it would see alone: the
gradient of network ``k`` depends only on its own parameters and minibatch, and Adam is
element-wise. ``tests/test_trainer.py`` checks this against ``torch.optim.Adam`` training single
:class:`~ibtools.networks.MLP` networks one by one.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from ibtools.config import TrainConfig
from ibtools.data import Dataset, make_split, tishby_task
from ibtools.networks import EnsembleMLP

__all__ = ["EnsembleTrainer", "ADAM_BETAS", "ADAM_EPS", "resolve_device"]

#: Adam constants of TensorFlow's and PyTorch's defaults, used by the paper's code.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def resolve_device(name: str) -> torch.device:
    """``"cpu"`` or ``"cuda"``; asking for CUDA where there is none is an error, not a fallback."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device; use device='cpu'")
    return torch.device(name)


class EnsembleTrainer:
    """Holds the networks of one :class:`~ibtools.config.TrainConfig` and trains them epoch by epoch.

    Parameters
    ----------
    config : TrainConfig
    dataset : Dataset, optional
        Defaults to the Tishby task.

    Attributes
    ----------
    model : EnsembleMLP
    epoch : int
        Epochs trained so far.
    """

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None):
        self.config = config
        self.dataset = dataset if dataset is not None else tishby_task()
        if self.dataset.n_features != config.widths[0] or self.dataset.n_classes > config.widths[-1]:
            raise ValueError(
                f"data set {self.dataset.name} has {self.dataset.n_features} features and "
                f"{self.dataset.n_classes} classes; the network expects widths {config.widths}"
            )
        self.split = make_split(self.dataset, config.split, config.train_fraction, config.split_seed)
        self.device = resolve_device(config.device)
        self.model = EnsembleMLP(config.widths, config.activation, config.init, config.seeds).to(self.device)
        self.S = self.model.n_members
        flat = self.model.flat
        self.exp_avg = torch.zeros_like(flat.data)
        self.exp_avg_sq = torch.zeros_like(flat.data)
        self.grad = torch.zeros_like(flat.data)
        self.steps = 0
        self.epoch = 0
        self._manual = self.model.spec.derivative is not None
        self._param_views = self._split(flat.data)
        self._grad_views = self._split(self.grad)

        n_classes = config.widths[-1]
        X = torch.tensor(np.asarray(self.dataset.X), dtype=torch.float32, device=self.device)
        y = torch.tensor(np.asarray(self.dataset.y), dtype=torch.int64, device=self.device)
        self.X_all, self.y_all = X, y
        self.X_all_t = X.T.contiguous()
        train = torch.from_numpy(self.split.train).to(self.device)
        self.X_train, self.y_train = X[train], y[train]
        self.onehot_train = F.one_hot(self.y_train, n_classes).to(torch.float32)
        self.n_train = int(train.numel())
        bs = config.batch_size
        self.batch_bounds = [(i, min(i + bs, self.n_train)) for i in range(0, self.n_train, bs)]
        if not config.shuffle_batches:  # the paper's fixed order: precompute each batch once
            self._fixed_batches = [
                (self.X_train[a:b].T.contiguous(), self.X_train[a:b], self.y_train[a:b],
                 self.onehot_train[a:b].T.contiguous())
                for a, b in self.batch_bounds
            ]

    # -- parameters -------------------------------------------------------------------------

    def _split(self, flat: torch.Tensor) -> tuple[list, list, list]:
        layout = self.model._layout
        parts = [flat[o : o + math.prod(shape)].view(shape) for o, shape in layout]
        n = 2 * (len(self.config.widths) - 1)
        return parts[0:n:2], parts[1:n:2], parts[n:]

    # -- one epoch ----------------------------------------------------------------------------

    def _batches(self):
        if not self.config.shuffle_batches:
            yield from self._fixed_batches
            return
        # each network gets its own order, seeded by (its seed, epoch): independent of S and
        # of interruptions
        perms = []
        for seed in self.config.seeds:
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + self.epoch)
            perms.append(torch.randperm(self.n_train, generator=g))
        perm = torch.stack(perms).to(self.device)  # (S, n_train)
        for a, b in self.batch_bounds:
            idx = perm[:, a:b]
            xb = self.X_train[idx]  # (S, b, n_in)
            yield xb.transpose(1, 2).contiguous(), xb, self.y_train[idx], self.onehot_train[idx].transpose(1, 2).contiguous()

    #: Ensembles below this size run on one CPU thread: MKL splits their tiny matrix products
    #: across threads in ways that change the rounding with the thread count (and EBAB's edges,
    #: which are data values, notice 1-ulp changes). They gain nothing from more threads anyway.
    #: Larger ensembles give identical numbers with any number of threads (tests/test_trainer.py);
    #: their exp-based activations get that from ibtools.activations.thread_invariant.
    SINGLE_THREAD_BELOW = 5

    @contextlib.contextmanager
    def _thread_invariant(self):
        threads = torch.get_num_threads()
        if self.device.type == "cpu" and self.S < self.SINGLE_THREAD_BELOW and threads > 1:
            torch.set_num_threads(1)
            try:
                yield
            finally:
                torch.set_num_threads(threads)
        else:
            yield

    def train_epoch(self) -> torch.Tensor:
        """Train every network for one epoch; returns each network's mean minibatch
        cross-entropy (nats), shape (S,), on the training device."""
        with self._thread_invariant():
            return self._train_epoch()

    def _train_epoch(self) -> torch.Tensor:
        total = torch.zeros(self.S, dtype=torch.float32, device=self.device)
        n_batches = 0
        for x_t, x, y, onehot_t in self._batches():
            if self._manual:
                loss = self._manual_gradients(x_t, x, y, onehot_t)
            else:
                loss = self._autograd_gradients(x_t, x, y)
            self._adam_step()
            total += loss
            n_batches += 1
        self.epoch += 1
        return total / n_batches

    def _manual_gradients(self, x_t, x, y, onehot_t) -> torch.Tensor:
        """Forward and backward pass by hand; writes the gradient of the summed per-network mean
        cross-entropy (+ L2) into ``self.grad``. Returns the per-network loss (S,)."""
        spec = self.model.spec
        Ws, bs, slopes = self._param_views
        gWs, gbs, gslopes = self._grad_views
        S, L = self.S, len(Ws)
        n = x_t.shape[-1]
        shared_input = x_t.dim() == 2
        pre, post = [], []
        h = None
        for i in range(L):
            W, b = Ws[i], bs[i]
            if i == 0 and shared_input:
                fan_out, fan_in = W.shape[1:]
                z = torch.addmm(b.reshape(S * fan_out, 1), W.reshape(S * fan_out, fan_in), x_t).view(S, fan_out, n)
            else:
                z = torch.baddbmm(b, W, x_t if i == 0 else h)
            if i < L - 1:
                h = spec.fn(z, slopes[i]) if spec.learnable_slope else spec.fn(z)
                pre.append(z)
                post.append(h)
            else:
                h = z
        # softmax cross-entropy: loss and its gradient (p - onehot) / n
        log_p = torch.log_softmax(h, dim=1)
        loss = -(log_p * onehot_t).sum(dim=(1, 2)) / n
        g = log_p.exp_().sub_(onehot_t).mul_(1.0 / n)
        for i in range(L - 1, -1, -1):
            below = post[i - 1] if i > 0 else None
            if i == 0:
                if shared_input:
                    fan_out, fan_in = gWs[0].shape[1:]
                    torch.mm(g.reshape(S * fan_out, n), x, out=gWs[0].view(S * fan_out, fan_in))
                else:
                    torch.bmm(g, x, out=gWs[0])
            else:
                torch.bmm(g, below.transpose(1, 2), out=gWs[i])
            torch.sum(g, dim=2, keepdim=True, out=gbs[i])
            if i > 0:
                g = torch.bmm(Ws[i].transpose(1, 2), g)
                z, a = pre[i - 1], post[i - 1]
                if spec.learnable_slope:
                    gslopes[i - 1].copy_((g * torch.clamp(z, max=0.0)).sum(dim=(1, 2), keepdim=True))
                    g.mul_(spec.derivative(z, a, slopes[i - 1]))
                else:
                    g.mul_(spec.derivative(z, a))
        if self.config.l2:
            for i in range(L - 1):  # hidden layers only: d/dW (l2/2 |W|^2) = l2 W
                gWs[i].add_(Ws[i], alpha=self.config.l2)
        return loss

    def _autograd_gradients(self, x_t, x, y) -> torch.Tensor:
        """The same gradient via autograd (for activations registered without a derivative)."""
        flat = self.model.flat
        flat.grad = None
        with torch.enable_grad():
            if x_t.dim() == 2:
                logits = self.model.forward_t(x_t)[-1]
            else:
                logits = self._forward_per_member_inputs(x_t)
            per_net = F.cross_entropy(logits, y if y.dim() == 2 else y.expand(self.S, -1), reduction="none").mean(1)
            total = per_net.sum()
            if self.config.l2:
                total = total + 0.5 * self.config.l2 * sum((W * W).sum() for W in self.model.hidden_weights())
            total.backward()
        self.grad.copy_(flat.grad)
        flat.grad = None
        return per_net.detach()

    def _forward_per_member_inputs(self, x_t: torch.Tensor) -> torch.Tensor:
        spec = self.model.spec
        Ws, bs, slopes = self.model._views()
        h = x_t
        for i, (W, b) in enumerate(zip(Ws, bs)):
            h = torch.baddbmm(b, W, h)
            if i < len(Ws) - 1:
                h = spec.fn(h, slopes[i]) if spec.learnable_slope else spec.fn(h)
        return h

    @torch.no_grad()
    def _adam_step(self) -> None:
        """Adam (Kingma & Ba) with PyTorch's update rule, on the flat parameter tensor."""
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        self.exp_avg.lerp_(self.grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
        bias1 = 1 - beta1**self.steps
        bias2 = 1 - beta2**self.steps
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(bias2)).add_(ADAM_EPS)
        self.model.flat.data.addcdiv_(self.exp_avg, denom, value=-self.config.lr / bias1)

    # -- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Activity of every layer on all inputs, (S, N, width) each, the last one the softmax
        output; and the logits (S, N, n_classes)."""
        with self._thread_invariant():
            out = self.model.forward_t(self.X_all_t)
        logits = out[-1].transpose(1, 2).contiguous()
        acts = [h.transpose(1, 2).contiguous() for h in out[:-1]] + [torch.softmax(logits, dim=2)]
        return acts, logits

    # -- checkpointing --------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "flat": self.model.flat.data.cpu().clone(),
            "exp_avg": self.exp_avg.cpu().clone(),
            "exp_avg_sq": self.exp_avg_sq.cpu().clone(),
            "steps": self.steps,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.model.flat.data.copy_(state["flat"].to(self.device))
            self.exp_avg.copy_(state["exp_avg"].to(self.device))
            self.exp_avg_sq.copy_(state["exp_avg_sq"].to(self.device))
        self.steps = int(state["steps"])
        self.epoch = int(state["epoch"])


from ibtools.estimators import get_estimator  # noqa: E402


class Recorder:  # the previous engine's recorder, for benchmarks
    """Evaluates the networks at scheduled epochs and stores what the config asks for."""

    def __init__(self, config: TrainConfig, trainer: EnsembleTrainer):
        self.config = config
        self.trainer = trainer
        self.epochs = config.evaluation_epochs()
        self.index = {int(e): i for i, e in enumerate(self.epochs)}
        E, L, S = len(self.epochs), config.n_layers, len(config.seeds)
        self.mi = {spec.label: np.full((E, L, S, 2), np.nan, dtype=np.float32) for spec in config.estimators}
        self.when = {spec.label: set(int(e) for e in config.estimator_schedule(spec)) for spec in config.estimators}
        self.history = {k: np.full((E, S), np.nan, dtype=np.float32) for k in ("train_loss", "test_loss", "train_acc", "test_acc")}
        self.layer_max = np.full((E, L, S), np.nan, dtype=np.float32)
        self.diverged = np.full(S, -1, dtype=np.int64)
        self.network_max = np.zeros(S, dtype=np.float64)  # running max over layers and epochs
        self.activation_epochs = set(int(e) for e in config.activation_epochs())
        self.activations: dict[int, list[np.ndarray]] = {}
        self.recorded: set[int] = set()
        split = trainer.split
        dev = trainer.device
        self._train_idx = torch.from_numpy(split.train).to(dev)
        self._test_idx = torch.from_numpy(split.test).to(dev)

    def is_due(self, epoch: int) -> bool:
        return epoch in self.index and epoch not in self.recorded

    @torch.no_grad()
    def record(self, epoch: int) -> None:
        i = self.index[epoch]
        tr = self.trainer
        acts, logits = tr.evaluate()
        y = tr.y_all
        ce = F.cross_entropy(logits.transpose(1, 2), y.expand(tr.S, -1), reduction="none")
        correct = (logits.argmax(dim=2) == y).to(torch.float32)
        for name, values, idx in (("train_loss", ce, self._train_idx), ("test_loss", ce, self._test_idx),
                                  ("train_acc", correct, self._train_idx), ("test_acc", correct, self._test_idx)):
            self.history[name][i] = values[:, idx].mean(1).cpu().numpy()

        finite = torch.ones(tr.S, dtype=torch.bool, device=tr.device)
        for a in acts:
            finite &= torch.isfinite(a).flatten(1).all(1)
        finite &= torch.isfinite(ce).all(1)
        finite = finite.cpu().numpy()
        newly = (~finite) & (self.diverged < 0)
        self.diverged[newly] = epoch
        ok = np.flatnonzero(finite & (self.diverged < 0))

        peaks = np.stack([a.abs().flatten(1).amax(1).cpu().numpy() for a in acts])  # (L, S)
        self.layer_max[i] = peaks
        if ok.size:
            self.network_max[ok] = np.maximum(self.network_max[ok], peaks[:, ok].max(0))

        if ok.size:
            ok_t = torch.from_numpy(ok).to(tr.device)
            sub = [a.index_select(0, ok_t) for a in acts]
            for spec in self.config.estimators:
                if epoch not in self.when[spec.label]:
                    continue
                fn = get_estimator(spec.name)
                params = spec.kwargs
                if spec.name == "max" and params.get("max_value") == "network":
                    params["max_value"] = self.network_max[ok]
                for layer, a in enumerate(sub):
                    result = fn(a, y, **params)
                    self.mi[spec.label][i, layer, ok, 0] = result[0]
                    self.mi[spec.label][i, layer, ok, 1] = result[1]
        if epoch in self.activation_epochs:
            self.activations[epoch] = [a.cpu().numpy().astype(np.float32) for a in acts]
        self.recorded.add(epoch)

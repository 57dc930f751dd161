"""Training many networks at once: an :class:`EnsembleMLP`, a hand-written backward pass and one
Adam update over a single flat parameter tensor.

With layers of 2-10 units, training one small network at a time is dominated by per-operation
overhead. Here every operation serves all ``S`` networks, and the backward pass and Adam update
are written out by hand so that a training step is about thirty tensor operations whatever the
number of networks. Each network still sees exactly the arithmetic it would see alone: the
gradient of network ``k`` depends only on its own parameters and minibatch, and Adam is
element-wise. ``tests/test_trainer.py`` checks this against ``torch.optim.Adam`` training single
:class:`~ibtools.networks.MLP` networks one by one.

A step allocates nothing: every intermediate lives in a buffer made once per batch size, the
activations run in place where their derivative needs only their output (tanh, ReLU, ELU,
sigmoid), and each derivative is applied by a fused in-place routine
(:attr:`~ibtools.activations.ActivationSpec.backward_`, e.g. ``threshold_backward`` for ReLU).
All of it gives exactly the bits of the engine the stored study was computed with
(``benchmarks/legacy_trainer.py``; ``tests/test_invariance.py``).

Bit for bit, though, a network's numbers depend on its place in the ensemble, for two reasons
found by experiment (torch 2.13, AVX2):

* The batched matrix products that sum over the samples of the last minibatch (205 of them)
  round differently depending on where the operand starts modulo 16 bytes (measured: the same
  matrix copied to offsets 0, 4, 8 floats gives one result, to offsets 1, 2, 3 another);
  network ``k``'s block starts at ``k * width * 205`` floats, so its alignment depends on ``k``.
* torch's element-wise kernels compute full SIMD vectors with Sleef and the last
  ``numel % 16`` elements of a tensor with scalar libm; for sigmoid, softplus, SiLU and ELU the
  two differ in the last bit (tanh and exp do not), so the network at the end of the ensemble
  gets different bits.

``TrainConfig(ensemble_invariant=True)`` removes both: every minibatch is padded with masked
zero samples to a multiple of :attr:`EnsembleTrainer.ALIGN`, so each network's block of every
tensor starts as aligned as the tensor and no element falls in a scalar tail. It is off by
default because the stored study was computed without it, and no invariant arithmetic can
reproduce the stored units: their networks were computed at different alignments, so no single
rule matches them all. Measured: seeds 0-49 trained 20 epochs with and without it agree bit for
bit in 0-3 of 50 networks depending on the activation (``benchmarks/results/
invariance_vs_default.txt``); after 5 epochs their parameters agree within 1e-5
(``tests/test_invariance.py``). All of this is about the CPU: on a GPU (measured on an H200,
``benchmarks/README.md``) a network's parameters differ by 1-4 float32 ulps between ensembles of
1, 3, 50 and 1000 networks with or without the padding, since cuBLAS chooses its kernels by the
shape of the whole batched product.

Quantized and noise-injected hidden layers (``TrainConfig.quantize_bits`` / ``noise_std``,
:mod:`ibtools.perturb`) enter through one hook, ``EnsembleTrainer._perturb``, called after each
hidden activation in the training and the evaluation pass. In training it writes the perturbed
activity into a separate buffer that feeds the next layer and its weight gradient, while the
unperturbed activity stays where the activation's derivative reads it: straight-through gradients
for quantization, exact ones for additive noise.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import Dataset, make_split
from .tasks import load_task
from .activations import Workspace
from .networks import EnsembleMLP
from .perturb import EVAL, TRAIN, Perturber
from .validation import check_int

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
        Defaults to the config's task (:func:`ibtools.tasks.load_task` of ``config.task``). A
        data set given here replaces it; it is not part of the config's key.

    Attributes
    ----------
    model : EnsembleMLP
    epoch : int
        Epochs trained so far.
    """

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None):
        self.config = config
        self.dataset = dataset if dataset is not None else load_task(config.task)
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
        self._denom = torch.empty_like(flat.data)
        self._step_buffers: dict[int, dict] = {}
        self._eval_layers = None
        self._eval_outputs = None
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
        self.invariant = config.ensemble_invariant
        if self.invariant and not self._manual:
            raise ValueError(f"ensemble_invariant needs an activation with a derivative; {config.activation!r} has none")
        self._fused = None
        if config.backend == "fused":  # ibtools.fused trains on numpy views of the same tensors
            from .fused import FusedKernel

            self._fused = FusedKernel(config.widths, config.activation, self.model._layout, self.S)
            self._fused_X = self.X_train.numpy()
            self._fused_y = np.ascontiguousarray(self.y_train.numpy())
            self._fused_order = np.arange(self.n_train, dtype=np.int64)[None]
        if not config.shuffle_batches:  # the paper's fixed order: precompute each batch once
            self._fixed_batches = [self._batch(self.X_train[a:b], self.onehot_train[a:b], self.y_train[a:b])
                                   for a, b in self.batch_bounds]
        self._perturber = self._make_perturber()

    # -- quantized and noisy hidden layers (ibtools.perturb) ------------------------------------

    def _make_perturber(self) -> Perturber | None:
        """The :class:`~ibtools.perturb.Perturber` of ``quantize_bits``/``noise_std``, or None. A
        tracked quantization range is initialized here, from the first training minibatch at the
        initial parameters (a forward and backward pass that changes nothing else)."""
        config = self.config
        if config.quantize_bits is None and config.noise_std == 0:
            return None
        spec = self.model.spec
        if spec.forward_out is None or not self._manual:
            raise ValueError(f"quantize_bits and noise_std need an activation with the fast path (forward_out and "
                             f"derivative); {config.activation!r} has none")
        p = Perturber(config.activation, config.hidden, config.seeds, config.quantize_bits, config.noise_std,
                      self.device)
        self._perturber, self._capture, self._eval_draw = p, None, 0
        if p.tracked:
            p.initializing = True
            try:
                with self._one_thread_for_small_ensembles():
                    self._manual_gradients(*next(iter(self._batches())))
            finally:
                p.initializing = False
            self.grad.zero_()
        return p

    def _perturb(self, i: int, a: torch.Tensor, out: torch.Tensor, training: bool, n_real: int | None = None) -> None:
        """Hook after hidden layer ``i``'s activation: write its quantized or noisy activity
        ``a`` (S, width, n) into ``out`` (``a`` itself in evaluation; in training the layer's
        ``fed`` buffer, while ``a`` stays unperturbed for the derivative: straight-through for
        quantization, exact for additive noise). Layer 0 draws the pass's noise: seeded by
        (seed, epoch, step) in training, (seed, epoch, evaluation draw) in evaluation."""
        p = self._perturber
        if p is None:
            return
        if i == 0 and p.noisy:
            if training:
                p.draw(self.epoch, TRAIN, self.steps, n_real, a.shape[-1])
            else:
                p.draw(self.epoch, EVAL, self._eval_draw, a.shape[-1], a.shape[-1])
        if not training and self._capture is not None:
            self._capture[i].copy_(a)
        p.apply(i, a, out, training, n_real)

    #: Under ``ensemble_invariant`` every minibatch is padded to a multiple of this many samples:
    #: 32 floats are two AVX2 vectors (torch's element-wise loops take 2 vectors per step) and
    #: 128 bytes, so with AVX2 or AVX-512 no element falls in a scalar tail and every network's
    #: block starts as aligned as the tensor.
    ALIGN = 32

    def _batch(self, x: torch.Tensor, onehot: torch.Tensor, y: torch.Tensor) -> tuple:
        """(x_t, x, y, onehot_t, n): inputs as columns and rows, labels, one-hot labels as
        columns, number of real samples. Samples are the last-but-one axis of ``x``; with
        ``ensemble_invariant`` zero samples pad it to a multiple of :attr:`ALIGN` (their one-hot
        rows are zero and their gradient is masked)."""
        n = x.shape[-2]
        if self.invariant and n % self.ALIGN:
            pad = self.ALIGN - n % self.ALIGN
            x = F.pad(x, (0, 0, 0, pad))
            onehot = F.pad(onehot, (0, 0, 0, pad))
        return x.transpose(-1, -2).contiguous(), x.contiguous(), y, onehot.transpose(-1, -2).contiguous(), n

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
            yield self._batch(self.X_train[idx], self.onehot_train[idx], self.y_train[idx])  # (S, b, n_in)

    #: Ensembles below this size run on one CPU thread: MKL splits their tiny matrix products
    #: across threads in ways that change the rounding with the thread count (and EBAB's edges,
    #: which are data values, notice 1-ulp changes). They gain nothing from more threads anyway.
    #: Larger ensembles give identical numbers with any number of threads (tests/test_trainer.py);
    #: their exp-based activations get that from :func:`~ibtools.activations.thread_invariant_elementwise`.
    SINGLE_THREAD_BELOW = 5

    @contextlib.contextmanager
    def _one_thread_for_small_ensembles(self):
        """Within the block, torch runs on one thread if this is a CPU ensemble of fewer than
        :attr:`SINGLE_THREAD_BELOW` networks (the thread count is restored afterwards); otherwise
        nothing changes.

        One of two guards of thread invariance: this one keeps the *matrix products* of small
        ensembles from depending on the thread count. Large tensors keep every thread; their
        elementwise activations are made invariant piece by piece by
        :func:`~ibtools.activations.thread_invariant_elementwise`.
        """
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
        with self._one_thread_for_small_ensembles():
            return self._train_epoch()

    def _train_epoch(self) -> torch.Tensor:
        if self._fused is not None:
            return self._fused_epoch()
        total = torch.zeros(self.S, dtype=torch.float32, device=self.device)
        n_batches = 0
        for x_t, x, y, onehot_t, n in self._batches():
            if self._manual:
                loss = self._manual_gradients(x_t, x, y, onehot_t, n)
            else:
                loss = self._autograd_gradients(x_t, x, y)
            self._adam_step()
            total += loss
            n_batches += 1
        self.epoch += 1
        return total / n_batches

    def _fused_epoch(self) -> torch.Tensor:
        """One epoch with :class:`ibtools.fused.FusedKernel`, in place on the flat parameter and
        Adam tensors (``numpy()`` views share their memory); the same per-network batch orders."""
        if self.config.shuffle_batches:
            order = np.stack([torch.randperm(self.n_train, generator=torch.Generator().manual_seed(
                int(seed) * 1_000_003 + self.epoch)).numpy() for seed in self.config.seeds])
        else:
            order = self._fused_order
        with torch.no_grad():
            losses = self._fused.train_epoch(
                self.model.flat.data.numpy(), self.exp_avg.numpy(), self.exp_avg_sq.numpy(),
                self._fused_X, self._fused_y, order, self.steps,
                lr=self.config.lr, l2=self.config.l2, batch_size=self.config.batch_size)
        self.steps += len(self.batch_bounds)
        self.epoch += 1
        return torch.tensor(losses, dtype=torch.float32)

    def _buffers(self, n: int) -> dict:
        """Preallocated tensors of a training step on ``n`` samples (one set per batch size), so
        that a step allocates nothing."""
        buf = self._step_buffers.get(n)
        if buf is not None:
            return buf
        spec = self.model.spec
        S, widths, dev = self.S, self.config.widths, self.device
        hidden = widths[1:-1]
        shape = lambda w: (S, w, n)  # noqa: E731
        pre = [torch.empty(shape(w), device=dev) for w in hidden]
        fast = spec.forward_out is not None
        inplace = fast and not spec.backward_uses_input
        post = pre if inplace else [torch.empty(shape(w), device=dev) for w in hidden]
        buf = {
            "pre": pre,
            "post": post,
            "logits": torch.empty(shape(widths[-1]), device=dev),
            "log_p": torch.empty(shape(widths[-1]), device=dev),
            "ce": torch.empty(shape(widths[-1]), device=dev),
            "loss": torch.empty(S, device=dev),
            # gradient with respect to each hidden layer's pre-activation
            "g": [torch.empty(shape(w), device=dev) for w in hidden],
            "work": [Workspace(p) for p in pre],
            "fast": fast,
            # what each hidden layer feeds forward: its activity, or that activity quantized or
            # with noise added (then ``post`` keeps the unperturbed activity for the derivative)
            "fed": post if self._perturber is None else [torch.empty(shape(w), device=dev) for w in hidden],
        }
        self._step_buffers[n] = buf
        return buf

    def _activate(self, i: int, z: torch.Tensor, out: torch.Tensor, buf: dict) -> None:
        spec = self.model.spec
        extra = (self._param_views[2][i],) if spec.learnable_slope else ()
        if buf["fast"]:
            spec.forward_out(z, out, buf["work"][i], *extra)
        else:
            out.copy_(spec.fn(z, *extra))

    def _manual_gradients(self, x_t, x, y, onehot_t, n_real=None) -> torch.Tensor:
        """Forward and backward pass by hand, into preallocated buffers; writes the gradient of
        the summed per-network mean cross-entropy (+ L2) into ``self.grad``. Returns the
        per-network loss (S,), a buffer overwritten by the next step."""
        spec = self.model.spec
        Ws, bs, slopes = self._param_views
        gWs, gbs, gslopes = self._grad_views
        S, L = self.S, len(Ws)
        n = x_t.shape[-1]  # samples in the tensors, padding included
        n_real = n if n_real is None else n_real
        buf = self._buffers(n)
        pre, post, gs, fed = buf["pre"], buf["post"], buf["g"], buf["fed"]
        shared_input = x_t.dim() == 2
        for i in range(L):
            W, b = Ws[i], bs[i]
            z = pre[i] if i < L - 1 else buf["logits"]
            if i == 0 and shared_input:
                fan_out, fan_in = W.shape[1:]
                torch.addmm(b.reshape(S * fan_out, 1), W.reshape(S * fan_out, fan_in), x_t, out=z.view(S * fan_out, n))
            else:
                torch.baddbmm(b, W, x_t if i == 0 else fed[i - 1], out=z)
            if i < L - 1:
                self._activate(i, z, post[i], buf)
                self._perturb(i, post[i], fed[i], True, n_real)
        # softmax cross-entropy: loss and its gradient (p - onehot) / n
        log_p = torch.log_softmax(buf["logits"], dim=1, out=buf["log_p"])
        loss = torch.sum(torch.mul(log_p, onehot_t, out=buf["ce"]), dim=(1, 2), out=buf["loss"]).neg_().div_(n_real)
        g = log_p.exp_().sub_(onehot_t).mul_(1.0 / n_real)
        if n_real < n:  # padding samples contribute nothing
            g[:, :, n_real:] = 0.0
        for i in range(L - 1, -1, -1):
            if i == 0:
                if shared_input:
                    fan_out, fan_in = gWs[0].shape[1:]
                    torch.mm(g.reshape(S * fan_out, n), x, out=gWs[0].view(S * fan_out, fan_in))
                else:
                    torch.bmm(g, x, out=gWs[0])
            else:
                torch.bmm(g, fed[i - 1].transpose(1, 2), out=gWs[i])
            torch.sum(g, dim=2, keepdim=True, out=gbs[i])
            if i > 0:
                g = torch.bmm(Ws[i].transpose(1, 2), g, out=gs[i - 1])
                z, a = pre[i - 1], post[i - 1]
                if spec.learnable_slope:
                    work = buf["work"][i - 1]
                    clamped = torch.clamp(z, max=0.0, out=work.tmp2).mul_(g)
                    torch.sum(clamped, dim=(1, 2), keepdim=True, out=gslopes[i - 1])
                    if spec.backward_ is not None:
                        spec.backward_(g, z, a, work, slopes[i - 1])
                    else:
                        g.mul_(spec.derivative(z, a, slopes[i - 1]))
                elif spec.backward_ is not None:
                    spec.backward_(g, z, a, buf["work"][i - 1])
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
        denom = torch.sqrt(self.exp_avg_sq, out=self._denom).div_(math.sqrt(bias2)).add_(ADAM_EPS)
        self.model.flat.data.addcdiv_(self.exp_avg, denom, value=-self.config.lr / bias1)

    # -- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, reuse_buffers: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Activity of every layer on all inputs, (S, N, width) each, the last one the softmax
        output; and the logits (S, N, n_classes).

        The forward pass runs in preallocated buffers with in-place activations (the same bits as
        :meth:`EnsembleMLP.forward_t <ibtools.networks.EnsembleMLP.forward_t>`). With
        ``reuse_buffers`` the returned tensors are buffers too, overwritten by the next call
        (the :class:`~ibtools.engine.Recorder` uses them only within one recorded epoch);
        otherwise they are new tensors.

        With ``quantize_bits`` the hidden activities are the quantized ones; with ``noise_std``
        they include the noise, drawn from (network seed, epoch): the same at every call in one
        epoch (draw 0 of :meth:`evaluate_noisy_means`, which also gives the noiseless means).
        """
        with self._one_thread_for_small_ensembles():
            layers = self._forward_all()
        outs = self._eval_outputs if reuse_buffers else None
        if outs is None:
            outs = [torch.empty(h.shape[0], h.shape[2], h.shape[1], device=self.device) for h in layers]
            outs.append(torch.empty_like(outs[-1]))
            if reuse_buffers:
                self._eval_outputs = outs
        for out, h in zip(outs, layers):
            out.copy_(h.transpose(1, 2))
        logits = outs[len(layers) - 1]
        torch._softmax(logits, 2, False, out=outs[-1])
        return outs[: len(layers) - 1] + [outs[-1]], logits

    @torch.no_grad()
    def evaluate_noisy_means(self, draw: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Noisy networks (``noise_std > 0``) on all inputs: each hidden layer's noiseless mean
        and its noisy activity, for Monte Carlo estimates of I(X;T_l).

        With T_0 = X and T_l = f(W_l T_{l-1} + b_l) + Z_l, Z_l ~ N(0, noise_std² I), one forward
        pass samples every T_l. For hidden layer l it returns

        * ``means[l]`` = f(W_l t_{l-1} + b_l): the mean of T_l given the sampled previous layer
          t_{l-1} (given X for the first hidden layer), i.e. the activity before layer l's
          own noise is added; given T_{l-1} = t_{l-1}, T_l is exactly N(means[l], noise_std² I);
        * ``noisy[l]`` = means[l] + z_l: the sampled T_l, fed to layer l + 1.

        Both are lists over hidden layers (not the softmax output) of (S, N, width) tensors,
        new tensors. ``draw`` selects the noise realization, seeded by (network seed, epoch,
        ``draw``): the same arguments give the same numbers, and ``draw=0`` is the realization
        that :meth:`evaluate` returns at this epoch (its hidden activities equal ``noisy``).
        Draws 0, 1, 2, ... are independent samples of the whole network's noise, e.g. for
        sampling T_{l-1} given X several times when estimating h(T_l | X).

        Raises
        ------
        ValueError
            If the networks are not noisy, or ``draw`` is not an integer >= 0.
        """
        p = self._perturber
        if p is None or not p.noisy:
            raise ValueError("evaluate_noisy_means needs noisy networks (TrainConfig.noise_std > 0)")
        draw = check_int(draw, "draw", 0)
        N = self.X_all_t.shape[1]
        self._capture = [torch.empty(self.S, w, N, device=self.device) for w in self.config.hidden]
        self._eval_draw = draw
        try:
            with self._one_thread_for_small_ensembles():
                layers = self._forward_all()
            means = [m.transpose(1, 2).contiguous() for m in self._capture]
            noisy = [h.transpose(1, 2).contiguous() for h in layers[: len(self._capture)]]
        finally:
            self._capture, self._eval_draw = None, 0
        return means, noisy

    def _forward_all(self) -> list[torch.Tensor]:
        """Every layer's activity on all inputs in the internal layout (S, width, N), the last
        entry the logits; in buffers that the next call overwrites."""
        spec = self.model.spec
        if spec.forward_out is None:
            return self.model.forward_t(self.X_all_t)
        Ws, bs, slopes = self._param_views
        S, L, N = self.S, len(Ws), self.X_all_t.shape[1]
        if self._eval_layers is None:
            self._eval_layers = [torch.empty(S, w, N, device=self.device) for w in self.config.widths[1:]]
            self._eval_work = [Workspace(h) for h in self._eval_layers[:-1]]
        out = self._eval_layers
        for i in range(L):
            W, b, h = Ws[i], bs[i], out[i]
            if i == 0:
                fan_out, fan_in = W.shape[1:]
                torch.addmm(b.reshape(S * fan_out, 1), W.reshape(S * fan_out, fan_in), self.X_all_t,
                            out=h.view(S * fan_out, N))
            else:
                torch.baddbmm(b, W, out[i - 1], out=h)
            if i < L - 1:  # in place: nothing needs the pre-activation here
                extra = (slopes[i],) if spec.learnable_slope else ()
                spec.forward_out(h, h, self._eval_work[i], *extra)
                self._perturb(i, h, h, False)
        return out

    # -- checkpointing --------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "flat": self.model.flat.data.cpu().clone(),
            "exp_avg": self.exp_avg.cpu().clone(),
            "exp_avg_sq": self.exp_avg_sq.cpu().clone(),
            "steps": self.steps,
            "epoch": self.epoch,
            **(self._perturber.state_dict() if self._perturber is not None else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.model.flat.data.copy_(state["flat"].to(self.device))
            self.exp_avg.copy_(state["exp_avg"].to(self.device))
            self.exp_avg_sq.copy_(state["exp_avg_sq"].to(self.device))
        self.steps = int(state["steps"])
        self.epoch = int(state["epoch"])
        if self._perturber is not None:
            self._perturber.load_state_dict(state)

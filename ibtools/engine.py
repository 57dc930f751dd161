"""What a run measures at a scheduled epoch (:class:`Recorder`), and how many CPU threads torch
uses (:func:`set_threads`).

At every scheduled epoch all inputs of the task (4096 for the 12-bit task) go through every
network once; the chosen estimators run on every layer (the softmax output included) and only
their values, the losses and the accuracies are kept. Raw activity is kept only at the epochs the
config asks for, so memory does not grow with the number of epochs.

The loop that trains a config's networks, calls the :class:`Recorder` and writes checkpoints is
:func:`ibtools.training.train`; the gradients and the Adam update are
:class:`ibtools.trainer.EnsembleTrainer`. ``from ibtools.engine import train`` (and
``probe_seconds``, ``CHECKPOINT_FORMAT``) still works: those names are forwarded to
:mod:`ibtools.training`, the module to import them from in new code.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .estimators import CLEAN_MEANS_ESTIMATORS, get_estimator, resolve_params
from .geometry import get_measure
from .trainer import EnsembleTrainer
from .validation import check_int, parse_int

__all__ = ["Recorder", "set_threads", "default_threads", "THREADS_ENV", "mixture_seed"]

#: Names that moved to :mod:`ibtools.training` and are still importable from here.
_MOVED_TO_TRAINING = ("train", "probe_seconds", "CHECKPOINT_FORMAT")


def __getattr__(name: str):
    """``ibtools.engine.train`` (and the other names of :data:`_MOVED_TO_TRAINING`): the object
    of :mod:`ibtools.training`, imported on first use (a top-level import would be circular:
    :mod:`ibtools.training` imports :class:`Recorder` from here)."""
    if name in _MOVED_TO_TRAINING:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Environment variable that sets the number of torch CPU threads ibtools uses.
THREADS_ENV = "IBTOOLS_THREADS"


def default_threads() -> int:
    """The number of torch CPU threads ibtools runs with unless told otherwise: the environment
    variable ``IBTOOLS_THREADS`` if set, else **1**.

    One thread is the default on every machine. A training step is a few dozen operations on
    tensors of a few thousand to a few hundred thousand elements; splitting those across threads
    gains little, and when the cores are busy (other processes, parallel tests, Dask workers) the
    threads wait for each other at every operation: ``torch.isfinite(t).all()`` on 40,000 values
    took 120 ms with 2 threads against 0.15 ms with 1 on a loaded 2-core machine, and the first
    chapter went from 9 s to 194 s. Use the cores by running units in parallel processes
    (``ibtools.distributed``) instead; ask for more threads per process with ``--threads`` or
    ``IBTOOLS_THREADS`` (the numbers do not depend on the thread count, see
    :mod:`ibtools.trainer`).

    Raises
    ------
    ValueError
        If ``IBTOOLS_THREADS`` is set to something other than a positive integer.
    """
    import os

    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return 1
    return parse_int(raw, f"{THREADS_ENV} (torch CPU threads)", 1)


def set_threads(n: int | None = None) -> int:
    """Set torch's CPU threads to ``n``, or to :func:`default_threads` when ``n`` is None.
    Returns the number set.

    Raises
    ------
    ValueError
        If ``n`` is not an integer >= 1.
    """
    if n is None:
        n = default_threads()
    else:
        n = check_int(n, "threads", 1)
    torch.set_num_threads(n)
    return n


def _abs_max(a: torch.Tensor) -> torch.Tensor:
    """max |a| over all but the first axis, without the copy ``a.abs()`` makes; NaN propagates.

    Contiguous float32 CPU activity with only finite values takes the minima and maxima from
    one compiled pass (the same values as ``torch.aminmax``; min and max are exact)."""
    flat = a.reshape(a.shape[0], -1)
    if a.device.type == "cpu" and a.dtype == torch.float32 and flat.is_contiguous() and flat.shape[1]:
        from .estimators._kernels import row_min_max

        low, high = torch.empty(a.shape[0]), torch.empty(a.shape[0])
        if row_min_max(flat.numpy(), low.numpy(), high.numpy()):
            return torch.maximum(high, low.neg_())
    low, high = torch.aminmax(flat, dim=1)
    return torch.maximum(high, low.neg_())


def mixture_seed(seed: int, network_seed: int, layer: int) -> int:
    """Seed of the ``"mixture"`` estimator's Monte Carlo draws for one layer of one network: a
    64-bit integer from the estimator's own ``seed``, the network's seed and the layer index
    alone (folded in through the SplitMix64 finalizer), the same at every epoch."""
    from .perturb import _splitmix64

    h = 0x6D6978  # "mix"
    for part in (seed, network_seed, layer):
        h = _splitmix64(h ^ (int(part) & 0xFFFFFFFFFFFFFFFF))
    return h


class Recorder:
    """Evaluates the networks at scheduled epochs and stores what the config asks for.

    Every estimator runs on every layer's activity as :meth:`~ibtools.trainer.EnsembleTrainer.evaluate` returns
    it (quantized activity on quantized networks; on noisy ones the activity with one draw of
    the noise), except ``"mixture"`` and ``"mixture_bounds"``
    (``ibtools.estimators.CLEAN_MEANS_ESTIMATORS``), which get the clean means of the
    hidden layers (K draws of them for ``"mixture"`` with ``draws=K``) and NaN for the softmax
    output (see ``Recorder._record_mixture``).
    """

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
        self.measures = {name: np.full((E, L, S), np.nan, dtype=np.float64) for name in config.measures}
        self._measure_epochs = set(int(e) for e in config.schedule()) if config.measures else set()
        split = trainer.split
        dev = trainer.device
        self._train_idx = torch.from_numpy(split.train).to(dev)
        self._test_idx = torch.from_numpy(split.test).to(dev)

    def is_due(self, epoch: int) -> bool:
        """True if ``epoch`` is a scheduled evaluation epoch that has not been recorded yet."""
        return epoch in self.index and epoch not in self.recorded

    @torch.no_grad()
    def record(self, epoch: int) -> None:
        """Evaluate every network on all inputs once and store this epoch's numbers.

        Call it when the trainer has completed ``epoch`` epochs (``trainer.epoch == epoch``) and
        :meth:`is_due` says so; :func:`ibtools.training.train` does. Fills row
        ``self.index[epoch]`` of:

        * ``history``: training and test cross-entropy (nats) and accuracy of every network;
        * ``layer_max``: the largest absolute activity of every layer and network (NaN or inf if
          it diverged), and ``network_max``, its running maximum over layers and epochs, per
          network;
        * ``mi[label]``: I(X;T) and I(T;Y) in **bits** (last axis) of every layer (the softmax
          output included) for each estimator whose own schedule contains ``epoch``, each with
          the bias its docstring states (binning and EBAB are biased low);
        * ``measures[name]``: the config's geometric measures, at the epochs of the main schedule;
        * ``activations[epoch]``: the raw activity of every layer (float32), only at
          ``config.activation_epochs()``.

        A network whose activity or loss is not finite at ``epoch`` is marked diverged
        (``diverged[k] = epoch``, the first such epoch) and its values stay NaN from then on; the
        estimators run on the other networks only. Marks ``epoch`` as recorded.

        Parameters
        ----------
        epoch : int
            Number of completed training epochs; must be one of ``self.epochs``.

        Raises
        ------
        KeyError
            If ``epoch`` is not a scheduled evaluation epoch.
        """
        i = self.index[epoch]
        tr = self.trainer
        acts, logits = tr.evaluate(reuse_buffers=True)
        y = tr.y_all
        ce = F.cross_entropy(logits.transpose(1, 2), y.expand(tr.S, -1), reduction="none")
        correct = (logits.argmax(dim=2) == y).to(torch.float32)
        for name, values, idx in (("train_loss", ce, self._train_idx), ("test_loss", ce, self._test_idx),
                                  ("train_acc", correct, self._train_idx), ("test_acc", correct, self._test_idx)):
            self.history[name][i] = values[:, idx].mean(1).cpu().numpy()

        # max |activity| of each layer and network, from one min/max pass; NaN and inf
        # propagate into it, so it also tells which networks are still finite
        peaks_t = torch.stack([_abs_max(a) for a in acts])  # (L, S)
        finite = (torch.isfinite(peaks_t).all(0) & torch.isfinite(ce).all(1)).cpu().numpy()
        newly = (~finite) & (self.diverged < 0)
        self.diverged[newly] = epoch
        ok = np.flatnonzero(finite & (self.diverged < 0))

        peaks = peaks_t.cpu().numpy()
        self.layer_max[i] = peaks
        if ok.size:
            self.network_max[ok] = np.maximum(self.network_max[ok], peaks[:, ok].max(0))

        if ok.size:
            if ok.size == tr.S:  # the usual case: no copies
                sub = acts
            else:
                ok_t = torch.from_numpy(ok).to(tr.device)
                sub = [a.index_select(0, ok_t) for a in acts]
            for spec in self.config.estimators:
                if epoch not in self.when[spec.label]:
                    continue
                if spec.name in CLEAN_MEANS_ESTIMATORS:  # on the clean means, not on the noisy activity
                    self._record_mixture(epoch, spec, ok, y)
                    continue
                fn = get_estimator(spec.name)
                params = resolve_params(spec.name, spec.kwargs, network_max=self.network_max[ok])
                for layer, a in enumerate(sub):
                    result = fn(a, y, **params)
                    self.mi[spec.label][i, layer, ok, 0] = result[0]
                    self.mi[spec.label][i, layer, ok, 1] = result[1]
        self._noisy_means = None  # the clean means of this epoch (mixture) are not needed again
        self._record_measures(epoch, acts, y)
        if epoch in self.activation_epochs:
            self.activations[epoch] = [a.cpu().numpy().astype(np.float32) for a in acts]
        self.recorded.add(epoch)

    def _record_mixture(self, epoch: int, spec, ok: np.ndarray, labels) -> None:
        """The estimators of a noise-injected layer that take its clean means
        (``ibtools.estimators.CLEAN_MEANS_ESTIMATORS``: ``"mixture"``, the Monte Carlo
        I(X;T), I(T;Y), and ``"mixture_bounds"``, the Kolchinsky-Tracey bounds) of the hidden
        layers of the networks ``ok`` at ``epoch``.

        They run on the **clean means** of each hidden layer from
        ``trainer.evaluate_noisy_means(k)`` (the activity before the layer's own noise, given the
        sampled previous layer; draw 0 is the realization
        :meth:`~ibtools.trainer.EnsembleTrainer.evaluate` returns at this epoch), with the spec's
        ``noise_std``, which ``TrainConfig`` has checked equals the network's. Every other
        estimator on a noisy network sees the noisy activity that ``evaluate()`` returns (one
        draw of all the noise). The softmax output has no noise of its own, so its values stay
        NaN.

        With one draw of the earlier layers' noise (``draws=1``, the default, and always for
        ``"mixture_bounds"``), the values of the second and deeper hidden layers estimate
        I(X; T_l | earlier noise) >= I(X; T_l): they over-state the information (see
        :func:`ibtools.estimators.mixture_information`); the first hidden layer's are
        unbiased up to the Monte Carlo error. A ``"mixture"`` spec with ``draws=K > 1`` gets,
        per network and layer, the stack (K, N, width) of the clean means under draws
        0..K-1 of :meth:`~ibtools.trainer.EnsembleTrainer.evaluate_noisy_means` (each seeded by
        the network's seed, the epoch and the draw alone), which lowers the over-statement;
        the first hidden layer's K draws are identical (no earlier noise), so there it equals
        the one-draw value in expectation. The draws are computed once per epoch and shared by
        every spec that needs them.

        Seeds: network ``s``'s layer ``l`` draws from ``mixture_seed(spec seed, s, l)``, a
        function of these alone, so its numbers do not depend on which networks share its
        ensemble, a resumed run draws what an uninterrupted one does, and the same draws are
        used at every epoch (common random numbers: epoch-to-epoch changes carry less Monte
        Carlo noise than either value's standard error).
        """
        params = spec.kwargs
        K = int(params.get("draws", 1))
        draws = self._clean_means(epoch, K)
        fn = get_estimator(spec.name)
        base = int(params.pop("seed", 0)) if spec.name == "mixture" else None
        out = self.mi[spec.label]
        i = self.index[epoch]
        for layer in range(len(draws[0])):
            for k in ok:
                if base is not None:
                    params["seed"] = mixture_seed(base, self.config.seeds[k], layer)
                if K == 1:
                    means = draws[0][layer][k]
                else:
                    means = torch.stack([d[layer][k] for d in draws[:K]])
                result = fn(means, labels, **params)
                out[i, layer, k, 0] = result[0]
                out[i, layer, k, 1] = result[1]

    def _clean_means(self, epoch: int, K: int) -> list:
        """Draws 0..K-1 of the clean means of every hidden layer at ``epoch``: a list over draws
        of lists over layers of (S, N, width) tensors, computed once per epoch (a cache that
        :meth:`record` drops after the epoch)."""
        cached = getattr(self, "_noisy_means", None)
        if cached is None or cached[0] != epoch:
            self._noisy_means = cached = (epoch, [])
        have = cached[1]
        while len(have) < K:
            have.append(self.trainer.evaluate_noisy_means(len(have))[0])
        return have

    def _record_measures(self, epoch: int, layers, labels) -> None:
        """Geometric measures (``config.measures``) of every layer of the networks that have not
        diverged, at the epochs of the main schedule; others stay NaN."""
        if epoch not in self._measure_epochs:
            return
        ok = np.flatnonzero(self.diverged < 0)  # record() has just marked this epoch's divergences
        if not ok.size:
            return
        i = self.index[epoch]
        y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        for layer, a in enumerate(layers):
            a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
            if ok.size < a.shape[0]:
                a = a[ok]
            for name in self.config.measures:
                self.measures[name][i, layer, ok] = get_measure(name).function(a, y)

    def state(self) -> dict:
        return {
            "mi": self.mi, "history": self.history, "layer_max": self.layer_max, "diverged": self.diverged,
            "network_max": self.network_max, "activations": self.activations, "recorded": sorted(self.recorded),
        } | ({"measures": self.measures} if self.config.measures else {})  # older checkpoints stay loadable

    def load_state(self, state: dict) -> None:
        self.mi = state["mi"]
        self.history = state["history"]
        self.layer_max = state["layer_max"]
        self.diverged = state["diverged"]
        self.network_max = state["network_max"]
        self.activations = state["activations"]
        self.recorded = set(state["recorded"])
        if self.config.measures:
            self.measures = state["measures"]

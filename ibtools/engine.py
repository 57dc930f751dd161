"""Train the networks of a :class:`~ibtools.config.TrainConfig` and record their information
planes online, with checkpoints that survive interruption.

At every scheduled epoch all inputs of the task (4096 for the 12-bit task) go through every
network once; the chosen estimators run on every layer (the softmax output included) and only
their values, the losses and the accuracies are kept. Raw activity is kept only at the epochs the config asks for, so memory does
not grow with the number of epochs.
"""

from __future__ import annotations

import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .config import TrainConfig
from .data import Dataset
from .estimators import CLEAN_MEANS_ESTIMATORS, get_estimator
from .geometry import get_measure
from .results import RunResult, atomic_write_bytes, provenance
from .trainer import EnsembleTrainer
from .validation import check_int, parse_int

__all__ = ["train", "Recorder", "set_threads", "default_threads", "THREADS_ENV", "mixture_seed"]


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
    (:data:`~ibtools.estimators.CLEAN_MEANS_ESTIMATORS`), which get the clean means of the
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
        return epoch in self.index and epoch not in self.recorded

    @torch.no_grad()
    def record(self, epoch: int) -> None:
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
                params = spec.kwargs
                if spec.name == "max" and params.get("max_value") == "network":
                    params["max_value"] = self.network_max[ok]
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
        (:data:`~ibtools.estimators.CLEAN_MEANS_ESTIMATORS`: ``"mixture"``, the Monte Carlo
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
        :func:`ibtools.estimators.mixture.mixture_information`); the first hidden layer's are
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


#: Version of the checkpoint layout. Checkpoints are ``.npz`` files read with
#: ``allow_pickle=False``: plain arrays plus one JSON header, never pickled objects.
CHECKPOINT_FORMAT = "ibtools-checkpoint-2"


def _encode(obj, arrays: dict[str, np.ndarray]):
    """JSON-able description of ``obj`` whose tensors and arrays go into ``arrays``."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("checkpoints hold plain numeric arrays only")
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"array": name}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"list": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, (set, frozenset)):
        return {"set": [_encode(v, arrays) for v in sorted(obj)]}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def _decode(node, arrays):
    kind, value = next(iter(node.items()))
    if kind == "array":
        return arrays[value]
    if kind == "dict":
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value}
    if kind == "list":
        return [_decode(v, arrays) for v in value]
    if kind == "set":
        return {_decode(v, arrays) for v in value}
    if kind == "value":
        return value
    raise ValueError(f"unknown node {kind!r}")


def _same_layout(template, loaded, where: str) -> None:
    """Raise ValueError unless ``loaded`` has the structure, shapes and dtypes of ``template``
    (the state of a fresh run of the same configuration)."""
    if isinstance(template, torch.Tensor):
        template = template.detach().cpu().numpy()
    if isinstance(template, np.ndarray):
        if not isinstance(loaded, np.ndarray) or loaded.shape != template.shape or loaded.dtype != template.dtype:
            got = f"{loaded.shape} {loaded.dtype}" if isinstance(loaded, np.ndarray) else type(loaded).__name__
            raise ValueError(f"{where} should be an array {template.shape} {template.dtype}, got {got}")
    elif isinstance(template, dict):
        if not isinstance(loaded, dict) or set(loaded) != set(template):
            raise ValueError(f"{where} does not hold the expected entries")
        for k in template:
            _same_layout(template[k], loaded[k], f"{where}[{k!r}]")
    elif isinstance(template, bool) or not isinstance(template, (int, float)):
        if type(loaded) is not type(template):
            raise ValueError(f"{where} should be a {type(template).__name__}, got {type(loaded).__name__}")
    elif isinstance(loaded, bool) or not isinstance(loaded, (int, float)):
        raise ValueError(f"{where} should be a number, got {type(loaded).__name__}")


def _save_checkpoint(path: Path, config: TrainConfig, trainer: EnsembleTrainer, recorder: Recorder,
                     epoch_loss: torch.Tensor, elapsed: float) -> bool:
    """Write a checkpoint atomically. A failed write (disk full, no permission) warns and
    returns False: training goes on, and only the resume point is older."""
    arrays: dict[str, np.ndarray] = {}
    state = {
        "trainer": _encode(trainer.state_dict(), arrays),
        "recorder": _encode(recorder.state(), arrays),
        "epoch_loss": _encode(epoch_loss[: trainer.epoch], arrays),
    }
    header = {"format": CHECKPOINT_FORMAT, "config_key": config.key(), "elapsed": float(elapsed), "state": state}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        warnings.warn(f"could not write checkpoint {path} ({exc.strerror or exc}); training goes on, "
                      "but an interruption now would resume from an older checkpoint or the start",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


def _load_checkpoint(path: Path, config: TrainConfig, trainer: EnsembleTrainer, recorder: Recorder):
    """The state stored in checkpoint ``path``, or None (with a warning) if it cannot be used.

    Nothing in the file is executed: it is opened as an ``.npz`` with ``allow_pickle=False``
    (a pickle, such as a checkpoint written by ``torch.save`` in earlier versions, is refused
    unread), its JSON header is checked for the format and the configuration's key before any
    array is read, and every array must have the shape and dtype of a fresh run's state.
    """
    def ignore(why: str):
        warnings.warn(f"ignoring checkpoint {path}: {why}; training starts from the beginning "
                      "(the file is overwritten by the next checkpoint)", UserWarning, stacklevel=3)
        return None

    old_format = "it is not an ibtools checkpoint of this version (older, pickled checkpoints are never loaded)"
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":  # an .npz is a zip file; anything else is refused unread
                return ignore(old_format)
        with np.load(path, allow_pickle=False) as z:
            if "header" not in z.files:
                return ignore(old_format)
            header = json.loads(z["header"].tobytes().decode())
            if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
                return ignore(f"it is not a {CHECKPOINT_FORMAT} file")
            if header.get("config_key") != config.key():
                return ignore("it belongs to another configuration")
            arrays = {k: z[k] for k in z.files if k != "header"}
        nodes = header["state"]
        state = {k: _decode(nodes[k], arrays) for k in ("trainer", "recorder", "epoch_loss")}
        state["elapsed"] = float(header["elapsed"])
        _same_layout(trainer.state_dict(), state["trainer"], "trainer state")
        fixed = {k: v for k, v in recorder.state().items() if k not in ("activations", "recorded")}
        _same_layout(fixed, {k: state["recorder"].get(k) for k in fixed}, "recorder state")
        epochs = int(state["trainer"]["epoch"])
        if not 0 <= epochs <= config.epochs:
            raise ValueError(f"stored epoch {epochs} is outside 0..{config.epochs}")
        loss = state["epoch_loss"]
        if not (isinstance(loss, np.ndarray) and loss.shape == (epochs, trainer.S) and loss.dtype == np.float32):
            raise ValueError("epoch_loss does not fit the stored epoch")
        state["recorder"]["recorded"] = set(int(e) for e in state["recorder"]["recorded"])
        acts = state["recorder"]["activations"]
        if not set(acts) <= recorder.activation_epochs:
            raise ValueError("activations recorded at unscheduled epochs")
        for layers in acts.values():
            if len(layers) != config.n_layers or not all(
                    isinstance(a, np.ndarray) and a.ndim == 3 and a.shape[0] == trainer.S and a.dtype == np.float32
                    for a in layers):
                raise ValueError("stored activations do not fit the configuration")
        state["epoch_loss"] = torch.from_numpy(loss)
        return state
    except Exception as exc:  # unreadable or inconsistent: start over rather than trust it
        return ignore(f"it is unreadable or inconsistent ({type(exc).__name__}: {exc})")


def train(
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 120.0,
    progress: bool | tqdm = True,
    dataset: Dataset | None = None,
    on_epoch: Callable[[int], None] | None = None,
    stop_at: int | None = None,
) -> RunResult:
    """Train ``config``'s networks (one per seed, all at once) and record their information planes.

    Parameters
    ----------
    config : TrainConfig
    checkpoint : path, optional
        File for periodic checkpoints. If it exists and belongs to the same configuration,
        training resumes from it (identical numbers to an uninterrupted run); it is written every
        ``checkpoint_every`` seconds and on Ctrl-C, atomically, and removed when the run ends.
    checkpoint_every : float
        Seconds between checkpoints.
    progress : bool or tqdm
        Show a progress bar over epochs (True), nothing (False), or advance the given bar by the
        number of network-epochs done.
    dataset : Dataset, optional
        Defaults to the config's task (``config.task``); one given here replaces it but is not
        part of the config's key, so do not store such a run in a sweep cache.
    on_epoch : callable, optional
        Called with the number of epochs completed after every epoch (tests use it to interrupt).
    stop_at : int, optional
        Stop after this many epochs instead of ``config.epochs`` (values scheduled later stay
        NaN). Used to recompute the beginning of a long run cheaply.

    Returns
    -------
    RunResult

    Warns
    -----
    RuntimeWarning
        If some networks diverged (non-finite loss or activity); they are listed in
        ``result.diverged`` and their later values are NaN.
    """
    if stop_at is not None and not (isinstance(stop_at, int) and 0 <= stop_at <= config.epochs):
        raise ValueError(f"stop_at must be an integer between 0 and epochs={config.epochs}, got {stop_at!r}")
    last_epoch = config.epochs if stop_at is None else stop_at
    trainer = EnsembleTrainer(config, dataset)
    recorder = Recorder(config, trainer)
    epoch_loss = torch.full((config.epochs, trainer.S), float("nan"), device=trainer.device)
    elapsed_before = 0.0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt, config, trainer, recorder)
        if state is not None:
            trainer.load_state_dict({k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                                     for k, v in state["trainer"].items()})
            recorder.load_state(state["recorder"])
            epoch_loss[: trainer.epoch] = state["epoch_loss"].to(trainer.device)
            elapsed_before = float(state["elapsed"])

    own_bar = progress is True
    bar = tqdm(total=last_epoch, initial=trainer.epoch, unit="epoch", desc=f"{config.activation} x{trainer.S}",
               file=sys.stderr, dynamic_ncols=True, leave=False) if own_bar else (progress or None)
    started = time.monotonic()
    last_save = started
    try:
        while True:
            e = trainer.epoch
            if recorder.is_due(e):
                recorder.record(e)
            if e >= last_epoch:
                break
            epoch_loss[e] = trainer.train_epoch()
            if bar is not None:
                bar.update(1 if own_bar else trainer.S)
            if on_epoch is not None:
                on_epoch(trainer.epoch)
            if ckpt is not None and time.monotonic() - last_save >= checkpoint_every:
                _save_checkpoint(ckpt, config, trainer, recorder, epoch_loss, elapsed_before + time.monotonic() - started)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        if ckpt is not None:
            _save_checkpoint(ckpt, config, trainer, recorder, epoch_loss, elapsed_before + time.monotonic() - started)
        raise
    finally:
        if own_bar:
            bar.close()

    # float32 as stored: a huge but finite loss stays finite (float16 made > 65504 inf = "diverged")
    losses = epoch_loss.cpu().numpy().astype(np.float32)
    # a network whose training loss became non-finite between evaluations is diverged too
    bad = ~np.isfinite(losses[:last_epoch])
    for k in np.flatnonzero(bad.any(0) & (recorder.diverged < 0)):
        recorder.diverged[k] = int(np.argmax(bad[:, k]))
    meta = provenance()
    meta.update(wall_time_s=round(elapsed_before + time.monotonic() - started, 3), device=config.device,
                threads=torch.get_num_threads(),
                data=trainer.dataset.name, data_checksum=trainer.dataset.checksum)
    result = RunResult(
        config=config, epochs=recorder.epochs, mi=recorder.mi, history=recorder.history,
        epoch_loss=losses, layer_max=recorder.layer_max, diverged=recorder.diverged,
        activations=recorder.activations, meta=meta, measures=recorder.measures,
    )
    if ckpt is not None and stop_at is None:
        ckpt.unlink(missing_ok=True)
    diverged = result.diverged_seeds()
    if diverged:
        warnings.warn(
            f"{len(diverged)} of {trainer.S} networks diverged (seed: first epoch seen): {diverged}; "
            "their values after that are NaN",
            RuntimeWarning, stacklevel=2,
        )
    return result




def probe_seconds(config: TrainConfig, *, train_epochs: int = 3, probe_networks: int = 4) -> float:
    """A rough wall-time estimate for ``train(config)`` on this machine, from a short probe.

    Times ``train_epochs`` epochs of the full ensemble and one evaluation of every estimator on
    ``probe_networks`` networks, then extrapolates linearly (estimators cost the same per
    network). Estimators of noisy networks' clean means (``mixture``, with its ``draws``, and
    ``mixture_bounds``) are timed as the Recorder runs them, on the hidden layers only. Takes a
    few seconds; the estimate is rough (within a factor of about 1.5).
    """
    trainer = EnsembleTrainer(config)
    trainer.train_epoch()  # warm-up
    t0 = time.perf_counter()
    for _ in range(train_epochs):
        trainer.train_epoch()
    per_epoch = (time.perf_counter() - t0) / train_epochs
    small = config.replace(seeds=config.seeds[:probe_networks])
    probe = Recorder(small, EnsembleTrainer(small))
    acts, _ = probe.trainer.evaluate()
    y = probe.trainer.y_all
    total = per_epoch * config.epochs
    scale = len(config.seeds) / len(small.seeds)
    ok = np.arange(len(small.seeds))
    for spec in config.estimators:
        if spec.name in CLEAN_MEANS_ESTIMATORS:  # hidden layers' clean means, K draws of them
            t0 = time.perf_counter()
            probe._record_mixture(int(probe.epochs[0]), spec, ok, y)
            total += (time.perf_counter() - t0) * scale * len(config.estimator_schedule(spec))
            continue
        params = spec.kwargs
        if spec.name == "max" and params.get("max_value") == "network":
            params["max_value"] = None
        fn = get_estimator(spec.name)
        t0 = time.perf_counter()
        for a in acts:
            fn(a, y, **params)
        total += (time.perf_counter() - t0) * scale * len(config.estimator_schedule(spec))
    return total

"""Frozen configurations of training runs and of the estimators recorded during them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .activations import get_activation
from .data import SPLIT_KINDS
from .estimators import CLEAN_MEANS_ESTIMATORS, check_params, check_values, estimator_names
from .geometry import check_measure_names
from .networks import INIT_SCHEMES
from .perturb import check_noise_std, check_quantize_bits
from .tasks import DEFAULT_TASK, canonical_task, task_info
from .validation import check_int

__all__ = ["EstimatorSpec", "TrainConfig", "log_schedule", "DEVICES", "BACKENDS"]

DEVICES = ("cpu", "cuda")
#: Training engines: the batched torch engine (the reference) and the fused numba kernel.
BACKENDS = ("torch", "fused")


def log_schedule(epochs: int, n_points: int) -> np.ndarray:
    """Epochs at which to record, log-spaced as in the paper's code.

    ``unique(int(logspace(0, log2(epochs), n_points, base=2))) - 1``: every epoch at first, then
    ever sparser, from 0 (the initialization) to ``epochs - 1``. Epoch ``e`` means the state
    after ``e`` epochs of training. For 8000 epochs and 400 points this gives the paper's 274
    distinct epochs (0..43 every epoch, ..., 7820, 7999).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if n_points < 1:
        raise ValueError(f"n_points must be >= 1, got {n_points}")
    points = np.logspace(0.0, np.log2(epochs), n_points, base=2.0)
    return np.unique(points.astype(np.int64)) - 1


def _check_number(value, name: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonnegative and v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def _plain(value):
    """JSON-friendly, hashable-by-content form of a parameter value."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"estimator parameters must be numbers, strings, booleans or None; got {value!r}")


@dataclass(frozen=True)
class EstimatorSpec:
    """An estimator to record during training, with its parameters and schedule.

    Attributes
    ----------
    name : str
        Registry name (``"fixed"``, ``"binsize"``, ``"max"``, ``"ebab"``, ``"kde"``, ``"akde"``...).
    params : tuple of (str, value) pairs
        Keyword arguments of the estimator, sorted by name. Use :meth:`make` to build from
        keywords. For ``"max"``, ``max_value="network"`` means the largest activity of any layer
        of the same network seen so far in training (the network-wide range the paper criticizes;
        resolved at every recorded epoch by :func:`ibtools.estimators.resolve_params`).
    n_points : int, optional
        Log-spaced points of this estimator's own, sparser schedule (see :func:`log_schedule`);
        None records it at every epoch of the run's schedule. Use it for the expensive KDE.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    n_points: int | None = None

    def __post_init__(self):
        if self.name not in estimator_names():
            raise ValueError(f"unknown estimator {self.name!r}; valid estimators are: {', '.join(estimator_names())}")
        params = tuple(sorted((str(k), _plain(v)) for k, v in dict(self.params).items()))
        check_params(self.name, dict(params))
        check_values(self.name, dict(params))  # impossible values fail here, not at the first recorded epoch
        object.__setattr__(self, "params", params)
        if self.n_points is not None:
            object.__setattr__(self, "n_points", check_int(self.n_points, "n_points", 1))

    @classmethod
    def make(cls, name: str, n_points: int | None = None, **params) -> "EstimatorSpec":
        """``EstimatorSpec.make("akde", alpha=0.01, n_points=60)``."""
        return cls(name, tuple(params.items()), n_points)

    @classmethod
    def parse(cls, text: str) -> "EstimatorSpec":
        """Parse the command-line form ``name[:key=value,...]``, e.g. ``akde:alpha=0.01,n_points=60``."""
        name, _, rest = text.partition(":")
        params: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, eq, raw = item.partition("=")
            if not eq:
                raise ValueError(f"estimator option {item!r} in {text!r} must look like key=value")
            params[key.strip()] = _parse_value(raw.strip())
        n_points = params.pop("n_points", None)
        return cls.make(name.strip(), n_points=n_points, **params)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def label(self) -> str:
        """Name used in result tables: ``"ebab"`` or ``"akde(alpha=0.01)"``."""
        if not self.params:
            return self.name
        return f"{self.name}({','.join(f'{k}={v}' for k, v in self.params)})"


def _parse_value(raw: str):
    low = raw.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run of one or more networks (one per seed).

    Defaults follow the paper's code (``ivansche/adaptive_estimators``).

    Attributes
    ----------
    hidden : tuple of int
        Hidden-layer widths; the task's input layer (12 units for the 12-bit task, 40 for
        MNIST-1D) and a softmax output with one unit per class (2, resp. 10) are added around
        them (see :attr:`widths`).
    activation : str
        Hidden-layer activation (see :data:`ibtools.activations.ACTIVATIONS`).
    init : str
        Weight initialization (see :data:`ibtools.networks.INIT_SCHEMES`).
    lr : float
        Adam learning rate (betas 0.9, 0.999, eps 1e-8, the defaults of TensorFlow and PyTorch).
    batch_size : int
        Minibatch size; the last batch of an epoch holds the remainder (205 of 3277 patterns).
    epochs : int
        Epochs of training.
    l2 : float
        L2 strength lambda on hidden-layer weights (not biases, not the output layer): the loss
        is mean cross-entropy + lambda/2 * sum ||W||^2, which gives the paper code's gradients
        (it adds the penalty to every example's loss and sums over the batch).
    split : str
        ``"unshuffled"`` (the paper's code: first 80 % of patterns train) or ``"stratified"``.
    train_fraction : float
        Share of the task's samples used for training (of the 4096 patterns of the 12-bit task).
    split_seed : int
        Seed of the stratified split (ignored for ``"unshuffled"``).
    shuffle_batches : bool
        Reshuffle the training set every epoch (seeded per network and epoch). The paper's code
        uses one fixed order (False).
    seeds : tuple of int
        One network per seed, trained together as one batched model.
    n_log_points : int
        Points of the log-spaced recording schedule (400 gives 274 epochs of 8000).
    estimators : tuple of EstimatorSpec
        What to record at each scheduled epoch, on every layer including the softmax output.
    record_activations : tuple of int, or "all"
        Epochs at which to keep the raw activity of every layer (for figures); "all" keeps every
        scheduled epoch. Memory grows with this, so keep it short for many seeds.
    device : str
        ``"cpu"`` or ``"cuda"``. Not part of a run's identity: training agrees to float32 rounding
        (``tests/test_cuda.py``), but per-network EBAB values, which jump when the activity
        moves by rounding, differed by up to 0.29 bits after 40 epochs on an H200
        (``benchmarks/README.md``, *The CUDA path*). On CUDA ``ensemble_invariant`` does not
        give the same bits in every ensemble (cuBLAS picks kernels by the whole product's shape).
    ensemble_invariant : bool
        Arithmetic under which every network's numbers are bit for bit the same whatever other
        networks share its ensemble (and wherever it sits in it): each minibatch is padded with
        masked zero samples to a multiple of 32, so every network's block of every tensor starts
        64-byte aligned and no element takes a vectorized kernel's scalar tail (see
        :mod:`ibtools.trainer`). Off by default: the stored study was computed without it, and
        with it almost every network's numbers differ from the stored ones by float rounding.
        Left out of :meth:`key` and :meth:`to_dict` when False.
    quantize_bits : int or None
        Quantize every hidden layer's activity to ``2**quantize_bits`` levels (1 to 16 bits)
        during training and evaluation, with straight-through gradients (after Lorenzen, Igel &
        Nielsen 2022), so that I(X;T) of a hidden layer is exactly the entropy of its distinct
        rows. tanh and sigmoid use their natural range, other activations a per-layer range
        tracked during training (see :mod:`ibtools.perturb`). None (default): no quantization;
        left out of :meth:`key` and :meth:`to_dict` then.
    noise_std : float
        Standard deviation of the Gaussian noise N(0, noise_std²) added to every hidden unit
        after the activation, during training and evaluation (after Goldfeld et al. 2019), so
        that I(X;T) is finite; each network's noise comes from its own generator seeded by
        (seed, epoch, step) (see :mod:`ibtools.perturb`). 0 (default): no noise; left out of
        :meth:`key` and :meth:`to_dict` then. A ``"mixture"`` or ``"mixture_bounds"`` estimator
        needs ``noise_std > 0`` and its own ``noise_std`` equal to this one (the Recorder gives
        it the clean means; see
        :class:`ibtools.engine.Recorder`). Cannot be combined with ``quantize_bits``: noise
        after quantization makes the activity continuous again (no exact counting), noise
        before it makes a discrete stochastic layer that neither the counting nor the
        Gaussian-mixture estimate covers.
    measures : tuple of str
        Geometric measures of every layer to record at every epoch of the main schedule
        (:meth:`schedule`), by name (see :data:`ibtools.geometry.MEASURES`), e.g.
        ``("within_between", "distinct_rows")``; stored in ``RunResult.measures``. Empty (the
        default) records none. Left out of :meth:`key` and :meth:`to_dict` when empty.
    nested_schedules : bool
        Draw the schedule of every estimator with ``n_points`` from the run's main schedule
        (:func:`ibtools.schedules.nested_schedule`), so that all settings share epochs: a sparse
        schedule is a subset of every denser one. False (default, the stored study): each
        estimator has its own log schedule, not nested. Left out of :meth:`key` and
        :meth:`to_dict` when False.
    task : str
        The data set, by its name in :mod:`ibtools.tasks`: ``"tishby"`` (the 12-bit task, the
        default), ``"mnist1d"``, ``"digits"``, or with options, ``"mnist1d:num_samples=10000"``;
        stored in its canonical form. The network's input and output widths follow from it.
        Left out of :meth:`key` and :meth:`to_dict` when it is the default, so every result
        computed before the option keeps its key.
    backend : str
        ``"torch"`` (default): the batched torch engine of :mod:`ibtools.trainer`, with which the
        stored study was computed. ``"fused"``: the numba kernel of :mod:`ibtools.fused`, which
        trains each network for a whole epoch in one compiled call (CPU only; activations it
        implements only); it agrees with the torch engine to float32 rounding, not bit for bit,
        and is ensemble-invariant by construction. Left out of :meth:`key` and :meth:`to_dict`
        when ``"torch"``.
    """

    hidden: tuple[int, ...] = (10, 7, 5, 4, 3)
    activation: str = "relu"
    init: str = "paper"
    lr: float = 4e-4
    batch_size: int = 256
    epochs: int = 8000
    l2: float = 0.0
    split: str = "unshuffled"
    train_fraction: float = 0.8
    split_seed: int = 0
    shuffle_batches: bool = False
    seeds: tuple[int, ...] = (0,)
    n_log_points: int = 400
    estimators: tuple[EstimatorSpec, ...] = (EstimatorSpec("ebab"),)
    record_activations: tuple[int, ...] | str = ()
    device: str = field(default="cpu", compare=False)
    ensemble_invariant: bool = False
    quantize_bits: int | None = None
    noise_std: float = 0.0
    measures: tuple[str, ...] = ()
    nested_schedules: bool = False
    task: str = DEFAULT_TASK
    backend: str = "torch"

    def __post_init__(self):
        try:
            hidden = tuple(self.hidden)
        except TypeError:
            raise ValueError(f"hidden must be a sequence of widths, got {self.hidden!r}") from None
        if not hidden:
            raise ValueError("hidden needs at least one hidden layer width")
        object.__setattr__(self, "hidden", tuple(check_int(w, "every hidden width", 1) for w in hidden))
        get_activation(self.activation)
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"unknown init {self.init!r}; choose one of {INIT_SCHEMES}")
        object.__setattr__(self, "lr", _check_number(self.lr, "lr", positive=True))
        object.__setattr__(self, "batch_size", check_int(self.batch_size, "batch_size", 1))
        object.__setattr__(self, "epochs", check_int(self.epochs, "epochs", 1))
        object.__setattr__(self, "l2", _check_number(self.l2, "l2", nonnegative=True))
        if self.split not in SPLIT_KINDS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {SPLIT_KINDS}")
        frac = _check_number(self.train_fraction, "train_fraction")
        if not 0 < frac < 1:
            raise ValueError(f"train_fraction must be strictly between 0 and 1, got {self.train_fraction!r}")
        object.__setattr__(self, "train_fraction", frac)
        object.__setattr__(self, "split_seed", check_int(self.split_seed, "split_seed", 0))
        if not isinstance(self.shuffle_batches, bool):
            raise ValueError(f"shuffle_batches must be True or False, got {self.shuffle_batches!r}")
        try:
            seeds = tuple(self.seeds)
        except TypeError:
            raise ValueError(f"seeds must be a sequence of integers, got {self.seeds!r}") from None
        seeds = tuple(check_int(s, "every seed", 0) for s in seeds)
        if not seeds:
            raise ValueError("seeds must hold at least one seed")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "n_log_points", check_int(self.n_log_points, "n_log_points", 1))
        estimators = tuple(self.estimators)
        for spec in estimators:
            if not isinstance(spec, EstimatorSpec):
                raise ValueError(f"estimators must be EstimatorSpec objects, got {spec!r}")
        labels = [s.label for s in estimators]
        if len(set(labels)) != len(labels):
            raise ValueError(f"estimators must be distinct, got {labels}")
        object.__setattr__(self, "estimators", estimators)
        rec = self.record_activations
        if isinstance(rec, str):
            if rec != "all":
                raise ValueError(f"record_activations must be a tuple of epochs or 'all', got {rec!r}")
        else:
            rec = tuple(sorted({check_int(e, "every record_activations epoch", 0) for e in rec}))
            if rec and rec[-1] > self.epochs:
                raise ValueError(f"record_activations epochs must be <= epochs ({self.epochs}), got {rec[-1]}")
            object.__setattr__(self, "record_activations", rec)
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if not isinstance(self.ensemble_invariant, bool):
            raise ValueError(f"ensemble_invariant must be True or False, got {self.ensemble_invariant!r}")
        object.__setattr__(self, "quantize_bits", check_quantize_bits(self.quantize_bits))
        object.__setattr__(self, "noise_std", check_noise_std(self.noise_std))
        if self.quantize_bits is not None and self.noise_std > 0:
            raise ValueError(f"quantize_bits ({self.quantize_bits}) and noise_std ({self.noise_std}) cannot both be "
                             "set: a quantized network is for exact MI by counting distinct rows, which noise would "
                             "break; choose one")
        for spec in estimators:  # the mixture estimate and bounds need the network's own noise level
            on_means = spec.name in CLEAN_MEANS_ESTIMATORS
            sigma = spec.kwargs.get("noise_std") if on_means else None
            if on_means and (self.noise_std == 0 or float(sigma) != self.noise_std):
                raise ValueError(f"estimator {spec.label} needs a noisy network with the same noise: its noise_std "
                                 f"({sigma}) must equal the config's noise_std ({self.noise_std}, 0 = no noise)")
        object.__setattr__(self, "measures", check_measure_names(self.measures))
        if not isinstance(self.nested_schedules, bool):
            raise ValueError(f"nested_schedules must be True or False, got {self.nested_schedules!r}")
        object.__setattr__(self, "task", canonical_task(self.task))  # ValueError lists the valid tasks
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "fused":
            if self.device != "cpu":
                raise ValueError(f"backend 'fused' runs on the CPU only; got device {self.device!r} "
                                 "(use backend='torch' on a GPU)")
            from .fused import check_activation  # imports numba only when asked for

            check_activation(self.activation)
            if self.quantize_bits is not None or self.noise_std > 0:
                raise ValueError("backend 'fused' trains plain networks only; quantize_bits and noise_std need "
                                 "backend='torch'")

    # -- derived quantities -----------------------------------------------------------------

    @property
    def widths(self) -> tuple[int, ...]:
        """All layer widths: the task's input features, the hidden widths, and one softmax unit per
        class of the task (12, hidden, 2 for the 12-bit task; 40, hidden, 10 for MNIST-1D)."""
        info = task_info(self.task)
        return (info.n_features, *self.hidden, info.n_classes)

    @property
    def n_layers(self) -> int:
        """Layers whose information is recorded: every hidden layer plus the softmax output."""
        return len(self.hidden) + 1

    def schedule(self) -> np.ndarray:
        """The run's recording epochs (see :func:`log_schedule`)."""
        return log_schedule(self.epochs, self.n_log_points)

    def estimator_schedule(self, spec: EstimatorSpec) -> np.ndarray:
        """Epochs at which ``spec`` is recorded: the run's schedule, or for a spec with
        ``n_points`` its own log schedule (``nested_schedules=False``, the stored study) or that
        many epochs drawn from the run's schedule (``nested_schedules=True``, see
        :mod:`ibtools.schedules`)."""
        if not spec.n_points:
            return self.schedule()
        if self.nested_schedules:
            from .schedules import nested_schedule

            return nested_schedule(self.schedule(), max(spec.n_points, 2))
        return log_schedule(self.epochs, spec.n_points)

    def activation_epochs(self) -> np.ndarray:
        if self.record_activations == "all":
            return self.schedule()
        return np.asarray(self.record_activations, dtype=np.int64)

    def evaluation_epochs(self) -> np.ndarray:
        """Every epoch at which the networks are evaluated on all inputs: the union of all
        estimator schedules and the activation epochs."""
        parts = [self.schedule(), self.activation_epochs()]
        parts += [self.estimator_schedule(s) for s in self.estimators]
        return np.unique(np.concatenate(parts)).astype(np.int64)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- identity -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible form (lists for tuples); :meth:`from_dict` inverts it."""
        d = dataclasses.asdict(self)
        if not d["ensemble_invariant"]:  # configs from before the option keep their keys
            del d["ensemble_invariant"]
        if d["quantize_bits"] is None:
            del d["quantize_bits"]
        if d["noise_std"] == 0:
            del d["noise_std"]
        if not d["measures"]:  # likewise for configs from before geometric measures
            del d["measures"]
        if not d["nested_schedules"]:
            del d["nested_schedules"]
        if d["task"] == DEFAULT_TASK:  # likewise: results of the 12-bit task keep their keys
            del d["task"]
        if d["backend"] == "torch":
            del d["backend"]
        d["estimators"] = [{"name": s.name, "params": dict(s.params), "n_points": s.n_points} for s in self.estimators]
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(sorted(unknown))}")
        if "estimators" in d:
            d["estimators"] = tuple(
                EstimatorSpec.make(e["name"], e.get("n_points"), **e.get("params", {})) for e in d["estimators"]
            )
        for key in ("hidden", "seeds"):
            if key in d:
                d[key] = tuple(d[key])
        if isinstance(d.get("record_activations"), list):
            d["record_activations"] = tuple(d["record_activations"])
        return cls(**d)

    def key(self) -> str:
        """Content hash identifying the results of this config (device excluded)."""
        d = self.to_dict()
        d.pop("device")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

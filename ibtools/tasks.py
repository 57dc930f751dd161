"""A registry of classification tasks: the 12-bit task, MNIST-1D and scikit-learn's 8x8 digits.

Every task is generated offline, deterministically, and checked on generation against a recorded
checksum of its arrays; a mismatch is an error (a different version of a generator produced
different data, and results computed on it would not be comparable). All tasks share one
interface, :class:`~ibtools.data.Dataset`: float32 inputs ``X`` (n_samples, n_features), int64
labels ``y`` in ``0 .. n_classes - 1``, H(Y) in bits (:meth:`~ibtools.data.Dataset.label_entropy`)
and the project's splits (:func:`~ibtools.data.make_split`).

A task is named by a short text, as :class:`~ibtools.config.TrainConfig` stores it: ``"tishby"``,
``"mnist1d"``, ``"digits"``, or with options ``"mnist1d:num_samples=10000"``. The canonical form
(:func:`canonical_task`) leaves out options at their defaults, so a task has one name.

========== ======== ======== ========= ==================================================
name       samples  features classes   source
========== ======== ======== ========= ==================================================
tishby     4096     12       2         Shwartz-Ziv & Tishby (2017), all 12-bit patterns
mnist1d    5000     40       10        Greydanus (2020), ``mnist1d`` 0.0.2.post1's generator
digits     1797     64       10        scikit-learn's bundled ``load_digits`` (8 x 8 pixels)
========== ======== ======== ========= ==================================================

Splits. The project's ``"unshuffled"`` split trains on the first ``round(train_fraction * n)``
samples. MNIST-1D's generator shuffles its samples and calls the first 80 % train, the rest test;
the arrays here are its train part followed by its test part, so the ``"unshuffled"`` split at the
default ``train_fraction = 0.8`` is exactly MNIST-1D's own published train/test split (and, since
its order is already random, a class-balanced one to within a few samples). ``"stratified"``
works as for any task. The digits keep scikit-learn's order (the original file's, writer by
writer), so their unshuffled split tests on digits of writers not seen in training.

Why I(X;T) has a ceiling. With N distinct inputs, each equally likely, H(X) = log2 N bits: 12 for
the 12-bit task, 12.29 for MNIST-1D's 5000 samples, 10.81 for the 1797 digits (every input
distinct in all three). No estimate of I(X;T) exceeds it.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .data import Dataset, _tishby_arrays
from .validation import parse_int

__all__ = [
    "TASKS",
    "DEFAULT_TASK",
    "TaskInfo",
    "task_names",
    "parse_task",
    "canonical_task",
    "task_info",
    "load_task",
    "array_checksum",
    "ChecksumMismatchError",
    "MNIST1D_CHECKSUMS",
]

#: The task of the paper and of every stored result.
DEFAULT_TASK = "tishby"


class ChecksumMismatchError(RuntimeError):
    """Generated arrays differ from the recorded checksum (a different generator version?)."""


def array_checksum(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 (first 16 hex digits) of a data set's inputs and labels.

    The inputs are hashed after rounding to multiples of ``2**-16`` (about 1.5e-5), so that a
    last-bit difference of floating-point arithmetic between machines or library builds does not
    change the checksum, while any real change of the data does; the labels and the shape are
    hashed exactly.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    h = hashlib.sha256()
    h.update(np.asarray(X.shape, dtype=np.int64).tobytes())
    h.update(np.rint(X.astype(np.float64) * 2.0**16).astype(np.int64).tobytes())
    h.update(y.astype(np.int64).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class TaskInfo:
    """What is known about a task before generating it.

    Attributes
    ----------
    name : str
    n_features, n_classes : int
        Input width and number of classes: the widths of a network's input and softmax layers.
    description : str
    options : tuple of (str, int) pairs
        Options the task accepts, with their defaults (``(("num_samples", 5000),)`` for MNIST-1D);
        :attr:`defaults` gives them as a dict.
    generate : callable
        ``generate(**options) -> (X, y)``, the generator (no network access, no global state left
        changed).
    checksums : callable
        ``checksums(options) -> str or None``: the recorded :func:`array_checksum` of the data
        these options generate.
    """

    name: str
    n_features: int
    n_classes: int
    description: str
    options: tuple[tuple[str, int], ...] = ()
    generate: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
    checksums: Callable[[dict], str | None] | None = None

    @property
    def defaults(self) -> dict[str, int]:
        """The task's options with their defaults, as a dict (``{"num_samples": 5000}`` for MNIST-1D)."""
        return dict(self.options)


# -- generators ----------------------------------------------------------------------------------


def _tishby() -> tuple[np.ndarray, np.ndarray]:
    return _tishby_arrays()  # checked against the published var_u.mat by ibtools.data


#: Checksums (:func:`array_checksum`) of MNIST-1D as generated by ``mnist1d`` 0.0.2.post1 with its
#: default arguments and ``num_samples`` set; only these sizes can be used, since only their data
#: can be verified. To add a size, generate it, compare it with MNIST-1D's description and record
#: its checksum here.
MNIST1D_CHECKSUMS = {
    2000: "d562274bdfd095fd",
    5000: "3eafe12f65ae07ab",
    10000: "28ace28798207b52",
}


def _mnist1d(num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D from ``mnist1d.data.make_dataset``, never its ``get_dataset`` (which downloads).

    The generator seeds and draws from NumPy's and Python's global random states; both are saved
    before and restored after the call, so a caller's random streams are untouched.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:  # pragma: no cover - the package is an optional dependency
        raise ImportError("the mnist1d task needs the package mnist1d (pip install mnist1d==0.0.2.post1, "
                          "or ibtools-infoplane[tasks])") from None
    args = get_dataset_args()
    args.num_samples = int(num_samples)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    X = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)  # its train part, then its test part
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    return X, y


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (read from the package, no download), pixels / 16 in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - optional dependency
        raise ImportError("the digits task needs scikit-learn (pip install scikit-learn, "
                          "or ibtools-infoplane[tasks])") from None
    d = load_digits()
    return (np.asarray(d.data, dtype=np.float64) / 16.0).astype(np.float32), np.asarray(d.target, dtype=np.int64)


TASKS: dict[str, TaskInfo] = {
    "tishby": TaskInfo(
        "tishby", 12, 2,
        "the 12-bit task of Shwartz-Ziv & Tishby (2017): all 4096 binary patterns, 2 classes",
        generate=_tishby,
        checksums=lambda opts: "7a3b611465086b49",
    ),
    "mnist1d": TaskInfo(
        "mnist1d", 40, 10,
        "MNIST-1D (Greydanus 2020): 1-D signals of length 40 from 10 digit templates, "
        "generated by mnist1d 0.0.2.post1 (5000 samples: 4000 train, 1000 test)",
        options=(("num_samples", 5000),),
        generate=_mnist1d,
        checksums=lambda opts: MNIST1D_CHECKSUMS.get(opts["num_samples"]),
    ),
    "digits": TaskInfo(
        "digits", 64, 10,
        "scikit-learn's 8x8 handwritten digits (1797 samples, pixels scaled to [0, 1]), bundled, no download",
        generate=_digits,
        checksums=lambda opts: "f4dcc828fcebfd40",
    ),
}


def task_names() -> tuple[str, ...]:
    """Names of the registered tasks."""
    return tuple(TASKS)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown task {name!r}; valid tasks are: {', '.join(task_names())}")


def parse_task(text: str) -> tuple[str, dict[str, int]]:
    """``"mnist1d:num_samples=10000"`` -> ``("mnist1d", {"num_samples": 10000})`` (all options,
    defaults filled in).

    Raises
    ------
    ValueError
        For an unknown task (the message lists the valid ones), an unknown option, or a value that
        is not a positive integer or has no recorded checksum.
    """
    if not isinstance(text, str):
        raise ValueError(f"a task is named by a string such as {DEFAULT_TASK!r}, got {text!r}")
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if name not in TASKS:
        raise _unknown(name)
    info = TASKS[name]
    options = info.defaults
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"task option {item!r} in {text!r} must look like key=value")
        if key not in options:
            allowed = ", ".join(options) or "none"
            raise ValueError(f"task {name!r} has no option {key!r} (options: {allowed})")
        options[key] = parse_int(raw.strip(), f"task option {key}", 1)
    if name == "mnist1d" and options["num_samples"] not in MNIST1D_CHECKSUMS:
        raise ValueError(
            f"mnist1d:num_samples={options['num_samples']} has no recorded checksum, so its data cannot be "
            f"verified; sizes with one: {', '.join(map(str, MNIST1D_CHECKSUMS))} "
            "(see ibtools.tasks.MNIST1D_CHECKSUMS)")
    return name, options


def canonical_task(text: str) -> str:
    """The one name of a task: options at their defaults left out, the rest sorted by key."""
    name, options = parse_task(text)
    defaults = TASKS[name].defaults
    extra = [f"{k}={v}" for k, v in sorted(options.items()) if v != defaults[k]]
    return name + (":" + ",".join(extra) if extra else "")


def task_info(text: str) -> TaskInfo:
    """The :class:`TaskInfo` of a task name (options allowed and checked)."""
    return TASKS[parse_task(text)[0]]


@functools.lru_cache(maxsize=8)
def _arrays(name: str, options: tuple[tuple[str, int], ...]) -> tuple[np.ndarray, np.ndarray, str]:
    info = TASKS[name]
    opts = dict(options)
    X, y = info.generate(**opts)
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64)
    label = canonical_task(name + ":" + ",".join(f"{k}={v}" for k, v in options))
    if X.ndim != 2 or X.shape[1] != info.n_features or y.shape != (X.shape[0],):
        raise ChecksumMismatchError(f"task {label!r} generated inputs {X.shape} and labels {y.shape}; "
                                    f"expected (n, {info.n_features}) and (n,)")
    if y.min() != 0 or y.max() != info.n_classes - 1:
        raise ChecksumMismatchError(f"task {label!r} generated labels {y.min()}..{y.max()}; "
                                    f"expected 0..{info.n_classes - 1}")
    digest = array_checksum(X, y)
    expected = info.checksums(opts)
    if digest != expected:
        raise ChecksumMismatchError(
            f"task {label!r} generated data with checksum {digest}, but {expected} is recorded: the generator "
            "(e.g. another version of mnist1d or scikit-learn) made different data, and results computed on "
            "it would not be comparable with stored ones")
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y, digest


def load_task(text: str = DEFAULT_TASK) -> Dataset:
    """Generate (once per process) and verify a registered task.

    Parameters
    ----------
    text : str
        A task name, optionally with options: ``"tishby"`` (default), ``"mnist1d"``,
        ``"mnist1d:num_samples=10000"``, ``"digits"``.

    Returns
    -------
    Dataset
        Read-only float32 inputs and int64 labels; ``name`` is the canonical task name and
        ``checksum`` the verified :func:`array_checksum`.

    Raises
    ------
    ValueError
        For an unknown task or option (the message lists the valid ones).
    ChecksumMismatchError
        If the generated arrays do not match the recorded checksum.
    """
    name, options = parse_task(text)
    X, y, digest = _arrays(name, tuple(sorted(options.items())))
    return Dataset(X=X, y=y, name=canonical_task(text), checksum=digest)

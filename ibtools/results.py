"""Results of a training run: information-plane values, training history, provenance; saved as a
compressed ``.npz`` with a JSON sidecar, written atomically.

A run saved at ``path`` consists of ``path.npz`` (arrays) and ``path.json`` (configuration,
provenance and the SHA-256 of the ``.npz``). The sidecar is written last, so a run is complete
exactly when its sidecar exists and the checksum matches: :func:`load_run` refuses anything else
with :class:`CorruptResultError`.

Nothing in a stored result is executed: arrays are read with ``allow_pickle=False`` and the
sidecar is JSON. Every load also checks that the sidecar's configuration hashes to the
``config_key`` it records, that this key is the one stored with the numbers (inside the
checksummed ``.npz`` for results saved since that key was added; in the file name of a sweep unit,
``<activation>_l2-<l2>_s<seeds>_<first 12 hex digits of the key>``, which is all that binds the
older units of ``results/paper``), that its estimator labels are the configuration's, and that
every array has the shape the configuration implies, so an edited sidecar cannot relabel another
configuration's numbers. What remains open: for a ``.npz`` without a key inside, a sidecar edited
consistently (configuration and key) *and* renamed to the new key loads; see the README's threat
model.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import TrainConfig

__all__ = ["RunResult", "load_run", "result_paths", "CorruptResultError", "provenance", "atomic_write_bytes",
           "check_writable_dir", "RESULT_FORMAT"]

#: Version of the on-disk format; bump it when the meaning of stored arrays changes.
RESULT_FORMAT = 1

HISTORY_COLUMNS = ("train_loss", "test_loss", "train_acc", "test_acc")


#: A sweep unit's file name (``ResultCache.name``): ``..._l2-<l2>_s<seeds>_<12 hex digits>``, the
#: digits being the start of its configuration's key.
_UNIT_NAME_KEY = re.compile(r"_l2-[^_]+_s\d+(?:-\d+x\d+)?_([0-9a-f]{12})$")


class CorruptResultError(ValueError):
    """A stored result is incomplete, corrupt, or from another format or configuration."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def check_writable_dir(path, what: str = "directory") -> Path:
    """Create ``path`` if needed and check that files can be written in it, before any work.

    Raises
    ------
    ValueError
        With one line saying what is wrong: ``path`` (or a parent) is a file, it cannot be
        created, or a file cannot be created in it (read-only, no permission, disk full).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".ibtools-write-test.", dir=path)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"cannot write in {what} {path}: {exc.strerror or exc}") from None
    return path


def result_paths(path) -> tuple[Path, Path]:
    """``(npz, json)`` paths of a run saved at ``path``, which may end in .npz, .json or nothing
    (other dots in the name are kept: ``runs/relu_l2-0.01`` -> ``runs/relu_l2-0.01.npz``)."""
    path = Path(path)
    if path.suffix in (".npz", ".json"):
        path = path.with_suffix("")
    return path.parent / (path.name + ".npz"), path.parent / (path.name + ".json")


def _git_commit() -> str | None:
    # the checkout of this ibtools, or the commit pip installed it from (never another repository's)
    from ._version import source_commit

    return source_commit()


def provenance() -> dict:
    """Package versions, git commit and machine of the current process."""
    import scipy
    import torch

    from . import __version__

    return {
        "ibtools": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "pandas": pd.__version__,
        "git_commit": _git_commit(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


@dataclass
class RunResult:
    """Everything recorded while training the networks of one :class:`~ibtools.config.TrainConfig`.

    Attributes
    ----------
    config : TrainConfig
    epochs : ndarray (E,)
        Evaluation epochs (state after that many epochs of training).
    mi : dict[str, ndarray (E, L, S, 2)]
        Per estimator label: I(X;T) ([..., 0]) and I(T;Y) ([..., 1]) in bits for every
        evaluation epoch, layer (hidden layers, then the softmax output) and network. NaN where
        the estimator was not scheduled or the network had diverged.
    history : dict[str, ndarray (E, S)]
        ``train_loss``, ``test_loss`` (mean cross-entropy, nats), ``train_acc``, ``test_acc``,
        evaluated on the whole split at each evaluation epoch.
    epoch_loss : ndarray (epochs, S)
        Mean minibatch training cross-entropy of every epoch, float32 (stored as float32; files
        written before were float16, which turned losses above 65504 into inf, and still load).
    layer_max : ndarray (E, L, S)
        Largest absolute activity of each layer.
    diverged : ndarray (S,)
        First evaluation epoch at which a network's activity or loss was not finite; -1 if never.
    activations : dict[int, list[ndarray (S, N, width)]]
        Raw activity at the epochs listed in ``config.record_activations``.
    meta : dict
        Provenance: versions, git commit, wall time, device.
    measures : dict[str, ndarray (E, L, S)]
        Per name in ``config.measures``: the geometric measure (:mod:`ibtools.geometry`) of every
        layer and network, float64, at every epoch of the main schedule (``config.schedule()``);
        NaN at the other evaluation epochs and after a network diverged. Empty when the config
        records none. Stored as ``measure_<i>`` arrays, in the order of ``config.measures``.
    """

    config: TrainConfig
    epochs: np.ndarray
    mi: dict[str, np.ndarray]
    history: dict[str, np.ndarray]
    epoch_loss: np.ndarray
    layer_max: np.ndarray
    diverged: np.ndarray
    activations: dict[int, list[np.ndarray]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    measures: dict[str, np.ndarray] = field(default_factory=dict)

    # -- views --------------------------------------------------------------------------------

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.config.seeds

    @property
    def layer_names(self) -> tuple[str, ...]:
        """``("h1", ..., "h5", "softmax")``."""
        return tuple(f"h{i + 1}" for i in range(len(self.config.hidden))) + ("softmax",)

    @property
    def estimator_labels(self) -> tuple[str, ...]:
        return tuple(self.mi)

    def diverged_seeds(self) -> dict[int, int]:
        """``{seed: first epoch seen diverged}`` for networks whose training blew up."""
        return {s: int(e) for s, e in zip(self.seeds, self.diverged) if e >= 0}

    def table(self, estimators=None) -> pd.DataFrame:
        """The information-plane values as a tidy table.

        Columns: ``activation, l2, seed, epoch, layer, layer_name, estimator, i_xt, i_ty,
        diverged``; one row per recorded (estimator, epoch, layer, network). ``layer`` counts
        from 1; the last layer is the softmax output. Rows of diverged networks keep NaN values
        and ``diverged=True`` so that averages can exclude them knowingly.
        """
        labels = list(self.mi) if estimators is None else [estimators] if isinstance(estimators, str) else list(estimators)
        frames = []
        L, S = len(self.layer_names), len(self.seeds)
        ep, ly, sd = np.meshgrid(self.epochs, np.arange(1, L + 1), np.asarray(self.seeds), indexing="ij")
        div_epoch = np.where(self.diverged >= 0, self.diverged, np.iinfo(np.int64).max)
        is_div = (ep >= div_epoch[None, None, :]).ravel()
        for label in labels:
            if label not in self.mi:
                raise KeyError(f"no estimator {label!r} in this result; it has {list(self.mi)}")
            arr = self.mi[label]
            recorded = ~np.all(np.isnan(arr[..., 0]), axis=(1, 2))  # epochs where it was scheduled
            keep = np.repeat(recorded, L * S) & (np.isfinite(arr[..., 0]).ravel() | is_div)
            frames.append(pd.DataFrame({
                "epoch": ep.ravel()[keep],
                "layer": ly.ravel()[keep],
                "seed": sd.ravel()[keep],
                "estimator": label,
                "i_xt": arr[..., 0].ravel()[keep],
                "i_ty": arr[..., 1].ravel()[keep],
                "diverged": is_div[keep],
            }))
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        df.insert(0, "activation", self.config.activation)
        df.insert(1, "l2", self.config.l2)
        df["layer_name"] = np.asarray(self.layer_names)[df["layer"].to_numpy() - 1]
        cols = ["activation", "l2", "seed", "epoch", "layer", "layer_name", "estimator", "i_xt", "i_ty", "diverged"]
        return df[cols].sort_values(["estimator", "seed", "epoch", "layer"], ignore_index=True)

    def measure_table(self, measures=None) -> pd.DataFrame:
        """The geometric measures as a tidy table.

        Columns: ``activation, l2, seed, epoch, layer, layer_name, measure, value, diverged``;
        one row per recorded (measure, epoch, layer, network), i.e. at every epoch of the main
        schedule. ``layer`` counts from 1 (the last is the softmax output); units are those of
        :data:`ibtools.geometry.MEASURES`. Rows of diverged networks keep NaN values and
        ``diverged=True``, as in :meth:`table`.

        Raises
        ------
        KeyError
            If a measure asked for was not recorded in this run.
        """
        names = list(self.measures) if measures is None else [measures] if isinstance(measures, str) else list(measures)
        cols = ["activation", "l2", "seed", "epoch", "layer", "layer_name", "measure", "value", "diverged"]
        L, S = len(self.layer_names), len(self.seeds)
        ep, ly, sd = np.meshgrid(self.epochs, np.arange(1, L + 1), np.asarray(self.seeds), indexing="ij")
        div_epoch = np.where(self.diverged >= 0, self.diverged, np.iinfo(np.int64).max)
        is_div = (ep >= div_epoch[None, None, :]).ravel()
        recorded = np.repeat(np.isin(self.epochs, self.config.schedule()), L * S)
        frames = []
        for name in names:
            if name not in self.measures:
                raise KeyError(f"no measure {name!r} in this result; it has {list(self.measures)}")
            values = self.measures[name].ravel()
            keep = recorded & (~np.isnan(values) | is_div)  # inf is a value (see ibtools.geometry)
            frames.append(pd.DataFrame({
                "seed": sd.ravel()[keep], "epoch": ep.ravel()[keep], "layer": ly.ravel()[keep],
                "measure": name, "value": values[keep], "diverged": is_div[keep],
            }))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(cols, (
                object, float, int, int, int, object, object, float, bool))})
        df = pd.concat(frames, ignore_index=True)
        df.insert(0, "activation", self.config.activation)
        df.insert(1, "l2", self.config.l2)
        df["layer_name"] = np.asarray(self.layer_names)[df["layer"].to_numpy() - 1]
        return df[cols].sort_values(["measure", "seed", "epoch", "layer"], ignore_index=True)

    def history_table(self) -> pd.DataFrame:
        """Loss and accuracy at every evaluation epoch: ``activation, l2, seed, epoch,
        train_loss, test_loss, train_acc, test_acc``."""
        E, S = len(self.epochs), len(self.seeds)
        df = pd.DataFrame({
            "activation": self.config.activation,
            "l2": self.config.l2,
            "seed": np.tile(np.asarray(self.seeds), E),
            "epoch": np.repeat(self.epochs, S),
        })
        for name in HISTORY_COLUMNS:
            df[name] = self.history[name].ravel()
        return df

    # -- storage ------------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "epochs": self.epochs,
            "epoch_loss": self.epoch_loss.astype(np.float32),
            "layer_max": self.layer_max,
            "diverged": self.diverged,
        }
        for i, label in enumerate(self.mi):
            arrays[f"mi_{i}"] = self.mi[label]
        for name in HISTORY_COLUMNS:
            arrays[f"history_{name}"] = self.history[name]
        for epoch, layers in self.activations.items():
            for j, a in enumerate(layers):
                arrays[f"act_{epoch}_{j}"] = a
        for i, name in enumerate(self.config.measures):
            arrays[f"measure_{i}"] = self.measures[name]
        # inside the checksummed file, so that editing the sidecar alone cannot relabel the numbers
        arrays["config_key"] = np.array(self.config.key())
        return arrays

    def save(self, path) -> Path:
        """Write ``path.npz`` and then ``path.json`` atomically; returns the sidecar path.

        Raises
        ------
        OSError
            If either file cannot be written (disk full, no permission); the message names the
            file. Nothing partial is left visible: a run is complete only once its sidecar is
            written, and a new ``.npz`` whose sidecar could not be written is removed.
        """
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self._arrays())
        blob = buffer.getvalue()
        npz_path, json_path = result_paths(path)
        try:
            atomic_write_bytes(npz_path, blob)
        except OSError as exc:
            raise OSError(exc.errno, f"could not save results to {npz_path}: {exc.strerror or exc}") from None
        sidecar = {
            "format": RESULT_FORMAT,
            "config": self.config.to_dict(),
            "config_key": self.config.key(),
            "estimators": list(self.mi),
            "activation_epochs": sorted(int(e) for e in self.activations),
            "npz_sha256": hashlib.sha256(blob).hexdigest(),
            "meta": self.meta,
        }
        try:
            atomic_write_bytes(json_path, json.dumps(sidecar, indent=1, sort_keys=True).encode())
        except OSError as exc:
            npz_path.unlink(missing_ok=True)  # an old sidecar, if any, no longer matches: refused on load
            raise OSError(exc.errno, f"could not save results to {json_path}: {exc.strerror or exc}") from None
        return json_path


def load_run(path, expected: TrainConfig | None = None) -> RunResult:
    """Load a run saved with :meth:`RunResult.save` (``path`` with or without a suffix).

    Nothing is unpickled. The result is returned only if every check passes: the sidecar's
    format; its configuration hashes to its recorded ``config_key``, which is the key stored in the
    ``.npz`` (results saved since that key was added) and, for a file named like a sweep unit
    (``..._s0-49x50_<12 hex digits>``), the key its name ends in; its estimator labels and activation
    epochs are the configuration's; the ``.npz`` matches its SHA-256; every array has the shape
    the configuration implies.

    Parameters
    ----------
    expected : TrainConfig, optional
        If given, the stored configuration must equal it.

    Raises
    ------
    FileNotFoundError
        If there is no sidecar (the run never finished saving).
    CorruptResultError
        If the sidecar is unreadable, the format or configuration differs, the sidecar's
        configuration does not match its key or its file name's key, the ``.npz`` is missing, does not match its
        recorded checksum, or does not hold the arrays the configuration implies. The message
        names the file and what mismatched.
    """
    npz_path, json_path = result_paths(path)
    if not json_path.exists():
        raise FileNotFoundError(f"no saved run at {json_path}")
    try:
        sidecar = json.loads(json_path.read_text())
        fmt = sidecar["format"]
        config = TrainConfig.from_dict(sidecar["config"])
        stored_key = sidecar["config_key"]
        labels = list(sidecar["estimators"])
        act_epochs = [int(e) for e in sidecar["activation_epochs"]]
        checksum = sidecar["npz_sha256"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptResultError(f"sidecar {json_path} is unreadable: {type(exc).__name__}: {exc}") from None
    if fmt != RESULT_FORMAT:
        raise CorruptResultError(f"{json_path} has result format {fmt}, this ibtools reads {RESULT_FORMAT}")
    key = config.key()
    if stored_key != key:
        raise CorruptResultError(
            f"{json_path}: its config hashes to {key} but the sidecar records config_key {stored_key!r} "
            "(the config or the key was edited)")
    if labels != [s.label for s in config.estimators]:
        raise CorruptResultError(
            f"{json_path}: estimator labels {labels} are not those of its config {[s.label for s in config.estimators]}")
    if not set(act_epochs) <= set(int(e) for e in config.activation_epochs()):
        raise CorruptResultError(f"{json_path}: activation epochs {act_epochs} are not among its config's")
    if expected is not None and config != expected:
        raise CorruptResultError(f"{json_path} holds another configuration than the one expected (stale cache)")
    named = _UNIT_NAME_KEY.search(json_path.stem)
    if named and named.group(1) != key[:12]:
        raise CorruptResultError(
            f"{json_path}: its config is not of its file name (the name ends in key {named.group(1)}, the "
            f"config hashes to {key}): the config and its key were edited, or the file was renamed")
    try:
        blob = npz_path.read_bytes()
    except FileNotFoundError:
        raise CorruptResultError(f"{npz_path} is missing although its sidecar exists") from None
    if hashlib.sha256(blob).hexdigest() != checksum:
        raise CorruptResultError(f"{npz_path} does not match the checksum in its sidecar (corrupt or replaced)")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        result = _from_arrays(config, labels, act_epochs, arrays, sidecar.get("meta", {}))
    except CorruptResultError as exc:
        raise CorruptResultError(f"{npz_path}: {exc}") from None
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptResultError(f"{npz_path} is not a valid result file: {type(exc).__name__}: {exc}") from None
    return result


def _from_arrays(config: TrainConfig, labels, act_epochs, arrays: dict, meta) -> RunResult:
    """Build a :class:`RunResult` from stored arrays, checking every shape against ``config``."""
    if "config_key" in arrays and str(arrays["config_key"]) != config.key():
        raise CorruptResultError(
            f"it holds the results of config_key {str(arrays['config_key'])}, but its sidecar describes {config.key()}")
    epochs = config.evaluation_epochs()
    E, L, S = len(epochs), config.n_layers, len(config.seeds)

    def get(name: str, shape: tuple, kind: str = "f") -> np.ndarray:
        if name not in arrays:
            raise CorruptResultError(f"array {name!r} is missing")
        a = arrays[name]
        if a.shape != shape or a.dtype.kind != kind:
            raise CorruptResultError(f"array {name!r} has shape {a.shape} and dtype {a.dtype}, expected {shape} ({kind})")
        return a

    def activity(name: str, width: int) -> np.ndarray:
        a = arrays.get(name)
        n_inputs = a.shape[1] if a is not None and a.ndim == 3 else -1
        return get(name, (S, n_inputs, width))

    stored_epochs = get("epochs", (E,), "i")
    if not np.array_equal(stored_epochs, epochs):
        raise CorruptResultError("its evaluation epochs are not those of its config")
    widths = config.widths[1:]
    return RunResult(
        config=config,
        epochs=stored_epochs,
        mi={label: get(f"mi_{i}", (E, L, S, 2)) for i, label in enumerate(labels)},
        history={name: get(f"history_{name}", (E, S)) for name in HISTORY_COLUMNS},
        epoch_loss=get("epoch_loss", (config.epochs, S)).astype(np.float32),
        layer_max=get("layer_max", (E, L, S)),
        diverged=get("diverged", (S,), "i"),
        activations={e: [activity(f"act_{e}_{j}", widths[j]) for j in range(L)] for e in act_epochs},
        meta=meta,
        measures={name: get(f"measure_{i}", (E, L, S)) for i, name in enumerate(config.measures)},
    )

"""Train the networks of a :class:`~ibtools.config.TrainConfig` and record their information
planes online, with checkpoints that survive interruption: :func:`train`, the run's loop.

At every scheduled epoch all inputs of the task (4096 for the 12-bit task) go through every
network once; the chosen estimators run on every layer (the softmax output included) and only
their values, the losses and the accuracies are kept. Raw activity is kept only at the epochs the
config asks for, so memory does not grow with the number of epochs.

Where the parts of a run live:

* this module: :func:`train` (the epoch loop, checkpoints, the :class:`~ibtools.results.RunResult`),
  the checkpoint file format (:data:`CHECKPOINT_FORMAT`) and :func:`probe_seconds` (the time
  estimate printed before a run starts);
* :mod:`ibtools.trainer`: :class:`~ibtools.trainer.EnsembleTrainer`, the gradients and the Adam
  update of one epoch of the whole ensemble;
* :mod:`ibtools.engine`: :class:`~ibtools.engine.Recorder`, what is measured at a scheduled epoch
  (estimators, losses, accuracies, layer maxima, geometric measures), and the torch thread
  settings (:func:`~ibtools.engine.set_threads`).

``from ibtools.engine import train`` keeps working (the name is forwarded here).
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
from tqdm import tqdm

from .config import TrainConfig
from .data import Dataset
from .engine import Recorder
from .estimators import CLEAN_MEANS_ESTIMATORS, get_estimator, resolve_params
from .results import RunResult, atomic_write_bytes, provenance
from .trainer import EnsembleTrainer
from .validation import check_int

__all__ = ["train", "probe_seconds", "CHECKPOINT_FORMAT"]


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
        Stop after this many epochs (an integer, Python or NumPy, from 0 to ``config.epochs``)
        instead of ``config.epochs`` (values scheduled later stay NaN). Used to recompute the
        beginning of a long run cheaply.

    Returns
    -------
    RunResult

    Warns
    -----
    RuntimeWarning
        If some networks diverged (non-finite loss or activity); they are listed in
        ``result.diverged`` and their later values are NaN.
    """
    stop_at = check_int(stop_at, "stop_at", 0, config.epochs, none_ok=True)  # at most the config's epochs
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
        params = resolve_params(spec.name, spec.kwargs)  # max_value="network": the layer's own range
        fn = get_estimator(spec.name)
        t0 = time.perf_counter()
        for a in acts:
            fn(a, y, **params)
        total += (time.perf_counter() - t0) * scale * len(config.estimator_schedule(spec))
    return total

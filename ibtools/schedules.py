"""Nested recording schedules for the planned re-run of the study (unused by the stored study).

The stored study records each estimator on its own log-spaced schedule
(:func:`ibtools.config.log_schedule` with 400, 100, 25 or 10 points), and those schedules are not
nested: 10- and 100-bin EBAB share only 32 of their 83 epochs with the main 274-epoch schedule.
Comparing settings then mixes the estimator with its sampling. :func:`nested_schedule` draws a
sparse schedule *from* the main one, so that every sparse epoch is also a main epoch and every
setting can be compared with the main estimator on the sparse setting's own epochs. Changing the
stored study's configuration would change its cache keys, so this is for the re-run only.
"""

from __future__ import annotations

import numpy as np

from .config import log_schedule

__all__ = ["nested_schedule", "nested_schedules"]


def nested_schedule(main, n_points: int) -> np.ndarray:
    """At most ``n_points`` epochs of ``main`` (sorted, unique), nearest in log(epoch + 1) to
    evenly spaced targets, always including the first and last epoch of ``main``. A subset of
    ``main`` by construction."""
    main = np.unique(np.asarray(main, dtype=int))
    if main.size == 0:
        raise ValueError("main schedule is empty")
    if not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    if n_points >= main.size:
        return main
    logs = np.log1p(main)
    targets = np.linspace(logs[0], logs[-1], n_points)
    picked = {int(np.argmin(np.abs(logs - t))) for t in targets} | {0, main.size - 1}
    return main[sorted(picked)]


def nested_schedules(epochs: int, main_points: int = 400, sparse_points=(100, 25, 10)) -> dict:
    """``{n_points: schedule}``: the main log schedule of a run of ``epochs`` epochs and a chain
    of sparse schedules, each drawn from the next denser one, so that every schedule is a subset of
    every denser one (10 in 25 in 100 in the main)."""
    out = {main_points: log_schedule(epochs, main_points)}
    denser = out[main_points]
    for n in sorted(sparse_points, reverse=True):
        out[n] = denser = nested_schedule(denser, n)
    return out

"""Nested recording schedules: every sparse estimator schedule is a subset of the run's main one,
and of every denser sparse one.

The stored study records each estimator on its own log-spaced schedule
(:func:`ibtools.config.log_schedule` with 400, 100, 25 or 10 points), and those schedules are not
nested: 10- and 100-bin EBAB share only 32 of their 83 epochs with the main 274-epoch schedule.
Comparing settings then mixes the estimator with its sampling. With
``TrainConfig(nested_schedules=True)`` an estimator's ``n_points`` picks epochs *from* the main
schedule instead (:func:`nested_schedule`), so any two settings can be compared on the sparser
one's epochs, where both were recorded. The stored study predates this (its cache keys would
change), so it is for the re-run.

The rule is a fixed ordering of the main schedule's epochs, farthest-point sampling in
``log(epoch + 1)``: the first and last epoch, then repeatedly the epoch farthest (in log time)
from every epoch already taken, ties to the earlier epoch. A schedule of ``n`` points is the first
``n`` epochs of that ordering, so schedules are nested for every pair of sizes by construction,
and an estimator's schedule does not depend on which other estimators a run records.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .validation import check_int

__all__ = ["nested_order", "nested_schedule", "nested_schedules"]


@lru_cache(maxsize=64)
def _order(main: tuple[int, ...]) -> tuple[int, ...]:
    logs = np.log1p(np.asarray(main, dtype=np.float64))
    n = logs.size
    if n <= 2:
        return tuple(range(n))
    order = [0, n - 1]
    dist = np.minimum(np.abs(logs - logs[0]), np.abs(logs - logs[-1]))
    dist[[0, n - 1]] = -1.0
    for _ in range(n - 2):
        k = int(np.argmax(dist))  # first maximum: ties go to the earlier epoch
        order.append(k)
        dist = np.minimum(dist, np.abs(logs - logs[k]))
        dist[k] = -1.0
    return tuple(order)


def nested_order(main) -> np.ndarray:
    """Indices into the sorted, unique ``main`` schedule in the order :func:`nested_schedule`
    takes them (first and last epoch, then farthest-point in ``log(epoch + 1)``)."""
    main = np.unique(np.asarray(main, dtype=np.int64))
    if main.size == 0:
        raise ValueError("main schedule is empty")
    if main[0] < 0:
        raise ValueError(f"schedule epochs must be >= 0, got {int(main[0])}")
    return np.asarray(_order(tuple(int(e) for e in main)), dtype=np.int64)


def nested_schedule(main, n_points: int) -> np.ndarray:
    """``min(n_points, len(main))`` epochs of ``main`` (sorted), spread evenly in
    ``log(epoch + 1)`` and always including its first and last epoch.

    For any ``m <= n`` the ``m``-point schedule is a subset of the ``n``-point one, and both are
    subsets of ``main``.

    Raises
    ------
    ValueError
        If ``main`` is empty or ``n_points`` is not an integer >= 2.
    """
    n_points = check_int(n_points, "n_points", 2)
    main_sorted = np.unique(np.asarray(main, dtype=np.int64))
    order = nested_order(main_sorted)
    return np.sort(main_sorted[order[:n_points]])


def nested_schedules(epochs: int, main_points: int = 400, sparse_points=(100, 25, 10)) -> dict:
    """``{n_points: schedule}``: the main log schedule of a run of ``epochs`` epochs and the nested
    sparse schedules of the given sizes (each a subset of every larger one)."""
    from .config import log_schedule

    main = log_schedule(epochs, main_points)
    out = {main_points: main}
    for n in sparse_points:
        out[n] = nested_schedule(main, n)
    return out

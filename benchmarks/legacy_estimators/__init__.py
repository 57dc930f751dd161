"""Frozen copy of ``ibtools.estimators`` (``_core``, ``binning``, ``kde``) as of commit 6ff2537,
before the recording speed-ups: the reference that ``tests/test_estimators_recording.py`` and
``benchmarks/bench_recording.py`` compare the current estimators with. Do not edit."""

from .binning import ebab, fixed_binning  # noqa: F401
from .kde import akde, kde  # noqa: F401

"""Timing done right: warm-up, repeated timed runs, median and spread, and a time budget.

A backend hands over a :data:`Kernel`: a function that runs one operation ``inner`` times back
to back and returns the elapsed seconds, already synchronized with the device (events around the
timed region on a GPU; see :mod:`moebench.probe.torch_backend`). This module decides how often
to call it: warm-up calls first (clocks, caches, library heuristics, lazy allocation), then
enough back-to-back calls per timed run that a run lasts ``min_run_s`` (a few microseconds'
kernel is not timed alone), then runs until the point's share of the budget is spent, at least
``min_runs`` and at most ``max_runs`` of them. The median is the figure; the spread is the
interquartile range over the median.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Kernel = Callable[[int], float]
"""Runs one operation ``inner`` times back to back; returns elapsed seconds (synchronized)."""

MAX_INNER = 1000
"""Most back-to-back calls in one timed run (a GPU's launch queue holds about a thousand)."""


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one measured point."""

    median_s: float
    spread: float
    """Interquartile range of the timed runs over their median (0.02: runs within about 2%)."""
    runs: int
    inner: int
    """Calls per timed run."""

    def rate(self, work: float) -> float:
        """Work per second (FLOP/s, byte/s) at the median time."""
        return work / self.median_s

    def as_dict(self) -> dict[str, float | int]:
        return {"median_s": self.median_s, "spread": self.spread, "runs": self.runs,
                "inner": self.inner}


def summarize(per_call_s: list[float], inner: int = 1) -> Timing:
    """Median and relative interquartile range of per-call times."""
    if not per_call_s:
        raise ValueError("no timed runs to summarize")
    samples = np.asarray(per_call_s, dtype=float)
    median = float(np.median(samples))
    if not math.isfinite(median) or median <= 0:
        raise ValueError(f"a timed run gave {median} s; the timer cannot resolve this operation")
    q1, q3 = np.percentile(samples, [25, 75])
    return Timing(median_s=median, spread=float((q3 - q1) / median), runs=len(samples),
                  inner=inner)


@dataclass(frozen=True)
class Repeats:
    """How a point is repeated."""

    warmup: int = 2
    min_runs: int = 3
    max_runs: int = 25
    min_run_s: float = 1e-3
    """A timed run lasts at least this long: short operations are run back to back."""


def measure(kernel: Kernel, share_s: float, repeats: Repeats,
            clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Warm up, pick the calls per run, then time runs until ``share_s`` seconds are spent
    (at least ``min_runs``, at most ``max_runs``); seconds per call, median and spread."""
    start = clock()
    for _ in range(repeats.warmup):
        kernel(1)
    one = kernel(1)
    inner = calls_per_run(one, repeats.min_run_s)
    per_call: list[float] = []
    while len(per_call) < repeats.max_runs:
        per_call.append(kernel(inner) / inner)
        if len(per_call) >= repeats.min_runs and clock() - start >= share_s:
            break
    return summarize(per_call, inner)


def calls_per_run(one_call_s: float, min_run_s: float) -> int:
    """Back-to-back calls that make a timed run last ``min_run_s``: ceil(min_run_s / t_call),
    between 1 and :data:`MAX_INNER`."""
    if one_call_s <= 0 or not math.isfinite(one_call_s):
        return MAX_INNER
    return int(min(MAX_INNER, max(1, math.ceil(min_run_s / one_call_s))))


class Budget:
    """A wall-clock budget shared out over weighted steps as they run.

    Each step gets remaining time x its weight / the weight of the steps not yet run, so a step
    that finishes early leaves its time to the others and one that overruns takes from them.
    """

    def __init__(self, total_s: float, weights: list[float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not total_s > 0:
            raise ValueError(f"a budget must be positive, got {total_s}")
        if not weights or min(weights) <= 0:
            raise ValueError("every step needs a positive weight")
        self.total_s = total_s
        self._clock = clock
        self._start = clock()
        self._weights = list(weights)
        self._next = 0

    def elapsed_s(self) -> float:
        return self._clock() - self._start

    def remaining_s(self) -> float:
        return max(0.0, self.total_s - self.elapsed_s())

    def next_share_s(self) -> float:
        """Seconds for the next step; advances to the step after it."""
        if self._next >= len(self._weights):
            raise IndexError("every step of the budget has had its share")
        left = sum(self._weights[self._next:])
        share = self.remaining_s() * self._weights[self._next] / left
        self._next += 1
        return share

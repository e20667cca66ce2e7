"""Monte Carlo over the ranges of profile figures, vectorised: one array of samples per figure.

Figures with a low-high range are drawn from a triangular distribution (low, stated value,
high); figures without a range stay fixed. A seeded generator makes runs reproducible, and the
fixed order in which profiles are read makes the draws identical from run to run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from moebench.inputs.hardware import Num

INTERVAL = (5.0, 95.0)  # percentiles shown: a 90% interval


def sampler(rng: np.random.Generator, n: int) -> Callable[[Any], Num]:
    """A figure reader that returns ``n`` samples for ranged figures, the value otherwise."""

    def value(fig: Any) -> Num:
        low, high = getattr(fig, "low", None), getattr(fig, "high", None)
        if low is None or high is None or high <= low:
            return fig.value
        return rng.triangular(low, fig.value, high, n)

    return value


def interval(samples: Num) -> tuple[float, float]:
    """The 90% interval of an array of samples."""
    lo, hi = np.percentile(np.asarray(samples, dtype=float), INTERVAL)
    return float(lo), float(hi)


# z of the 10th and 90th percentiles of a normal: interval_80 spans 2 x Z80 standard deviations.
Z80 = 1.2815515655446004


def residual_draws(rng: np.random.Generator, n: int, interval_80: list[float]) -> np.ndarray:
    """``n`` draws of a stack's out-of-source error, log(predicted / measured speed).

    A normal through the stack's 10th and 90th percentiles (``validation.interval_80``, written
    by ``moebench validate`` from predictions of sources the fit did not see): mean their
    midpoint, standard deviation their half-width / z(0.9). A run's measured time is then its
    predicted time x exp(draw), and its measured speed the predicted speed / exp(draw)."""
    lo, hi = interval_80
    return rng.normal((lo + hi) / 2.0, (hi - lo) / (2.0 * Z80), n)


def around(point: float, samples: Num, factor: Num = 1.0) -> tuple[float, float]:
    """The 90% interval of a figure whose point value is ``point``: the samples' spread relative
    to their median (the figures' ranges around their stated and fitted values), times
    ``factor`` (the out-of-source error), applied to the point.

    Centring the sampled spread on the point is what keeps the point inside its interval when a
    fitted figure sits on a bound of its range (its samples then all lie on one side of it)."""
    s = np.asarray(samples, dtype=float)
    median = float(np.median(s))
    rel = s / median if median else np.ones_like(s)
    return interval(point * rel * np.asarray(factor, dtype=float))

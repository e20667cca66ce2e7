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

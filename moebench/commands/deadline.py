"""``compare --deadline-days``: the cheapest cluster that trains in time, or the fastest one.

Cluster sizes are whole scale-up domains. Days to train fall with size until failures take over
(goodput falls as the cluster's MTBF shrinks), and cost rises with size as parallel efficiency
drops, but neither is smooth: a size that divides the batch and the layers well can be both
faster and cheaper than its neighbours. So powers of two first bracket the smallest size that
meets the deadline, then every size on a quarter-octave grid in that octave and the next is
tried, and the cheapest that meets the deadline wins (the fewest chips where there is no price).
When no size meets it, the fastest size is returned, marked as missing the deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moebench.engine.search import SearchResult
from moebench.errors import InputError

MAX_DOMAINS = 4096  # clusters of up to 4,096 scale-up domains
STEPS_PER_OCTAVE = 4


@dataclass(frozen=True)
class SizedRun:
    """A cluster size, its best plan and its economics (days, cost; cost None without price)."""

    num_chips: int
    result: SearchResult
    days: float
    cost: float | None


def octave_sizes(domain: int, low: int, high: int) -> list[int]:
    """Sizes in domains on a quarter-octave grid between ``low`` and ``high`` domains."""
    sizes = set()
    k = low
    while k <= high:
        for j in range(STEPS_PER_OCTAVE):
            n = round(k * 2 ** (j / STEPS_PER_OCTAVE))
            if low <= n <= high:
                sizes.add(n)
        k *= 2
    return sorted(domain * n for n in sizes)


def search_deadline(domain: int, deadline_days: float,
                    size_run: Callable[[int], SizedRun | None]) -> tuple[SizedRun, bool]:
    """The cheapest size meeting the deadline (True), or the fastest size (False).

    ``size_run`` evaluates one cluster size (None when no plan is valid or fits there)."""
    tried: dict[int, SizedRun | None] = {}

    def at(n: int) -> SizedRun | None:
        if n not in tried:
            tried[n] = size_run(n)
        return tried[n]

    first_ok: int | None = None
    k = 1
    while k <= MAX_DOMAINS:
        r = at(domain * k)
        if r is not None and r.days <= deadline_days:
            first_ok = k
            break
        k *= 2
    if first_ok is not None:
        for n in octave_sizes(domain, max(1, first_ok // 2), min(MAX_DOMAINS, first_ok * 2)):
            at(n)
    done = [r for r in tried.values() if r is not None]
    if not done:
        raise InputError("--deadline-days", None,
                         "no cluster size up to 4,096 scale-up domains has a plan that fits")
    meeting = [r for r in done if r.days <= deadline_days]
    if meeting:
        return min(meeting, key=_cheapest), True
    return min(done, key=lambda r: (r.days, r.num_chips)), False


def _cheapest(r: SizedRun) -> tuple[Any, int]:
    return (r.cost if r.cost is not None else 0.0, r.num_chips)

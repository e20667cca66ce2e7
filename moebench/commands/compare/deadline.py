"""``compare --deadline-days``: the cheapest cluster that trains in time, or the fastest one.

Days to train fall with size until failures take over (goodput falls as the cluster's MTBF
shrinks), and cost rises with size as parallel efficiency drops, but neither is smooth: a size
that divides the batch and the layers well can be both faster and cheaper than its neighbours.
So the search first brackets: whole scale-up domains doubling (1, 2, 4... domains) and, between
them, the powers of two (a 384-chip domain gives 384, 512, 768, 1,024, 1,536, 2,048...), up to
the first size that meets the deadline. Then every size on a quarter-octave grid from half to
twice that size is tried, in steps of whole nodes (the largest power of two dividing the domain),
and the cheapest that meets the deadline wins (the fewest chips where there is no price). When
no size meets it, the same refinement runs around the fastest bracket size, and the fastest size
found is returned, marked as missing the deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moebench.engine.search import SearchResult
from moebench.errors import InputError
from moebench.inputs.scenario import MAX_CHIPS  # the --num-chips range, 2^20

MAX_DOMAINS = 4096  # clusters of up to 4,096 scale-up domains, and at most MAX_CHIPS chips
STEPS_PER_OCTAVE = 4


@dataclass(frozen=True)
class SizedRun:
    """A cluster size, its best plan and its economics (days, cost; cost None without price)."""

    num_chips: int
    result: SearchResult
    days: float
    cost: float | None


def node_size(domain: int) -> int:
    """The step between cluster sizes: the largest power of two dividing the scale-up domain
    (8 for an 8-GPU server, 128 for a 384-chip supernode, 8 for a 72-GPU rack)."""
    return domain & -domain


def bracket_sizes(domain: int, max_chips: int) -> list[int]:
    """Whole domains doubling, and the powers of two between them, in chips, ascending."""
    sizes = set()
    k = 1
    while domain * k <= max_chips:
        sizes.add(domain * k)
        k *= 2
    p = 1
    while p <= max_chips:
        if p >= domain:
            sizes.add(p)
        p *= 2
    return sorted(sizes)


def octave_sizes(domain: int, low: int, high: int) -> list[int]:
    """Sizes in chips on a quarter-octave grid between ``low`` and ``high`` chips, rounded to
    whole nodes (:func:`node_size`), never below one domain."""
    step = node_size(domain)
    sizes = set()
    k = float(low)
    while k <= high:
        for j in range(STEPS_PER_OCTAVE):
            n = max(domain, step * round(k * 2 ** (j / STEPS_PER_OCTAVE) / step))
            if low <= n <= high:
                sizes.add(n)
        k *= 2
    return sorted(sizes)


def search_deadline(domain: int, deadline_days: float,
                    size_run: Callable[[int], SizedRun | None]) -> tuple[SizedRun, bool]:
    """The cheapest size meeting the deadline (True), or the fastest size (False).

    ``size_run`` evaluates one cluster size (None when no plan is valid or fits there)."""
    tried: dict[int, SizedRun | None] = {}

    def at(n: int) -> SizedRun | None:
        if n not in tried:
            tried[n] = size_run(n)
        return tried[n]

    max_chips = min(domain * MAX_DOMAINS, MAX_CHIPS)
    first_ok: int | None = None
    for n in bracket_sizes(domain, max_chips):
        r = at(n)
        if r is not None and r.days <= deadline_days:
            first_ok = n
            break
    done = [r for r in tried.values() if r is not None]
    if not done:
        raise InputError("--deadline-days", None,
                         f"no cluster size up to {max_chips:,} chips has a plan that fits")
    centre = first_ok if first_ok is not None else min(done, key=_fastest).num_chips
    for n in octave_sizes(domain, max(domain, centre // 2), min(max_chips, centre * 2)):
        at(n)
    done = [r for r in tried.values() if r is not None]
    meeting = [r for r in done if r.days <= deadline_days]
    if meeting:
        return min(meeting, key=_cheapest), True
    return min(done, key=_fastest), False


def _fastest(r: SizedRun) -> tuple[float, int]:
    return (r.days, r.num_chips)


def _cheapest(r: SizedRun) -> tuple[Any, int]:
    return (r.cost if r.cost is not None else 0.0, r.num_chips)

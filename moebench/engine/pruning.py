"""Exact pruning before timing: a variant of a plan (its sharding, optimizer offload or recompute)
is dropped when another variant of the same plan that is never slower fits, so the search times
only plans that could win."""

from __future__ import annotations

import numpy as np

from moebench.engine.plan import PlanArrays
from moebench.inputs.run import SHARDING


def dominated(plans: PlanArrays, fits: np.ndarray, offload_slower: bool = False,
              group: np.ndarray | None = None, roomy: np.ndarray | None = None,
              could: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beaten, lightest, group): whether a variant of the same plan that is never slower fits;
    whether a variant has the least recompute present at its sharding and offload; and each
    row's plan (a group of variants).

    Never slower: one step less recompute at the same sharding and offload (recompute only adds
    compute; the searched recompute options form a chain of supersets, none < selective <
    selective with the MLP half < full, :data:`~moebench.inputs.run.RECOMPUTE_SEARCHED`, ranked
    here by :attr:`PlanArrays.recompute_level`); one level less sharding along zero-1 -> zero-2
    -> zero-3 at the same offload and recompute (each level only adds communication); and, when
    ``offload_slower`` (the host is slower per Adam update than the device,
    :func:`moebench.engine.terms.data_parallel.offload_never_faster`), no optimizer offload
    against offload at the same sharding and recompute. hsdp and zero-0 are compared with
    nothing, and offload fractions only with 0. A chain of such steps ends at a variant that
    fits and is beaten by none, so the fastest fitting plan is never beaten.

    :func:`candidate_plans` expands sharding, offload, then recompute last, so a plan's variants
    are adjacent rows, sharding outer and recompute inner (checked here); a subset of them in
    the same order is accepted too (a missing variant beats nothing). ``group``: each row's
    plan when the caller knows it (a subset of rows whose groups were found already).

    ``roomy``: which rows keep the allocator's measured headroom, which the search keeps
    or prefers (:func:`moebench.engine.search.requires_headroom`); ``could`` (a superset, default
    ``roomy``): which rows keep it or might with an offloading twin
    (:func:`moebench.engine.headroom.could_keep_headroom`). Then a never-slower variant beats a
    row only if it keeps the headroom itself or the row could not: a plan that keeps it, or
    whose twins might, is never dropped for one that fits only at the typical hold (a variant
    that keeps it wins over the row and its twins alike: never slower, and more conventional
    than any twin that offloads). The chain argument above holds with "fits" read as "fits, and
    keeps the headroom wherever the beaten row could".
    """
    if group is None:
        group = plan_groups(plans)
    return variants_dominated(group, plans.sharding, plans.optimizer_offload,
                              plans.recompute_level, fits, offload_slower, roomy, could)


def plan_groups(plans: PlanArrays) -> np.ndarray:
    """Each row's plan, numbered 0.. in row order: rows that differ only in sharding, offload
    and recompute are one plan (adjacent rows, as :func:`candidate_plans` builds them)."""
    n = len(plans)
    varied = ("sharding", "shard", "optimizer_offload", "recompute", "rc_modules")
    changed = np.zeros(n, dtype=bool)
    changed[0] = True
    for name, col in plans.columns().items():
        if name not in varied:
            changed[1:] |= col[1:] != col[:-1]
    return np.cumsum(changed) - 1


def variants_dominated(group: np.ndarray, sharding: np.ndarray, off: np.ndarray,
                       level: np.ndarray, fits: np.ndarray, offload_slower: bool = False,
                       roomy: np.ndarray | None = None, could: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`dominated` from the columns it reads: each row's plan, sharding, optimizer
    offload and recompute level."""
    n = len(group)
    if off.min() == off.max():  # one level (the common case): skip the sort
        levels, o = off[:1], np.zeros(n, dtype=np.int64)
    else:
        levels, o = np.unique(off, return_inverse=True)
    n_off = len(levels)
    s = sharding.astype(np.int64)
    # Recompute options ranked 0.. by level (none, selective module sets, full).
    # Levels are small integers: ranked by counting, not by sorting every row.
    present = np.bincount(level) > 0
    r = (np.cumsum(present) - 1)[level].astype(np.int64)
    n_levels = int(present.sum())
    key = ((group * len(SHARDING) + s) * n_off + o) * n_levels + r
    if np.any(np.diff(key) <= 0):
        raise ValueError("candidate plans are not grouped by sharding, offload and recompute")
    pos = np.arange(n)
    n_rc = n_levels

    def lighter(step: int | np.ndarray, offset: int | np.ndarray, valid: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Whether the variant ``step`` keys below exists, and whether it fits: looked up
        ``offset`` rows up, where it sits in a whole grid, else by binary search (rows are
        sorted by key)."""
        want = key - step
        idx = np.clip(pos - offset, 0, n - 1)
        miss = valid & (key[idx] != want)
        if miss.any():
            idx[miss] = np.minimum(np.searchsorted(key, want[miss]), n - 1)
        exists = valid & (key[idx] == want) & (idx < pos)
        if roomy is None:
            return exists, exists & fits[idx]
        return exists, exists & fits[idx] & (roomy[idx] | ~(roomy if could is None else could))

    has_lighter, lighter_fits = lighter(1, 1, r > 0)
    _, less_sharding_fits = lighter(n_off * n_levels, n_off * n_rc, (s >= 2) & (s <= 3))
    # Offload is compared only with the same plan without it (levels[0] == 0).
    compare_offload = offload_slower and n_off > 1 and levels[0] == 0.0
    _, less_offload_fits = lighter(o * n_levels, o * n_rc, (o >= 1) & compare_offload)
    beaten = lighter_fits | less_sharding_fits | less_offload_fits
    return beaten, ~has_lighter, group

"""Heterogeneous data parallelism and loosely coupled sites: each chip type trains whole
replicas with its own best plan on its share of the global batch.

Heterogeneous data parallel (synchronous): the batch is split across types in whole
micro-batches so that the slowest type's step is shortest (:mod:`.shares`); gradients are
reduced within each type by the engine (its own DP group, its own network), then across types
over the common fabric. Every type holds the whole model, so the cross-type all-reduce moves
every parameter's gradient once, sharded over each type's chips after its reduce-scatter:
``step = max_t step_t(b_t) + t_cross``, the cross-type all-reduce taken as fully exposed (it
starts when the slowest type's reduce-scatter ends; moebench does not overlap it with the
backward pass).

Loosely coupled sites (local SGD, DiLoCo-style): the same split, but no per-step cross-type
reduction; every H steps the sites all-reduce the pseudo-gradient (parameter deltas, at the
fabric profile's outer-sync precision) over the WAN and apply an outer step:
``step = max_t step_t(b_t) + t_sync / H``. What infrequent synchronization does to convergence
(tokens needed to reach the same loss) is outside the model.

A type may get no work (its share 0): it then takes no part, and the strategy falls back to
the others, so adding a slower type never makes the step slower than the faster type alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from moebench.engine.mix.links import CrossLink, group_allreduce_bytes, group_allreduce_time
from moebench.engine.mix.result import (
    DATA_PARALLEL,
    LOCAL_SGD,
    PartPlan,
    StrategyResult,
    unavailable,
)
from moebench.engine.mix.shares import MixType, best_splits, share_curve
from moebench.engine.plan import PlanRequest
from moebench.engine.search import SearchResult, search
from moebench.errors import InputError
from moebench.inputs.model import ModelArch


def trained_params(arch: ModelArch) -> int:
    """Parameters with a gradient: the model and its MTP modules."""
    return arch.params.total + arch.params.mtp


class ExactShares:
    """The engine's search of each type at a share of the batch, run once per (type, share),
    and each type's share curve, computed once for every strategy that splits the batch."""

    def __init__(self, arch: ModelArch, types: list[MixType], request: PlanRequest) -> None:
        self.arch, self.types, self.request = arch, types, request
        self._cache: dict[tuple[int, int], SearchResult | None] = {}
        self._curves: list[np.ndarray] | None = None

    def curves(self) -> list[np.ndarray]:
        if self._curves is None:
            g = self.types[0].run.global_batch
            self._curves = [share_curve(self.arch, t, self.request, g) for t in self.types]
        return self._curves

    def result(self, k: int, share: int) -> SearchResult | None:
        key = (k, share)
        if key not in self._cache:
            t = self.types[k]
            try:
                res = search(self.arch, t.chip, t.stack, replace(t.run, global_batch=share),
                             t.count, self.request.with_defaults(t.stack.release))
            except InputError as exc:
                if exc.where != "plan":
                    raise
                res = None
            self._cache[key] = res if res is not None and res.best is not None else None
        return self._cache[key]

    def step(self, k: int, share: int) -> float | None:
        res = self.result(k, share)
        return None if res is None or res.best is None else float(res.steps.step_time[res.best])


def _part(t: MixType, share: int, res: SearchResult | None) -> PartPlan:
    if share == 0 or res is None or res.best is None:
        return PartPlan(chip=t.chip.name, stack=t.stack.name, count=t.count, plan=None,
                        sequences=0, step_time_s=0.0, memory_bytes=0.0, checkpoint_bytes=0.0)
    i, st = res.best, res.steps
    return PartPlan(chip=t.chip.name, stack=t.stack.name, count=t.count,
                    plan=res.plans.describe(i, int(round(float(st.num_micro[i]))),
                                            res.arch.spec.num_layers),
                    sequences=share, step_time_s=float(st.step_time[i]),
                    memory_bytes=float(st.memory.total[i]),
                    checkpoint_bytes=float(st.memory.checkpoint[i]),
                    keeps_headroom=bool(st.memory.take(np.array([i])).keeps_headroom(
                        t.chip, t.stack.fragmentation_high)[0]))


def split_search(types: list[MixType], exact: ExactShares, cross: Any
                 ) -> tuple[tuple[int, ...], float] | None:
    """The split of the global batch with the shortest exact step: the best splits by the
    linear share curves, and each type alone, evaluated with the engine. ``cross(participants)``
    gives the cross-type seconds per step for the indices of the types that get work."""
    g = types[0].run.global_batch
    everyone = cross(list(range(len(types))))
    candidates = best_splits(exact.curves(), g, everyone)
    candidates += [tuple(g if j == k else 0 for j in range(len(types)))
                   for k in range(len(types))]
    best: tuple[tuple[int, ...], float] | None = None
    for split in dict.fromkeys(candidates):
        working = [k for k, b in enumerate(split) if b > 0]
        steps = [exact.step(k, split[k]) for k in working]
        if any(s is None for s in steps):
            continue
        total = max(s for s in steps if s is not None) + cross(working)
        if best is None or total < best[1]:
            best = (split, total)
    return best


def hetero_data_parallel(arch: ModelArch, types: list[MixType], link: CrossLink,
                         exact: ExactShares) -> StrategyResult:
    """Strategy 1 on a mix (see the module docstring)."""
    grad_bytes = max(t.stack.grad_reduce_bytes for t in types)
    buffer = trained_params(arch) * grad_bytes

    def cross(working: list[int]) -> float:
        return group_allreduce_time(buffer, [types[k].count for k in working], link)

    found = split_search(types, exact, cross)
    if found is None:
        return unavailable(DATA_PARALLEL, "no split of the batch fits on every type")
    split, step = found
    working = [k for k, b in enumerate(split) if b > 0]
    return StrategyResult(
        strategy=DATA_PARALLEL, step_time_s=step,
        parts=tuple(_part(t, split[k], exact.result(k, split[k]) if split[k] else None)
                    for k, t in enumerate(types)),
        cross_s=cross(working), cross_bytes=group_allreduce_bytes(buffer, len(working)),
        network=link.network,
        details={"gradient_bytes_per_param": grad_bytes,
                 "cross_type_allreduce_bytes": buffer if len(working) > 1 else 0.0})


def local_sgd(arch: ModelArch, types: list[MixType], wan: CrossLink,
              sync_bytes_per_param: float, sync_every: int, exact: ExactShares
              ) -> StrategyResult:
    """Strategy 3 on a mix (see the module docstring)."""
    if len(types) < 2:
        return unavailable(LOCAL_SGD, "needs two or more chip types (sites)")
    buffer = trained_params(arch) * sync_bytes_per_param

    def per_step(working: list[int]) -> float:
        return group_allreduce_time(buffer, [types[k].count for k in working], wan) / sync_every

    found = split_search(types, exact, per_step)
    if found is None:
        return unavailable(LOCAL_SGD, "no split of the batch fits on every type")
    split, step = found
    working = [k for k, b in enumerate(split) if b > 0]
    sync_s = group_allreduce_time(buffer, [types[k].count for k in working], wan)
    return StrategyResult(
        strategy=LOCAL_SGD, step_time_s=step,
        parts=tuple(_part(t, split[k], exact.result(k, split[k]) if split[k] else None)
                    for k, t in enumerate(types)),
        cross_s=sync_s / sync_every,
        cross_bytes=group_allreduce_bytes(buffer, len(working)) / sync_every,
        network=wan.network,
        details={"sync_every_steps": sync_every, "outer_sync_s": sync_s,
                 "outer_sync_bytes_per_param": sync_bytes_per_param,
                 "convergence": "the effect of synchronizing every H steps on convergence "
                                "(tokens to reach the same loss) is outside the model"})

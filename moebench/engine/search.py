"""Best plan per chip: evaluate every candidate plan in one vectorised pass, keep the fastest
that fits in memory.

Exact pruning first: recompute only adds work and each step of sharding (zero-1 to zero-3) only
adds communication, so of the variants of a plan that differ in those, one is dropped whenever a
variant that is never slower fits memory (:func:`prune_variants`). Memory is computed for every
candidate, and step times only for the survivors; no plan that could win is dropped (tests
compare against brute force).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np

from moebench.engine.plan import PlanArrays, PlanRequest, candidate_plans, first_violation
from moebench.engine.step import StepArrays, evaluate, memory_of
from moebench.errors import InputError
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import SHARDING, RunConfig
from moebench.inputs.stack import Stack


@dataclass(frozen=True)
class SearchResult:
    """All evaluated plans, their results and the chosen one (index into them)."""

    arch: ModelArch
    chip: Chip
    stack: Stack
    run: RunConfig
    num_chips: int
    plans: PlanArrays
    steps: StepArrays
    best: int | None
    """Index of the fastest plan that fits; None when no plan fits."""
    shown: int
    """The plan to report: ``best``, or the fastest overall when nothing fits."""
    search_seconds: float
    candidates: int = 0
    """Plans considered (before exact pruning); ``plans`` holds those whose time was needed."""

    @property
    def fits(self) -> bool:
        return self.best is not None

    def ranked(self, limit: int = 5) -> np.ndarray:
        """Indices of the fastest plans, fitting ones first."""
        order = np.lexsort((self.steps.step_time, ~self.steps.fits))
        return order[:limit]


def search(
    arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig, num_chips: int,
    request: PlanRequest | None = None,
) -> SearchResult:
    """Evaluate every valid plan (the fixed fields of ``request`` honoured exactly)."""
    request = request or PlanRequest()
    if run.precision == "fp8" and not chip.supports_fp8:
        raise InputError("--precision", None, f"{chip.name} has no FP8 tensor path; use bf16")
    start = time.perf_counter()
    plans, removed = candidate_plans(arch, chip, run, num_chips, request)
    if len(plans) == 0:
        what = "the requested plan is invalid" if request.is_complete() else "no valid plan"
        raise InputError(
            "plan", None,
            f"{what} for {arch.name} on {num_chips} x {chip.name}: {first_violation(removed)}",
        )
    candidates = len(plans)
    memory = memory_of(arch, chip, stack, run, plans)
    keep = prune_variants(plans, memory.total <= chip.hbm_bytes)
    plans = plans.take(keep)
    steps = evaluate(arch, chip, stack, run, plans, memory.take(keep))
    fitting = np.flatnonzero(steps.fits)
    best = choose_plan(plans, steps.step_time, fitting) if fitting.size else None
    shown = best if best is not None else int(np.argmin(steps.step_time))
    return SearchResult(
        arch=arch, chip=chip, stack=stack, run=run, num_chips=num_chips, plans=plans, steps=steps,
        best=best, shown=shown, search_seconds=time.perf_counter() - start,
        candidates=candidates,
    )


# Plans within this share of the fastest are ties: the model's error is ten times larger.
TIE_BAND = 0.01
# Among ties, what an engineer would pick first: no context parallelism (it exists for long
# sequences), no recompute (it spends compute to save memory), the least sharding (zero-1, the
# Megatron default, before zero-2, zero-3 and hsdp), then the shallowest pipeline,
# fewest virtual stages and narrowest tensor parallelism (fewer stages to balance, less
# communication exposed to jitter). Field, and the words explain uses.
CONVENTION: tuple[tuple[str, str], ...] = (
    ("cp", "context parallelism"), ("recompute", "recompute"),
    ("sharding", "more sharding of the training state"), ("pp", "a deeper pipeline"),
    ("vpp", "more virtual stages"), ("tp", "wider tensor parallelism"),
)


def choose_plan(plans: PlanArrays, step_time: np.ndarray, fitting: np.ndarray) -> int:
    """The fitting plan to use: among those within :data:`TIE_BAND` of the fastest, the most
    conventional (:data:`CONVENTION`, in order), then the fastest."""
    times = step_time[fitting]
    near = fitting[times <= times.min() * (1 + TIE_BAND)]
    keys = [step_time[near]] + [convention_key(plans, f)[near] for f, _ in reversed(CONVENTION)]
    return int(near[np.lexsort(keys)[0]])


def convention_key(plans: PlanArrays, field: str) -> np.ndarray:
    """The plans' values of a :data:`CONVENTION` field, smaller more conventional (recompute:
    none, then selective module sets by mask, then full)."""
    return plans.recompute_level if field == "recompute" else getattr(plans, field)


def prune_variants(plans: PlanArrays, fits: np.ndarray) -> np.ndarray:
    """Indices of the plans worth timing, exactly: of the variants of one plan that differ only
    in recompute and sharding, a variant is dropped when a variant that is never slower fits.

    Never slower: one step less recompute at the same sharding (recompute only adds compute;
    the searched recompute options form a chain of supersets, none < selective < selective with
    the MLP half < full, :data:`~moebench.inputs.run.RECOMPUTE_SEARCHED`),
    or one level less sharding along zero-1 -> zero-2 -> zero-3 at the same recompute (each
    level only adds communication). hsdp and zero-0 are compared with nothing. When no variant
    of a plan fits, its variants with the least recompute are kept (the fastest, to show).

    :func:`candidate_plans` expands sharding then recompute last, so a plan's variants are
    adjacent rows, sharding outer and recompute inner (checked here).
    """
    n = len(plans)
    if n == 0:
        return np.arange(0)
    base = [getattr(plans, f.name) for f in fields(plans)
            if f.name not in ("sharding", "shard", "recompute", "rc_modules")]
    changed = np.zeros(n, dtype=bool)
    changed[0] = True
    for col in base:
        changed[1:] |= col[1:] != col[:-1]
    group = np.cumsum(changed) - 1
    s = plans.sharding.astype(np.int64)
    # The recompute options, ranked 0.. in their order (the expansion's): every plan has the
    # same options, so the first plan's rows list them all.
    level = plans.recompute_level
    levels = np.unique(level[:int(np.searchsorted(group, 1))])
    r = np.searchsorted(levels, level).astype(np.int64)
    n_rc = len(levels)
    key = (group * len(SHARDING) + s) * n_rc + r
    if np.any(np.diff(key) <= 0):
        raise ValueError("candidate plans are not grouped by sharding and recompute")

    def at(offset: int, step: int, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether the variant ``step`` keys below exists (``offset`` rows up, where it sits
        when present, variants being adjacent and ordered), and whether it fits."""
        idx = np.arange(n) - offset
        ok = valid & (idx >= 0)
        idx = np.where(ok, idx, 0)
        exists = ok & (key[idx] == key - step)
        return exists, exists & fits[idx]

    has_lighter, lighter_fits = at(1, 1, r > 0)
    _, less_sharding_fits = at(n_rc, n_rc, (s >= 2) & (s <= 3))
    keep = fits & ~lighter_fits & ~less_sharding_fits
    any_fit = np.bincount(group, weights=fits.astype(float), minlength=group[-1] + 1) > 0
    # Nothing fits: the lightest recompute of each sharding, the fastest ones, to show.
    keep |= ~any_fit[group] & ~has_lighter
    return np.flatnonzero(keep)


def least_memory(arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig, num_chips: int,
                 request: PlanRequest) -> float | None:
    """Bytes per chip of the candidate plan needing the least memory (None: no valid plan)."""
    try:
        plans, _ = candidate_plans(arch, chip, run, num_chips, request)
    except InputError:
        return None
    if len(plans) == 0:
        return None
    return float(memory_of(arch, chip, stack, run, plans).total.min())


def smallest_fitting_cluster(arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig,
                             request: PlanRequest, above: int, limit: int = 1 << 20
                             ) -> int | None:
    """The smallest cluster of domain x 2^k chips, larger than ``above``, where some plan fits
    in memory (None when none does up to ``limit`` chips)."""
    n = chip.up_domain
    while n <= limit:
        if n > above:
            need = least_memory(arch, chip, stack, run, n, request)
            if need is not None and need <= chip.hbm_bytes:
                return n
        n *= 2
    return None

"""Best plan per chip: evaluate every candidate plan in one vectorised pass, keep the fastest
that fits in memory.

Exact pruning first: recompute only adds work (a full or selective recompute never shortens a
step that the same plan without it takes), so among plans that differ only in recompute the
lightest one that fits memory is the only one that can win. Memory is computed for every
candidate, and step times only for those survivors (a third of the candidates when recompute is
searched); no plan that could win is dropped (tests compare against brute force).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from moebench.engine.plan import PlanArrays, PlanRequest, candidate_plans, first_violation
from moebench.engine.step import StepArrays, evaluate, memory_of
from moebench.errors import InputError
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import RunConfig
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
    keep = prune_recompute(plans, memory.total <= chip.hbm_bytes)
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
# sequences), no recompute (it spends compute to save memory), then the shallowest pipeline,
# fewest virtual stages and narrowest tensor parallelism (fewer stages to balance, less
# communication exposed to jitter). Field, and the words explain uses.
CONVENTION: tuple[tuple[str, str], ...] = (
    ("cp", "context parallelism"), ("recompute", "recompute"), ("pp", "a deeper pipeline"),
    ("vpp", "more virtual stages"), ("tp", "wider tensor parallelism"),
)


def choose_plan(plans: PlanArrays, step_time: np.ndarray, fitting: np.ndarray) -> int:
    """The fitting plan to use: among those within :data:`TIE_BAND` of the fastest, the most
    conventional (:data:`CONVENTION`, in order), then the fastest."""
    times = step_time[fitting]
    near = fitting[times <= times.min() * (1 + TIE_BAND)]
    keys = [step_time[near]] + [getattr(plans, f)[near] for f, _ in reversed(CONVENTION)]
    return int(near[np.lexsort(keys)[0]])


def prune_recompute(plans: PlanArrays, fits: np.ndarray) -> np.ndarray:
    """Indices of the plans to time: of those that differ only in recompute, the lightest
    recompute that fits memory (or the lightest of all when none fits, the fastest to show).

    :func:`candidate_plans` expands recompute last, so each plan's variants are ``k`` adjacent
    rows in the order none, selective, full (checked here)."""
    k = len(np.unique(plans.recompute))
    if k <= 1:
        return np.arange(len(plans))
    rc = plans.recompute.reshape(-1, k)
    if not np.all(rc == rc[0]) or not np.all(np.diff(rc[0]) > 0):
        raise ValueError("candidate plans are not grouped by recompute")
    ok = fits.reshape(-1, k)
    # First fitting variant of each group, else the first (lightest) one.
    choice = np.where(ok.any(axis=1), ok.argmax(axis=1), 0)
    return np.arange(len(choice)) * k + choice


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

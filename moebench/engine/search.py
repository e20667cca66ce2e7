"""Best plan per chip: evaluate every candidate plan in one vectorised pass, keep the fastest
that fits in memory.

Exact pruning first: recompute only adds work, each step of sharding (zero-1 to zero-3) only
adds communication, and offloading the optimizer states only adds time where the host is slower
than the device at an Adam update (:func:`offload_never_faster`), so of the variants of a plan
that differ in those, one is dropped whenever a variant that is never slower fits memory
(:func:`dominated`; offload variants of plans that fit without it are never built,
:func:`plans_worth_timing`). Memory is computed for every candidate, and step times only for
the survivors; no plan that could win is dropped (tests compare against brute force).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from moebench.engine.headroom import could_keep_headroom, headroom_variants, offload_searched
from moebench.engine.memory import MemoryBreakdown
from moebench.engine.plan import PlanArrays, PlanRequest
from moebench.engine.plan_grid import recompute_group_size
from moebench.engine.plan_space import candidate_plans, first_violation
from moebench.engine.pruning import dominated, variants_dominated
from moebench.engine.step import StepArrays, evaluate, memory_of
from moebench.engine.terms.data_parallel import offload_never_faster
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
    strict: bool = False
    """The plan had to keep the allocator's measured headroom where any did
    (:func:`requires_headroom`)."""

    @property
    def fits(self) -> bool:
        return self.best is not None

    def ranked(self, limit: int = 5) -> np.ndarray:
        """Indices of the fastest plans: those the search could take first (they fit, and keep
        the headroom where it was required and any plan does), then other fitting ones."""
        fits = self.steps.fits
        allowed = fits
        if self.strict:
            roomy = fits & self.steps.memory.keeps_headroom(self.chip,
                                                             self.stack.fragmentation_high)
            allowed = roomy if roomy.any() else fits
        order = np.lexsort((self.steps.step_time, ~fits, ~allowed))
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
    plans, memory, candidates = plans_worth_timing(arch, chip, stack, run, num_chips, request)
    steps = evaluate(arch, chip, stack, run, plans, memory)
    strict = requires_headroom(arch, request)
    extra = headroom_variants(arch, chip, stack, run, request, plans, steps, TIE_BAND, strict)
    if extra is not None:
        plans, steps = plans.concat(extra[0]), steps.concat(extra[1])
    fitting = np.flatnonzero(steps.fits)
    roomy = steps.memory.keeps_headroom(chip, stack.fragmentation_high)
    if strict and roomy[fitting].any():
        fitting = fitting[roomy[fitting]]
    best = choose_plan(plans, steps.step_time, fitting, roomy) if fitting.size else None
    shown = best if best is not None else int(np.argmin(steps.step_time))
    return SearchResult(
        arch=arch, chip=chip, stack=stack, run=run, num_chips=num_chips, plans=plans, steps=steps,
        best=best, shown=shown, search_seconds=time.perf_counter() - start,
        candidates=candidates, strict=strict,
    )


def requires_headroom(arch: ModelArch, request: PlanRequest) -> bool:
    """Whether the plan must keep the allocator's measured headroom where any plan does: when
    the search chooses the parallel layout (``tp``, ``pp``, and ``ep`` for a model with
    experts: not all given), as a recommendation no engineer would run at the edge of memory.
    A layout the user states is the run as it was run (a published run ran): judged by
    capacity, the headroom preferred only among ties (:func:`choose_plan`), and a tight plan
    reported as such."""
    stated = request.tp is not None and request.pp is not None
    return not (stated and (request.ep is not None or not arch.is_moe))


def search_stacks(
    arch: ModelArch, chip: Chip, stacks: Sequence[Stack], run: RunConfig, num_chips: int,
    request: PlanRequest | None = None,
) -> SearchResult:
    """The best plan over several stacks of one release, differing in searched settings
    (dispatcher, 1F1B all-to-all overlap, ...): each stack's own search, then the fastest that
    fits; within :data:`TIE_BAND` the earlier stack (the release's default) is kept."""
    best: SearchResult | None = None
    for stack in stacks:
        res = search(arch, chip, stack, run, num_chips, request)
        if best is None or _faster(res, best):
            best = res
    if best is None:
        raise ValueError("search_stacks needs at least one stack")
    return best


def _faster(a: SearchResult, b: SearchResult) -> bool:
    """Whether ``a`` beats ``b``: it fits where ``b`` does not, or is faster by more than the
    tie band."""
    if a.fits != b.fits:
        return a.fits
    ta, tb = float(a.steps.step_time[a.shown]), float(b.steps.step_time[b.shown])
    return ta < tb * (1 - TIE_BAND)


def plans_worth_timing(arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig,
                        num_chips: int, request: PlanRequest
                        ) -> tuple[PlanArrays, MemoryBreakdown, int]:
    """The candidate plans left by exact pruning, their memory, and how many were considered.

    Optimizer offload, when searched and never faster than the device step
    (:func:`offload_never_faster`: true of every catalog chip), is added exactly where it can
    win: to the plans that do not fit without it. A plan that fits without offload is never
    slower than the same plan with it, so its offloading variant is pruned unbuilt (counted
    among the candidates considered); the memory model is run on the variants their twins'
    memory (:meth:`MemoryBreakdown.with_offload`) does not rule out. Otherwise every fraction
    is a grid dimension like any other.

    Activation offload (the modules the stack offloads, :attr:`Stack.act_offload_mask`), when
    searched and the chip has a host, only ever adds copy time, so it is built the same way: for the
    plans that fit neither without it nor with optimizer offload alone. A plan that fits but
    lacks the allocator's headroom can gain by either only within the tie band, so those twins
    wait for the times (:func:`moebench.engine.headroom.headroom_variants`)."""
    fractions, bound, act = offload_searched(chip, stack, run, request)
    req = replace(request, optimizer_offload=0.0) if bound else request
    plans, removed = candidate_plans(arch, chip, run, num_chips, req, stack.release)
    if len(plans) == 0:
        what = "the requested plan is invalid" if request.is_complete() else "no valid plan"
        raise InputError(
            "plan", None,
            f"{what} for {arch.name} on {num_chips} x {chip.name}: {first_violation(removed)}",
        )
    # candidate_plans expands recompute last, with no rule after it: whole groups of k rows.
    memory = memory_of(arch, chip, stack, run, plans, recompute_group_size(req, stack.release))
    fits = memory.fits(chip)
    roomy = memory.keeps_headroom(chip, stack.fragmentation_high)
    could = could_keep_headroom(memory, chip, stack, bool(act), bound)
    considered = len(plans) * (1 + len(fractions) if bound else 1) * (2 if act else 1)
    beaten, lightest, group = dominated(
        plans, fits, not bound and offload_never_faster(chip, run.optimizer_bytes),
        roomy=roomy, could=could)
    # A variant that does not fit and that no fitting variant beats: only these can gain by
    # offload (the offloading twin of a beaten one is beaten too, being no faster than it).
    # One that fits without the allocator's headroom can gain too, only within the tie band:
    # :func:`headroom_variants`, once the times are known.
    need = np.flatnonzero(~fits & ~beaten)
    any_fit = np.bincount(group, weights=fits.astype(float), minlength=group[-1] + 1) > 0
    parts = []
    level = plans.recompute_level

    def with_optimizer_offload(rows: np.ndarray, src: PlanArrays, src_memory: MemoryBreakdown,
                               at: np.ndarray, f: float) -> np.ndarray:
        """Add the optimizer-offloading variants of ``src`` rows ``at`` (plans ``rows`` of the
        candidates) that fit and no variant beats; whether each fits. The memory model judges
        those their twins' device bytes (a lower bound, MemoryBreakdown.with_offload) let fit."""
        maybe = np.flatnonzero(src_memory.take(at).with_offload(f, run.optimizer_bytes).total
                               <= chip.hbm_bytes)
        off_memory = memory_of(arch, chip, stack, run, src.take(at[maybe]).with_offload(f))
        off_fits, off_roomy, off_could = (np.zeros(len(rows), dtype=bool) for _ in range(3))
        off_fits[maybe] = off_memory.fits(chip)
        off_roomy[maybe] = off_memory.keeps_headroom(chip, stack.fragmentation_high)
        off_could[maybe] = could_keep_headroom(off_memory, chip, stack, bool(act), False)
        off_beaten, _, _ = variants_dominated(group[rows], plans.sharding[rows],
                                              np.full(len(rows), f), level[rows], off_fits,
                                              roomy=off_roomy, could=off_could)
        take = np.flatnonzero(off_fits & ~off_beaten)
        any_fit[group[rows[take]]] = True
        parts.append((src.take(at[take]).with_offload(f),
                      off_memory.take(np.searchsorted(maybe, take))))
        return off_fits

    no_opt_fit = np.ones(len(need), dtype=bool)
    for f in fractions if need.size and bound else ():
        no_opt_fit &= ~with_optimizer_offload(need, plans, memory, need, f)
    # Activation offload moves activations only: where the rest alone (less the optimizer
    # states, when they may go to the host too) overflows the device, it cannot make the plan
    # fit. An exact bound, and most of the work saved.
    rest = memory.total - memory.activations - (memory.optimizer if bound else 0.0)
    helps = rest[need] <= chip.hbm_bytes if act else np.zeros(len(need), dtype=bool)
    if helps.any():
        # Activation offload only adds copy time: worth it only where nothing lighter fits,
        # alone, then beside optimizer offload where neither alone fits.
        rows, no_opt_fit = need[helps], no_opt_fit[helps]
        act_plans = plans.take(rows).with_act_offload(act)
        act_memory = memory_of(arch, chip, stack, run, act_plans)
        act_fits = act_memory.fits(chip)
        act_roomy = act_memory.keeps_headroom(chip, stack.fragmentation_high)
        act_could = could_keep_headroom(act_memory, chip, stack, False, bound)
        beaten_act = dominated(act_plans, act_fits, group=group[rows], roomy=act_roomy,
                               could=act_could)[0]
        take = np.flatnonzero(act_fits & ~beaten_act)
        any_fit[group[rows[take]]] = True
        parts.append((act_plans.take(take), act_memory.take(take)))
        both = np.flatnonzero(no_opt_fit & ~act_fits) if bound else np.arange(0)
        for f in fractions if both.size else ():
            with_optimizer_offload(rows[both], act_plans, act_memory, both, f)
    # Nothing fits, with or without offload: the lightest recompute of each sharding, to show.
    keep = np.flatnonzero((fits & ~beaten) | (~any_fit[group] & lightest))
    out_plans, out_memory = plans.take(keep), memory.take(keep)
    for p, m in parts:
        out_plans, out_memory = out_plans.concat(p), out_memory.concat(m)
    return out_plans, out_memory, considered


# Plans within this share of the fastest are ties: the model's error is ten times larger.
TIE_BAND = 0.01
# Among ties, what an engineer would pick first: no context parallelism (it exists for long
# sequences), no recompute (it spends compute to save memory), no optimizer offload (it spends
# host-link and CPU time to save memory), the least sharding (zero-1, the Megatron default,
# before zero-2, zero-3 and hsdp), then the shallowest pipeline,
# fewest virtual stages and narrowest tensor parallelism (fewer stages to balance, less
# communication exposed to jitter). Field, and the words explain uses.
CONVENTION: tuple[tuple[str, str], ...] = (
    ("cp", "context parallelism"), ("recompute", "recompute"),
    ("optimizer_offload", "optimizer offload"),
    ("sharding", "more sharding of the training state"), ("pp", "a deeper pipeline"),
    ("vpp", "more virtual stages"), ("tp", "wider tensor parallelism"),
)


def choose_plan(plans: PlanArrays, step_time: np.ndarray, fitting: np.ndarray,
                roomy: np.ndarray | None = None) -> int:
    """The fitting plan to use: among those within :data:`TIE_BAND` of the fastest, one that
    keeps the allocator's measured headroom (``roomy``,
    :meth:`~moebench.engine.memory.MemoryBreakdown.keeps_headroom`) before one that fits only
    at its typical hold, then the most conventional (:data:`CONVENTION`, in order), then the
    fastest. Beyond the band speed decides: a tight plan is reported as such, not avoided."""
    times = step_time[fitting]
    near = fitting[times <= times.min() * (1 + TIE_BAND)]
    keys = [step_time[near]] + [convention_key(plans, f)[near] for f, _ in reversed(CONVENTION)]
    if roomy is not None:
        keys.append(~roomy[near])
    return int(near[np.lexsort(keys)[0]])


def convention_key(plans: PlanArrays, field: str) -> np.ndarray:
    """The plans' values of a :data:`CONVENTION` field, smaller more conventional (recompute:
    none, then selective module sets by mask, then full)."""
    return plans.recompute_level if field == "recompute" else getattr(plans, field)


def least_memory(arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig, num_chips: int,
                 request: PlanRequest) -> float | None:
    """Bytes per chip of the candidate plan needing the least memory (None: no valid plan)."""
    try:
        plans, _ = candidate_plans(arch, chip, run, num_chips, request, stack.release)
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

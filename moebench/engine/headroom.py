"""The caching allocator's measured headroom in the search.

A plan fits when its device memory at the stack's typical allocator hold (``allocator_factor``,
the median of published runs) does; it keeps the headroom when it would still fit at the top
of that measured range (:meth:`~moebench.engine.memory.MemoryBreakdown.keeps_headroom`). Where
the search chooses the layout it takes the fastest plan that keeps it, where any does; where
the layout is given, one that keeps it among the plans within the tie band of the fastest
(:func:`moebench.engine.search.requires_headroom`, :func:`~moebench.engine.search.choose_plan`).
Exact pruning keeps every variant that could be that plan: heavier variants through the
headroom-aware dominance of :func:`moebench.engine.pruning.dominated`, and offloading twins
here. An offloading twin is never faster than its plan, so only the twins of plans that fit
without the headroom and are fast enough to be chosen (known once the survivors are timed) can
be: those are built and timed in a second, small pass.
"""

from __future__ import annotations

import numpy as np

from moebench.engine.memory import MemoryBreakdown
from moebench.engine.plan import PlanArrays, PlanRequest
from moebench.engine.plan_grid import OFFLOAD_SEARCHED
from moebench.engine.step import StepArrays, evaluate, memory_of
from moebench.engine.terms.data_parallel import offload_never_faster
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import RunConfig
from moebench.inputs.stack import Stack


def offload_searched(chip: Chip, stack: Stack, run: RunConfig, request: PlanRequest
                     ) -> tuple[list[float], bool, int]:
    """How the search adds offload after pruning: the optimizer-offload fractions, whether it
    builds them only where they can win (``bound``: searched, and never faster than the device
    step, :func:`offload_never_faster`; otherwise they are grid rows like any other), and the
    activation-offload modules it searches (a mask; 0: none)."""
    fractions = [f for f in OFFLOAD_SEARCHED if f > 0]
    bound = (request.optimizer_offload is None and chip.has_host
             and stack.caps.optimizer_offload
             and offload_never_faster(chip, run.optimizer_bytes, min(fractions)))
    act = stack.act_offload_mask if request.offload_modules is None and chip.has_host else 0
    return fractions, bound, act


def could_keep_headroom(memory: MemoryBreakdown, chip: Chip, stack: Stack, act: bool,
                        opt: bool) -> np.ndarray:
    """Whether each plan keeps the headroom, or fits and might with an offloading twin: its
    live tensors less the activations (when activation offload is searched) and the optimizer
    states (when optimizer offload is) would keep it, a bound no twin goes below."""
    freed = (memory.activations if act else 0.0) + (memory.optimizer if opt else 0.0)
    floor = (memory.allocated - freed) * (1.0 + stack.fragmentation_high) + memory.reserve
    return memory.keeps_headroom(chip, stack.fragmentation_high) | (
        memory.fits(chip) & (floor <= chip.hbm_bytes))


def headroom_variants(arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig,
                      request: PlanRequest, plans: PlanArrays, steps: StepArrays,
                      tie_band: float, strict: bool = False
                      ) -> tuple[PlanArrays, StepArrays] | None:
    """The offloading twins that keep the headroom, of the timed plans that fit without it
    and could be chosen with it, with their step results (None: there are none): those within
    ``tie_band`` of the fastest, or, where the headroom is required (``strict``,
    :func:`moebench.engine.search.requires_headroom`), those faster than the fastest plan that
    keeps it (a twin is never faster than its plan).
    Optimizer offload (each searched fraction) and activation offload, alone and together,
    where the search builds them after pruning and the plan does not offload that way yet."""
    fractions, bound, act = offload_searched(chip, stack, run, request)
    fit = np.flatnonzero(steps.fits)
    if not (bound or act) or fit.size == 0:
        return None
    high = stack.fragmentation_high
    roomy = steps.memory.keeps_headroom(chip, high)
    limit = steps.step_time[fit].min() * (1 + tie_band)
    if strict:
        kept_fit = np.flatnonzero(roomy & steps.fits)
        limit = float(steps.step_time[kept_fit].min()) if kept_fit.size else np.inf
    near = steps.fits & ~roomy & (steps.step_time <= limit)
    rows = np.flatnonzero(near)
    if rows.size == 0:
        return None
    src = plans.take(rows)
    opt_free = src.optimizer_offload == 0
    act_free = src.act_offload == 0 if src.act_offload is not None else np.ones(len(src), bool)
    parts: list[tuple[PlanArrays, MemoryBreakdown]] = []
    bases = [(src, opt_free)]
    if act and act_free.any():
        at = np.flatnonzero(act_free)
        act_plans = src.take(at).with_act_offload(act)
        act_memory = memory_of(arch, chip, stack, run, act_plans)
        parts.append((act_plans, act_memory))
        bases.append((act_plans, opt_free[at]))
    for base, free in bases if bound else ():
        at = np.flatnonzero(free)
        for f in fractions if at.size else ():
            # The memory model, not the twin's memory less the states: offloading can make
            # another rank the fullest (MemoryBreakdown.with_offload is a lower bound).
            twins = base.take(at).with_offload(f)
            parts.append((twins, memory_of(arch, chip, stack, run, twins)))
    kept = [(p.take(i), m.take(i)) for p, m in parts
            if (i := np.flatnonzero(m.keeps_headroom(chip, high))).size]
    if not kept:
        return None
    out_plans, out_memory = kept[0]
    for p, m in kept[1:]:
        out_plans, out_memory = out_plans.concat(p), out_memory.concat(m)
    first = first_of_each(out_plans)
    out_plans, out_memory = out_plans.take(first), out_memory.take(first)
    return out_plans, evaluate(arch, chip, stack, run, out_plans, out_memory)


def first_of_each(plans: PlanArrays) -> np.ndarray:
    """The rows of ``plans`` that repeat no earlier row. Twins can meet: a plan offloaded the
    two ways round (an activation-offloaded plan's optimizer twin and an optimizer-offloaded
    plan's activation twin) is one plan. None repeats a first-pass plan: those offload only
    what does not fit without it, and every twin's base fits."""
    rows = np.column_stack([np.asarray(v, dtype=float) for v in plans.columns().values()])
    return np.sort(np.unique(rows, axis=0, return_index=True)[1])


"""When a plan does not fit: by how much, which term dominates, and the cheapest change that
makes it fit.

Each change frees what the user fixed in one respect (the recompute set, offload, the pipeline
and expert split, the sharding, context parallelism) or halves the Adam moments (BF16 moments,
as DeepSeek-V3 and Megatron's precision-aware optimizer keep them), and searches again within
the same release. The cheapest is the fitting change with the shortest step; the others that
fit are listed after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from moebench.engine.plan import PlanRequest
from moebench.engine.search import SearchResult, search_stacks
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import RunConfig
from moebench.inputs.stack import Stack
from moebench.units import GIB

# (what the advice says, the request fields it frees)
CHANGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("recompute more", ("recompute", "recompute_modules")),
    ("offload to host memory", ("optimizer_offload", "offload_modules")),
    ("more pipeline or expert parallelism", ("pp", "vpp", "ep", "etp", "pipeline_layout")),
    ("shard more training state", ("sharding", "shard_group")),
    ("context parallelism", ("cp", "cp_kind")),
    ("a smaller micro-batch", ("micro_batch",)),
)
BF16_MOMENTS = "BF16 Adam moments (--optimizer-states bf16)"


@dataclass(frozen=True)
class FitChange:
    change: str
    plan: str
    memory_gib: float
    slower: float
    """Step time over that of the plan that does not fit, minus one."""


def _plan_text(result: SearchResult, i: int) -> str:
    from moebench.commands.shared.plan_text import plan_text

    return plan_text(result.plans.describe(i, 0))


def fit_changes(arch: ModelArch, chip: Chip, stacks: list[Stack], run: RunConfig,
                num_chips: int, request: PlanRequest, unfit: SearchResult
                ) -> list[FitChange]:
    """The changes that make a plan fit, cheapest first."""
    base = float(unfit.steps.step_time[unfit.shown])
    tries: list[tuple[str, PlanRequest, RunConfig]] = []
    for words, names in CHANGES:
        if any(getattr(request, n) is not None for n in names):
            freed = replace(request, **dict.fromkeys(names))
            tries.append((words, freed, run))
    if run.optimizer_states == "fp32":
        tries.append((BF16_MOMENTS, request, replace(run, optimizer_states="bf16")))
    out = []
    for words, req, r in tries:
        res = search_stacks(arch, chip, stacks, r, num_chips, req)
        if not res.fits:
            continue
        i = res.shown
        out.append(FitChange(words, _plan_text(res, i),
                             float(res.steps.memory.total[i]) / GIB,
                             float(res.steps.step_time[i]) / base - 1.0))
    return sorted(out, key=lambda c: c.slower)


def fit_advice(arch: ModelArch, chip: Chip, stacks: list[Stack], run: RunConfig,
               num_chips: int, request: PlanRequest, unfit: SearchResult) -> str:
    """One paragraph: the shortfall, the largest term, and the cheapest change that fits."""
    i = unfit.shown
    memory = unfit.steps.memory
    need, cap = float(memory.total[i]) / GIB, float(chip.hbm_bytes) / GIB
    terms = {k: float(v[i]) / GIB for k, v in memory.as_dict().items()}
    top = max(terms, key=lambda k: terms[k])
    text = (f"the plan needs {need:.1f} of {cap:.1f} GiB per chip ({need - cap:.1f} GiB, "
            f"{100 * (need / cap - 1):.0f}% over); its largest term is {top} "
            f"({terms[top]:.1f} GiB)")
    changes = fit_changes(arch, chip, stacks, run, num_chips, request, unfit)
    if not changes:
        return text + "; no single change (recompute, offload, more PP/EP, sharding, CP, BF16 "\
                      "moments) makes it fit on this cluster"
    best = changes[0]
    text += (f"; cheapest change that fits: {best.change}, {best.plan} at "
             f"{best.memory_gib:.1f} GiB, {_signed(best.slower)} step time")
    others = [f"{c.change} ({_signed(c.slower)})" for c in changes[1:]]
    if others:
        text += "; also fits: " + ", ".join(others)
    return text


def _signed(x: float) -> str:
    return f"{100 * x:+.0f}%" if np.isfinite(x) else "n/a"

"""One model on one chip and cluster: the estimate record (what ``moebench estimate`` prints)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from moebench.engine.memory import MemoryBreakdown
from moebench.engine.model_flops import model_flops_per_token
from moebench.engine.plan import PlanRequest
from moebench.engine.search import (
    SearchResult,
    least_memory,
    search_stacks,
    smallest_fitting_cluster,
)
from moebench.engine.step import StepArrays
from moebench.errors import InputError
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import RunConfig
from moebench.inputs.stack import Stack
from moebench.units import GIB, HOUR, TERA

if TYPE_CHECKING:
    import pandas as pd

    from moebench.commands.shared.setup import JobInputs

TRILLION = 1e12


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """Predicted speed and memory of one plan; seconds, tokens and GiB as named."""

    model: str
    chip: str
    stack: str
    num_chips: int
    precision: str
    seq_len: int
    global_batch: int
    plan: dict[str, Any]
    step_time_s: float
    tokens_per_s: float
    tokens_per_s_per_chip: float
    model_flops_per_token: float
    model_tflops_per_chip: float
    mfu: float
    """Model FLOP/s over the dense peak of the precision the run uses."""
    mfu_bf16: float
    """Model FLOP/s over the dense BF16 peak (the usual published convention)."""
    memory_gib_per_chip: float
    memory_capacity_gib: float
    fits_memory: bool
    memory_gib_high_hold: float
    """Device memory if the caching allocator held the top of its measured range (the stack's
    allocator_factor high) instead of its typical hold: what a tight plan risks."""
    keeps_headroom: bool
    """The plan fits even at that hold (the search keeps it where it chooses the layout, and
    prefers it among ties where the layout is given)."""
    headroom_slower_by: float | None
    """For a tight plan, how much slower the fastest evaluated plan that keeps the headroom is
    (its step time over this one's, less 1; an upper bound: offloading variants beyond the tie
    band are not built); None when the plan keeps it or no evaluated plan does."""
    tight_faster_by: float | None
    """For a plan that keeps the headroom, how much faster the fastest evaluated plan that fits
    only at the typical hold is (1 less its step time over this one's); None when none is
    faster. Where the search chose the layout, it took the headroom at this cost."""
    chip_hours_per_1e12_tokens: float
    breakdown_s: dict[str, float]
    memory_gib: dict[str, float]
    plans_evaluated: int
    search_seconds: float
    memory_advice: str | None = None
    """Where the plan does not fit (--allow-oom): by how much, its largest term and the
    cheapest change that fits (:mod:`moebench.commands.estimate.fit_advice`)."""
    assumed: list[dict[str, Any]] = field(default_factory=list)
    """Settings and plan dimensions the run did not give: value, where it came from and the
    main alternative's effect (:mod:`moebench.commands.shared.assumptions`)."""
    counting: str = field(default=(
        "model FLOPs = 3 x forward incl. causal attention and MTP, no recompute; "
        "mfu against the dense peak of the precision used, mfu_bf16 against the BF16 peak"
    ))

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def to_frame(self) -> pd.DataFrame:
        """One row: the scalar figures as columns, the plan, time breakdown and memory terms
        flattened (``plan.tp``, ``breakdown_s.compute_gemm``, ``memory_gib.weights``...)."""
        import pandas as pd

        return pd.json_normalize(self.as_dict(), max_level=1)


def speed_metrics(arch: ModelArch, chip: Chip, run: RunConfig, num_chips: int,
                  step_time: Any) -> dict[str, Any]:
    """Throughput figures of a step time (scalar or array): tokens/s per chip, model TFLOPS per
    chip, MFU against the dense peak of the run's precision and against the BF16 peak,
    chip-hours per 1e12 tokens, and the step itself."""
    per_chip = run.tokens_per_step / step_time / num_chips
    model_flops_chip = per_chip * model_flops_per_token(arch, run.seq_len).total
    peak = chip.fp8_flops if run.precision == "fp8" and chip.fp8_flops else chip.bf16_flops
    return {
        "step_time_s": step_time, "tokens_per_s_per_chip": per_chip,
        "model_tflops_per_chip": model_flops_chip / TERA,
        "mfu": model_flops_chip / peak, "mfu_bf16": model_flops_chip / chip.bf16_flops,
        "chip_hours_per_1e12_tokens": TRILLION / per_chip / HOUR,
    }


def fastest_fitting(steps: StepArrays, mask: np.ndarray) -> int | None:
    """The fastest evaluated plan among ``mask`` that fits (None when none does)."""
    ok = np.flatnonzero(mask & steps.fits)
    return int(ok[np.argmin(steps.step_time[ok])]) if ok.size else None


def headroom_cost(steps: StepArrays, i: int, roomy: np.ndarray) -> float | None:
    """How much slower than plan ``i`` the fastest evaluated plan that fits and keeps the
    allocator's headroom (``roomy``) is (None when plan ``i`` keeps it, or no plan does)."""
    other = None if roomy[i] else fastest_fitting(steps, roomy)
    return None if other is None else float(steps.step_time[other] / steps.step_time[i] - 1)


def tight_gain(steps: StepArrays, i: int, roomy: np.ndarray) -> float | None:
    """How much faster than plan ``i``, which keeps the headroom, the fastest evaluated plan
    that fits without it is (None when plan ``i`` lacks the headroom or no such plan is
    faster)."""
    other = fastest_fitting(steps, ~roomy) if roomy[i] else None
    gain = 0.0 if other is None else float(1 - steps.step_time[other] / steps.step_time[i])
    return gain if gain > 0 else None


def estimate_from(result: SearchResult, index: int | None = None) -> Estimate:
    """The estimate record of one evaluated plan (the chosen one by default)."""
    i = result.shown if index is None else index
    st, run, chip = result.steps, result.run, result.chip
    step = float(st.step_time[i])
    speed = speed_metrics(result.arch, chip, run, result.num_chips, step)
    breakdown = {f"compute_{k}": float(v[i]) for k, v in st.compute.items()}
    breakdown.update({f"comm_{k}": float(v[i]) for k, v in st.comm_exposed.items()})
    breakdown["host_overhead"] = float(st.host[i])
    breakdown["pipeline_bubble"] = float(st.bubble[i])
    breakdown["optimizer_step"] = float(st.optimizer[i])
    frag_high = result.stack.fragmentation_high
    high = float(st.memory.with_high_hold(frag_high)[i])
    roomy = st.memory.keeps_headroom(chip, frag_high)
    return Estimate(
        model=result.arch.name, chip=chip.name, stack=result.stack.name,
        num_chips=result.num_chips,
        precision=run.precision, seq_len=run.seq_len, global_batch=run.global_batch,
        plan=result.plans.describe(i, int(round(float(st.num_micro[i]))),
                                   result.arch.spec.num_layers),
        step_time_s=step, tokens_per_s=run.tokens_per_step / step,
        tokens_per_s_per_chip=speed["tokens_per_s_per_chip"],
        model_flops_per_token=model_flops_per_token(result.arch, run.seq_len).total,
        model_tflops_per_chip=speed["model_tflops_per_chip"], mfu=float(speed["mfu"]),
        mfu_bf16=float(speed["mfu_bf16"]),
        memory_gib_per_chip=float(st.memory.total[i]) / GIB,
        memory_capacity_gib=float(chip.hbm_bytes) / GIB,
        fits_memory=bool(st.fits[i]), memory_gib_high_hold=high / GIB,
        keeps_headroom=bool(roomy[i]), headroom_slower_by=headroom_cost(st, i, roomy),
        tight_faster_by=tight_gain(st, i, roomy),
        chip_hours_per_1e12_tokens=speed["chip_hours_per_1e12_tokens"],
        breakdown_s=breakdown,
        memory_gib={**{k: float(v[i]) / GIB for k, v in st.memory.as_dict().items()},
                    **host_memory_gib(st.memory, i, chip)},
        plans_evaluated=result.candidates, search_seconds=result.search_seconds,
    )


def host_memory_gib(memory: MemoryBreakdown, i: int, chip: Chip) -> dict[str, float]:
    """The offload entries of ``memory_gib``: device bytes moved to the host, host memory used
    per chip and the host's memory per chip (0 when the profile has no host section)."""
    return {"offloaded_optimizer": float(memory.offloaded_optimizer[i]) / GIB,
            "offloaded_activations": float(memory.offloaded_activations[i]) / GIB,
            "host_used": float(memory.host[i]) / GIB,
            "host_capacity": float(chip.host_dram or 0.0) / GIB}


def estimate(
    arch: ModelArch, chip: Chip, stack: Stack | Sequence[Stack], run: RunConfig,
    num_chips: int, request: PlanRequest | None = None, allow_oom: bool = False,
) -> tuple[Estimate, SearchResult]:
    """Search (or evaluate the fixed plan) and return the chosen plan's estimate; several
    stacks (searched settings) are each searched and the fastest kept."""
    from moebench.commands.estimate.fit_advice import fit_advice

    stacks = [stack] if isinstance(stack, Stack) else list(stack)
    result = search_stacks(arch, chip, stacks, run, num_chips, request)
    stack = result.stack
    if result.fits:
        return estimate_from(result), result
    advice = fit_advice(arch, chip, stacks, run, num_chips, request or PlanRequest(), result)
    if not allow_oom:
        why = why_nothing_fits(arch, chip, stack, run, num_chips, request or PlanRequest())
        raise InputError("plan", None, f"no plan fits in memory for {arch.name} on "
                                       f"{num_chips:,} x {chip.name}: {advice}; {why} (or use "
                                       "--allow-oom)")
    return replace(estimate_from(result), memory_advice=advice), result


def estimate_job(job: JobInputs, num_chips: int, allow_oom: bool = False
                 ) -> tuple[Estimate, SearchResult]:
    """A job's estimate (its stacks searched), with what it assumed."""
    from moebench.commands.shared.assumptions import assumed_payload, assumptions

    est, result = estimate(job.arch, job.chip, job.stacks, job.run, num_chips, job.request,
                           allow_oom)
    items = assumptions(result, job.spec, job.options, job.given, job.search)
    return replace(est, assumed=assumed_payload(items)), result


def why_nothing_fits(arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig,
                     num_chips: int, request: PlanRequest) -> str:
    """What the plan needing least memory needs, and the smallest cluster where one fits."""
    need = least_memory(arch, chip, stack, run, num_chips, request) or 0.0
    bigger = smallest_fitting_cluster(arch, chip, stack, run, request, num_chips)
    where = (f"as given, the smallest cluster where it fits is {bigger:,} chips" if bigger
             else "no cluster up to a million chips fits it")
    return (f"the plan needing least memory needs {need / GIB:.1f} GiB of "
            f"{float(chip.hbm_bytes) / GIB:.1f} GiB per chip; {where}")

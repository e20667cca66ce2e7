"""Why a plan wins and where its time and memory go: ``moebench explain``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from moebench.commands.estimate.estimate import Estimate, estimate_from, fastest_fitting
from moebench.commands.shared.setup import JobInputs, Overrides, load_chip
from moebench.engine.plan import PlanRequest
from moebench.engine.search import CONVENTION, TIE_BAND, SearchResult, search_stacks
from moebench.inputs import catalog
from moebench.inputs.hardware import load_spec
from moebench.inputs.run import SHARDING

if TYPE_CHECKING:
    import pandas as pd

# Hardware figures whose 10% improvement is tried, by profile field name.
SENSITIVITY_FIELDS = {
    "peak FLOP/s": "compute.bf16_dense_tflops",
    "HBM bandwidth": "memory.hbm_bandwidth_tb_per_s",
    "scale-up bandwidth": "scale_up.bandwidth_gb_per_s",
    "scale-out bandwidth": "scale_out.bandwidth_gb_per_s",
    "HBM capacity": "memory.hbm_capacity_gb",
}
ALTERNATIVES = 5

LABELS = {
    "compute_attention_gemm": "attention projections (GEMM)",
    "compute_attention_core": "attention scores, softmax and context",
    "compute_elementwise": "norms, residuals, small kernels",
    "compute_dense_ffn": "dense FFN (GEMM)",
    "compute_moe_experts": "routed and shared experts (GEMM)",
    "compute_router_permute": "router, permutation, all-to-all buffers",
    "compute_lm_head_mtp": "LM head, loss and MTP",
    "compute_kernel_overhead": "kernel launch and tail overhead (device)",
    "compute_grad_accumulation": "gradients added up after each micro-batch (HBM)",
    "comm_tp_scale_up": "TP collectives, scale-up",
    "comm_tp_scale_out": "TP collectives, scale-out",
    "comm_ep_scale_up": "EP all-to-all, scale-up",
    "comm_ep_scale_out": "EP all-to-all, scale-out",
    "comm_cp": "CP KV ring",
    "comm_pp": "PP send/receive",
    "comm_dp": "DP gradients and parameters (and the compute they slow)",
    "comm_overlap": "compute slowed beside overlapped TP, CP and PP transfers",
    "comm_act_offload": "activation copies to and from the host",
    "host_overhead": "host dispatch and syncs (device waits)",
    "pipeline_bubble": "pipeline bubble",
    "optimizer_step": "optimizer step",
}


@dataclass(frozen=True)
class Explanation:
    estimate: Estimate
    time_split: list[dict[str, Any]]
    memory_split: list[dict[str, Any]]
    alternatives: list[dict[str, Any]]
    bottleneck: str
    sensitivities: list[dict[str, Any]]
    overrides: dict[str, str] = field(default_factory=dict)
    unusual: list[str] = field(default_factory=list)
    """Choices that differ from common practice, each with the reason the search made it."""

    def to_frame(self) -> pd.DataFrame:
        """One row per item: where the step's time goes (seconds, share of the step), the
        memory terms (share of capacity), and each +10% figure's step-time change."""
        import pandas as pd

        rows = [{"section": "time", "item": r["label"], "seconds": r["seconds"],
                 "share": r["share"]} for r in self.time_split]
        rows += [{"section": "memory", "item": r["item"], "seconds": None,
                  "share": r["share_of_capacity"]} for r in self.memory_split]
        rows += [{"section": "sensitivity +10%", "item": s["figure"], "seconds": None,
                  "share": s["step_time_change"]} for s in self.sensitivities]
        return pd.DataFrame(rows)


PLAN_LABELS = {"tp": "TP", "pp": "PP", "vpp": "VPP", "ep": "EP", "etp": "ETP", "cp": "CP",
               "dp": "DP", "micro_batch": "micro-batch", "recompute": "recompute",
               "schedule": "schedule", "sharding": "sharding", "shard_group": "shard group",
               "optimizer_offload": "optimizer offload", "offload_modules": "offloaded modules"}
# memory_gib entries about the host, not the device (left out of the device memory split).
HOST_ITEMS = ("offloaded_optimizer", "offloaded_activations", "host_used", "host_capacity")
# A runner-up within this share of the best is a tie, and an item that moves less is noise.
TIE = 0.001


def plan_changes(best: dict[str, Any], other: dict[str, Any]) -> str:
    """How another plan differs from the best one, field by field (``PP8 -> 16``)."""
    changes = [f"{PLAN_LABELS[k]} {best[k]} -> {other[k]}" for k in PLAN_LABELS
               if best.get(k) != other.get(k)]
    return ", ".join(changes) or "the same plan"


# Why a faster plan lost where the search chose the layout (search.requires_headroom).
KEPT = "which the search keeps where it chooses the layout"


def _headroom_words(need_gib: float) -> str:
    """The headroom a plan lacks, in the words every explanation uses."""
    return (f"the caching allocator's measured headroom (it needs {need_gib:.1f} GiB at the "
            "top of its range)")


def _why_slower(best: Estimate, other: Estimate) -> str:
    """Why a runner-up lost: memory, or the items of the step that its plan makes longer."""
    changes = plan_changes(best.plan, other.plan)
    if not other.fits_memory:
        return (f"{changes}: does not fit, needs {other.memory_gib_per_chip:.1f} of "
                f"{other.memory_capacity_gib:.1f} GiB")
    slower = other.step_time_s / best.step_time_s - 1
    tight = best.keeps_headroom and not other.keeps_headroom
    lacks = f"its lack of {_headroom_words(other.memory_gib_high_hold)}"
    if slower < -TIE_BAND and tight:
        return f"{changes}: {100 * -slower:.1f}% faster, passed over for {lacks}, {KEPT}"
    if slower < 0:
        why = lacks if tight else _less_conventional(best, other)
        return (f"{changes}: {100 * -slower:.2f}% faster, a tie within {100 * TIE_BAND:g}% "
                f"(the model's error is larger), passed over for {why}")
    if slower < TIE:
        return f"{changes}: as fast ({100 * slower:.2f}% slower), ranked after it"
    diffs = {k: other.breakdown_s.get(k, 0.0) - best.breakdown_s.get(k, 0.0)
             for k in set(best.breakdown_s) | set(other.breakdown_s)}
    worse = sorted((k for k, d in diffs.items() if d > TIE * best.step_time_s),
                   key=lambda k: -diffs[k])[:2]
    items = " and ".join(f"{LABELS.get(k, k)} +{diffs[k]:.3g} s" for k in worse)
    return f"{changes}: slower by {100 * slower:.1f}%" + (f", {items}" if items else "")


def _less_conventional(best: Estimate, other: Estimate) -> str:
    """The first field of the search's convention where ``other`` is the less usual plan."""
    for name, words in CONVENTION:
        b, o = best.plan[name], other.plan[name]
        rank = {"none": 0, "selective": 1, "full": 2, **{s: i for i, s in enumerate(SHARDING)}}
        b, o = rank.get(b, b), rank.get(o, o)
        if o != b:
            return f"{words} ({PLAN_LABELS[name]} {other.plan[name]})"
    return "ranking after it"


# Below this context length, context parallelism is unusual (it exists for long sequences).
LONG_CONTEXT = 16384


def _against(result: SearchResult, best: int, mask: np.ndarray, what: str,
             unkept: str | None = None) -> str:
    """Why the search did not take the fastest fitting plan among ``mask``; ``unkept``: why,
    when the search kept no such plan to time (else: none is valid)."""
    steps = result.steps
    other = fastest_fitting(steps, mask)
    if other is None:
        if not mask.any():
            return unkept or f"no valid plan {what}"
        need = float(steps.memory.total[mask].min()) / 2**30
        cap = float(result.chip.hbm_bytes) / 2**30
        return f"no plan {what} fits memory (the lightest needs {need:.1f} of {cap:.1f} GiB)"
    slower = float(steps.step_time[other] / steps.step_time[best] - 1)
    if slower >= 0:
        return f"the fastest plan {what} is {100 * slower:.1f}% slower"
    tie = f"the fastest plan {what} is {100 * -slower:.2f}% faster, a tie within " \
          f"{100 * TIE_BAND:g}%, passed over because it"
    frag_high = result.stack.fragmentation_high
    roomy = steps.memory.keeps_headroom(result.chip, frag_high)
    if roomy[best] and not roomy[other]:
        high = float(steps.memory.with_high_hold(frag_high)[other])
        lacks = f"lacks {_headroom_words(high / 2**30)}"
        if -slower <= TIE_BAND:
            return f"{tie} {lacks}"
        return f"the fastest plan {what} is {100 * -slower:.1f}% faster but {lacks}, {KEPT}"
    p = result.plans
    field_, words = next(((f, w) for f, w in CONVENTION
                          if getattr(p, f)[other] != getattr(p, f)[best]), ("", "other choices"))
    shown = p.describe(other, 0).get(field_, "")
    uses = f" ({PLAN_LABELS[field_]} {shown})" if field_ else ""
    return f"{tie} needs {words}{uses}"


def unusual_choices(result: SearchResult, given: PlanRequest | None = None) -> list[str]:
    """The chosen plan's departures from common practice, with the search's reason for each
    (``given``: the plan fields the user fixed, which are no choice of the search's)."""
    if result.best is None:
        return []
    b, p = result.best, result.plans
    notes = []
    if p.cp[b] > 1 and result.run.seq_len < LONG_CONTEXT:
        notes.append(f"context parallelism (CP{p.cp[b]}) at a {result.run.seq_len:,}-token "
                     f"context, where it is usually left off: "
                     + _against(result, b, p.cp == 1, "without CP"))
    if p.recompute[b] == 2:
        notes.append("full recompute, which spends about a third more compute: "
                     + _against(result, b, p.recompute < 2, "with less recompute"))
    moe = result.arch.spec.moe is not None
    if moe and p.ep[b] == 1:
        notes.append("no expert parallelism for an MoE model: "
                     + _against(result, b, p.ep > 1, "with EP > 1"))
    if p.optimizer_offload[b] > 0:
        f = float(p.optimizer_offload[b])
        # The search offloads only plans that fit neither without it nor beside a fitting
        # variant (search.plans_worth_timing): none kept without it means none fits.
        why = ("as given" if given is not None and given.optimizer_offload is not None
               else _against(result, b, p.optimizer_offload == 0, "without offload",
                             unkept="no plan without offload fits memory"))
        notes.append(f"optimizer states offloaded to host memory ({f:g} of them), stepped on the "
                     f"CPU over the host link: {why}")
    roomy = result.steps.memory.keeps_headroom(result.chip, result.stack.fragmentation_high)
    if not roomy[b]:
        high = result.steps.memory.with_high_hold(result.stack.fragmentation_high)
        why = (_against(result, b, roomy, "with that headroom") if roomy.any() else
               f"no plan evaluated keeps it (the lightest needs {float(high.min()) / 2**30:.1f} "
               f"of {float(result.chip.hbm_bytes) / 2**30:.1f} GiB at that hold)")
        notes.append("a plan that fits only at the caching allocator's typical hold, not at the "
                     f"top of its measured range: {why}")
    depth = int(p.pp[b] * p.vpp[b])
    if depth > result.arch.spec.num_layers / 2:
        notes.append(f"{depth} pipeline chunks for {result.arch.spec.num_layers} layers "
                     "(two layers or fewer per chunk): "
                     + _against(result, b, p.pp * p.vpp <= result.arch.spec.num_layers / 2,
                                "with fewer chunks"))
    return notes


def bottleneck_words(est: Estimate) -> str:
    """The largest share of the step, in plain words."""
    total = est.step_time_s
    comp = sum(v for k, v in est.breakdown_s.items() if k.startswith("compute_"))
    comm = sum(v for k, v in est.breakdown_s.items() if k.startswith("comm_"))
    top = max(est.breakdown_s, key=lambda k: est.breakdown_s[k])
    share = est.breakdown_s[top] / total
    kind = ("compute-bound" if comp >= max(comm, est.breakdown_s["pipeline_bubble"])
            else "communication-bound" if comm >= est.breakdown_s["pipeline_bubble"]
            else "bubble-bound")
    return (f"{kind}: compute {100 * comp / total:.0f}%, exposed communication "
            f"{100 * comm / total:.0f}%, pipeline bubble "
            f"{100 * est.breakdown_s['pipeline_bubble'] / total:.0f}% of the step; the largest "
            f"single item is {LABELS.get(top, top)} at {100 * share:.0f}%")


def sensitivities(job: JobInputs, num_chips: int, base_step: float) -> list[dict[str, Any]]:
    """Step-time change when each hardware figure improves by 10% (best plan re-searched)."""
    spec = load_spec(catalog.resolve("hardware", job.chip_ref, "--chip"), job.overrides.hardware)
    out = []
    for label, dotted in SENSITIVITY_FIELDS.items():
        if label == "peak FLOP/s" and job.run.precision == "fp8":
            dotted = "compute.fp8_dense_tflops"
        section, name = dotted.split(".")
        current = getattr(getattr(spec, section), name).value
        trial = Overrides({**job.overrides.hardware, dotted: repr(current * 1.1)},
                          job.overrides.stack, job.overrides.run)
        chip = load_chip(job.chip_ref, trial)
        res = search_stacks(job.arch, chip, job.stacks, job.run, num_chips, job.request)
        step = float(res.steps.step_time[res.best]) if res.best is not None else float("nan")
        change = step / base_step - 1 if np.isfinite(step) else None
        out.append({"figure": label, "field": dotted, "step_time_change": change})
    return out


def explain(result: SearchResult, job: JobInputs) -> Explanation:
    """Break the chosen plan down and compare it with the runners-up; the job's overrides are
    re-applied when each hardware figure is improved by 10%."""
    from moebench.commands.shared.assumptions import assumed_payload, assumptions

    best = estimate_from(result)
    best = replace(best, assumed=assumed_payload(
        assumptions(result, job.spec, job.options, job.given, job.search)))
    total = best.step_time_s
    split = [{"item": k, "label": LABELS.get(k, k), "seconds": v, "share": v / total}
             for k, v in sorted(best.breakdown_s.items(), key=lambda kv: -kv[1]) if v > 0]
    cap = best.memory_capacity_gib
    mem = [{"item": k, "gib": v, "share_of_capacity": v / cap}
           for k, v in sorted(best.memory_gib.items(), key=lambda kv: -kv[1])
           if k not in HOST_ITEMS]
    alternatives = []
    for i in result.ranked(ALTERNATIVES + 1):
        if int(i) == result.shown:
            continue
        other = estimate_from(result, int(i))
        alternatives.append({"plan": other.plan, "step_time_s": other.step_time_s,
                             "fits_memory": other.fits_memory,
                             "keeps_headroom": other.keeps_headroom,
                             "why_not": _why_slower(best, other)})
    sens = sensitivities(job, result.num_chips, total)
    return Explanation(best, split, mem, alternatives[:ALTERNATIVES], bottleneck_words(best),
                       sens, job.overrides.shown, unusual_choices(result, job.given))

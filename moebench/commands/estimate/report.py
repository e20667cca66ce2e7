"""The estimate record as a Report: a key/value table for people, the record itself as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from moebench.commands.estimate.estimate import Estimate
from moebench.commands.shared.assumptions import Assumption, assumed_lines
from moebench.commands.shared.plan_text import offload_text, recompute_text, sharding_text
from moebench.commands.shared.report import Report
from moebench.engine.search import TIE_BAND

if TYPE_CHECKING:
    import pandas as pd


def _plan_text(plan: dict[str, object]) -> str:
    return (f"TP{plan['tp']} PP{plan['pp']} VPP{plan['vpp']} EP{plan['ep']} ETP{plan['etp']} "
            f"CP{plan['cp']} "
            f"DP{plan['dp']} mb{plan['micro_batch']} x{plan['num_micro_batches']} "
            f"{recompute_text(plan)} {plan['schedule']} {sharding_text(plan)}"
            + "".join(f" {t}" for t in offload_text(plan)))


def estimate_report(est: Estimate, overrides: dict[str, str] | None = None) -> Report:
    rows = [
        ("plan", _plan_text(est.plan)),
        ("step time (s)", est.step_time_s),
        ("tokens/s", est.tokens_per_s),
        ("tokens/s per chip", est.tokens_per_s_per_chip),
        ("model TFLOPS per chip", est.model_tflops_per_chip),
        (f"MFU (vs {est.precision.upper()} dense peak)", est.mfu),
        # FP8 work counted against the BF16 peak can exceed 1: the convention, not an error.
        *([("MFU (vs BF16 dense peak; above 1 possible under FP8)", est.mfu_bf16)]
          if est.precision != "bf16" else []),
        ("memory per chip (GiB)", f"{est.memory_gib_per_chip:.1f} of "
                                  f"{est.memory_capacity_gib:.1f}"
                                  + ("" if est.keeps_headroom or not est.fits_memory else
                                     f" (tight: {est.memory_gib_high_hold:.1f} at the "
                                     "allocator's measured high hold)")),
        ("fits memory", est.fits_memory),
        *([("host memory per chip (GiB)", f"{est.memory_gib['host_used']:.1f} of "
                                          f"{est.memory_gib['host_capacity']:.1f}, "
                                          f"{est.memory_gib['offloaded_optimizer']:.1f} of it "
                                          "optimizer states")]
          if est.memory_gib.get("host_used") else []),
        ("chip-hours per 1e12 tokens", est.chip_hours_per_1e12_tokens),
        ("model FLOPs per token", est.model_flops_per_token),
        ("plans evaluated", est.plans_evaluated),
    ]
    rows += [(f"  {k} (s/step)", v) for k, v in est.breakdown_s.items() if v > 0]
    def df() -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"figure": [r[0] for r in rows], "value": [r[1] for r in rows]},
                            dtype=object)

    payload = est.as_dict()
    payload["overrides"] = overrides or {}
    footer = [f"{est.precision}, seq {est.seq_len}, global batch {est.global_batch} sequences",
              est.counting]
    if overrides:
        footer.append("overridden: " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    if est.memory_advice:
        footer.append(f"does not fit: {est.memory_advice}")
    elif est.fits_memory and not est.keeps_headroom:
        footer.append(tight_words(est))
    elif est.tight_faster_by is not None and est.tight_faster_by > TIE_BAND:
        footer.append(f"the plan keeps the caching allocator's measured headroom "
                      f"({est.memory_gib_high_hold:.1f} of {est.memory_capacity_gib:.1f} GiB at "
                      f"the top of its range); a plan that fits only at its typical hold is "
                      f"{100 * est.tight_faster_by:.1f}% faster")
    footer += assumed_lines([Assumption(**a) for a in est.assumed])
    return Report(f"{est.model} on {est.num_chips} x {est.chip}", df, payload, footer)


def tight_words(est: Estimate) -> str:
    """Why a fitting plan is tight: what it needs if the allocator holds its measured high, and
    what keeping the headroom would cost."""
    cost = ("; no plan evaluated keeps that headroom" if est.headroom_slower_by is None else
            f"; the fastest plan that keeps it is {100 * est.headroom_slower_by:.1f}% slower")
    return (f"tight: the plan fits at the caching allocator's typical hold "
            f"({est.memory_gib_per_chip:.1f} of {est.memory_capacity_gib:.1f} GiB), not at the "
            f"top of the stack's measured range ({est.memory_gib_high_hold:.1f} GiB){cost}")

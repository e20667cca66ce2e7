"""``moebench explain`` rendered: bars in the terminal, the same content as JSON/CSV/Markdown."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from moebench.commands.estimate.explain import Explanation
from moebench.commands.shared.assumptions import Assumption, assumed_lines
from moebench.commands.shared.plan_text import plan_text
from moebench.commands.shared.report import Report

BAR = 40


def _bar(share: float) -> str:
    n = max(0, min(BAR, round(share * BAR)))
    return "█" * n + "·" * (BAR - n)


def explanation_report(ex: Explanation) -> Report:
    est = ex.estimate
    payload = {"estimate": est.as_dict(), "time_split": ex.time_split,
               "memory_split": ex.memory_split, "alternatives": ex.alternatives,
               "bottleneck": ex.bottleneck, "sensitivities": ex.sensitivities,
               "overrides": ex.overrides, "unusual": ex.unusual}
    footer = [f"chosen plan: {plan_text(est.plan)}; step {est.step_time_s:.3g} s; "
              f"MFU {est.mfu:.3f}", ex.bottleneck]
    footer += [f"unusual: {u}" for u in ex.unusual]
    footer += [f"runner-up {plan_text(a['plan'])}: {a['why_not']}" for a in ex.alternatives]
    if ex.overrides:
        footer.append("overridden: " + ", ".join(f"{k}={v}" for k, v in ex.overrides.items()))
    footer += assumed_lines([Assumption(**a) for a in est.assumed])
    return Report(f"Why {est.model} on {est.num_chips} x {est.chip} runs as it does",
                  ex.to_frame(), payload, footer)


def rich_view(ex: Explanation) -> Group:
    est = ex.estimate
    head = Text.assemble(
        (f"{est.model} on {est.num_chips} x {est.chip}", "bold"),
        f"  {est.precision}, seq {est.seq_len}, batch {est.global_batch}\n",
        ("plan ", "bold"), plan_text(est.plan),
        f"   step {est.step_time_s:.3g} s   {est.tokens_per_s_per_chip:,.0f} tokens/s/chip   "
        f"MFU {est.mfu:.3f}\n", ("bottleneck ", "bold"), ex.bottleneck,
    )
    time = Table(title="Where the step time goes", show_edge=False)
    for col in ("item", "seconds", "share", ""):
        time.add_column(col, justify="right" if col in ("seconds", "share") else "left")
    for r in ex.time_split:
        time.add_row(r["label"], f"{r['seconds']:.3g}", f"{100 * r['share']:.1f}%",
                     _bar(r["share"]))
    mem = Table(title=f"Memory per chip against {est.memory_capacity_gib:.1f} GiB",
                show_edge=False)
    for col in ("item", "GiB", "of capacity", ""):
        mem.add_column(col, justify="right" if col in ("GiB", "of capacity") else "left")
    for r in ex.memory_split:
        mem.add_row(r["item"], f"{r['gib']:.1f}", f"{100 * r['share_of_capacity']:.1f}%",
                    _bar(r["share_of_capacity"]))
    alt = Table(title="Runners-up and why they lost", show_edge=False)
    alt.add_column("plan")
    alt.add_column("step s", justify="right")
    alt.add_column("why not")
    for a in ex.alternatives:
        alt.add_row(plan_text(a["plan"]), f"{a['step_time_s']:.3g}", a["why_not"])
    if not ex.alternatives:
        alt.add_row("-", "-", "every plan field was fixed: no other plan was evaluated")
    sens = Table(title="Step time if one hardware figure improves by 10%", show_edge=False)
    sens.add_column("figure")
    sens.add_column("profile field")
    sens.add_column("step time", justify="right")
    for s in ex.sensitivities:
        change = s["step_time_change"]
        sens.add_row(s["figure"], s["field"], "-" if change is None else f"{100 * change:+.1f}%")
    parts: list = [head]
    if ex.unusual:
        parts.append(Text("\n".join(["Unusual for this plan, and why the search chose it:"]
                                    + [f"  - {u}" for u in ex.unusual])))
    parts += [time, mem, alt, sens]
    if ex.overrides:
        parts.append(Text("overridden: " + ", ".join(f"{k}={v}" for k, v in ex.overrides.items())))
    lines = assumed_lines([Assumption(**a) for a in est.assumed], limit=8)
    if lines:
        parts.append(Text("\n".join(lines)))
    return Group(*parts)


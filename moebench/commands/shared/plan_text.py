"""A plan in a few words, as tables show it (``TP2 PP8 EP8 DP64 mb1 rc-selective``)."""

from __future__ import annotations

from typing import Any

from moebench.inputs.run import SELECTIVE_MODULES


def sharding_text(plan: dict[str, Any]) -> str:
    """``zero-1``, or ``hsdp8`` with its shard group."""
    s = str(plan.get("sharding", "zero-1"))
    return f"hsdp{plan['shard_group']}" if s == "hsdp" else s


def recompute_text(plan: dict[str, Any]) -> str:
    """``none``, ``selective`` (its own modules), ``full``, or the modules joined by '+'."""
    modules = [str(m) for m in plan.get("recompute_modules") or []]
    if plan["recompute"] != "selective" or not modules or set(modules) == set(SELECTIVE_MODULES):
        return str(plan["recompute"])
    if set(SELECTIVE_MODULES) <= set(modules):  # selective and more: selective+mlp+moe
        return "+".join(["selective"] + [m for m in modules if m not in SELECTIVE_MODULES])
    return "+".join(modules)


def plan_text(plan: dict[str, Any] | None) -> str:
    if not plan:
        return "-"
    parts = [f"TP{plan['tp']}", f"PP{plan['pp']}"]
    if plan["vpp"] > 1:
        parts.append(f"VPP{plan['vpp']}")
    parts += [f"EP{plan['ep']}"] + ([f"ETP{plan['etp']}"] if plan.get("etp", 1) > 1 else [])
    ulysses = "-ulysses" if plan.get("cp_kind") == "ulysses" else ""
    parts += [f"CP{plan['cp']}{ulysses}"] if plan["cp"] > 1 else []
    parts += [f"DP{plan['dp']}", f"mb{plan['micro_batch']}"]
    if plan["recompute"] != "none":
        parts.append(f"rc-{recompute_text(plan)}")
    if plan["schedule"] != "1f1b":
        parts.append(plan["schedule"])
    layout = plan.get("pipeline_layout", "balanced")
    if layout != "balanced" and plan["pp"] > 1:  # the search's own choice: unsaid
        parts.append("even-layout" if layout == "even" else f"layout[{layout}]")
    if plan.get("sharding", "zero-1") != "zero-1":  # Megatron's distributed optimizer: unsaid
        parts.append(sharding_text(plan))
    parts += offload_text(plan)
    if plan.get("offload_modules"):  # which modules: the JSON plan and explain list them
        parts.append("act-offload")
    return " ".join(parts)


def offload_text(plan: dict[str, Any]) -> list[str]:
    """``opt-offload`` (all optimizer states on the host) or ``opt-offload0.5``; nothing
    without offload."""
    f = float(plan.get("optimizer_offload", 0.0) or 0.0)
    return [] if f == 0 else [f"opt-offload{'' if f == 1 else f'{f:g}'}"]

"""Mixed clusters as rows of ``moebench compare``: the chosen strategy's figures in the row's
columns, every strategy, each type alone and the types apart under its ``mix`` key."""

from __future__ import annotations

from typing import Any

from moebench.commands.compare.records import CompareRow
from moebench.commands.mix.estimate import MixEstimate, estimate_mix
from moebench.commands.mix.outcome import Outcome
from moebench.inputs.mix import parse_mix
from moebench.inputs.model import ModelArch
from moebench.inputs.scenario import ScenarioSpec

BRIEF = ("configuration", "num_chips", "status", "step_time_s", "tokens_per_s", "days", "cost",
         "energy_mwh")


def _brief(o: Outcome | None) -> dict[str, Any] | None:
    return None if o is None else {k: getattr(o, k) for k in BRIEF}


def mix_summary(est: MixEstimate) -> dict[str, Any]:
    """The ``mix`` object of a compare row: what was chosen, how, and the alternatives."""
    o = est.chosen_outcome
    return {
        "strategy": est.chosen, "choice": est.choice, "types": est.types,
        "parts": o.parts if o else [], "cross_type": o.cross_type if o else None,
        "strategies": [_brief(s) for s in est.strategies],
        "alone": [_brief(a) for a in est.alone], "apart": _brief(est.apart),
        "verdict": est.verdict, "notes": o.notes if o else [],
        "assumptions": est.assumptions,
    }


def mix_row(est: MixEstimate, sc: ScenarioSpec, deadline_days: float | None) -> CompareRow:
    """The compare row of one mix on its chosen strategy (or why there is none)."""
    o = est.chosen_outcome
    base: dict[str, Any] = {
        "model": est.model, "chip": est.mix, "entry": est.mix,
        "stack": "+".join(t["stack"] for t in est.types), "precision": est.precision,
        "currency": sc.pricing.currency, "price_basis": sc.pricing.basis,
        "mix": mix_summary(est)}
    if o is None or o.step_time_s is None:
        reasons = "; ".join(f"{s.configuration}: {s.status}" for s in est.strategies)
        return CompareRow(
            **base, num_chips=sum(t["count"] for t in est.types), plan=None, step_time_s=None,
            tokens_per_s_per_chip=None, mfu=None, mfu_bf16=None, memory_gib_per_chip=None,
            fits_memory=False, days=None, chip_hours=None, goodput=None,
            price_per_chip_hour=None, price_source="", cost=None, cost_ratio=None,
            energy_mwh=None, co2_tonnes=None, status=f"no mixed strategy: {reasons}")
    status = "ok" if deadline_days is None else (
        "fixed size: --deadline-days sizes the single-chip rows only")
    missing = [n for n in o.notes if n.startswith("no price")]
    if missing:
        status += "; " + "; ".join(missing)
    return CompareRow(
        **base, num_chips=o.num_chips, plan=None, step_time_s=o.step_time_s,
        tokens_per_s_per_chip=o.tokens_per_s_per_chip, mfu=o.mfu, mfu_bf16=o.mfu_bf16,
        memory_gib_per_chip=max(p["memory_gib_per_chip"] for p in o.parts if not p["idle"]),
        fits_memory=True, days=o.days, chip_hours=o.chip_hours, goodput=o.goodput,
        price_per_chip_hour=None if o.cost is None or not o.chip_hours
        else o.cost / o.chip_hours,
        price_source="each chip type at its own price on the basis, averaged over the chips",
        cost=o.cost, cost_ratio=None, energy_mwh=o.energy_mwh, co2_tonnes=o.co2_tonnes,
        status=status)


def mix_rows(sc: ScenarioSpec, archs: list[ModelArch], overrides: dict[str, dict[str, str]],
             deadline_days: float | None) -> list[CompareRow]:
    """One row per (model, mix) of the scenario; each mix gets the overrides of its chips and
    those for every chip (compare has checked that every key names some entry)."""
    rows = []
    for text in sc.mixes:
        chips = {p.chip for p in parse_mix(text, "mixes").parts}
        mine = {k: v for k, v in overrides.items() if k == "*" or k in chips}
        rows += [mix_row(estimate_mix(sc, text, mine, arch=arch), sc, deadline_days)
                 for arch in archs]
    return rows

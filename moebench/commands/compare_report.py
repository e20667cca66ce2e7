"""The comparison as a report (table and JSON), the CLI's option overrides, and CI guards."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import asdict
from typing import Any

import pandas as pd

from moebench.commands.compare import CompareRow, Comparison
from moebench.commands.report import Report
from moebench.errors import InputError
from moebench.inputs.scenario import ScenarioSpec

_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}


def parse_tokens(text: str) -> float:
    """'1T', '500B', '1.5e12', '800M' as a number of tokens."""
    raw = text.strip().upper().replace("_", "").replace(",", "")
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:E[+-]?[0-9]+)?)([KMBGTP]?)", raw)
    if not match:
        raise InputError("--tokens", None,
                         f"expected a count like 1T, 500B or 1.5e12, got {text!r}")
    value = float(match.group(1)) * _SUFFIX.get(match.group(2), 1.0)
    if not (value > 0 and math.isfinite(value)):
        raise InputError("--tokens", None, f"must be a positive number, got {text!r}")
    return value


def plan_text(plan: dict[str, Any] | None) -> str:
    if not plan:
        return "-"
    parts = [f"TP{plan['tp']}", f"PP{plan['pp']}"]
    if plan["vpp"] > 1:
        parts.append(f"VPP{plan['vpp']}")
    parts += [f"EP{plan['ep']}"] + ([f"ETP{plan['etp']}"] if plan.get("etp", 1) > 1 else [])
    parts += [f"CP{plan['cp']}"] if plan["cp"] > 1 else []
    parts += [f"DP{plan['dp']}", f"mb{plan['micro_batch']}"]
    if plan["recompute"] != "none":
        parts.append(f"rc-{plan['recompute']}")
    if plan["schedule"] != "1f1b":
        parts.append(plan["schedule"])
    return " ".join(parts)


def _with_interval(value: float | None, iv: tuple[float, float] | None, fmt: str) -> str:
    if value is None:
        return "-"
    text = format(value, fmt)
    return f"{text} ({format(iv[0], fmt)}-{format(iv[1], fmt)})" if iv else text


def comparison_report(cmp: Comparison, uncertainty: bool) -> Report:
    a = cmp.assumptions
    cur = a.currency
    rows = []
    for r in cmp.rows:
        row: dict[str, Any] = {
            "model": r.model, "chip": r.entry or r.chip, "chips": r.num_chips,
            "plan": plan_text(r.plan) if r.plan else r.status,
            "step s": r.step_time_s, "tok/s/chip": r.tokens_per_s_per_chip, "MFU": r.mfu,
            "GiB": r.memory_gib_per_chip,
            "days": r.days, "chip-hours": r.chip_hours, "goodput": r.goodput,
            f"cost {cur}": r.cost, "ratio": r.cost_ratio, "MWh": r.energy_mwh,
        }
        if uncertainty:
            row["ratio"] = _with_interval(r.cost_ratio, r.intervals.get("cost_ratio"), ".2f")
            row["days"] = _with_interval(r.days, r.intervals.get("days"), ".1f")
        rows.append(row)
    df = pd.DataFrame(rows)
    if len({r.model for r in cmp.rows}) == 1:
        df = df.drop(columns=["model"])
    payload = {
        "scenario": cmp.scenario.name,
        "description": cmp.scenario.description,
        "assumptions": asdict(a),
        "rows": [_row_json(r) for r in cmp.rows],
    }
    footer = [
        f"scenario {a.scenario}: {a.tokens:.3g} tokens, seq {a.seq_len}, global batch "
        f"{a.global_batch} sequences, baseline {cmp.scenario.baseline}",
        f"pricing {a.pricing} in {cur} at {a.cny_per_usd} CNY/USD; PUE {a.pue}; electricity "
        f"{a.electricity_per_kwh} {cmp.scenario.pricing.electricity_per_kwh.currency}/kWh; "
        f"ownership: {a.amortisation_years} years at {a.utilisation:.0%} utilisation",
        f"goodput: Young/Daly checkpointing at {a.checkpoint_write_gb_per_s} GB/s per chip, "
        f"{a.restart_minutes} min restarts, per-chip MTBF from each profile",
        f"expert load imbalance {a.expert_imbalance}; EP overlap under 1F1B: "
        f"{'on' if a.ep_overlap else 'off'}",
        "prices: " + "; ".join(f"{r.chip} {r.price_per_chip_hour:.3g} {cur}/h from "
                                 f"{r.price_source.split(' (')[0]}"
                                 for r in cmp.rows if r.price_per_chip_hour is not None),
    ]
    if uncertainty:
        footer.append("intervals: 5th-95th percentile over the ranges of estimated figures")
    if a.overrides:
        footer.append("overridden: " + ", ".join(f"{k}={v}" for k, v in a.overrides.items()))
    return Report(f"Training cost and speed: {cmp.scenario.description}", df, payload, footer)


def _row_json(r: CompareRow) -> dict[str, Any]:
    d = asdict(r)
    d["intervals"] = {k: list(v) for k, v in r.intervals.items()}
    return d


_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
        ">": operator.gt, "<": operator.lt}
GUARD_FIELDS = ("step_time_s", "tokens_per_s_per_chip", "mfu", "memory_gib_per_chip", "days",
                "chip_hours", "goodput", "cost", "cost_ratio", "energy_mwh", "co2_tonnes")


def check_guards(cmp: Comparison, guards: list[str]) -> list[str]:
    """Guards like ``t-head-ppu.cost_ratio > 1.0``; returns the ones that tripped."""
    tripped = []
    for guard in guards:
        m = re.fullmatch(r"\s*([A-Za-z0-9._:-]+?)\.([a-z_0-9]+)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*",
                         guard)
        if not m:
            raise InputError(
                "--fail-if", None,
                f"expected CHIP.FIELD OP NUMBER (e.g. h20.cost_ratio > 1), got {guard!r}")
        chip, fld, op, raw = m.groups()
        if fld not in GUARD_FIELDS:
            raise InputError("--fail-if", None,
                             f"unknown field {fld!r}; one of {', '.join(GUARD_FIELDS)}")
        try:
            limit = float(raw)
        except ValueError:
            raise InputError("--fail-if", None, f"expected a number, got {raw!r}") from None
        rows = [r for r in cmp.rows if (r.entry or r.chip) == chip]
        if not rows:
            raise InputError("--fail-if", None, f"chip {chip!r} is not in the comparison")
        for r in rows:
            value = getattr(r, fld)
            if value is None or _OPS[op](value, limit):
                shown = "no plan fits" if value is None else f"{value:.4g}"
                tripped.append(f"{r.model} on {chip}: {fld} = {shown} ({guard.strip()})")
    return tripped


def apply_options(sc: ScenarioSpec, **opts: Any) -> ScenarioSpec:
    """A copy of the scenario with the command line's options applied (None = keep)."""
    data = sc.model_dump()
    for key, value in opts.items():
        if value is None:
            continue
        if key == "cny_per_usd":
            data["pricing"]["cny_per_usd"] = {
                "value": value, "kind": "estimate", "low": value, "high": value,
                "source": "command line --fx-rate"}
        elif key in ("currency", "mode"):
            data["pricing"][key] = value
        elif key == "plan":
            data["plan"].update({k: v for k, v in value.items() if v is not None})
        elif key == "run_changes":
            for name, v in value.items():
                if name == "expert_imbalance":
                    data[name] = {**data[name], "value": v, "low": v, "high": v,
                                  "source": f"command line --set run.{name}"}
                else:
                    data[name] = v
        else:
            data[key] = value
    from moebench.inputs.schema import validate

    return validate(ScenarioSpec, data, "command line")

"""The comparison as a report: a title from the actual inputs, one row per model and chip entry,
and the assumptions under it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from moebench.commands.compare.break_even import verdict_line
from moebench.commands.compare.records import CompareRow, Comparison, row_dict
from moebench.commands.shared.assumptions import Assumption
from moebench.commands.shared.caveats import caveats_for, stacks_line
from moebench.commands.shared.plan_text import plan_text
from moebench.commands.shared.pricing import BASES
from moebench.commands.shared.report import Report
from moebench.engine.search import TIE_BAND
from moebench.inputs.hardware_costs import MARKETS


def _with_interval(value: float | None, iv: tuple[float, float] | None, fmt: str) -> str:
    if value is None:
        return "-"
    text = format(value, fmt)
    return f"{text} ({format(iv[0], fmt)}-{format(iv[1], fmt)})" if iv else text


def _tokens_words(tokens: float) -> str:
    for unit, size in (("trillion", 1e12), ("billion", 1e9), ("million", 1e6)):
        if tokens >= size:
            return f"{tokens / size:g} {unit}"
    return f"{tokens:g}"


def title(cmp: Comparison) -> str:
    """The headline, from the inputs actually used: models, tokens, context, chips, basis."""
    a = cmp.assumptions
    chips = [r.entry for r in cmp.rows]
    others = [c for c in dict.fromkeys(chips) if c != cmp.scenario.baseline]
    size = (f"the cheapest cluster meeting {a['deadline_days']:g} days"
            if a["deadline_days"] is not None else f"{a['num_chips']:,} chips each")
    if cmp.scenario.mixes:
        size += " (mixes as written)"
    return (f"{', '.join(a['models'])} on {_tokens_words(a['tokens'])} tokens at "
            f"{a['seq_len']:,}-token context, {size}: {cmp.scenario.baseline} against "
            f"{', '.join(others) or 'itself'}; {a['price_basis']} prices in {a['currency']}")


def stack_caveats(cmp: Comparison, with_intervals: bool = False) -> dict[str, tuple[str, str]]:
    """Stacks whose validation error is above the target, or that have no measured runs:
    the mark to put beside their rows and the footnote that explains it."""
    # A mixed row's stack is its types' stacks joined by '+'.
    return caveats_for((s for r in cmp.rows for s in r.stack.split("+")), cmp.stacks,
                       "read its interval" if with_intervals
                       else "--uncertainty 1000 prints its interval")


def _plan_cell(r: CompareRow) -> str:
    """A chip's plan, a mix's chosen strategy and each type's part, or why there is none."""
    if r.plan:
        return plan_text(r.plan)
    if r.mix and r.mix["strategy"] and r.step_time_s is not None:
        from moebench.commands.mix.report import part_text
        from moebench.engine.mix.result import PIPELINE

        pipeline = r.mix["strategy"] == PIPELINE
        return f"{r.mix['strategy']}: " + "; ".join(part_text(p, pipeline)
                                                     for p in r.mix["parts"])
    return r.status


def mix_footer(rows: list[CompareRow]) -> list[str]:
    """Per mixed row: the verdict, the alternatives, and what the mixed figures rest on."""
    out = []
    for r in rows:
        if not r.mix:
            continue
        m = r.mix
        steps = ", ".join(f"{s['configuration']} {s['step_time_s']:.1f} s" if s["step_time_s"]
                          else f"{s['configuration']} n/a" for s in m["strategies"])
        out.append(f"mix {r.entry}: {m['verdict']['summary']}; step by strategy: {steps}")
        a = m["assumptions"]
        out.append(f"mix {r.entry}: cross-type traffic over the {a['cross_type_network']} "
                   f"(fabric {a['fabric']}, {a['placement']}), never scale-up links; local-sgd "
                   f"syncs every {a['sync_every_steps']} steps over the WAN, its effect on "
                   "convergence is outside the model; no intervals for mixed rows")
    return out


def comparison_report(cmp: Comparison, uncertainty: bool) -> Report:
    a = cmp.assumptions
    cur = a["currency"]
    caveats = stack_caveats(cmp, uncertainty)
    rows = []
    display: dict[str, list[str]] = {"chip": [], "cost_ratio": [], "days": [],
                                     "break_even_per_chip_hour": [], "status": []}
    for r in cmp.rows:
        mark = max((caveats.get(s, ("", ""))[0] for s in r.stack.split("+")), key=len)
        row: dict[str, Any] = {
            "model": r.model, "chip": r.entry, "num_chips": r.num_chips,
            "precision": r.precision, "plan": _plan_cell(r),
            "step_time_s": r.step_time_s, "tokens_per_s_per_chip": r.tokens_per_s_per_chip,
            "mfu": r.mfu, "memory_gib_per_chip": r.memory_gib_per_chip, "days": r.days,
            "chip_hours": r.chip_hours, "goodput": r.goodput,
            "price_per_chip_hour": r.price_per_chip_hour, "cost": r.cost,
            "currency": r.currency, "cost_ratio": r.cost_ratio,
            "break_even_per_chip_hour": r.break_even_per_chip_hour,
            "break_even_price_ratio": r.break_even_price_ratio, "energy_mwh": r.energy_mwh,
            "status": r.status, "entry": r.entry, "stack": r.stack,
            "validation_caveat": mark or None, "fits_memory": r.fits_memory,
            "price_basis": r.price_basis, "price_source": r.price_source,
            "mfu_bf16": r.mfu_bf16, "co2_tonnes": r.co2_tonnes,
            **{f"cost_ratio_{b}": v for b, v in r.cost_ratio_by_basis.items()},
        }
        display["chip"].append(f"{r.entry}{mark}")
        # Why a row has no price is in the footer's "no price" line; the cell says only that.
        display["status"].append(r.status.split("; no price:")[0]
                                 + ("; no price" if "; no price:" in r.status else ""))
        if uncertainty:
            for key, fmt in (("cost_ratio", ".2f"), ("days", ".1f"),
                             ("break_even_per_chip_hour", ".3g")):
                iv = r.intervals.get(key)
                row[f"{key}_p05"], row[f"{key}_p95"] = iv if iv else (None, None)
                display[key].append(_with_interval(row[key], iv, fmt))
        rows.append(row)
    if not uncertainty:
        del display["cost_ratio"], display["days"], display["break_even_per_chip_hour"]
    df = pd.DataFrame(rows)
    if len({r.model for r in cmp.rows}) == 1:
        df = df.drop(columns=["model"])
    verdict = verdict_line(cmp.rows, cmp.scenario.baseline)
    payload = {"scenario": cmp.scenario.name, "title": title(cmp),
               "description": cmp.scenario.description, "assumptions": a, "verdict": verdict,
               "rows": [row_dict(r) for r in cmp.rows]}
    size = (f"deadline {a['deadline_days']:g} days: the cheapest cluster size that meets it, "
            "else the fastest (marked deadline missed)" if a["deadline_days"] is not None
            else f"{a['num_chips']:,} chips of each type")
    footer = [verdict] if verdict else []
    footer += [
        f"scenario {a['scenario']}: {a['tokens']:.3g} tokens, seq {a['seq_len']}, global batch "
        f"{a['global_batch']} sequences, {size}, baseline {cmp.scenario.baseline}",
        f"price basis {a['price_basis']}"
        + (f" ({a['market']}: {MARKETS[a['market']]})" if a.get("market") else "")
        + f": {a['price_basis_meaning']}; {cur} at {a['cny_per_usd']} CNY/USD; a chip with no "
        "price on this basis has no cost or ratio",
        f"PUE {a['pue']}; electricity {a['electricity_per_kwh']} {a['electricity_currency']}/kWh;"
        f" ownership: {a['amortisation_years']} years at {a['utilisation']:.0%} utilisation"
        + (f"; TCO beyond the accelerator: server share {t['server_share']:.0%} of chip-only "
           f"prices, scale-out network {t['network_per_chip']:,.0f} {t['network_currency']} "
           f"per chip, facility {t['facility_per_kw']:,.0f} {t['facility_currency']}/kW, "
           f"capital at {t['cost_of_capital']:.0%} a year"
           if (t := a.get("tco")) else "; ownership counts the purchase price alone"),
        f"goodput: Young/Daly checkpointing at {a['checkpoint_write_gb_per_s']} GB/s per chip, "
        f"{a['restart_minutes']} min restarts, per-chip MTBF from each profile",
        f"expert load imbalance {a['expert_imbalance']}; EP overlap under 1F1B: "
        f"{_on_off(a['ep_overlap'])}; mfu against the peak of each row's precision",
        stacks_line(((r.entry, r.stack) for r in cmp.rows), cmp.stacks),
    ]
    leading = [(r.entry, Assumption(**r.assumed[0])) for r in cmp.rows
               if r.assumed and r.assumed[0].get("change")]
    if leading:
        footer.append("assumed, largest effect per chip (the rest in --format json): " + "; ".join(
            f"{entry} {a.text()}" for entry, a in leading))
    missing = [f"{r.entry}: {r.price_source}" for r in cmp.rows
               if r.price_per_chip_hour is None and r.plan]
    if missing:
        footer.append("no price: " + "; ".join(missing))
    footer += [text for _, text in caveats.values()]
    offloading = [r.entry for r in cmp.rows if r.plan and r.plan.get("optimizer_offload")]
    if offloading:
        footer.append(f"opt-offload ({', '.join(offloading)}): optimizer states in host memory; "
                      "the host link and CPU Adam figures behind it are estimates, and no "
                      "measured run in the validation set offloads")
    act = [r.entry for r in cmp.rows if r.plan and r.plan.get("offload_modules")]
    if act:
        footer.append(f"act-offload ({', '.join(act)}): activations wait in host memory "
                      "between forward and backward, copied over the host link behind compute; "
                      "few measured runs offload activations (moebench validate)")
    footer += headroom_lines(cmp.rows)
    footer += mix_footer(cmp.rows)
    footer += [f"warning: {w}" for w in a.get("warnings", [])]
    if uncertainty:
        footer.append("intervals: 5th-95th percentile of the point times two spreads: each "
                      "stack's out-of-source error (moebench validate; a stack with no measured "
                      "runs takes the widest stack's) and the ranges of estimated and calibrated "
                      "figures around their stated values; figures fitted on a bound are named "
                      "in the stacks line")
    if a["overrides"]:
        footer.append("overridden: " + ", ".join(f"{k}={v}" for k, v in a["overrides"].items()))
    labels = {"num_chips": "chips", "precision": "prec", "step_time_s": "step s",
              "tokens_per_s_per_chip": "tok/s/chip", "mfu": "MFU",
              "memory_gib_per_chip": "GiB", "chip_hours": "chip-hours",
              "price_per_chip_hour": f"{cur}/h", "cost": f"cost {cur}", "cost_ratio": "ratio",
              "energy_mwh": "MWh", "break_even_per_chip_hour": f"b/e {cur}/h"}
    # CSV carries every field JSON has; the tables leave out what the footer says.
    hidden = ("currency", "stack", "validation_caveat", "cost_ratio_p05", "cost_ratio_p95",
              "days_p05", "days_p95", "break_even_per_chip_hour_p05",
              "break_even_per_chip_hour_p95", "break_even_price_ratio", "entry", "fits_memory",
              "price_basis", "price_source", "mfu_bf16", "co2_tonnes", "memory_gib_high_hold",
              "keeps_headroom",
              *(f"cost_ratio_{b}" for b in BASES))
    # A deadline missed (or any row whose status is not plain ok) shows it in every format.
    if all(r.status.split(";")[0] == "ok" or not r.plan for r in cmp.rows):
        hidden += ("status",)
    # A narrow terminal keeps chip, plan, days, cost and ratio longest.
    optional = ("energy_mwh", "break_even_per_chip_hour", "goodput", "step_time_s",
                "memory_gib_per_chip", "price_per_chip_hour", "tokens_per_s_per_chip",
                "precision", "num_chips", "chip_hours", "mfu")
    return Report(title(cmp), df, payload, footer, labels=labels, hidden=hidden,
                  display=display, optional=optional)


def _on_off(flag: bool | None) -> str:
    """A setting as given, or each stack release's default when the scenario leaves it."""
    return "each stack release's default" if flag is None else ("on" if flag else "off")


def headroom_lines(rows: list[CompareRow]) -> list[str]:
    """The footer's headroom lines: the tight plans (they fit at the caching allocator's typical
    hold, not at the top of its measured range), with what keeping the headroom would cost
    where a plan does; and the plans that keep it though a tight one is faster."""
    tight = [f"{r.entry} {r.memory_gib_high_hold:.1f} GiB at the high hold"
             + (", no plan keeps it" if r.headroom_slower_by is None else
                f", a plan keeping it {100 * r.headroom_slower_by:.1f}% slower")
             for r in rows if r.plan and r.memory_gib_high_hold and not r.keeps_headroom]
    kept = [f"{r.entry} (a tight plan {100 * gain:.1f}% faster)" for r in rows
            if r.plan and r.keeps_headroom and (gain := r.tight_faster_by or 0.0) > TIE_BAND]
    lines = [("tight (fits at the caching allocator's typical hold, not at the top of its "
              f"measured range): {'; '.join(tight)}")] if tight else []
    if kept:
        lines.append("the headroom kept at a cost (the search chose the layout; a given "
                     f"layout may run tight): {'; '.join(kept)}")
    return lines

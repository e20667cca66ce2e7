"""Intervals and ratios of a comparison: each row's figures sampled over the ranges of the
hardware, stack and scenario figures, the cost ratio and break-even price against the baseline,
and their intervals around the point with each stack's out-of-source error."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from moebench.commands.compare.break_even import break_even
from moebench.commands.compare.records import CompareRow, Entry
from moebench.commands.shared.pricing import economics
from moebench.commands.shared.uncertainty import around, residual_draws, sampler
from moebench.engine.search import SearchResult
from moebench.inputs import catalog
from moebench.inputs.hardware import chip_from_spec
from moebench.inputs.model import ModelArch
from moebench.inputs.scenario import ScenarioSpec
from moebench.inputs.stack import StackSpec, load_stack_spec, stack_from_spec

Z90 = 1.6448536269514722  # two-sided 90% normal quantile


def sampled(arch: ModelArch, e: Entry, sc: ScenarioSpec, res: SearchResult, samples: int,
             seed: int) -> dict[str, Any]:
    """Sample arrays of the chosen plan's figures over the ranges of the hardware, stack
    (calibration intervals included) and scenario figures."""
    from moebench.engine.step import evaluate

    rng = np.random.default_rng([seed, stable_hash(e.spec.name), stable_hash(e.stack_spec.name)])
    value = sampler(rng, samples)
    chip = chip_from_spec(e.spec, value)
    stack = stack_from_spec(e.stack_spec, sc.settings(), value=value)
    assert res.best is not None
    st = evaluate(arch, chip, stack, e.run, res.plans.take(res.best))
    econ = economics(chip, e.spec, sc, res.num_chips, st.step_time, st.memory.checkpoint, value)
    out = {"step_time_s": st.step_time, "days": econ["days"], "chip_hours": econ["chip_hours"],
           "tokens_per_s_per_chip": sc.seq_len * sc.global_batch / st.step_time / res.num_chips}
    if econ["cost"] is not None:
        out["cost"] = econ["cost"]
    out["residual"] = residual_draws(rng, samples, out_of_source_interval(e.stack_spec))
    return out


def out_of_source_interval(spec: StackSpec) -> list[float]:
    """The stack's 80% out-of-source error interval (log predicted / measured speed); a stack
    with no measured runs takes the widest of the catalogued stacks', the honest guess for a
    stack nobody has checked."""
    v = spec.validation
    if v is not None and v.runs and v.interval_80:
        return list(v.interval_80)
    widest = [-0.0, 0.0]
    for name in catalog.catalog_names("stacks"):
        other = load_stack_spec(name).validation
        if other is not None and other.runs and other.interval_80:
            lo, hi = other.interval_80
            if hi - lo > widest[1] - widest[0]:
                widest = [lo, hi]
    return widest


def stable_hash(text: str) -> int:
    """A hash that does not change between runs (Python's hash() is salted)."""
    h = 0
    for ch in text.encode():
        h = (h * 131 + ch) % (2**31 - 1)
    return h


def ratio_interval(ratio: float, row_iv: list[float], base_iv: list[float]
                   ) -> tuple[float, float]:
    """The 90% interval of a ratio of two chips' chip-hours from their stacks' out-of-source
    errors alone (no samples drawn): each stack's log error a normal through its interval_80
    (:func:`moebench.commands.shared.uncertainty.residual_draws`), independent, so the log of
    the ratio's error is normal with the difference of the means and the root sum of the
    variances; its 5th and 95th percentiles scale the point."""
    from moebench.commands.shared.uncertainty import Z80

    m = (sum(row_iv) - sum(base_iv)) / 2.0
    sd = math.hypot((row_iv[1] - row_iv[0]) / (2 * Z80), (base_iv[1] - base_iv[0]) / (2 * Z80))
    return ratio * math.exp(m - Z90 * sd), ratio * math.exp(m + Z90 * sd)


def with_ratios(rows: list[CompareRow], baseline: str,
                 samples: dict[tuple[str, str], dict[str, Any]]) -> list[CompareRow]:
    """Each row against the baseline row of its model: cost ratio on the table's basis and on
    every other, break-even price, and the intervals of the sampled figures."""
    out = []
    for row in rows:
        base = next((r for r in rows if r.model == row.model and r.entry == baseline), None)
        ratio = None
        intervals = dict(row.intervals)
        if base is not None and base.cost and row.cost is not None:
            ratio = row.cost / base.cost
        extra = break_even(row, base)
        s, sb = samples.get((row.model, row.entry)), samples.get((row.model, baseline))
        if s is not None:
            slow = np.exp(s["residual"])  # measured time / predicted time, out of source
            for key in ("days", "cost", "chip_hours"):
                point = getattr(row, key)
                if key in s and point is not None:
                    intervals[key] = around(point, s[key], slow)
            intervals["tokens_per_s_per_chip"] = around(
                row.tokens_per_s_per_chip or 0.0, s["tokens_per_s_per_chip"], 1.0 / slow)
            if sb is not None and base is not None:
                rel = np.exp(s["residual"] - sb["residual"])
                hours = np.asarray(s["chip_hours"]) / np.asarray(sb["chip_hours"])
                if extra["break_even_price_ratio"] is not None:
                    intervals["break_even_price_ratio"] = around(
                        extra["break_even_price_ratio"], hours, rel)
                if ratio is not None and "cost" in s and "cost" in sb:
                    costs = np.asarray(s["cost"]) / np.asarray(sb["cost"])
                    intervals["cost_ratio"] = around(ratio, costs, rel)
                    intervals["break_even_per_chip_hour"] = around(
                        extra["break_even_per_chip_hour"], np.asarray(sb["cost"])
                        / np.asarray(s["chip_hours"]), 1.0 / rel)
        out.append(replace(row, cost_ratio=ratio, intervals=intervals, **extra))
    return out

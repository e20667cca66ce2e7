"""The comparison behind ``moebench compare``: each chip on its own best plan, with time, money,
energy and goodput, relative to a baseline chip."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from moebench.commands.cost import (
    DAY,
    checkpoint_seconds,
    convert,
    energy_mwh,
    ownership_per_chip_hour,
    young_daly,
)
from moebench.commands.estimate import Estimate, estimate_from
from moebench.commands.setup import split_overrides
from moebench.commands.uncertainty import interval, sampler
from moebench.engine.plan import PlanRequest
from moebench.engine.search import SearchResult, search
from moebench.errors import InputError
from moebench.inputs.hardware import Chip, HardwareSpec, chip_from_spec, load_spec, nominal
from moebench.inputs.model import ModelArch, load_model
from moebench.inputs.run import RunConfig, resolve_precision
from moebench.inputs.scenario import ScenarioSpec
from moebench.inputs.stack import (
    Stack,
    StackSpec,
    check_vendor,
    load_stack_spec,
    stack_from_spec,
)
from moebench.units import GIGA, HOUR

DEADLINE_DOUBLINGS = 13  # chip counts tried in deadline mode: domain x 1, 2, 4, ... 4096


@dataclass(frozen=True, kw_only=True)
class Assumptions:
    """What the costs rest on, printed under the table so a reader can argue with it."""

    scenario: str
    tokens: float
    seq_len: int
    global_batch: int
    currency: str
    cny_per_usd: float
    pricing: str
    pue: float
    electricity_per_kwh: float
    amortisation_years: float
    utilisation: float
    carbon_kg_per_kwh: float
    checkpoint_write_gb_per_s: float
    restart_minutes: float
    expert_imbalance: float
    ep_overlap: bool
    overrides: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CompareRow:
    model: str
    chip: str
    stack: str
    num_chips: int
    precision: str
    plan: dict[str, Any] | None
    step_time_s: float | None
    tokens_per_s_per_chip: float | None
    mfu: float | None
    memory_gib_per_chip: float | None
    fits_memory: bool
    days: float | None
    chip_hours: float | None
    goodput: float | None
    price_per_chip_hour: float | None
    price_source: str
    cost: float | None
    currency: str
    cost_ratio: float | None
    energy_mwh: float | None
    co2_tonnes: float | None
    status: str
    entry: str = ""
    """The chip entry this row answers: CHIP, or CHIP:STACK when a stack was named."""
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    scenario: ScenarioSpec
    assumptions: Assumptions
    rows: list[CompareRow]


def price_per_chip_hour(
    chip: Chip, spec: HardwareSpec, sc: ScenarioSpec, fx: Any
) -> tuple[Any, str]:
    """Rental price per chip-hour in the scenario's currency, and where it comes from."""
    p, cur = sc.pricing, sc.pricing.currency
    if chip.name in p.prices:
        fig = p.prices[chip.name]
        return convert(fig.value, fig.currency, cur, fx), f"scenario ({fig.source})"
    if p.use_ling_fair_cost and chip.ling_device and chip.ling_cost_per_hour is not None:
        price = convert(chip.ling_cost_per_hour, chip.ling_currency or "CNY", cur, fx)
        return price, f"Ling fair cost, device {chip.ling_device} (inferred match)"
    return (convert(chip.rental_per_hour, chip.rental_currency, cur, fx),
            f"profile rental ({spec.price.rental_per_chip_hour.source})")


def _economics(
    chip: Chip, spec: HardwareSpec, sc: ScenarioSpec, num_chips: int, step_s: Any,
    ckpt_bytes: Any, value: Any,
) -> dict[str, Any]:
    """Days, chip-hours, goodput, cost and energy; scalars, or sample arrays."""
    p, g = sc.pricing, sc.goodput
    fx = value(p.cny_per_usd)
    tokens_per_s = sc.seq_len * sc.global_batch / step_s
    ideal_s = sc.tokens / tokens_per_s
    ckpt_s = checkpoint_seconds(ckpt_bytes, value(g.checkpoint_write_gb_per_s) * GIGA)
    gp = young_daly(num_chips, chip.mtbf_s, ckpt_s, value(g.restart_minutes) * 60.0)
    wall_s = ideal_s / gp.goodput
    chip_hours = num_chips * wall_s / HOUR
    pue = value(p.pue)
    elec = convert(value(p.electricity_per_kwh), p.electricity_per_kwh.currency, p.currency, fx)
    if p.mode == "rental":
        price, source = price_per_chip_hour(chip, spec, sc, fx)
    else:
        capex = convert(chip.purchase, chip.purchase_currency, p.currency, fx)
        price = ownership_per_chip_hour(capex, value(p.amortisation_years),
                                        value(p.utilisation), chip.wall_w, pue, elec)
        source = "ownership: purchase amortised + power x PUE x electricity"
    energy = energy_mwh(num_chips, chip.wall_w, pue, wall_s)
    return {
        "days": wall_s / DAY, "chip_hours": chip_hours, "goodput": gp.goodput,
        "price": price, "price_source": source, "cost": chip_hours * price,
        "energy_mwh": energy, "co2_tonnes": energy * value(p.carbon_kg_per_kwh),
    }


def _deadline_search(
    arch: ModelArch, chip: Chip, stack: Stack, spec: HardwareSpec, run: RunConfig,
    sc: ScenarioSpec, req: PlanRequest, deadline_days: float,
) -> tuple[int, SearchResult]:
    """The fewest chips (domain x 2^k) whose best plan trains within the deadline."""
    last: tuple[int, SearchResult] | None = None
    for k in range(DEADLINE_DOUBLINGS):
        n = chip.up_domain * 2**k
        try:
            res = search(arch, chip, stack, run, n, req)
        except InputError:
            continue
        last = (n, res)
        if res.fits:
            est = estimate_from(res)
            ck = float(res.steps.memory.checkpoint[res.best])
            econ = _economics(chip, spec, sc, n, est.step_time_s, ck, nominal)
            if econ["days"] <= deadline_days:
                return n, res
    if last is None:
        raise InputError("--deadline-days", None, f"no valid plan for {chip.name} at any size")
    return last


def _empty_row(
    arch: ModelArch, chip: Chip, stack: Stack, sc: ScenarioSpec, run: RunConfig, n: int,
    status: str, memory_gib: float | None,
) -> CompareRow:
    """The row of a chip with no usable plan: the reason instead of figures."""
    return CompareRow(
        model=arch.name, chip=chip.name, stack=stack.name, num_chips=n, precision=run.precision,
        plan=None,
        step_time_s=None, tokens_per_s_per_chip=None, mfu=None,
        memory_gib_per_chip=memory_gib, fits_memory=False, days=None, chip_hours=None,
        goodput=None, price_per_chip_hour=None, price_source="", cost=None,
        currency=sc.pricing.currency, cost_ratio=None, energy_mwh=None, co2_tonnes=None,
        status=status,
    )


def _row(
    arch: ModelArch, chip: Chip, spec: HardwareSpec, sc: ScenarioSpec, run: RunConfig,
    n: int, res: SearchResult,
) -> CompareRow:
    if res.best is None:
        oom = estimate_from(res)
        return _empty_row(
            arch, chip, res.stack, sc, run, n,
            f"no plan fits: the fastest needs {oom.memory_gib_per_chip:.0f} GiB of "
            f"{oom.memory_capacity_gib:.0f} GiB per chip", oom.memory_gib_per_chip)
    base: dict[str, Any] = {"model": arch.name, "chip": chip.name, "stack": res.stack.name,
                            "num_chips": n,
                            "precision": run.precision, "currency": sc.pricing.currency}
    est: Estimate = estimate_from(res)
    i = res.best
    mem = res.steps.memory
    ckpt = float(mem.checkpoint[i])
    econ = _economics(chip, spec, sc, n, est.step_time_s, ckpt, nominal)
    return CompareRow(
        **base, plan=est.plan, step_time_s=est.step_time_s,
        tokens_per_s_per_chip=est.tokens_per_s_per_chip, mfu=est.mfu,
        memory_gib_per_chip=est.memory_gib_per_chip, fits_memory=True,
        days=float(econ["days"]), chip_hours=float(econ["chip_hours"]),
        goodput=float(econ["goodput"]), price_per_chip_hour=float(econ["price"]),
        price_source=econ["price_source"], cost=float(econ["cost"]), cost_ratio=None,
        energy_mwh=float(econ["energy_mwh"]), co2_tonnes=float(econ["co2_tonnes"]),
        status="ok",
    )


def _sampled(
    arch: ModelArch, spec: HardwareSpec, stack_spec: StackSpec, sc: ScenarioSpec,
    run: RunConfig, res: SearchResult, samples: int, seed: int,
) -> dict[str, Any]:
    """Sample arrays of the chosen plan's figures over the ranges of the hardware, stack
    (calibration intervals included) and scenario figures."""
    from moebench.engine.step import evaluate

    rng = np.random.default_rng([seed, _stable_hash(spec.name), _stable_hash(stack_spec.name)])
    value = sampler(rng, samples)
    chip = chip_from_spec(spec, value)
    stack = stack_from_spec(stack_spec, sc.stack_options.options(), value=value)
    if res.best is None:
        raise ValueError("sampling needs a plan that fits")
    plan = res.plans.take(res.best)
    st = evaluate(arch, chip, stack, run, plan)
    ckpt = st.memory.checkpoint
    econ = _economics(chip, spec, sc, res.num_chips, st.step_time, ckpt, value)
    return {"step_time_s": st.step_time, **{k: v for k, v in econ.items()
                                             if k != "price_source"}}


def _stable_hash(text: str) -> int:
    """A hash that does not change between runs (Python's hash() is salted)."""
    h = 0
    for ch in text.encode():
        h = (h * 131 + ch) % (2**31 - 1)
    return h


def parse_entry(entry: str) -> tuple[str, str | None]:
    """A compare entry ``CHIP`` or ``CHIP:STACK`` as (chip, stack or None for the default)."""
    chip, sep, stack = entry.partition(":")
    if not chip or (sep and not stack):
        raise InputError("--chips", None, f"expected CHIP or CHIP:STACK, got {entry!r}")
    return chip, stack or None


def run_comparison(
    sc: ScenarioSpec, deadline_days: float | None = None, samples: int = 0, seed: int = 0,
    overrides: dict[str, dict[str, str]] | None = None,
) -> Comparison:
    """Every (model, chip entry) of the scenario on its best plan, with costs relative to the
    baseline. An entry is a chip on its default stack, or ``CHIP:STACK`` for another stack, so
    one table can show a chip under two stacks."""
    if sc.baseline not in sc.chips:
        raise InputError("--baseline", None,
                         f"{sc.baseline!r} is not among the chips ({', '.join(sc.chips)})")
    if deadline_days is not None and not (deadline_days > 0 and math.isfinite(deadline_days)):
        raise InputError("--deadline-days", None, f"must be a positive number, got {deadline_days}")
    from moebench.inputs import catalog

    overrides = overrides or {}
    rows: list[CompareRow] = []
    sample_arrays: dict[tuple[str, str], dict[str, Any]] = {}
    for model_name in sc.models:
        arch = load_model(model_name)
        for entry in sorted(set(sc.chips), key=sc.chips.index):
            chip_name, stack_name = parse_entry(entry)
            split = split_overrides({**overrides.get("*", {}), **overrides.get(chip_name, {}),
                                     **overrides.get(entry, {})})
            spec = load_spec(catalog.resolve("hardware", chip_name, "--chips"), split.hardware)
            chip = chip_from_spec(spec)
            stack_spec = load_stack_spec(stack_name or chip.default_stack, split.stack)
            check_vendor(stack_spec, chip.vendor, chip.name)
            stack = stack_from_spec(stack_spec, sc.stack_options.options())
            run = RunConfig(seq_len=sc.seq_len, global_batch=sc.global_batch,
                            precision=resolve_precision(sc.precision, chip),
                            ep_overlap=sc.ep_overlap,
                            expert_imbalance=sc.expert_imbalance.value)
            req = PlanRequest(**sc.plan.model_dump())
            try:
                if deadline_days is not None:
                    n, res = _deadline_search(arch, chip, stack, spec, run, sc, req,
                                              deadline_days)
                else:
                    n, res = sc.num_chips, search(arch, chip, stack, run, sc.num_chips, req)
            except InputError as exc:
                if exc.where != "plan":
                    raise
                # No valid plan on this chip (the cluster or batch does not divide): say so in
                # its row rather than dropping it or failing the whole comparison.
                rows.append(replace(_empty_row(arch, chip, stack, sc, run, sc.num_chips,
                                               exc.message, None), entry=entry))
                continue
            row = replace(_row(arch, chip, spec, sc, run, n, res), entry=entry)
            if samples and row.fits_memory:
                sample_arrays[(arch.name, entry)] = _sampled(
                    arch, spec, stack_spec, sc, run, res, samples, seed)
            rows.append(row)
    rows = _with_ratios(rows, sc.baseline, sample_arrays)
    return Comparison(scenario=sc, assumptions=_assumptions(sc, overrides), rows=rows)


def _with_ratios(rows: list[CompareRow], baseline: str,
                 samples: dict[tuple[str, str], dict[str, Any]]) -> list[CompareRow]:
    out = []
    for row in rows:
        base = next((r for r in rows if r.model == row.model and r.entry == baseline), None)
        ratio = None
        intervals = dict(row.intervals)
        if base is not None and base.cost and row.cost is not None:
            ratio = row.cost / base.cost
        s, sb = samples.get((row.model, row.entry)), samples.get((row.model, baseline))
        if s is not None:
            for key in ("days", "cost", "chip_hours", "tokens_per_s_per_chip"):
                if key in s:
                    intervals[key] = interval(s[key])
            if sb is not None and ratio is not None:
                intervals["cost_ratio"] = interval(np.asarray(s["cost"]) / np.asarray(sb["cost"]))
        out.append(replace(row, cost_ratio=ratio, intervals=intervals))
    return out


def _assumptions(sc: ScenarioSpec, overrides: dict[str, dict[str, str]]) -> Assumptions:
    p, g = sc.pricing, sc.goodput
    return Assumptions(
        scenario=sc.name, tokens=sc.tokens, seq_len=sc.seq_len, global_batch=sc.global_batch,
        currency=p.currency, cny_per_usd=p.cny_per_usd.value, pricing=p.mode, pue=p.pue.value,
        electricity_per_kwh=p.electricity_per_kwh.value,
        amortisation_years=p.amortisation_years.value, utilisation=p.utilisation.value,
        carbon_kg_per_kwh=p.carbon_kg_per_kwh.value,
        checkpoint_write_gb_per_s=g.checkpoint_write_gb_per_s.value,
        restart_minutes=g.restart_minutes.value, expert_imbalance=sc.expert_imbalance.value,
        ep_overlap=sc.ep_overlap,
        overrides={f"{c}:{k}": v for c, kv in overrides.items() for k, v in kv.items()},
    )

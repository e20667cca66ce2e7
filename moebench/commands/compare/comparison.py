"""The comparison behind ``moebench compare``: each chip on its own best plan, with time, money,
energy and goodput, relative to a baseline chip, every chip priced on one basis."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from moebench.commands.compare.deadline import SizedRun, search_deadline
from moebench.commands.compare.records import CompareRow, Comparison, Entry
from moebench.commands.compare.sampling import (
    out_of_source_interval,
    ratio_interval,
    sampled,
    with_ratios,
)
from moebench.commands.estimate.estimate import estimate_from
from moebench.commands.shared.assumptions import assumed_payload
from moebench.commands.shared.assumptions import assumptions as settings_assumed
from moebench.commands.shared.options import split_chip_stack
from moebench.commands.shared.pricing import (
    BASIS_WORDS,
    check_price_overrides,
    economics,
    prices_by_basis,
    unavailable,
)
from moebench.commands.shared.setup import resolve_request, split_overrides
from moebench.engine.plan import PlanRequest
from moebench.engine.search import SearchResult, search_stacks
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.hardware import chip_from_spec, load_spec, nominal
from moebench.inputs.model import ModelArch, load_model
from moebench.inputs.run import RunConfig, resolve_precision
from moebench.inputs.scenario import ScenarioSpec
from moebench.inputs.settings import option_variants, parse_search
from moebench.inputs.stack import check_vendor, load_stack_spec, stack_from_spec


def _row(arch: ModelArch, e: Entry, sc: ScenarioSpec, n: int, res: SearchResult,
         req: PlanRequest, status: str = "ok") -> CompareRow:
    """The row of a chip on its chosen plan (or the reason there is none)."""
    base = _base(arch, e, sc, res.stack.name, n)
    est = estimate_from(res)
    if res.best is None:
        from moebench.commands.estimate.estimate import why_nothing_fits

        why = why_nothing_fits(arch, e.chip, res.stack, e.run, n, req)
        return _empty(base, f"no plan fits: {why}", est.memory_gib_per_chip)
    econ = economics(e.chip, e.spec, sc, n, est.step_time_s,
                     float(res.steps.memory.checkpoint[res.best]), nominal)
    price = econ["price"]
    return CompareRow(
        **base, plan=est.plan, step_time_s=est.step_time_s,
        tokens_per_s_per_chip=est.tokens_per_s_per_chip, mfu=est.mfu, mfu_bf16=est.mfu_bf16,
        memory_gib_per_chip=est.memory_gib_per_chip, fits_memory=True,
        memory_gib_high_hold=est.memory_gib_high_hold, keeps_headroom=est.keeps_headroom,
        headroom_slower_by=est.headroom_slower_by, tight_faster_by=est.tight_faster_by,
        days=float(econ["days"]), chip_hours=float(econ["chip_hours"]),
        goodput=float(econ["goodput"]),
        price_per_chip_hour=None if price.per_chip_hour is None else float(price.per_chip_hour),
        price_source=price.source if price.missing is None else price.missing,
        cost=None if econ["cost"] is None else float(econ["cost"]), cost_ratio=None,
        price_by_basis=prices_by_basis(e.chip, e.spec, sc, nominal),
        energy_mwh=float(econ["energy_mwh"]), co2_tonnes=float(econ["co2_tonnes"]),
        status=status if price.missing is None else f"{status}; no price: {price.missing}",
    )


def _base(arch: ModelArch, e: Entry, sc: ScenarioSpec, stack: str,
          num_chips: int | None = None) -> dict[str, Any]:
    """The identifying fields of a row (on ``num_chips``, else the scenario's cluster)."""
    return {"model": arch.name, "chip": e.chip.name, "entry": e.name, "stack": stack,
            "num_chips": num_chips or sc.num_chips, "precision": e.run.precision,
            "currency": sc.pricing.currency, "price_basis": sc.pricing.basis}


def _empty(base: dict[str, Any], status: str, memory_gib: float | None) -> CompareRow:
    """The row of a chip with no usable plan: the reason instead of figures."""
    return CompareRow(
        **base, plan=None, step_time_s=None, tokens_per_s_per_chip=None, mfu=None,
        mfu_bf16=None, memory_gib_per_chip=memory_gib, fits_memory=False, days=None,
        chip_hours=None, goodput=None, price_per_chip_hour=None, price_source="", cost=None,
        cost_ratio=None, energy_mwh=None, co2_tonnes=None, status=status)


def _entries(sc: ScenarioSpec, overrides: dict[str, dict[str, str]],
             ) -> tuple[list[Entry], list[str]]:
    """Every chip entry loaded once, with its overrides, stack and run; and the warnings
    ``profiles check`` would give on the hardware files (a unit slip, an inherited Ling
    price), so a comparison shows them too."""
    from moebench.inputs.plausible import implausible_figures, inherited_ling_price

    entries = []
    warnings: list[str] = []
    from moebench.inputs.mix import parse_mix

    known_chips = {split_chip_stack(e)[0] for e in sc.chips} | set(sc.chips) | {
        p.chip for text in sc.mixes for p in parse_mix(text, "mixes").parts}
    for key in overrides:
        if key != "*" and key not in known_chips:
            raise InputError("--set", key, f"chip {key!r} is not in the comparison "
                             f"({', '.join(sc.chips)})")
    for name in dict.fromkeys(sc.chips):
        chip_name, stack_name = split_chip_stack(name)
        split = split_overrides({**overrides.get("*", {}), **overrides.get(chip_name, {}),
                                 **overrides.get(name, {})})
        check_price_overrides(split.hardware, sc.pricing.basis, chip_name)
        path = catalog.resolve("hardware", chip_name, "--chips")
        spec = load_spec(path, split.hardware)
        warnings += implausible_figures(spec, str(path))
        if sc.pricing.basis == "ling":
            warnings += inherited_ling_price(spec, path)
        chip = chip_from_spec(spec)
        stack_spec = load_stack_spec(stack_name or chip.default_stack, split.stack)
        check_vendor(stack_spec, chip.vendor, chip.name)
        precision = resolve_precision(sc.precision, chip)
        run = RunConfig(seq_len=sc.seq_len, global_batch=sc.global_batch, precision=precision,
                        expert_imbalance=sc.expert_imbalance.value,
                        optimizer_states=stack_spec.release.defaults["optimizer_states"])
        entries.append(Entry(name, spec, chip, stack_spec, run))
    labels = [(e.chip.name, e.stack_spec.label) for e in entries]
    for label in labels:
        if labels.count(label) > 1:
            raise InputError("--chips", None, f"two chip entries resolve to {label[0]} on "
                             f"{label[1]}: give hardware files distinct names")
    return entries, warnings


def _models(sc: ScenarioSpec) -> list[ModelArch]:
    archs = [load_model(m) for m in sc.models]
    names = [a.name for a in archs]
    for a, src in zip(archs, sc.models, strict=True):
        if names.count(a.name) > 1:
            others = [s for s, b in zip(sc.models, archs, strict=True) if b.name == a.name]
            raise InputError("--model", None, f"{' and '.join(others)} are both named "
                             f"{a.name!r}: rename one (its file name or name_or_path) ({src})")
    return archs


def run_comparison(
    sc: ScenarioSpec, deadline_days: float | None = None, samples: int = 0, seed: int = 0,
    overrides: dict[str, dict[str, str]] | None = None, with_assumptions: bool = True,
    include_unavailable: bool = False,
) -> Comparison:
    """Every (model, chip entry) of the scenario on its best plan, with costs relative to the
    baseline. An entry is a chip on its default stack, or ``CHIP:STACK`` for another stack, so
    one table can show a chip under two stacks. Rows are keyed by model and entry.
    ``with_assumptions=False`` leaves out what each unstated setting's alternative would
    change (a step evaluation per setting), for callers that do not show it (sweep). With a
    market, a chip not sold there keeps its time figures and says why it has no cost; a
    deadline search skips it unless ``include_unavailable``."""
    if sc.baseline not in sc.chips:
        raise InputError("--baseline", None,
                         f"{sc.baseline!r} is not among the chips ({', '.join(sc.chips)})")
    if deadline_days is not None and not (deadline_days > 0 and math.isfinite(deadline_days)):
        raise InputError("--deadline-days", None, f"must be a positive number, got {deadline_days}")
    overrides = overrides or {}
    entries, warnings = _entries(sc, overrides)
    rows: list[CompareRow] = []
    sample_arrays: dict[tuple[str, str], dict[str, Any]] = {}
    given = PlanRequest(**sc.plan.model_dump())
    search_set = parse_search(",".join(sc.search), "search")
    for arch in _models(sc):
        for e in entries:
            # The stack release as a run of this model on this chip takes it (its recipe's
            # defaults on that platform).
            e = replace(e, stack_spec=e.stack_spec.for_platform(e.chip.name, e.run.precision,
                                                                arch.name, arch.is_moe, "--chips"))
            # What the scenario does not give, each chip's stack release decides.
            req = resolve_request(e.stack_spec.release, given, search_set)
            stacks = [stack_from_spec(e.stack_spec, o) for o in
                      option_variants(e.stack_spec.release, sc.settings(), search_set)]
            stack = stacks[0]
            not_sold = unavailable(e.spec, sc.pricing.market)
            if not_sold and deadline_days is not None and not include_unavailable:
                rows.append(_empty(_base(arch, e, sc, stack.name), f"{not_sold} (not sized for "
                                   "the deadline; --include-unavailable sizes it)", None))
                continue
            try:
                if deadline_days is not None:
                    sized, met = _deadline(arch, e, stacks, sc, req, deadline_days)
                    n, res = sized.num_chips, sized.result
                    status = "ok" if met else (
                        f"deadline missed: the fastest cluster, {n:,} chips, takes "
                        f"{sized.days:.1f} days against {deadline_days:g}")
                else:
                    n, res, status = sc.num_chips, search_stacks(arch, e.chip, stacks, e.run,
                                                                 sc.num_chips, req), "ok"
            except InputError as exc:
                if exc.where != "plan":
                    raise
                # No valid plan on this chip (the cluster or batch does not divide): say so in
                # its row rather than dropping it or failing the whole comparison.
                rows.append(_empty(_base(arch, e, sc, stack.name), exc.message, None))
                continue
            row = _row(arch, e, sc, n, res, req, status)
            if not_sold and row.plan:
                row = replace(row, status=not_sold)
            if with_assumptions:
                row = replace(row, assumed=assumed_payload(
                    settings_assumed(res, e.stack_spec, sc.settings(), given, search_set)))
            if samples and row.fits_memory:
                sample_arrays[(arch.name, e.name)] = sampled(arch, e, sc, res, samples, seed)
            rows.append(row)
    if sc.mixes:
        from moebench.commands.mix.compare import mix_rows

        rows += mix_rows(sc, _models(sc), overrides, deadline_days)
    rows = with_ratios(rows, sc.baseline, sample_arrays)
    if not samples:
        rows = _break_even_intervals(rows, entries, sc.baseline)
    return Comparison(scenario=sc, rows=rows, stacks={e.stack_spec.label: e.stack_spec
                                                      for e in entries},
                      assumptions={**assumptions(sc, overrides, deadline_days),
                                   "warnings": warnings})


def _break_even_intervals(rows: list[CompareRow], entries: list[Entry], baseline: str
                          ) -> list[CompareRow]:
    """Without samples, the break-even price ratio's interval from the two stacks'
    out-of-source errors alone (:func:`.sampling.ratio_interval`), so that the verdict line
    always says how sure its break-even is."""
    spec = {e.name: e.stack_spec for e in entries}
    out = []
    for r in rows:
        base = next((b for b in rows if b.model == r.model and b.entry == baseline), None)
        if (r.break_even_price_ratio is None or base is None or r.entry == baseline
                or r.entry not in spec or baseline not in spec):
            out.append(r)
            continue
        iv = ratio_interval(r.break_even_price_ratio, out_of_source_interval(spec[r.entry]),
                            out_of_source_interval(spec[baseline]))
        out.append(replace(r, intervals={**r.intervals, "break_even_price_ratio": iv}))
    return out


def _deadline(arch: ModelArch, e: Entry, stacks: list[Any], sc: ScenarioSpec,
              req: PlanRequest, deadline_days: float) -> tuple[SizedRun, bool]:
    def size_run(n: int) -> SizedRun | None:
        try:
            res = search_stacks(arch, e.chip, stacks, e.run, n, req)
        except InputError:
            return None
        if res.best is None:
            return None
        est = estimate_from(res)
        econ = economics(e.chip, e.spec, sc, n, est.step_time_s,
                         float(res.steps.memory.checkpoint[res.best]), nominal)
        return SizedRun(n, res, float(econ["days"]),
                        None if econ["cost"] is None else float(econ["cost"]))

    return search_deadline(e.chip.up_domain, deadline_days, size_run)


def assumptions(sc: ScenarioSpec, overrides: dict[str, dict[str, str]],
                deadline_days: float | None) -> dict[str, Any]:
    """What the costs rest on, printed under the table so a reader can argue with it."""
    p, g = sc.pricing, sc.goodput
    return {
        "scenario": sc.name, "models": list(sc.models), "tokens": sc.tokens,
        "seq_len": sc.seq_len, "global_batch": sc.global_batch,
        "num_chips": None if deadline_days is not None else sc.num_chips,
        "deadline_days": deadline_days, "precision": sc.precision,
        "price_basis": p.basis, "price_basis_meaning": BASIS_WORDS[p.basis],
        "market": p.market,
        "currency": p.currency, "cny_per_usd": p.cny_per_usd.value, "pue": p.pue.value,
        "electricity_per_kwh": p.electricity_per_kwh.value,
        "electricity_currency": p.electricity_per_kwh.currency,
        "amortisation_years": p.amortisation_years.value, "utilisation": p.utilisation.value,
        "tco": None if p.tco is None else {
            "server_share": p.tco.server_share.value,
            "network_per_chip": p.tco.network_per_chip.value,
            "network_currency": p.tco.network_per_chip.currency,
            "facility_per_kw": p.tco.facility_per_kw.value,
            "facility_currency": p.tco.facility_per_kw.currency,
            "cost_of_capital": p.tco.cost_of_capital.value},
        "carbon_kg_per_kwh": p.carbon_kg_per_kwh.value,
        "checkpoint_write_gb_per_s": g.checkpoint_write_gb_per_s.value,
        "restart_minutes": g.restart_minutes.value,
        "expert_imbalance": sc.expert_imbalance.value, "ep_overlap": sc.ep_overlap,
        "stack_options": sc.stack_options.model_dump(exclude_none=True),
        "overrides": {f"{c}:{k}" if c != "*" else k: v
                      for c, kv in overrides.items() for k, v in kv.items()},
    }

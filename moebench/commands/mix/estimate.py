"""One model on a mixed cluster: every strategy, each chip type alone and the types apart, with
time, money and energy on the scenario's price basis (what ``moebench estimate --mix`` prints
and what a mixed row of ``moebench compare`` carries)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from moebench.commands.mix.choice import SYNCHRONOUS, choose, flag_superlinear, verdict
from moebench.commands.mix.cost import PaidType, apart_economics, mixed_economics
from moebench.commands.mix.inputs import LoadedMix, load_mix
from moebench.commands.mix.outcome import Outcome
from moebench.commands.shared.pricing import economics
from moebench.engine.mix.result import (
    LOCAL_SGD,
    STRATEGY_WORDS,
    StrategyResult,
)
from moebench.engine.mix.search import MixSearch, search_mix
from moebench.engine.model_flops import model_flops_per_token
from moebench.engine.plan import PlanRequest
from moebench.engine.search import SearchResult
from moebench.inputs.hardware import nominal
from moebench.inputs.model import ModelArch, load_model
from moebench.inputs.scenario import MixOptionsSpec, ScenarioSpec
from moebench.units import GIB, GIGA

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, kw_only=True)
class MixEstimate:
    mix: str
    model: str
    precision: str
    seq_len: int
    global_batch: int
    tokens: float
    currency: str
    price_basis: str
    types: list[dict[str, Any]]
    chosen: str | None
    choice: str
    strategies: list[Outcome]
    alone: list[Outcome]
    apart: Outcome | None
    verdict: dict[str, Any]
    assumptions: dict[str, Any]
    search_seconds: float

    def outcome(self, name: str) -> Outcome | None:
        return next((o for o in self.strategies if o.configuration == name), None)

    @property
    def chosen_outcome(self) -> Outcome | None:
        return None if self.chosen is None else self.outcome(self.chosen)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def outcomes(self) -> list[Outcome]:
        """Every configuration as the table lists them: each strategy, each type alone, and
        the types apart."""
        return [*self.strategies, *self.alone, *([self.apart] if self.apart else [])]

    def to_frame(self) -> pd.DataFrame:
        """One row per configuration (:meth:`outcomes`; the chosen strategy marked), its
        figures as columns."""
        import pandas as pd

        outcomes = self.outcomes()
        df = pd.DataFrame([{
            "configuration": o.configuration + (" (chosen)" if o.configuration == self.chosen
                                                else ""),
            "step_time_s": o.step_time_s,
            "tokens_per_s": o.tokens_per_s, "tokens_per_s_per_chip": o.tokens_per_s_per_chip,
            "mfu": o.mfu, "days": o.days, "cost": o.cost, "energy_mwh": o.energy_mwh,
            "goodput": o.goodput, "status": o.status} for o in outcomes])
        # Whole chip counts, or none where a strategy is unavailable: kept as objects, not a
        # float column that prints 16 chips as "16.0".
        df.insert(1, "num_chips", pd.Series([o.num_chips or None for o in outcomes],
                                            dtype=object))
        return df


def _speed(arch: ModelArch, sc: ScenarioSpec, mix: LoadedMix, step: float,
           counts: dict[str, int]) -> dict[str, Any]:
    """Tokens/s, per paid chip, and MFU against the summed peaks of the paid chips (FP8 peaks
    when the mix runs FP8, which it does only where every type has FP8)."""
    tokens_s = sc.seq_len * sc.global_batch / step
    flops = model_flops_per_token(arch, sc.seq_len).total * tokens_s
    chips = {t.chip.name: t.chip for t in mix.types}

    def peak_of(name: str) -> float:
        chip = chips[name]
        fp8 = chip.fp8_flops if mix.precision == "fp8" else None
        return float(fp8 if fp8 is not None else chip.bf16_flops)

    peak = sum(n * peak_of(c) for c, n in counts.items())
    bf16 = sum(n * float(chips[c].bf16_flops) for c, n in counts.items())
    return {"tokens_per_s": tokens_s, "tokens_per_s_per_chip": tokens_s / sum(counts.values()),
            "mfu": flops / peak, "mfu_bf16": flops / bf16}


def _strategy_outcome(arch: ModelArch, sc: ScenarioSpec, mix: LoadedMix, s: StrategyResult,
                      search: MixSearch) -> Outcome:
    if not s.available or s.step_time_s is None:
        return Outcome(configuration=s.strategy, kind="strategy", num_chips=0,
                       status=f"not available: {s.reason}")
    specs = {h.name: h for h in mix.hardware}
    chips = {t.chip.name: t.chip for t in mix.types}
    paid = [PaidType(chips[p.chip], specs[p.chip], p.count, p.checkpoint_bytes)
            for p in s.working]
    econ = mixed_economics(paid, sc, s.step_time_s)
    parts = [{"chip": p.chip, "stack": p.stack, "count": p.count, "plan": p.plan,
              "sequences": p.sequences, "batch_share": p.sequences / sc.global_batch,
              "layers": p.layers,
              "layer_share": None if p.layers is None else p.layers / arch.spec.num_layers,
              "step_time_s": p.step_time_s, "memory_gib_per_chip": p.memory_bytes / GIB,
              "keeps_headroom": p.keeps_headroom, "idle": p.idle} for p in s.parts]
    notes = [STRATEGY_WORDS[s.strategy]]
    notes += [f"{p.chip} gets no work (the split gives it none): its chips are not used"
              for p in s.parts if p.idle]
    notes += [f"{p.chip} is tight: it fits at its stack's typical allocator hold, not at the top "
              "of its measured range" for p in s.parts if not p.idle and not p.keeps_headroom]
    if s.strategy == LOCAL_SGD:
        notes.append(s.details["convergence"])
    if econ["missing_price"]:
        notes.append("no price: " + "; ".join(econ["missing_price"]))
    return Outcome(
        configuration=s.strategy, kind="strategy", num_chips=sum(p.count for p in paid),
        step_time_s=s.step_time_s,
        **_speed(arch, sc, mix, s.step_time_s, {p.chip.name: p.count for p in paid}),
        days=econ["days"], chip_hours=econ["chip_hours"], goodput=econ["goodput"],
        cost=econ["cost"], energy_mwh=econ["energy_mwh"], co2_tonnes=econ["co2_tonnes"],
        parts=parts, notes=notes,
        cross_type={"network": s.network, "exposed_s_per_step": s.cross_s,
                    "bytes_per_step_each_way": s.cross_bytes, **s.details})


def _alone_outcome(arch: ModelArch, sc: ScenarioSpec, mix: LoadedMix, k: int,
                   res: SearchResult | None) -> Outcome:
    from moebench.commands.estimate.estimate import estimate_from

    t, spec = mix.types[k], mix.hardware[k]
    name = f"{t.chip.name} alone"
    if res is None or res.best is None:
        return Outcome(configuration=name, kind="alone", num_chips=t.count,
                       status=f"no plan fits {t.count:,} x {t.chip.name} on the whole batch")
    est = estimate_from(res)
    econ = economics(t.chip, spec, sc, t.count, est.step_time_s,
                     float(res.steps.memory.checkpoint[res.best]), nominal)
    return Outcome(
        configuration=name, kind="alone", num_chips=t.count, step_time_s=est.step_time_s,
        tokens_per_s=est.tokens_per_s, tokens_per_s_per_chip=est.tokens_per_s_per_chip,
        mfu=est.mfu, mfu_bf16=est.mfu_bf16, days=float(econ["days"]),
        chip_hours=float(econ["chip_hours"]), goodput=float(econ["goodput"]),
        cost=None if econ["cost"] is None else float(econ["cost"]),
        energy_mwh=float(econ["energy_mwh"]), co2_tonnes=float(econ["co2_tonnes"]),
        parts=[{"chip": t.chip.name, "stack": t.stack.name, "count": t.count, "plan": est.plan,
                "sequences": sc.global_batch, "batch_share": 1.0, "layers": None,
                "layer_share": None, "step_time_s": est.step_time_s,
                "memory_gib_per_chip": est.memory_gib_per_chip, "idle": False}],
        notes=[f"{t.count:,} {t.chip.name} train the whole job on their own"])


def _apart_outcome(arch: ModelArch, sc: ScenarioSpec, mix: LoadedMix, alone: list[Outcome]
                   ) -> Outcome | None:
    if len(alone) < 2 or any(a.step_time_s is None for a in alone):
        return None
    econ = apart_economics([asdict(a) for a in alone], sc)
    shares = ", ".join(f"{a.configuration.removesuffix(' alone')} {100 * s:.0f}%"
                       for a, s in zip(alone, econ["token_share"], strict=True))
    speed = _speed(arch, sc, mix, econ["step_time_s"], {t.chip.name: t.count for t in mix.types})
    return Outcome(
        configuration="apart", kind="apart", num_chips=sum(a.num_chips for a in alone),
        step_time_s=econ["step_time_s"], **speed,
        days=econ["days"], chip_hours=econ["chip_hours"], goodput=econ["goodput"],
        cost=econ["cost"], energy_mwh=econ["energy_mwh"], co2_tonnes=econ["co2_tonnes"],
        parts=[p for a in alone for p in a.parts],
        notes=[f"the same chips as separate homogeneous jobs, tokens shared {shares} so both "
               "finish together: no cross-type traffic and no compromise plan, but separate "
               "models (or a merge)"])


def estimate_mix(sc: ScenarioSpec, mix: str, overrides: dict[str, dict[str, str]] | None = None,
                 option: str = "--mix", arch: ModelArch | None = None) -> MixEstimate:
    """Every strategy on ``mix`` for the scenario's first model (or ``arch``), each type alone,
    the types apart, and the chosen strategy, as the scenario's ``mix_options`` say."""
    opts = sc.mix_options
    arch = arch or load_model(sc.models[0])
    loaded = load_mix(mix, sc, opts.fabric, overrides, option, arch.is_moe, arch.name)
    request = PlanRequest(**sc.plan.model_dump())
    found = search_mix(arch, loaded.types, request, loaded.fabric, opts.placement,
                       opts.sync_every_steps)
    strategies = [_strategy_outcome(arch, sc, loaded, s, found)
                  for s in found.strategies.values()]
    alone = [_alone_outcome(arch, sc, loaded, k, r) for k, r in enumerate(found.alone)]
    apart = _apart_outcome(arch, sc, loaded, alone)
    strategies = [flag_superlinear(o, apart) for o in strategies]
    chosen = choose(strategies, opts)
    chosen_outcome = next((o for o in strategies if o.configuration == chosen), None)
    if chosen_outcome is not None and chosen_outcome.step_time_s is None:
        chosen = None
    return MixEstimate(
        mix=loaded.label, model=arch.name, precision=loaded.precision, seq_len=sc.seq_len,
        global_batch=sc.global_batch, tokens=sc.tokens, currency=sc.pricing.currency,
        price_basis=sc.pricing.basis,
        types=[{"chip": t.chip.name, "stack": t.stack.name, "count": t.count,
                "vendor": t.chip.vendor} for t in loaded.types],
        chosen=chosen, choice=opts.choose if opts.strategy == "auto" else "named",
        strategies=strategies, alone=alone, apart=apart,
        verdict=verdict(chosen_outcome if chosen else None, alone, apart),
        assumptions=mix_assumptions(loaded, found, opts),
        search_seconds=found.search_seconds)


def mix_assumptions(mix: LoadedMix, found: MixSearch, opts: MixOptionsSpec) -> dict[str, Any]:
    """The fabric figures and strategy settings the mixed figures rest on."""
    f = mix.fabric_spec
    return {
        "fabric": f.name, "placement": opts.placement,
        "common_fabric": {"per_chip_gbit_per_s": f.common.per_chip_bandwidth_gbit_per_s.value,
                          "efficiency": f.common.efficiency.value,
                          "latency_us": f.common.latency_us.value},
        "wan": {"link_gbit_per_s": f.wan.link_bandwidth_gbit_per_s.value,
                "efficiency": f.wan.efficiency.value, "latency_ms": f.wan.latency_ms.value},
        "cross_type_network": found.link.network,
        "cross_type_gb_per_s_per_chip_pair": found.link.per_flow_bw / GIGA,
        "outer_sync_precision": f.outer_sync.precision, "sync_every_steps": opts.sync_every_steps,
        "strategy": opts.strategy, "choose": opts.choose,
        "candidates": list(SYNCHRONOUS) if opts.strategy == "auto" else [opts.strategy],
        "stacks": {t.chip.name: t.stack.name for t in mix.types},
    }

"""Money, energy and goodput of a job on several chip types at once, and of the same chips run
as separate jobs.

One mixed job: one wall time for every chip. Failures of any chip stop the whole job, so the
cluster fails at the summed rate lambda = sum_t n_t / MTBF_t; every chip writes its own shard in
parallel, so a checkpoint takes as long as the slowest type's shard. Young/Daly goodput then
follows as for one chip type (:func:`moebench.commands.shared.cost.young_daly`), which it
equals when the mix has one type. Cost and energy add up over the types, each chip at its own
price on the table's basis; with no price for one type, the mix has no cost either.

Apart: each type trains its own job on its own chips (as ``compare`` prices it) and the token
budget is shared in proportion to their effective throughput, so that both finish together;
the combined throughput is the sum of the parts' (no cross-type traffic, no compromise plan),
at the price of two models or a merge. A mix can beat it only by pooling memory (a pipeline
whose types each hold fewer layers than alone), as a homogeneous cluster twice the size can be
more than twice as fast when memory binds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moebench.commands.shared.cost import DAY, checkpoint_seconds, energy_mwh, young_daly
from moebench.commands.shared.pricing import chip_price
from moebench.inputs.hardware import Chip, HardwareSpec, nominal
from moebench.inputs.scenario import ScenarioSpec
from moebench.units import GIGA, HOUR


@dataclass(frozen=True)
class PaidType:
    """Chips of one type that take part in a job (and are paid for)."""

    chip: Chip
    spec: HardwareSpec
    count: int
    checkpoint_bytes: float
    """Per chip."""


def cluster_mtbf_per_chip(paid: list[PaidType]) -> float:
    """The per-chip MTBF that gives the mix's failure rate: N / sum_t (n_t / MTBF_t), so that
    young_daly's MTBF / N is the mixed cluster's mean time between failures."""
    total = sum(p.count for p in paid)
    return total / sum(p.count / float(p.chip.mtbf_s) for p in paid)


def mixed_economics(paid: list[PaidType], sc: ScenarioSpec, step_s: float) -> dict[str, Any]:
    """Days, chip-hours, goodput, cost (None with the reasons when a type has no price on the
    basis), energy and CO2 of one job on ``paid`` at ``step_s`` seconds per step."""
    p, g = sc.pricing, sc.goodput
    fx = p.cny_per_usd.value
    ideal_s = sc.tokens / (sc.seq_len * sc.global_batch / step_s)
    total = sum(t.count for t in paid)
    write = g.checkpoint_write_gb_per_s.value * GIGA
    ckpt_s = max(checkpoint_seconds(t.checkpoint_bytes, write) for t in paid)
    gp = young_daly(total, cluster_mtbf_per_chip(paid), ckpt_s, g.restart_minutes.value * 60.0)
    goodput = float(gp.goodput)
    wall_s = ideal_s / goodput
    prices = [chip_price(t.chip, t.spec, sc, fx, nominal) for t in paid]
    missing = [f"{t.chip.name}: {pr.missing}" for t, pr in zip(paid, prices, strict=True)
               if pr.per_chip_hour is None]
    cost = None if missing else sum(
        t.count * float(pr.per_chip_hour) * wall_s / HOUR for t, pr in zip(paid, prices,
                                                                          strict=True))
    energy = sum(float(energy_mwh(t.count, t.chip.wall_w, p.pue.value, wall_s)) for t in paid)
    return {"days": wall_s / DAY, "chip_hours": total * wall_s / HOUR, "goodput": goodput,
            "cost": cost, "missing_price": missing, "energy_mwh": energy,
            "co2_tonnes": energy * p.carbon_kg_per_kwh.value}


def apart_economics(alone: list[dict[str, Any]], sc: ScenarioSpec) -> dict[str, Any]:
    """The types as separate jobs sharing the token budget so that they finish together.

    ``alone`` holds each type's own job on the whole budget: its chips, step seconds and
    economics. Effective rate r_t = tokens per step / step_t x goodput_t; wall time =
    tokens / sum_t r_t; each type's cost and energy scale with that wall time."""
    tokens_per_step = sc.seq_len * sc.global_batch
    raw = [tokens_per_step / a["step_time_s"] for a in alone]
    effective = [r * a["goodput"] for r, a in zip(raw, alone, strict=True)]
    wall_s = sc.tokens / sum(effective)
    share = [wall_s / (a["days"] * DAY) for a in alone]  # of each type's own-job duration
    costs = [a["cost"] for a in alone]
    return {
        "step_time_s": tokens_per_step / sum(raw), "tokens_per_s": sum(raw),
        "days": wall_s / DAY, "goodput": sum(effective) / sum(raw),
        "chip_hours": sum(a["num_chips"] for a in alone) * wall_s / HOUR,
        "cost": None if any(c is None for c in costs) else sum(
            c * s for c, s in zip(costs, share, strict=True)),
        "energy_mwh": sum(a["energy_mwh"] * s for a, s in zip(alone, share, strict=True)),
        "co2_tonnes": sum(a["co2_tonnes"] * s for a, s in zip(alone, share, strict=True)),
        "token_share": [e / sum(effective) for e in effective],
    }

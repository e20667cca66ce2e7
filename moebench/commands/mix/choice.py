"""Which mixed strategy a mix reports, and whether mixing pays: the chosen strategy against
each chip type alone and against the types apart."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from moebench.engine.mix.result import DATA_PARALLEL, PIPELINE
from moebench.engine.search import TIE_BAND
from moebench.inputs.scenario import MixOptionsSpec

if TYPE_CHECKING:
    from moebench.commands.mix.outcome import Outcome

SYNCHRONOUS = (DATA_PARALLEL, PIPELINE)
"""Strategies that train exactly as one homogeneous job would (the default candidates)."""


def flag_superlinear(o: Outcome, apart: Outcome | None) -> Outcome:
    """Say so when a strategy beats the same chips apart, and why it can: the parts alone are
    memory bound (recompute, small micro-batches) and the mix pools their memory."""
    if apart is None or o.tokens_per_s is None or apart.tokens_per_s is None or \
            o.tokens_per_s <= apart.tokens_per_s:
        return o
    gain = o.tokens_per_s / apart.tokens_per_s - 1
    why = ("pooled memory: each type holds fewer layers than alone, so it needs less "
           "recompute or fits larger micro-batches, as a homogeneous cluster twice the size "
           "can be more than twice as fast" if o.configuration == PIPELINE else
           "a share of the batch divides into micro-batches better than the whole batch "
           "(within the 1% the model calls a tie)")
    return replace(o, notes=[*o.notes, f"{100 * gain:.1f}% above the types apart: {why}"])


def choose(outcomes: list[Outcome], opts: MixOptionsSpec) -> str | None:
    """The named strategy, or the fastest (cheapest) synchronous one; strategies within the
    engine's tie band of it are ties, resolved in the order of :data:`SYNCHRONOUS` (data
    parallel first: each type keeps whole replicas, nothing of one model spans two vendors)."""
    if opts.strategy != "auto":
        return opts.strategy
    ok = [o for o in outcomes if o.configuration in SYNCHRONOUS and o.step_time_s is not None]
    if not ok:
        return None
    cheapest = opts.choose == "cheapest" and all(o.cost is not None for o in ok)

    def figure(o: Outcome) -> float:
        return float((o.cost if cheapest else o.step_time_s) or 0.0)

    best = min(figure(o) for o in ok)
    near = [o for o in ok if figure(o) <= best * (1 + TIE_BAND)]
    return min(near, key=lambda o: SYNCHRONOUS.index(o.configuration)).configuration


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def verdict(chosen: Outcome | None, alone: list[Outcome], apart: Outcome | None
            ) -> dict[str, Any]:
    """Does mixing pay: the chosen strategy against the fastest and the cheapest type alone
    and against the types apart."""
    done = [a for a in alone if a.days is not None]
    fastest = min(done, key=lambda a: a.days or 0.0, default=None)
    priced = [a for a in done if a.cost is not None]
    cheapest = min(priced, key=lambda a: a.cost or 0.0, default=None)
    if chosen is None or chosen.days is None:
        return {"summary": "no mixed strategy is available"}
    out: dict[str, Any] = {
        "fastest_alone": fastest.configuration if fastest else None,
        "days_vs_fastest_alone": _ratio(chosen.days, fastest.days if fastest else None),
        "cheapest_alone": cheapest.configuration if cheapest else None,
        "cost_vs_cheapest_alone": _ratio(chosen.cost, cheapest.cost if cheapest else None),
        "throughput_vs_apart": _ratio(chosen.tokens_per_s, apart.tokens_per_s if apart else None),
        "cost_vs_apart": _ratio(chosen.cost, apart.cost if apart else None),
    }
    words = [f"{chosen.configuration}: {chosen.days:.1f} days"]
    if fastest and out["days_vs_fastest_alone"] is not None:
        words.append(f"{out['days_vs_fastest_alone']:.2f}x the days of {fastest.configuration}")
    if cheapest and out["cost_vs_cheapest_alone"] is not None:
        words.append(f"{out['cost_vs_cheapest_alone']:.2f}x the cost of "
                     f"{cheapest.configuration}")
    if out["throughput_vs_apart"] is not None:
        words.append(f"{100 * out['throughput_vs_apart']:.1f}% of the throughput of the same "
                     "chips apart")
    out["summary"] = "; ".join(words)
    return out

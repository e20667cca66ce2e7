"""A mixed-cluster estimate as a Report: one row per configuration (each strategy, each type
alone, the types apart), each type's plan and share in words, the verdict under it."""

from __future__ import annotations

from typing import Any

from moebench.commands.mix.estimate import MixEstimate
from moebench.commands.mix.outcome import Outcome
from moebench.commands.shared.caveats import caveats_for, stacks_line
from moebench.commands.shared.plan_text import plan_text
from moebench.commands.shared.report import Report
from moebench.engine.mix.result import LOCAL_SGD, PIPELINE, STRATEGY_WORDS


def part_text(part: dict[str, Any], pipeline: bool) -> str:
    """One type's part: its plan and its share of the batch (or of the layers)."""
    who = f"{part['chip']} x{part['count']:,}"
    if part["idle"]:
        return f"{who}: no work"
    share = (f"{part['layers']} layers ({100 * part['layer_share']:.0f}%)" if pipeline
             else f"{part['sequences']:,} seq ({100 * part['batch_share']:.0f}%)")
    return f"{who} {plan_text(part['plan'])}: {share}"


def cross_text(o: Outcome) -> str:
    c = o.cross_type or {}
    if not c:
        return ""
    if o.configuration == LOCAL_SGD:
        return (f"outer sync every {c['sync_every_steps']} steps: {c['outer_sync_s']:.1f} s "
                f"over the {c['network']}")
    return f"cross-type {c['exposed_s_per_step']:.2f} s/step over the {c['network']}"


def outcome_text(o: Outcome) -> str:
    """The plan column: every type's part, the pipeline order, the cross-type cost."""
    if o.step_time_s is None:
        return o.status
    if o.kind != "strategy":  # whole jobs: each type on its own plan
        return "; ".join(f"{p['chip']} x{p['count']:,} {plan_text(p['plan'])}" for p in o.parts)
    pipeline = o.configuration == PIPELINE
    parts = [part_text(p, pipeline) for p in o.parts]
    if pipeline and o.cross_type:
        parts.insert(0, f"{o.cross_type['first_stage']} first")
    return "; ".join([*parts, cross_text(o)])


def mix_report(est: MixEstimate) -> Report:
    cur = est.currency
    df = est.to_frame()
    df.insert(int(df.columns.get_loc("status")), "plan", [outcome_text(o) for o in est.outcomes()])
    v, a = est.verdict, est.assumptions
    total = sum(t["count"] for t in est.types)
    footer = [
        f"verdict: {v['summary']}",
        f"{est.model}, {est.precision} (FP8 only where every chip type has it), seq "
        f"{est.seq_len}, global batch {est.global_batch} sequences, {est.tokens:.3g} tokens; "
        f"{est.price_basis} prices in {cur}",
        stacks_line(a["stacks"].items()),
        f"chosen: the {est.choice} of {', '.join(a['candidates'])}" if est.choice != "named"
        else f"chosen: {est.chosen}, as asked",
    ]
    for o in est.strategies:
        if o.step_time_s is not None:
            footer.append(f"{o.configuration}: {STRATEGY_WORDS[o.configuration]}")
    footer += [
        f"fabric {a['fabric']} ({a['placement']}): cross-type traffic rides the "
        f"{a['cross_type_network']}, never scale-up links; common fabric "
        f"{a['common_fabric']['per_chip_gbit_per_s']:g} Gb/s per chip at "
        f"{a['common_fabric']['efficiency']:g} efficiency, WAN "
        f"{a['wan']['link_gbit_per_s']:g} Gb/s per link at {a['wan']['efficiency']:g}, "
        f"{a['wan']['latency_ms']:g} ms (estimates: moebench profiles in profiles/fabrics)",
        f"local-sgd: outer sync every {a['sync_every_steps']} steps in "
        f"{a['outer_sync_precision']}; the effect of infrequent synchronization on convergence "
        "is outside the model",
        "apart: the same chips as separate homogeneous jobs, the budget shared so both finish "
        "together (no cross-type traffic)",
        "goodput: a mixed job stops when any of its chips fails (failure rates add up)",
    ]
    footer += [f"{o.configuration}: {n}" for o in est.strategies for n in o.notes
               if any(w in n for w in ("no work", "above the types apart"))]
    footer += list(dict.fromkeys(n for o in est.strategies for n in o.notes
                                 if n.startswith("no price")))
    footer += [text for _, text in caveats_for(t["stack"] for t in est.types).values()]
    labels = {"configuration": "configuration", "num_chips": "chips", "step_time_s": "step s",
              "tokens_per_s": "tok/s", "tokens_per_s_per_chip": "tok/s/chip", "mfu": "MFU",
              "cost": f"cost {cur}", "energy_mwh": "MWh"}
    optional = ("goodput", "energy_mwh", "mfu", "tokens_per_s_per_chip", "step_time_s")
    title = (f"{est.model} on {est.mix} ({total:,} chips): mixed strategies against each type "
             f"alone and apart; {est.price_basis} prices in {cur}")
    return Report(title, df, est.as_dict(), footer, labels=labels, hidden=("status",),
                  optional=optional)

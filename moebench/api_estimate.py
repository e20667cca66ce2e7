"""The estimate family's other library calls, re-exported by ``moebench``: ``explain`` (why
the plan wins, where its time and memory go) and ``estimate_mix`` (``estimate --mix``: one
model on a mixed cluster, every mixed strategy beside each chip type alone and the types as
separate jobs, with cost and energy). Keyword arguments are the commands' options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from moebench import api_args as args
from moebench.api_args import Overrides
from moebench.commands.shared.options import (
    check_option_types,
    mix_options,
    modules_choice,
    offload_modules_choice,
    sharding_choice,
)

if TYPE_CHECKING:
    from moebench.commands.estimate.explain import Explanation
    from moebench.commands.mix.estimate import MixEstimate


def explain(model: str | None = None, chip: str | None = None, num_chips: int | None = None,
            *, allow_oom: bool = False, **options: Any) -> Explanation:
    """``moebench explain``: the estimate's plan with where its time and memory go, the
    runners-up and why they lose, and what a 10% better figure of the chip would buy
    (``.to_frame()``: one row per item). ``options`` are :func:`moebench.api.job`'s."""
    from moebench.api import job
    from moebench.commands.estimate.estimate import estimate as run_estimate
    from moebench.commands.estimate.explain import explain as build

    inputs, n = job(model, chip, num_chips, **options)
    _, result = run_estimate(inputs.arch, inputs.chip, inputs.stacks, inputs.run, n,
                             inputs.request, allow_oom=allow_oom)
    return build(result, inputs)


def estimate_mix(
    mix: str, model: str | None = None, *, scenario: str | None = None,
    tokens: str | float | None = None, price_basis: str | None = None,
    fabric: str | None = None, placement: str | None = None, sync_every: int | None = None,
    strategy: str | None = None, choose: str | None = None,
    seq_len: int | None = None, global_batch: int | None = None, precision: str | None = None,
    ep_overlap: bool | None = None, expert_imbalance: float | None = None,
    tp: int | None = None, pp: int | None = None, vpp: int | None = None, ep: int | None = None,
    etp: int | None = None, cp: int | None = None, cp_kind: str | None = None,
    micro_batch: int | None = None, recompute: str | None = None,
    recompute_modules: str | Sequence[str] | None = None, schedule: str | None = None,
    zero: int | None = None, fsdp: bool = False, shard_group: int | None = None,
    optimizer_offload: float | None = None, pipeline_layout: str | None = None,
    offload_modules: str | Sequence[str] | None = None,
    set: Overrides = None,  # noqa: A002 - the option is --set
    option: str = "--mix",
) -> MixEstimate:
    """``mix`` (CHIP:COUNT+CHIP:COUNT) training ``model``: each strategy, each type alone and
    apart, the chosen one marked (``.to_frame()``: one row per configuration). Plan fields
    given hold for every type; ``set`` takes CHIP:FIELD=VALUE for one type. ``option`` is the
    option errors about the mix name (the CLI's --chip when the mix came there)."""
    from moebench.commands.mix.estimate import estimate_mix as run_mix
    from moebench.commands.mix.inputs import mix_scenario
    from moebench.commands.shared.setup import per_chip_overrides
    from moebench.inputs.mix import parse_mix

    check_option_types(locals())
    label = parse_mix(mix, option).label
    per_chip, run_changes = per_chip_overrides(args.pairs(set))
    run = {"seq_len": seq_len, "global_batch": global_batch, "precision": precision,
           "ep_overlap": ep_overlap, "expert_imbalance": expert_imbalance}
    plan: dict[str, Any] = {
        "tp": tp, "pp": pp, "vpp": vpp, "ep": ep, "etp": etp, "cp": cp,
        "micro_batch": micro_batch, "recompute": recompute, "schedule": schedule,
        "sharding": sharding_choice(zero, fsdp, shard_group), "shard_group": shard_group,
        "cp_kind": cp_kind,
        "recompute_modules": modules_choice(args.text(recompute_modules, "--recompute-modules")),
        "optimizer_offload": optimizer_offload, "pipeline_layout": pipeline_layout,
        "offload_modules": offload_modules_choice(args.text(offload_modules, "--offload-modules"))}
    sc = mix_scenario(scenario, model=model, tokens=None if tokens is None else str(tokens),
                      price_basis=price_basis,
                      run={k: v for k, v in run.items() if v is not None},
                      plan={k: v for k, v in plan.items() if v is not None},
                      mix_options=mix_options(fabric, placement, sync_every, strategy, choose),
                      run_changes=run_changes)
    return run_mix(sc, label, per_chip, option=option)

"""``moebench estimate`` and ``moebench explain``: one model, chip and cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer

from moebench.cli.app import app
from moebench.cli.common import (
    CapacityOpt,
    ChipOpt,
    ChipsOpt,
    ChooseOpt,
    CpKindOpt,
    CpOpt,
    DispatcherOpt,
    EpOpt,
    EtpOpt,
    FabricOpt,
    FormatOpt,
    FsdpOpt,
    GbOpt,
    GraphScopeOpt,
    GraphsOpt,
    ImbOpt,
    JobSeqLenOpt,
    LayoutOpt,
    MbOpt,
    ModelOpt,
    OffloadModulesOpt,
    OomOpt,
    OptOffloadOpt,
    OptStatesOpt,
    OutputOpt,
    OverlapOpt,
    PlacementOpt,
    PpOpt,
    PrecOpt,
    RcModulesOpt,
    RcOpt,
    ScenarioOpt,
    SchedOpt,
    SearchOpt,
    SetOpt,
    SettingsOpt,
    ShardGroupOpt,
    StackOpt,
    StrategyOpt,
    SyncEveryOpt,
    TpOpt,
    VppOpt,
    ZeroOpt,
    cli_errors,
    console,
    show,
)
from moebench.commands.shared.report import OutputFormat
from moebench.errors import InputError

EstimateChipOpt = Annotated[str | None, typer.Option(
    "--chip", "--chips", "-c",
    help="Catalog name or hardware YAML; CHIP:STACK for the chip on a named stack release (as "
         "compare's --chips); or a mixed cluster CHIP:COUNT+CHIP:COUNT (as --mix).")]
MixOpt = Annotated[str | None, typer.Option(
    "--mix", help="A mixed cluster, CHIP:COUNT+CHIP:COUNT (e.g. h800:512+ascend-910b:1024): "
                  "every strategy, each type alone and apart. What is not given comes from "
                  "--scenario; without one, each type alone runs what estimate --chip runs "
                  "(estimate's defaults), with the tokens and prices of compare's scenario.")]
BasisOpt = Annotated[str | None, typer.Option(
    "--price-basis", help="Mixes: ling, rental or ownership (default: the scenario's).")]
TokensOpt = Annotated[str | None, typer.Option(
    "--tokens", help="Mixes: tokens to train, 1T, 500B (default: the scenario's).")]


@app.command()
@cli_errors
def estimate(
    chip: EstimateChipOpt = None, model: ModelOpt = None, num_chips: ChipsOpt = None,
    scenario: ScenarioOpt = None,
    tp: TpOpt = None, pp: PpOpt = None, vpp: VppOpt = None, ep: EpOpt = None,
    etp: EtpOpt = None, cp: CpOpt = None, cp_kind: CpKindOpt = None,
    micro_batch: MbOpt = None, recompute: RcOpt = None, schedule: SchedOpt = None,
    recompute_modules: RcModulesOpt = None,
    seq_len: JobSeqLenOpt = None, global_batch: GbOpt = None, precision: PrecOpt = None,
    ep_overlap: OverlapOpt = None, expert_imbalance: ImbOpt = None, allow_oom: OomOpt = False,
    stack: StackOpt = None, dispatcher: DispatcherOpt = None, graphs: GraphsOpt = None,
    graph_scope: GraphScopeOpt = None,
    capacity_factor: CapacityOpt = None, zero: ZeroOpt = None, fsdp: FsdpOpt = False,
    shard_group: ShardGroupOpt = None, optimizer_states: OptStatesOpt = None,
    optimizer_offload: OptOffloadOpt = None, pipeline_layout: LayoutOpt = None,
    offload_modules: OffloadModulesOpt = None, search: SearchOpt = None,
    settings: SettingsOpt = None,
    mix: MixOpt = None, fabric: FabricOpt = None, placement: PlacementOpt = None,
    sync_every: SyncEveryOpt = None, strategy: StrategyOpt = None, choose: ChooseOpt = None,
    price_basis: BasisOpt = None, tokens: TokensOpt = None,
    set_: SetOpt = None, fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Predict step time, throughput, MFU and memory for one model, chip and cluster.

    Plan flags given are honoured exactly; the rest are searched. With a mixed cluster
    (--mix, or CHIP:COUNT+CHIP:COUNT as --chip), every mixed strategy is searched and shown
    beside each chip type alone and the types as separate jobs, with cost and energy.

    Example: moebench estimate --model deepseek-v3 --chip h800 --num-chips 2048
    --pp 16 --ep 64 --tp 1 --precision fp8 --global-batch 15360 --schedule dualpipe;
    moebench estimate --scenario ling-plus-1t --chip ascend-910b (a compare row, alone);
    moebench estimate --model ling-plus --mix h800:512+ascend-910b:1024
    """
    from moebench.inputs.mix import looks_like_mix

    if mix is not None and chip is not None:
        raise InputError("--mix", None, "give --chip or --mix, not both")
    mix_text = mix if mix is not None else (chip if chip and looks_like_mix(chip) else None)
    mix_only = {"--fabric": fabric, "--placement": placement, "--sync-every": sync_every,
                "--strategy": strategy, "--choose": choose, "--price-basis": price_basis,
                "--tokens": tokens}
    if mix_text is not None:
        not_mixed = {"--num-chips": num_chips, "--stack": stack, "--dispatcher": dispatcher,
                     "--search": search, "--settings": settings,
                     "--graphs": graphs, "--graph-scope": graph_scope,
                     "--capacity-factor": capacity_factor,
                     "--allow-oom": allow_oom or None, "--optimizer-states": optimizer_states}
        _refuse(not_mixed, "not with a mixed cluster: a mix gives each type's count "
                           "(CHIP:COUNT) and runs each type on its own default stack")
        from moebench.api_estimate import estimate_mix
        from moebench.commands.mix.report import mix_report

        est_mix = estimate_mix(
            mix_text, model, scenario=scenario, tokens=tokens, price_basis=price_basis,
            fabric=fabric, placement=placement, sync_every=sync_every, strategy=strategy,
            choose=choose, seq_len=seq_len, global_batch=global_batch, precision=precision,
            ep_overlap=ep_overlap, expert_imbalance=expert_imbalance, tp=tp, pp=pp, vpp=vpp,
            ep=ep, etp=etp, cp=cp, cp_kind=cp_kind, micro_batch=micro_batch,
            recompute=recompute, recompute_modules=recompute_modules, schedule=schedule,
            zero=zero, fsdp=fsdp, shard_group=shard_group,
            optimizer_offload=optimizer_offload, pipeline_layout=pipeline_layout,
            offload_modules=offload_modules, set=set_,
            option="--mix" if mix is not None else "--chip")
        show(mix_report(est_mix), fmt, output)
        return
    _refuse(mix_only, "only with a mixed cluster (--mix)")
    if chip is None:
        raise InputError("--chip", None, "give a chip (or a mixed cluster with --mix)")
    from moebench.api import estimate as run_estimate
    from moebench.commands.estimate.report import estimate_report
    from moebench.commands.shared.setup import split_overrides
    from moebench.inputs.overrides import parse_overrides

    est = run_estimate(
        model, chip, num_chips, scenario=scenario, stack=stack, tp=tp, pp=pp, vpp=vpp, ep=ep,
        etp=etp, cp=cp, cp_kind=cp_kind, micro_batch=micro_batch, recompute=recompute,
        recompute_modules=recompute_modules, schedule=schedule, seq_len=seq_len,
        global_batch=global_batch, precision=precision, ep_overlap=ep_overlap,
        expert_imbalance=expert_imbalance, dispatcher=dispatcher, graphs=graphs,
        graph_scope=graph_scope,
        capacity_factor=capacity_factor, zero=zero, fsdp=fsdp, shard_group=shard_group,
        optimizer_states=optimizer_states, optimizer_offload=optimizer_offload,
        pipeline_layout=pipeline_layout, offload_modules=offload_modules, search=search,
        settings=settings,
        set=set_, allow_oom=allow_oom)
    shown = split_overrides(parse_overrides(set_ or [])).shown
    show(estimate_report(est, shown), fmt, output)


def _refuse(given: Mapping[str, object], why: str) -> None:
    for option, value in given.items():
        if value is not None:
            raise InputError(option, None, why)


@app.command()
@cli_errors
def explain(
    chip: ChipOpt, model: ModelOpt = None, num_chips: ChipsOpt = None,
    scenario: ScenarioOpt = None,
    tp: TpOpt = None, pp: PpOpt = None, vpp: VppOpt = None, ep: EpOpt = None,
    etp: EtpOpt = None, cp: CpOpt = None, cp_kind: CpKindOpt = None,
    micro_batch: MbOpt = None, recompute: RcOpt = None, schedule: SchedOpt = None,
    recompute_modules: RcModulesOpt = None,
    seq_len: JobSeqLenOpt = None, global_batch: GbOpt = None, precision: PrecOpt = None,
    ep_overlap: OverlapOpt = None, expert_imbalance: ImbOpt = None, allow_oom: OomOpt = False,
    stack: StackOpt = None, dispatcher: DispatcherOpt = None, graphs: GraphsOpt = None,
    graph_scope: GraphScopeOpt = None,
    capacity_factor: CapacityOpt = None, zero: ZeroOpt = None, fsdp: FsdpOpt = False,
    shard_group: ShardGroupOpt = None, optimizer_states: OptStatesOpt = None,
    optimizer_offload: OptOffloadOpt = None, pipeline_layout: LayoutOpt = None,
    offload_modules: OffloadModulesOpt = None, search: SearchOpt = None,
    settings: SettingsOpt = None,
    set_: SetOpt = None, fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Why the chosen plan wins and where its time and memory go, with sensitivities.

    Shows the step time split into compute, exposed communication by kind and link level,
    bubble and overhead; memory against capacity; the runners-up and why they lost; and how
    much a 10% better figure (FLOP/s, HBM, links, capacity) would speed the step up.

    Example: moebench explain --model ling-plus --chip h800 --num-chips 1024
    --set scale_out.bandwidth_gb_per_s=100
    """
    from moebench.api_estimate import explain as run_explain
    from moebench.commands.estimate.explain_report import explanation_report, rich_view

    ex = run_explain(
        model, chip, num_chips, scenario=scenario, stack=stack, tp=tp, pp=pp, vpp=vpp, ep=ep,
        etp=etp, cp=cp, cp_kind=cp_kind, micro_batch=micro_batch, recompute=recompute,
        recompute_modules=recompute_modules, schedule=schedule, seq_len=seq_len,
        global_batch=global_batch, precision=precision, ep_overlap=ep_overlap,
        expert_imbalance=expert_imbalance, dispatcher=dispatcher, graphs=graphs,
        graph_scope=graph_scope,
        capacity_factor=capacity_factor, zero=zero, fsdp=fsdp, shard_group=shard_group,
        optimizer_states=optimizer_states, optimizer_offload=optimizer_offload,
        pipeline_layout=pipeline_layout, offload_modules=offload_modules, search=search,
        settings=settings, set=set_, allow_oom=allow_oom)
    if fmt in (None, OutputFormat.table) and output is None:
        console().print(rich_view(ex))
    else:
        show(explanation_report(ex), fmt, output)

